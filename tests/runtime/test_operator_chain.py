"""An operator reading the output of another operator of the same node: the node ends with its upstream."""

from __future__ import annotations

import subprocess

import pytest

MESSAGES = 5
INTERVAL_MS = 20
TIMEOUT = 30 + 10 * MESSAGES * INTERVAL_MS / 1000
"""Seconds: starting the run, then the messages at the timer's pace, with a wide margin
(the run took ~1 s; before the fix it never ended)."""

DATAFLOW = f"""
nodes:
  - id: source
    path: source.py
    inputs:
      tick: dora/timer/millis/{INTERVAL_MS}
    outputs: [n]
  - id: text
    operators:
      - id: a
        python: a_op.py
        inputs:
          n: source/n
        outputs: [out]
      - id: b
        python: b_op.py
        inputs:
          n: text/a/out
"""

SOURCE = f"""
from doradus import Input, Node
node = Node()
sent = 0
for event in node:
    if isinstance(event, Input):
        sent += 1
        node.send_output("n", [sent])
        if sent == {MESSAGES}:
            break
"""

A_OP = """
from dora import DoraStatus
class Operator:
    def on_event(self, dora_event, send_output):
        if dora_event["type"] == "INPUT":
            send_output("out", dora_event["value"], dora_event["metadata"])
        elif dora_event["type"] == "INPUT_CLOSED":
            return DoraStatus.{reply}
        return DoraStatus.CONTINUE
"""

B_OP = """
class Operator:
    def on_event(self, dora_event, send_output):
        if dora_event["type"] == "INPUT":
            print("b", dora_event["value"].to_pylist(), flush=True)
        else:
            print("b", dora_event["type"], dora_event["id"], flush=True)
"""


@pytest.mark.parametrize("reply", ["STOP", "CONTINUE"])
def test_operator_reading_a_sibling_ends_with_its_upstream(dataflow, reply):
    # `a` has finished once it returns STOP, or (as in dora-rs) once all its inputs are closed.
    files = {
        "dataflow.yml": DATAFLOW,
        "source.py": SOURCE,
        "a_op.py": A_OP.format(reply=reply),
        "b_op.py": B_OP,
    }
    try:
        ran = dataflow(files, timeout=TIMEOUT)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(
            f"the run did not end within {TIMEOUT:.0f} s: node `text` waits on its own output\n{exc.stdout}"
        )
    assert ran.returncode == 0, ran.output
    expected = [f"b [{i}]" for i in range(1, MESSAGES + 1)] + ["b INPUT_CLOSED n"]
    assert ran.lines_of("text") == expected, ran.output
