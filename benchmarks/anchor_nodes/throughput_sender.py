"""The anchors' `nodes/throughput_sender.py`: the same stream over raw IPC, after a handshake."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "nodes"))

import numpy as np
from benchlib import env_int, env_str, stream, write_result
from ipc import finish, handshake, open_endpoint

size = env_int("BENCH_SIZE", 8)
buf = np.zeros(max(size, 8), dtype=np.uint8)
buf[8:] = 0xA5
buf[:8].view("<i8")[0] = 1  # neither a ping nor the end
payload = buf[:size]
end = open_endpoint("sender", size)
handshake(end)
sent, start, stop = stream(
    lambda: end.send(payload),
    env_int("BENCH_COUNT", 0),
    float(env_str("BENCH_RATE_HZ", "0")),
    float(env_str("BENCH_DURATION", "3")),
)
closed = finish(end)
end.close()
write_result(
    {"sent": sent, "t_start_ns": start, "t_end_ns": stop, "receiver_ready": True, "end_acknowledged": closed}
)
