"""The anchors' `nodes/throughput_receiver.py`: counts what arrives over raw IPC."""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "nodes"))

from benchlib import env_int, write_result
from ipc import END, PING, open_endpoint

end = open_endpoint("receiver", env_int("BENCH_SIZE", 8))
idle_timeout = float(env_int("BENCH_IDLE_TIMEOUT", 120))
received = 0
first = last = 0
while True:
    got = end.receive(idle_timeout)
    now = time.monotonic_ns()
    if got is None:
        break
    view, holder = got
    stamp = int(view[:8].view("<i8")[0]) if len(view) >= 8 else 1
    del view, holder, got
    if stamp == PING:
        end.send_ack(PING)
        continue
    if stamp == END:
        end.send_ack(END)
        break
    last = now
    if not received:
        first = last
    received += 1

time.sleep(0.2)  # let the sender read the END acknowledgement before these ports go away
end.close()
write_result({"received": received, "t_first_ns": first, "t_last_ns": last})
