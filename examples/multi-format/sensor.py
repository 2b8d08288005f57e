"""Sends BURSTS bursts of 64 accelerometer samples, as Cap'n Proto, from three machines."""

import os

from doradus import Node

BURSTS = int(os.environ.get("BURSTS", "10000"))
MACHINES = {"press-1": 1.0, "lathe-2": 2.0, "mill-3": 4.0}  # machine: its vibration amplitude (g)

node = Node()
for seq in range(BURSTS):
    machine = list(MACHINES)[seq % len(MACHINES)]
    amplitude = MACHINES[machine] * (1 + seq % 10 / 10)
    samples = [amplitude * ((seq + k) % 7 - 3) / 3 for k in range(64)]  # deterministic: tests check it
    node.send_output("vibration", {"machine": machine, "seq": seq, "rateHz": 1600, "samples": samples})
print(f"sent {BURSTS} bursts")
