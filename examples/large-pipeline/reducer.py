"""Merges the workers' partial results and returns one credit per batch to the source.

Prints the totals as JSON, and writes them to the file RESULT names when it is set.
"""

import json
import os
from pathlib import Path

from doradus import Input, Node

node = Node()
count = total = batches = 0
low: int | None = None
high: int | None = None
per_worker: dict[str, int] = {}
for event in node:
    if isinstance(event, Input):
        batch, n, s, lo, hi = event.value.to_pylist()
        count += n
        total += s
        batches += 1
        low = lo if low is None else min(low, lo)
        high = hi if high is None else max(high, hi)
        per_worker[event.id] = per_worker.get(event.id, 0) + 1
        node.send_output("credit", [int(event.id[1:])])  # input pN is worker-N's partial
result = {"batches": batches, "count": count, "sum": total, "min": low, "max": high, "per_worker": per_worker}
print(json.dumps(result))
if "RESULT" in os.environ:
    Path(os.environ["RESULT"]).write_text(json.dumps(result))
