"""The anchors' `nodes/latency_receiver.py`: one-way latency per size, over raw IPC.

Takes `time.monotonic_ns()` as soon as a payload is there, reads the stamp of its first 8
bytes where it lies, releases it, drops the first `BENCH_WARMUP` messages of each size and
acknowledges every message with its stamp. Pings (stamp 0) are acknowledged and not counted;
the end of the stream (stamp -1) is acknowledged and ends the loop.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "nodes"))

from benchlib import env_int, sizes, write_result
from ipc import END, PING, open_endpoint

warmup = env_int("BENCH_WARMUP", 10)
idle_timeout = float(env_int("BENCH_IDLE_TIMEOUT", 120))
end = open_endpoint("receiver", max(sizes()))
latency: dict[str, list[int]] = {}
seen: dict[int, int] = {}
received = 0
finished = False

while True:
    got = end.receive(idle_timeout)
    now = time.monotonic_ns()
    if got is None:
        break  # the sender is gone: the harness sees the missing samples
    view, holder = got
    stamp = int(view[:8].view("<i8")[0])
    size = len(view)
    del view, holder, got  # release the sample before the next one
    if stamp == PING:
        end.send_ack(PING)
        continue
    if stamp == END:
        end.send_ack(END)
        finished = True
        break
    received += 1
    n = seen.get(size, 0)
    seen[size] = n + 1
    if n >= warmup:
        latency.setdefault(str(size), []).append(now - stamp)
    end.send_ack(stamp)

# Give the sender time to read the END acknowledgement before this side's ports go away.
time.sleep(0.2)
end.close()
write_result({"received": received, "latency_ns": latency, "finished": finished})
