"""Restart policies and liveness as ``doradus status`` shows them, on a real coordinator and daemon.

A timer-driven source (every 20 ms) feeds ``middle``, which forwards to ``sink``. Deadlines
count node reports (`REPORT`, one a second) with generous margins; none depends on speed.
"""

from __future__ import annotations

import json
import re
from typing import Any

from tests.cli.conftest import Control
from tests.cli.test_control_plane import eventually

REPORT = 1.0
"""Seconds between two reports of a node (its counters reach the coordinator that often)."""

CHAIN = """
    nodes:
      - id: source
        path: source.py
        inputs:
          tick: dora/timer/millis/20
        outputs: [out]
      - id: middle
        path: middle.py
        inputs:
          x: source/out
        outputs: [out]
        restart_policy: on-failure
      - id: sink
        path: sink.py
        inputs:
          x: {source: middle/out, queue_size: 4}
"""
SOURCE_PY = """
    from doradus import Input, Node

    node = Node()
    n = 0
    for event in node:
        if isinstance(event, Input):
            n += 1
            node.send_output("out", [n])
"""
# Crashes on the 5th message of its first process.
MIDDLE_PY = """
    import os
    from doradus import Input, Node

    node = Node()
    seen = 0
    for event in node:
        if isinstance(event, Input):
            seen += 1
            if seen == 5 and not node.is_restart():
                os._exit(3)
            node.send_output("out", event.value)
"""
SINK_PY = """
    import os, time
    from doradus import Input, Node

    for event in Node():
        if isinstance(event, Input) and event.value[0].as_py() >= 100 and os.environ.get("STALL"):
            time.sleep(3600)  # stops reading: its queue fills
"""


def _start(control: Control, *env: str) -> None:
    control.write("dataflow.yml", CHAIN)
    control.write("source.py", SOURCE_PY)
    control.write("middle.py", MIDDLE_PY)
    control.write("sink.py", SINK_PY)
    assert control("up").returncode == 0
    started = control("start", "dataflow.yml", "--detach", "--name", "demo", *env)
    assert started.returncode == 0, started.stderr


def _status(control: Control) -> dict[str, Any]:
    shown = control("status", "demo", "--output", "json")
    assert shown.returncode == 0, shown.stderr
    return dict(json.loads(shown.stdout))


def _delivered(control: Control) -> int:
    return int(_status(control)["nodes"]["sink"].get("inputs", {}).get("x", {}).get("delivered", 0))


def test_a_node_crashing_on_its_fifth_message_is_restarted_and_status_says_restarts_1(
    control: Control,
) -> None:
    _start(control)
    assert eventually(lambda: _status(control)["nodes"]["middle"]["restarts"] == 1, 15 * REPORT)
    middle = _status(control)["nodes"]["middle"]
    assert eventually(lambda: _status(control)["nodes"]["middle"]["state"] == "running", 10 * REPORT)
    # The sink keeps receiving the source's later messages through the new process.
    before = _delivered(control)
    assert eventually(lambda: _delivered(control) > before + 20, 10 * REPORT)
    shown = _status(control)
    assert shown["status"] == "running"
    assert shown["nodes"]["sink"]["state"] == "running"
    assert middle["restarts"] == 1
    # What the source sent while middle was down (at least its start-up, at 50 messages/s) is counted.
    assert eventually(lambda: (_status(control)["nodes"]["middle"]["restart_dropped"] or 0) > 0, 5 * REPORT)
    table = control("status", "demo")
    assert table.returncode == 0
    logs = control("logs", "demo", "--node", "middle").stdout
    assert re.search(r"restarting in (0|0\.1)s \(exit status 3", logs), logs


def test_a_node_that_stops_reading_is_shown_with_its_reason(control: Control) -> None:
    """The stalled sink's reason appears once it has held a message for a ``health_check_interval``
    (5 s by default) and its queue is full: within 15 reports."""
    _start(control, "--env", "STALL=1")
    wanted = "not reading its inputs: busy with one message for"

    def stalled() -> bool:
        return wanted in str(_status(control)["nodes"]["sink"].get("reason"))

    assert eventually(stalled, 15 * REPORT)
    sink = _status(control)["nodes"]["sink"]
    assert sink["state"] == "running"
    assert "input 'x' full (4 queued)" in sink["reason"]
    table = control("status", "demo")
    assert "  sink (running): not reading its inputs" in table.stdout
