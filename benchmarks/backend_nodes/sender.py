"""Backend benchmark sender: paced latency messages per payload size, then an 8 B burst.

The method of the main suite's "stamp in metadata" rows (`benchmarks/nodes/`), with the
native API. Latency phase: for each size in `BENCH_SIZES` (bytes, comma-separated) it sends
`BENCH_WARMUP + BENCH_COUNT` messages on `data`, each with metadata
`{"t0": time.monotonic_ns(), "i": n, "size": bytes}` stamped right before the send, waits for
the receiver's acknowledgement on `ack`, then pauses as the main suite does
(`benchlib.gap_s`: 5 ms up to 64 KiB, 10 ms up to 4 MiB) so every message starts from an idle
system. Throughput phase (the receiver is known to be ready: it acknowledged every latency
message): 8-byte messages on `burst`, back to back, for `BENCH_DURATION` seconds. Writes
`{"sent": …, "burst_sent": …, "burst_start_ns": …, "ack_timeouts": …}` to `BENCH_OUT`.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from doradus import Input, Node

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "nodes"))
from benchlib import gap_s

node = Node()
sizes = [int(s) for s in os.environ["BENCH_SIZES"].split(",") if s]
count = int(os.environ.get("BENCH_COUNT", "200"))
warmup = int(os.environ.get("BENCH_WARMUP", "10"))
duration = float(os.environ.get("BENCH_DURATION", "2"))
sent = ack_timeouts = 0
seq = 0


def wait_ack(n: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        event = node.next(timeout=left)
        if event is None:
            return False
        if isinstance(event, Input) and event.id == "ack" and event.value[0].as_py() == n:
            return True
    return False


for size in sizes:
    payload = np.full(size, 7, dtype=np.uint8)
    pause = gap_s(size)
    for _ in range(warmup + count):
        node.send_output("data", payload, {"t0": time.monotonic_ns(), "i": seq, "size": size})
        sent += 1
        if not wait_ack(seq):
            ack_timeouts += 1
        seq += 1
        time.sleep(pause)

# Throughput: one preallocated 8-byte payload, back to back.
small = np.full(8, 7, dtype=np.uint8)
send = node.send_output
burst = 0
start = time.monotonic_ns()
end = start + int(duration * 1e9)
while True:
    for _ in range(32):
        send("burst", small)
    burst += 32
    if time.monotonic_ns() >= end:
        break
stop = time.monotonic_ns()

with open(os.environ["BENCH_OUT"] + ".tmp", "w") as f:
    json.dump(
        {
            "sent": sent,
            "ack_timeouts": ack_timeouts,
            "burst_sent": burst,
            "burst_start_ns": start,
            "burst_send_s": (stop - start) / 1e9,
        },
        f,
    )
os.replace(os.environ["BENCH_OUT"] + ".tmp", os.environ["BENCH_OUT"])
