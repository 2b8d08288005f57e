"""Receives stamped messages and records one-way latency per payload size.

Takes `time.monotonic_ns()` as soon as `next()` returns, reads the sender's stamp (from
the payload or the metadata, `BENCH_STAMP`), drops the first `BENCH_WARMUP` messages of
each size, and acknowledges each message on `ack` when `BENCH_ACK=1`.
"""

from __future__ import annotations

import time

import pyarrow as pa
from benchlib import env_int, env_str, read_stamp, write_result
from dora import Node

node = Node()
stamp_in = env_str("BENCH_STAMP", "payload")
warmup = env_int("BENCH_WARMUP", 10)
ack = env_int("BENCH_ACK", 1) == 1
latency: dict[str, list[int]] = {}
seen: dict[int, int] = {}
received = 0

while True:
    event = node.next()
    now = time.monotonic_ns()
    if event is None:
        break
    if event["type"] != "INPUT":
        continue
    value = event["value"]
    stamp = read_stamp(value) if stamp_in == "payload" else event["metadata"]["t"]
    size = len(value)
    del value, event  # let the framework reuse the memory before the next message
    received += 1
    n = seen.get(size, 0)
    seen[size] = n + 1
    if n >= warmup:
        latency.setdefault(str(size), []).append(now - stamp)
    if ack:
        node.send_output("ack", pa.array([stamp], type=pa.int64()))

write_result({"received": received, "latency_ns": latency})
