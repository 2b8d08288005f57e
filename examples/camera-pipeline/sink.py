"""Collects detections and prints a summary when the stream ends."""

import time

from doradus import Input, Node

node = Node()
detections = 0
frames = 0
latencies = []
for event in node:
    if not isinstance(event, Input):
        continue
    if event.id == "frame":
        frames += 1
        continue
    detections += 1
    latencies.append((time.monotonic_ns() - event.metadata["sent_ns"]) / 1e6)
    if detections % 20 == 0:
        x, y = event.value.to_pylist()
        print(f"sink: frame {event.metadata['seq']}: square at ({x:.0f}, {y:.0f})")
stats = node.statistics()["inputs"]
latencies.sort()
median = latencies[len(latencies) // 2] if latencies else float("nan")
dropped = stats["frame"]["dropped"] + stats["detections"]["dropped"]
print(
    f"sink: {detections} detections from {frames} frames; "
    f"camera → detector → sink median latency {median:.2f} ms; dropped here: {dropped}"
)
