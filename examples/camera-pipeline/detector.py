"""Finds the bright square in each frame and reports its centre."""

import numpy as np
import pyarrow as pa

from doradus import Input, Node

node = Node()
processed = 0
for event in node:
    if not isinstance(event, Input):
        continue
    meta = event.metadata
    # Zero-copy and read-only: the array views the camera's shared memory.
    frame = event.value.to_numpy(zero_copy_only=True).reshape(meta["height"], meta["width"], meta["channels"])
    ys, xs = np.nonzero(frame[:, :, 0] == 255)
    found = len(xs) > 0
    centre = [float(xs.mean()), float(ys.mean())] if found else [-1.0, -1.0]
    node.send_output(
        "detections", pa.array(centre), {"seq": meta["seq"], "found": found, "sent_ns": meta["sent_ns"]}
    )
    processed += 1
print(f"detector: processed {processed} frames")
