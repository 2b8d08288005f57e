"""Per-sensor statistics of the readings; an alarm for each temperature above LIMIT_C."""

import json
import os
from pathlib import Path

from doradus import Input, Node

LIMIT_C = float(os.environ.get("LIMIT_C", "85"))

node = Node()
stats: dict[str, dict[str, float]] = {}
for event in node:
    if isinstance(event, Input) and event.id == "reading":
        for reading in event.value.to_pylist():
            s = stats.setdefault(
                reading["topic"], {"count": 0, "sum": 0.0, "min": reading["value"], "max": reading["value"]}
            )
            s["count"] += 1
            s["sum"] += reading["value"]
            s["min"] = min(s["min"], reading["value"])
            s["max"] = max(s["max"], reading["value"])
            if reading["sensor"] == "temperature" and reading["value"] > LIMIT_C:
                node.send_output("alarm", [json.dumps({"seq": reading["seq"], "celsius": reading["value"]})])
for topic, s in sorted(stats.items()):
    mean = s["sum"] / s["count"]
    print(f"{topic}: {s['count']:.0f} readings, mean {mean:.3f}, min {s['min']}, max {s['max']}")
if "RESULT" in os.environ:
    Path(os.environ["RESULT"]).write_text(json.dumps(stats))
