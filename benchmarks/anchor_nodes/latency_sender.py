"""The anchors' `nodes/latency_sender.py`: the same paced, stamped, acknowledged sends, over raw IPC.

For each size of `BENCH_SIZES`: `BENCH_WARMUP + BENCH_COUNT` messages, each stamped with
`time.monotonic_ns()` in its first 8 bytes right before the send (copy mode: the preallocated
payload is copied into the transport, as a framework's `send_output` does; `BENCH_MODE=zerocopy`:
a transport buffer is filled in place, then stamped and sent, as with `send_output_raw`), then
the acknowledgement, then the pause of `benchlib.gap_s`.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "nodes"))

import numpy as np
from benchlib import env_int, env_str, gap_s, sizes, write_result
from ipc import finish, handshake, open_endpoint

mode = env_str("BENCH_MODE", "copy")
count = env_int("BENCH_COUNT", 100) + env_int("BENCH_WARMUP", 10)
ack_timeout = float(env_str("BENCH_ACK_TIMEOUT", "10"))
end = open_endpoint("sender", max(sizes()))
handshake(end)
sent = ack_timeouts = 0


def wait_ack(stamp: int) -> None:
    global ack_timeouts
    deadline = time.monotonic() + ack_timeout
    while (left := deadline - time.monotonic()) > 0:
        if end.receive_ack(left) == stamp:
            return
    ack_timeouts += 1


for size in sizes():
    gap = gap_s(size)
    if mode == "zerocopy":
        for i in range(count):
            stamp = 0

            def fill(view: np.ndarray, i: int = i) -> None:
                global stamp
                view[8:] = i & 0xFF  # the sender produces its data in place
                stamp = time.monotonic_ns()
                view[:8].view("<i8")[0] = stamp

            end.send_in_place(size, fill)
            sent += 1
            wait_ack(stamp)
            time.sleep(gap)
        continue
    buf = np.zeros(max(size, 8), dtype=np.uint8)
    buf[8:] = 0xA5
    payload = buf[:size]
    stamp_view = buf[:8].view("<i8")
    for _ in range(count):
        stamp = time.monotonic_ns()
        stamp_view[0] = stamp
        end.send(payload)
        sent += 1
        wait_ack(stamp)
        time.sleep(gap)

closed = finish(end)
end.close()
write_result(
    {
        "sent": sent,
        "ack_timeouts": ack_timeouts,
        "end_acknowledged": closed,
        "sizes": sizes(),
        "count": env_int("BENCH_COUNT", 100),
        "warmup": env_int("BENCH_WARMUP", 10),
    }
)
