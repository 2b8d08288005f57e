"""A synthetic camera: a bright square moving across a noisy frame.

Each frame is written straight into shared memory (``node.allocate``) and sent
without a copy.
"""

import os
import time

import numpy as np

from doradus import Input, Node

FRAMES = int(os.environ.get("FRAMES", "60"))
WIDTH = int(os.environ.get("WIDTH", "1024"))
HEIGHT = int(os.environ.get("HEIGHT", "1024"))
SIDE = 64

node = Node()
rng = np.random.default_rng(7)
noise = rng.integers(0, 40, size=(HEIGHT, WIDTH, 4), dtype=np.uint8)
sent = 0
for event in node:
    if not isinstance(event, Input):
        continue
    frame = node.allocate(HEIGHT * WIDTH * 4).reshape(HEIGHT, WIDTH, 4)
    frame[:] = noise
    x = (sent * 13) % (WIDTH - SIDE)
    y = (sent * 7) % (HEIGHT - SIDE)
    frame[y : y + SIDE, x : x + SIDE] = 255
    node.send_output(
        "frame",
        frame,
        {"seq": sent, "width": WIDTH, "height": HEIGHT, "channels": 4, "sent_ns": time.monotonic_ns()},
    )
    sent += 1
    if sent == FRAMES:
        break
print(f"camera: sent {sent} frames of {WIDTH}x{HEIGHT}x4 ({HEIGHT * WIDTH * 4 / 2**20:.1f} MiB each)")
