"""Sends numbered payloads on `out` until SOAK_COUNT are sent (0: until Stop).

SOAK_RATE messages per second (0: back to back); SOAK_SIZE bytes each, and every
SOAK_BIG_EVERY-th one SOAK_BIG_SIZE bytes (0: never). Writes what it sent to SOAK_OUT when it
ends by itself or on Stop (a SIGKILLed process writes nothing: its epoch's count is lost), and
with SOAK_POOL its shared-memory pool's size each time it grows (``node.statistics()``).

Its `tick` input (a slow timer, ignored) keeps its event stream open: a node without inputs
gets ``Stop("all-inputs-closed")`` at once, its stream ends there, and a later Ctrl-C could only
reach it as SIGTERM after the grace period.
"""

from __future__ import annotations

import os
import time

from soaklib import Every, Stamped, env_float, env_int, write_json

from doradus import Node, Stop

node = Node()
epoch = node.restart_count()
count = env_int("SOAK_COUNT")
rate = env_float("SOAK_RATE")
small = Stamped(env_int("SOAK_SIZE", 16))
big_every = env_int("SOAK_BIG_EVERY")
big = Stamped(env_int("SOAK_BIG_SIZE")) if big_every else None
send = node.send_output
period = 1.0 / rate if rate > 0 else 0.0
check_every = 1 if rate > 0 else 256  # how often Stop is looked for
pool_path = os.environ.get("SOAK_POOL")
pool_every = Every(1.0)
pool_growth: list[dict[str, float]] = []  # each time the pool has more segments than before
seq = 0
stopped = False
started = time.monotonic()
due = started
while not count or seq < count:
    payload = big if big is not None and seq % big_every == big_every - 1 else small
    send("out", payload.stamp(epoch, seq))
    seq += 1
    if seq % check_every == 0:
        event = node.try_recv()
        if isinstance(event, Stop):
            stopped = True
            break
        if pool_path and pool_every.due():
            pool = node.statistics()["backend"].details["shared_memory"]
            if not pool_growth or pool["segments"] > pool_growth[-1]["segments"]:
                pool_growth.append({"t": round(time.monotonic() - started, 1), "sent": seq, **pool})
                write_json(pool_path, {"growth": pool_growth})
        if period:
            due += period
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            elif pause < -1.0:
                due = time.monotonic()  # fell far behind (the machine was busy): no burst to catch up
ended = time.monotonic()
write_json(
    os.environ.get("SOAK_OUT"),
    {"sent": seq, "epoch": epoch, "stopped": stopped, "seconds": ended - started},
)
