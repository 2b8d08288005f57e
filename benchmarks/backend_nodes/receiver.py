"""Backend benchmark receiver: one-way latency of `data`, arrival rate of `burst`.

As the main suite's receiver: for each `data` message it takes `time.monotonic_ns()` as soon
as the event is there and subtracts the sender's `t0` (one clock on one machine), keeps it
unless the message is one of the first `BENCH_WARMUP` of its size, then checks the payload's
length and reads its last byte, and acknowledges the message number on `ack`. For `burst`
it counts messages and notes the arrival time of the first and the last. Writes the figures
(with the `data` messages received per size) to `BENCH_OUT` once every input has closed.
"""

from __future__ import annotations

import json
import os
import time

import pyarrow as pa

from doradus import Input, Node

node = Node()
warmup = int(os.environ.get("BENCH_WARMUP", "10"))
latency: dict[str, list[int]] = {}
seen: dict[str, int] = {}
bad_sizes = 0
burst = 0
first = last = 0

for event in node:
    now = time.monotonic_ns()
    if not isinstance(event, Input):
        continue
    if event.id == "burst":
        last = now
        if not burst:
            first = last
        burst += 1
        continue
    value = event.value
    length = len(value)
    if length:
        value[length - 1].as_py()
    meta = event.metadata
    size, i = int(meta["size"]), int(meta["i"])
    del value, event  # let the framework reuse the memory before the next message
    bad_sizes += length != size
    key = str(size)
    n = seen.get(key, 0)
    seen[key] = n + 1
    if n >= warmup:
        latency.setdefault(key, []).append(now - int(meta["t0"]))
    node.send_output("ack", pa.array([i], pa.int64()))

with open(os.environ["BENCH_OUT"] + ".tmp", "w") as f:
    json.dump(
        {
            "latency_ns": latency,
            "received": seen,
            "bad_sizes": bad_sizes,
            "burst_received": burst,
            "burst_first_ns": first,
            "burst_last_ns": last,
        },
        f,
    )
os.replace(os.environ["BENCH_OUT"] + ".tmp", os.environ["BENCH_OUT"])
