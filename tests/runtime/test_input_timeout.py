"""A node input's ``input_timeout``: silence past it gives ``InputClosed``, then ``InputRecovered``.

A source sends 5 messages, stays silent for 3 timeouts, then sends 5 more; the receiver's
timed input reads as closed in the silence and recovers before the next message, while an
input of the same source without a timeout sees only the 10 messages. Every deadline here is
derived from ``TIMEOUT`` (1 s), with margins of at least a timeout on each side.
"""

from __future__ import annotations

import ast

TIMEOUT = 1.0
SILENCE = 3 * TIMEOUT

DATAFLOW = f"""
nodes:
  - id: src
    path: src.py
    outputs: [data]
  - id: sink
    path: sink.py
    inputs:
      timed: {{source: src/data, input_timeout: {TIMEOUT}}}
      plain: src/data
"""

SOURCE = f"""
import time
from doradus import Node
node = Node()
for i in range(10):
    if i == 5:
        time.sleep({SILENCE})
    node.send_output("data", [i])
"""

NATIVE_SINK = """
import time
from doradus import Input, Node
node = Node()
seen = []
last = {}
for event in node:
    name = type(event).__name__
    if isinstance(event, Input):
        seen.append((name, event.id, event.value.to_pylist()[0]))
        last[event.id] = time.monotonic()
    else:
        seen.append((name, getattr(event, "id", getattr(event, "reason", None))))
    if name == "InputClosed" and event.id == "timed" and len(seen) < 15:
        print("silent for", round(time.monotonic() - last["timed"], 2))
print(seen)
"""

DORA_SINK = """
from dora import Node
node = Node()
seen = []
for event in node:
    if event["type"] == "INPUT":
        seen.append((event["type"], event["id"], event["value"].to_pylist()[0]))
    else:
        seen.append((event["type"], event["id"]))
print(seen)
"""


def _of(seen: list[tuple[object, ...]], input_id: str) -> list[tuple[object, ...]]:
    return [event for event in seen if event[1] == input_id]


def test_a_silent_input_closes_then_recovers_and_the_run_ends_normally(dataflow):
    ran = dataflow({"dataflow.yml": DATAFLOW, "src.py": SOURCE, "sink.py": NATIVE_SINK}, timeout=120)
    assert ran.returncode == 0, ran.output
    lines = ran.lines_of("sink")
    seen = ast.literal_eval(lines[-1])
    first = [("Input", "timed", i) for i in range(5)]
    then = [("Input", "timed", i) for i in range(5, 10)]
    assert _of(seen, "timed") == [
        *first,
        ("InputClosed", "timed"),
        ("InputRecovered", "timed"),
        *then,
        ("InputClosed", "timed"),  # the source ended: closed for good
    ]
    # the input without a timeout: the ten messages, then its close, nothing else
    assert _of(seen, "plain") == [*(("Input", "plain", i) for i in range(10)), ("InputClosed", "plain")]
    assert seen[-1] == ("Stop", "all-inputs-closed")
    # the close came after the timeout, well before the silence ended
    silent = float(lines[0].removeprefix("silent for "))
    assert TIMEOUT * 0.9 <= silent < SILENCE, lines


def test_a_dora_node_gets_input_closed_then_input_recovered(dataflow):
    ran = dataflow({"dataflow.yml": DATAFLOW, "src.py": SOURCE, "sink.py": DORA_SINK}, timeout=120)
    assert ran.returncode == 0, ran.output
    seen = ast.literal_eval(ran.lines_of("sink")[-1])
    assert _of(seen, "timed") == [
        *(("INPUT", "timed", i) for i in range(5)),
        ("INPUT_CLOSED", "timed"),
        ("INPUT_RECOVERED", "timed"),
        *(("INPUT", "timed", i) for i in range(5, 10)),
        ("INPUT_CLOSED", "timed"),
    ]
    assert _of(seen, "plain") == [*(("INPUT", "plain", i) for i in range(10)), ("INPUT_CLOSED", "plain")]
    assert seen[-1] == ("STOP", "ALL_INPUTS_CLOSED")


def test_a_bad_input_timeout_is_refused_by_check_at_its_line(tmp_path):
    import subprocess

    from tests.conftest import DORADUS

    (tmp_path / "sink.py").write_text("")
    (tmp_path / "dataflow.yml").write_text(
        "nodes:\n"
        "  - id: sink\n"
        "    path: sink.py\n"
        "    inputs:\n"
        "      tick: {source: dora/timer/millis/10, input_timeout: 0}\n"
    )
    proc = subprocess.run(
        [*DORADUS, "check", str(tmp_path / "dataflow.yml"), "--no-color"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
    output = proc.stdout + proc.stderr
    assert "dataflow.yml:5:" in output
    assert "`input_timeout` must be a duration greater than 0" in output
    assert "fix:" in output
