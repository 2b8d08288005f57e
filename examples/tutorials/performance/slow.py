"""Takes 2 ms per message; reports what arrived and what its queue dropped."""

import time

from doradus import Input, Node

node = Node()
received = 0
last_seq = -1
for event in node:
    if isinstance(event, Input):
        received += 1
        last_seq = event.metadata["seq"]
        time.sleep(0.002)
stats = node.statistics()["inputs"]["sample"]
print(f"received {received}, dropped {stats['dropped']}, last seq {last_seq}")
print("lossless" if stats["dropped"] == 0 else "dropped the oldest, kept the newest")
