"""Sends each benchmark record in one format, paced and acknowledged, stamped with `t0`.

For every message the sender takes `time.monotonic_ns()`, builds the format's object from the
application's data (`formatlib.BUILD`), and sends it with metadata `{"t0": ns, "i": n}`: the
output's codec encodes it inside `send_output`. It then waits for the receiver's
acknowledgement and pauses, so every message starts from an idle system.

Environment: `BENCH_FORMAT`, `BENCH_RECORDS` (comma-separated), `BENCH_COUNT`,
`BENCH_WARMUP`, `BENCH_OUT` (the JSON file to write).
"""

from __future__ import annotations

import json
import os
import time

import formatlib as fl

from doradus import Input, Node

node = Node()
fmt = os.environ["BENCH_FORMAT"]
count = int(os.environ.get("BENCH_COUNT", "100")) + int(os.environ.get("BENCH_WARMUP", "10"))
build = fl.BUILD[fmt]
sent = 0
ack_timeouts = 0


def wait_ack(i: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        event = node.next(timeout=left)
        if event is None:
            return False
        if isinstance(event, Input) and event.id == "ack" and event.value[0].as_py() == i:
            return True
    return False


for record in fl.env_list("BENCH_RECORDS", fl.RECORDS):
    app = fl.app_data(record)
    gap = 0.010 if record == "image" else 0.005
    for i in range(count):
        t0 = time.monotonic_ns()
        node.send_output(record, build(record, app, i), {"t0": t0, "i": i})
        sent += 1
        if not wait_ack(i):
            ack_timeouts += 1
        time.sleep(gap)

with open(os.environ["BENCH_OUT"] + ".tmp", "w") as f:
    json.dump({"sent": sent, "ack_timeouts": ack_timeouts}, f)
os.replace(os.environ["BENCH_OUT"] + ".tmp", os.environ["BENCH_OUT"])
