"""A node's receivers see its outputs end when its script ends, not after its interpreter's teardown."""

from __future__ import annotations

FLOW = """
nodes:
  - id: source
    path: source.py
    outputs: [out]
  - id: sink
    path: sink.py
    inputs:
      out: source/out
"""

# The handler registered before `Node()` runs after the node's own (atexit runs last first):
# the source's process is still alive, its interpreter not yet torn down, while it waits.
SOURCE = """
import atexit
import os
import time
from pathlib import Path

def wait_for_the_sink():
    seen = Path("sink-saw-the-end")
    deadline = time.monotonic() + 20
    while not seen.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    print("sink saw the end while the source still ran" if seen.exists() else "sink saw nothing")

atexit.register(wait_for_the_sink)

from doradus import Node

node = Node()
for i in range(3):
    node.send_output("out", [i])
"""

SINK = """
from pathlib import Path

from doradus import Input, InputClosed, Node

node = Node()
values = []
for event in node:
    if isinstance(event, Input):
        values.append(event.value.to_pylist()[0])
    elif isinstance(event, InputClosed):
        Path("sink-saw-the-end").write_text("closed")
print(values)
"""


def test_receivers_see_the_end_before_the_sender_process_exits(dataflow, tmp_path) -> None:
    ran = dataflow({"dataflow.yml": FLOW, "source.py": SOURCE, "sink.py": SINK}, cwd=tmp_path)
    assert ran.returncode == 0, ran.output
    assert ran.lines_of("sink") == ["[0, 1, 2]"]  # every message before the end
    assert ran.lines_of("source") == ["sink saw the end while the source still ran"]
