"""Scores features: an anomaly score in [0, 1] (how far the maximum is above the mean)."""

import math

from doradus import Input, Node

node = Node()
for event in node:
    if isinstance(event, Input) and event.id == "features":
        f = event.value[0].as_py()
        z = (f["max"] - f["mean"]) / f["stddev"] if f["stddev"] else 0.0
        score = 1 - math.exp(-z / 3)
        node.send_output("score", [score], {"request_id": event.metadata["request_id"]})
