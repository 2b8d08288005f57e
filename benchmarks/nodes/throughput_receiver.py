"""Says `ready`, then counts the messages that arrive, with the time of the first and the last."""

from __future__ import annotations

import time

import pyarrow as pa
from benchlib import write_result
from dora import Node

node = Node()
node.send_output("ready", pa.array([1], type=pa.int64()))
received = 0
first = last = 0
while True:
    event = node.next()
    if event is None:
        break
    if event["type"] == "INPUT":
        last = time.monotonic_ns()
        if not received:
            first = last
        received += 1
write_result({"received": received, "t_first_ns": first, "t_last_ns": last})
