"""Sends paced, stamped messages of each size in `BENCH_SIZES`.

`BENCH_STAMP=payload` writes `time.monotonic_ns()` into the first 8 bytes of the payload,
`metadata` sends it as metadata with a sequence number, `{"t": ns, "seq": n}`, as dora
nodes stamp their messages. `BENCH_MODE=zerocopy` fills a buffer obtained
from `send_output_raw` instead of sending a preallocated payload. After each message the
sender waits for `BENCH_ACKS` acknowledgements, then pauses.
"""

from __future__ import annotations

import time

import numpy as np
from benchlib import Acks, env_int, env_str, gap_s, payload, sizes, write_result
from dora import Node

node = Node()
stamp_in = env_str("BENCH_STAMP", "payload")
mode = env_str("BENCH_MODE", "copy")
count = env_int("BENCH_COUNT", 100) + env_int("BENCH_WARMUP", 10)
acks = Acks(node, env_int("BENCH_ACKS", 1))
ack_timeout = float(env_str("BENCH_ACK_TIMEOUT", "10"))
sent = 0

for size in sizes():
    gap = gap_s(size)
    if mode == "zerocopy":
        for i in range(count):
            with node.send_output_raw("out", size) as buf:
                view = np.frombuffer(buf, dtype=np.uint8)
                view[8:] = i & 0xFF  # the node produces its data in place
                stamp = time.monotonic_ns()
                view[:8].view("<i8")[0] = stamp
                del view  # dora-rs refuses to send while a view of the buffer is alive
            sent += 1
            acks.wait(stamp, ack_timeout)
            time.sleep(gap)
        continue
    buf, arr = payload(size)
    stamp_view = buf[:8].view("<i8")
    for _ in range(count):
        stamp = time.monotonic_ns()
        if stamp_in == "payload":
            stamp_view[0] = stamp
            node.send_output("out", arr)
        else:
            node.send_output("out", arr, {"t": stamp, "seq": sent})
        sent += 1
        acks.wait(stamp, ack_timeout)
        time.sleep(gap)

write_result(
    {
        "sent": sent,
        "ack_timeouts": acks.timeouts,
        "sizes": sizes(),
        "count": env_int("BENCH_COUNT", 100),
        "warmup": env_int("BENCH_WARMUP", 10),
    }
)
