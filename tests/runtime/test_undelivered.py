"""Messages still queued when a node ends are counted, not lost silently.

The source sends 200 messages at once into a queue of 1000; the sink takes 3 (sleeping on the
first, so the rest are queued by then) and exits with an error: the other 197 are reported.
"""

from __future__ import annotations

import json

FILES = {
    "dataflow.yml": """
nodes:
  - id: source
    path: source.py
    outputs: [out]
  - id: sink
    path: sink.py
    inputs:
      x: {source: source/out, queue_size: 1000}
""",
    "source.py": """
from doradus import Node
node = Node()
for i in range(200):
    node.send_output("out", [i])
""",
    "sink.py": """
import time
from doradus import Input, Node
node = Node()
n = 0
for event in node:
    if isinstance(event, Input):
        n += 1
        if n == 1:
            time.sleep(1)
        if n == 3:
            raise SystemExit(f"gave up after {n}")
""",
}


def test_messages_queued_when_a_node_ends_are_counted_as_undelivered(dataflow, tmp_path):
    ran = dataflow(FILES, timeout=60)
    assert ran.returncode == 1
    assert "input sink/x: 197 messages still queued when the node ended were not delivered" in ran.output
    (log,) = tmp_path.glob("out/*/logs.jsonl")
    records = [json.loads(line) for line in log.read_text().splitlines()]
    (dropped,) = [r for r in records if r.get("fields", {}).get("event") == "dropped"]
    assert (dropped["fields"]["undelivered"], dropped["fields"]["dropped"]) == (197, 0)
