"""Streams one preallocated payload once the receiver is ready: the throughput and CPU scenarios.

Waits for the receiver's `ready` message first (so nothing is sent before the receiver
exists: loss is measured with both sides ready), then sends `BENCH_SIZE` bytes (8 by default)
`BENCH_COUNT` times, paced at `BENCH_RATE_HZ` (0: back to back), or back to back for
`BENCH_DURATION` seconds when `BENCH_COUNT` is 0.
"""

from __future__ import annotations

from benchlib import env_int, env_str, payload, stream, wait_input, write_result
from dora import Node

node = Node()
_, arr = payload(env_int("BENCH_SIZE", 8))
ready = wait_input(node, "ready", float(env_str("BENCH_READY_TIMEOUT", "60")))
send = node.send_output
sent, start, stop = stream(
    lambda: send("out", arr),
    env_int("BENCH_COUNT", 0),
    float(env_str("BENCH_RATE_HZ", "0")),
    float(env_str("BENCH_DURATION", "3")),
)
write_result({"sent": sent, "t_start_ns": start, "t_end_ns": stop, "receiver_ready": ready})
