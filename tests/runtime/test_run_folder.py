"""A run keeps the dataflow text it started from; nodes read that copy, not the file."""

from __future__ import annotations

import json
from pathlib import Path

FLOW = """
nodes:
  - id: reader
    path: reader.py
    env:
      FLOW_FILE: dataflow.yml
"""

READER = """
import json
import os
from pathlib import Path

from doradus import Node

node = Node()
Path(os.environ["FLOW_FILE"]).write_text("nodes: [this file changed after the start]")
print(json.dumps(node.dataflow_descriptor()))
"""


def test_nodes_read_the_text_the_run_started_from(dataflow, tmp_path: Path) -> None:
    ran = dataflow({"dataflow.yml": FLOW, "reader.py": READER}, cwd=tmp_path)
    assert ran.returncode == 0, ran.output
    (descriptor,) = [json.loads(line) for line in ran.lines_of("reader")]
    assert descriptor["nodes"][0]["id"] == "reader"
    (copy,) = (tmp_path / "out").glob("*/dataflow.yml")
    assert copy.read_text() == FLOW.lstrip("\n")
    assert copy.stat().st_mode & 0o777 == 0o600  # it may hold secrets (a broker's password)
