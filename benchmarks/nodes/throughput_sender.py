"""Sends one preallocated 8-byte payload back to back for `BENCH_DURATION` seconds."""

from __future__ import annotations

import time

from benchlib import env_str, payload, write_result
from dora import Node

node = Node()
_, arr = payload(8)
duration_ns = int(float(env_str("BENCH_DURATION", "3")) * 1e9)
send = node.send_output
sent = 0
start = time.monotonic_ns()
end = start + duration_ns
while True:
    for _ in range(64):
        send("out", arr)
    sent += 64
    if time.monotonic_ns() >= end:
        break
stop = time.monotonic_ns()
write_result({"sent": sent, "t_start_ns": start, "t_end_ns": stop})
