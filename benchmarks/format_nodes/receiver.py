"""Receives the benchmark records, reads one field of each, records the one-way latency.

For each message: `event.value` is the format's reader (decoded inside `next()`), the
receiver reads one field through it (`formatlib.TOUCH`), then takes `time.monotonic_ns()` and
subtracts the sender's `t0`. The first `BENCH_WARMUP` messages of each record are dropped.
Every message is acknowledged on `ack` with its number.
"""

from __future__ import annotations

import json
import os
import time

import formatlib as fl
import pyarrow as pa

from doradus import Input, Node

node = Node()
fmt = os.environ["BENCH_FORMAT"]
warmup = int(os.environ.get("BENCH_WARMUP", "10"))
touch = fl.TOUCH[fmt]
latency: dict[str, list[int]] = {}
formats: dict[str, str] = {}
received = 0

for event in node:
    if not isinstance(event, Input):
        continue
    record, value = event.id, event.value
    touch(record, value)
    now = time.monotonic_ns()
    t0, i = event.metadata["t0"], event.metadata["i"]
    formats[record] = event.data_format
    del value, event  # let the framework reuse the memory before the next message
    received += 1
    if i >= warmup:
        latency.setdefault(record, []).append(now - t0)
    node.send_output("ack", pa.array([i], pa.int64()))

with open(os.environ["BENCH_OUT"] + ".tmp", "w") as f:
    json.dump({"received": received, "data_format": formats, "latency_ns": latency}, f)
os.replace(os.environ["BENCH_OUT"] + ".tmp", os.environ["BENCH_OUT"])
