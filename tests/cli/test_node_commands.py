"""``doradus node pause|resume|restart|set`` and their API routes, on a real coordinator and daemon."""

from __future__ import annotations

import json
import subprocess
from typing import Any

from tests.cli.conftest import DORADUS, Control
from tests.cli.test_control_plane import eventually

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
        env:
          X: "1"
      - id: sink
        path: sink.py
        inputs:
          x: middle/out
"""
SOURCE_PY = """
    import pyarrow as pa
    from doradus import Input, Node

    node = Node()
    n = 0
    for event in node:
        if isinstance(event, Input):
            n += 1
            node.send_output("out", pa.array([n]))
"""
MIDDLE_PY = """
    import os
    from doradus import Input, InputClosed, Node

    node = Node()
    restarted = f"is_restart={node.is_restart()} count={node.restart_count()}"
    print(f"middle {restarted} X={os.environ['X']}", flush=True)
    for event in node:
        if isinstance(event, Input):
            node.send_output("out", event.value)
        elif isinstance(event, InputClosed):
            print(f"middle saw InputClosed {event.id}", flush=True)
"""
SINK_PY = """
    from doradus import InputClosed, Node

    for event in Node():
        if isinstance(event, InputClosed):
            print(f"sink saw InputClosed {event.id}", flush=True)
"""
REPORT = 1.0
"""Seconds between two reports of a node (its counters reach the coordinator that often)."""


def _chain(control: Control, name: str = "demo") -> None:
    control.write("dataflow.yml", CHAIN)
    control.write("source.py", SOURCE_PY)
    control.write("middle.py", MIDDLE_PY)
    control.write("sink.py", SINK_PY)
    assert control("up").returncode == 0
    started = control("start", "dataflow.yml", "--detach", "--name", name)
    assert started.returncode == 0, started.stderr


def _node(control: Control, name: str, node: str) -> dict[str, Any]:
    response = control.api("GET", f"/dataflows/{name}")
    response.raise_for_status()
    return dict(response.json()["nodes"][node])


def _delivered(control: Control, name: str, node: str) -> int:
    return int(_node(control, name, node).get("inputs", {}).get("x", {}).get("delivered", 0))


def _lines(control: Control, name: str, node: str) -> list[str]:
    response = control.api("GET", f"/dataflows/{name}/logs", params={"node": node})
    response.raise_for_status()
    return [r["message"] for r in response.json()]


def test_pause_holds_a_nodes_input_and_resume_restores_it(control: Control) -> None:
    _chain(control)
    assert eventually(lambda: _delivered(control, "demo", "sink") > 20, 15 * REPORT)

    paused = control("node", "pause", "sink")
    assert paused.returncode == 0, paused.stderr
    assert "Paused node 'sink' of dataflow 'demo'." in paused.stderr
    assert eventually(lambda: _node(control, "demo", "sink")["state"] == "paused", 5 * REPORT)
    shown = json.loads(control("status", "demo", "--output", "json").stdout)
    assert shown["nodes"]["sink"]["state"] == "paused"
    # Two reports later the held node's count stands still while its sender goes on.
    assert eventually(lambda: _node(control, "demo", "sink")["input_rate"] == 0.0, 5 * REPORT)
    held = _delivered(control, "demo", "sink")
    sent = _node(control, "demo", "middle")["outputs"]["out"]["sent"]
    assert eventually(
        lambda: _node(control, "demo", "middle")["outputs"]["out"]["sent"] > sent + 20, 5 * REPORT
    )
    assert _delivered(control, "demo", "sink") <= held + 1  # at most one report in flight
    assert eventually(lambda: (_node(control, "demo", "sink")["dropped"] or 0) > 0, 5 * REPORT)

    resumed = control("node", "resume", "sink", "--dataflow", "demo", "--output", "json")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["nodes"] == ["sink"]
    assert eventually(lambda: _node(control, "demo", "sink")["state"] == "running", 5 * REPORT)
    assert eventually(lambda: _delivered(control, "demo", "sink") > held + 20, 5 * REPORT)
    assert eventually(lambda: (_node(control, "demo", "sink")["input_rate"] or 0) > 0, 5 * REPORT)


def test_restart_and_set_keep_the_chain_wired(control: Control) -> None:
    _chain(control)
    assert eventually(lambda: _delivered(control, "demo", "sink") > 10, 15 * REPORT)

    restarted = control("node", "restart", "middle", timeout=90)
    assert restarted.returncode == 0, restarted.stderr
    assert "Restarted node 'middle' of dataflow 'demo' (restarts: 1)." in restarted.stderr
    changed = control("node", "set", "middle", "--env", "X=2", timeout=90)
    assert changed.returncode == 0, changed.stderr
    assert "with new configuration (restarts: 2)" in changed.stderr

    shown = json.loads(control("status", "demo", "--output", "json").stdout)
    assert shown["nodes"]["middle"]["restarts"] == 2
    assert shown["nodes"]["middle"]["state"] == "running"
    table = control("status", "demo")
    assert table.returncode == 0
    before = _delivered(control, "demo", "sink")
    assert eventually(lambda: _delivered(control, "demo", "sink") > before + 20, 10 * REPORT)
    lines = _lines(control, "demo", "middle")
    assert "middle is_restart=False count=0 X=1" in lines
    assert "middle is_restart=True count=1 X=1" in lines
    assert "middle is_restart=True count=2 X=2" in lines
    assert not [line for line in _lines(control, "demo", "sink") if "InputClosed" in line]
    assert not [line for line in lines if "InputClosed" in line]


def test_node_actions_refuse_unknown_and_ended_targets(control: Control) -> None:
    _chain(control)
    assert eventually(lambda: _node(control, "demo", "sink")["state"] == "running", 15 * REPORT)

    missing = control.api("POST", "/dataflows/demo/nodes/nobody/pause")
    assert missing.status_code == 404
    assert missing.json()["detail"]["error"] == "dataflow 'demo' has no node 'nobody'"
    assert control.api("POST", "/dataflows/nothing/nodes/sink/pause").status_code == 404
    ran = control("node", "pause", "nobody")
    assert ran.returncode == 2
    assert "has no node 'nobody'" in ran.stderr

    everything = control.api("POST", "/dataflows/demo/pause")
    assert everything.status_code == 202
    assert sorted(everything.json()["nodes"]) == ["middle", "sink", "source"]
    assert eventually(
        lambda: (
            {n["state"] for n in control.api("GET", "/dataflows/demo").json()["nodes"].values()} == {"paused"}
        ),
        5 * REPORT,
    )
    assert control.api("GET", "/dataflows/demo").json()["paused"] is True
    assert [d["paused"] for d in control.api("GET", "/dataflows").json()] == [True]
    assert control.api("POST", "/dataflows/demo/resume").status_code == 202
    assert eventually(lambda: control.api("GET", "/dataflows/demo").json()["paused"] is False, 5 * REPORT)

    assert control("stop", "demo").returncode == 0
    assert eventually(lambda: control.api("GET", "/dataflows/demo").json()["status"] != "running", 20)
    ended = control.api("POST", "/dataflows/demo/nodes/sink/restart", json={"env": {"X": "3"}})
    assert ended.status_code == 409
    assert "is not running" in ended.json()["detail"]["error"]


def test_restart_is_refused_for_a_backend_that_cannot_hand_links_over(control: Control) -> None:
    control.write(
        "dataflow.yml", CHAIN.replace("        env:\n", "        communication: tcp\n        env:\n")
    )
    control.write("source.py", SOURCE_PY)
    control.write("middle.py", MIDDLE_PY)
    control.write("sink.py", SINK_PY)
    assert control("up").returncode == 0
    assert control("start", "dataflow.yml", "--detach", "--name", "tcpflow").returncode == 0
    assert eventually(lambda: _node(control, "tcpflow", "middle")["state"] == "running", 15 * REPORT)

    refused = control.api("POST", "/dataflows/tcpflow/nodes/middle/restart", json={})
    assert refused.status_code == 409
    detail = refused.json()["detail"]
    assert "'tcp' backend" in detail["error"]
    assert "shm" in detail["fix"]
    assert _node(control, "tcpflow", "middle")["restarts"] == 0
    assert _node(control, "tcpflow", "middle")["state"] == "running"  # nothing was stopped


def test_a_dataflow_run_by_doradus_run_takes_node_actions(control: Control) -> None:
    control.write("dataflow.yml", CHAIN)
    control.write("source.py", SOURCE_PY)
    control.write("middle.py", MIDDLE_PY)
    control.write("sink.py", SINK_PY)
    assert control("up").returncode == 0
    run = subprocess.Popen(
        [*DORADUS, "run", "dataflow.yml"],
        cwd=control.folder,
        env=control.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert eventually(lambda: len(control.api("GET", "/dataflows").json()) == 1, 15)
        name = control.api("GET", "/dataflows").json()[0]["name"]
        assert eventually(lambda: _node(control, name, "sink")["state"] == "running", 15 * REPORT)

        assert control("node", "pause", "sink").returncode == 0
        assert eventually(lambda: _node(control, name, "sink")["state"] == "paused", 5 * REPORT)
        assert control("node", "resume", "sink").returncode == 0
        assert eventually(lambda: _node(control, name, "sink")["state"] == "running", 5 * REPORT)
        changed = control("node", "set", "middle", "--env", "X=5", timeout=90)
        assert changed.returncode == 0, changed.stderr
        assert _node(control, name, "middle")["restarts"] == 1
    finally:
        assert control("stop", "--all").returncode == 0
        out, _err = run.communicate(timeout=30)
    assert "middle is_restart=True count=1 X=5" in out
    assert "InputClosed" not in out


def test_node_stop_ends_one_node_for_good_while_the_dataflow_runs_on(control: Control) -> None:
    _chain(control)
    assert eventually(lambda: _delivered(control, "demo", "sink") > 10, 15 * REPORT)

    stopped = control("node", "stop", "middle", "--grace-duration", "2s", timeout=60)
    assert stopped.returncode == 0, stopped.stderr
    assert "Stopped node 'middle' of dataflow 'demo' (stopped)." in stopped.stderr
    assert eventually(lambda: "sink saw InputClosed x" in _lines(control, "demo", "sink"), 10 * REPORT)
    shown = control.api("GET", "/dataflows/demo").json()
    assert shown["status"] == "running"  # the source still runs
    assert shown["nodes"]["middle"]["state"] == "stopped"
    assert shown["nodes"]["source"]["state"] == "running"

    again = control.api("POST", "/dataflows/demo/nodes/middle/stop", json={})
    assert again.status_code == 409
    assert "is not running (it is stopped)" in again.json()["detail"]["error"]
