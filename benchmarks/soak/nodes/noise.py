"""Sends numbered payloads of random bytes on `out` until SOAK_COUNT are sent (0: until Stop).

Like `source.py` (the same stamp: epoch and sequence number in the first 16 bytes, which
`sink.py` checks), but the rest of each payload is random, so a recording of it does not
compress: a file holds what was sent. SOAK_SIZE bytes each (1 MiB), SOAK_RATE per second
(0: back to back). Four payloads are made once and sent in turn. Writes ``{"sent": N}`` to
SOAK_OUT when it ends by itself or on Stop.
"""

from __future__ import annotations

import os
import time

import numpy as np
import pyarrow as pa
from soaklib import STAMP_BYTES, env_float, env_int, write_json

from doradus import Node, Stop

node = Node()
epoch = node.restart_count()
count = env_int("SOAK_COUNT")
rate = env_float("SOAK_RATE")
size = max(env_int("SOAK_SIZE", 1 << 20), STAMP_BYTES)
rng = np.random.default_rng(env_int("SOAK_SEED", 7))
buffers = [rng.integers(0, 256, size, dtype=np.uint8) for _ in range(4)]
arrays = [pa.array(b) for b in buffers]  # over the same memory: a stamp shows in the array
words = [b[:STAMP_BYTES].view("<i8") for b in buffers]
period = 1.0 / rate if rate > 0 else 0.0
seq = 0
stopped = False
started = due = time.monotonic()
while not count or seq < count:
    k = seq % len(buffers)
    words[k][0], words[k][1] = epoch, seq
    node.send_output("out", arrays[k])
    seq += 1
    if isinstance(node.try_recv(), Stop):
        stopped = True
        break
    if period:
        due += period
        pause = due - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        elif pause < -1.0:
            due = time.monotonic()  # fell far behind (the machine was busy): no burst to catch up
write_json(
    os.environ.get("SOAK_OUT"),
    {"sent": seq, "epoch": epoch, "stopped": stopped, "seconds": time.monotonic() - started},
)
