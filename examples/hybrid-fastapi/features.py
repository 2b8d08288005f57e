"""Turns the raw values of a request into features (mean, spread, extremes)."""

import pyarrow as pa
import pyarrow.compute as pc

from doradus import Input, Node

node = Node()
for event in node:
    if isinstance(event, Input) and event.id == "request":
        values = event.value
        features = {
            "count": len(values),
            "mean": pc.mean(values).as_py() or 0.0,
            "stddev": pc.stddev(values).as_py() or 0.0,
            "max": pc.max(values).as_py() or 0.0,
        }
        # Forward the request id: the service matches the reply with it. The trace context
        # travels on its own (the runtime adds it to every message while tracing is on).
        node.send_output("features", pa.array([features]), {"request_id": event.metadata["request_id"]})
