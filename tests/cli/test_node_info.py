"""``doradus node list`` and ``doradus node info`` on a 3-node chain run by a real coordinator and daemon."""

from __future__ import annotations

import json
from typing import Any

from tests.cli.conftest import Control
from tests.cli.test_control_plane import eventually
from tests.cli.test_node_commands import MIDDLE_PY, SINK_PY, SOURCE_PY

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
          x: {source: source/out, queue_size: 4, queue_policy: backpressure}
        outputs: [out]
        env:
          X: "1"
      - id: sink
        path: sink.py
        inputs:
          x: middle/out
"""
REPORT = 1.0
"""Seconds between two reports of a node."""


def _chain(control: Control, *names: str) -> None:
    control.write("dataflow.yml", CHAIN)
    control.write("source.py", SOURCE_PY)
    control.write("middle.py", MIDDLE_PY)
    control.write("sink.py", SINK_PY)
    assert control("up").returncode == 0
    for name in names:
        started = control("start", "dataflow.yml", "--detach", "--name", name)
        assert started.returncode == 0, started.stderr


def _info(control: Control, node: str) -> dict[str, Any]:
    shown = control("node", "info", node, "--dataflow", "demo", "--output", "json")
    assert shown.returncode == 0, shown.stderr
    found: dict[str, Any] = json.loads(shown.stdout)
    return found


def test_node_list_and_info_show_a_running_chain(control: Control) -> None:
    _chain(control, "demo")
    machine = control.api("GET", "/daemons").json()[0]["machine_id"]
    assert eventually(lambda: (_info(control, "middle")["inputs"]["x"]["rate"] or 0) > 0, 15 * REPORT)

    listed = control("node", "list", "--output", "json")
    assert listed.returncode == 0, listed.stderr
    nodes = json.loads(listed.stdout)
    assert [(n["dataflow"], n["node"], n["state"], n["machine"]) for n in nodes] == [
        ("demo", "middle", "running", machine),
        ("demo", "sink", "running", machine),
        ("demo", "source", "running", machine),
    ]
    assert all(isinstance(n["pid"], int) and n["restarts"] == 0 for n in nodes)
    assert all(n["memory_bytes"] and n["cpu_percent"] is not None for n in nodes)

    table = control("node", "list")
    assert table.returncode == 0, table.stderr
    header = next(line for line in table.stdout.splitlines() if "Dataflow" in line)
    assert [word for word in header.split() if word.isalpha()] == [
        "Dataflow", "Node", "Status", "Machine", "PID", "Restarts", "CPU", "Memory",
    ]  # fmt: skip
    for node in nodes:
        row = next(line for line in table.stdout.splitlines() if f" {node['node']} " in line)
        assert [word for word in ("running", str(node["pid"]), machine) if word not in row] == []

    middle = _info(control, "middle")
    assert (middle["kind"], middle["path"], middle["machine"]) == ("python", "middle.py", machine)
    x = middle["inputs"]["x"]
    assert (x["source"], x["queue_size"], x["queue_policy"]) == ("source/out", 4, "backpressure")
    assert min(x["received"], x["rate"], x["p50_latency_us"]) > 0
    out = middle["outputs"]["out"]
    assert (out["data_format"], out["backends"], out["receivers"]) == ("arrow", ["shm"], ["sink/x"])
    assert min(out["sent"], out["bytes"], out["rate"]) > 0
    assert (middle["parameters"], middle["rate_window_s"]) == ({}, 2.0)
    source = _info(control, "source")
    assert (source["inputs"]["tick"]["source"], source["inputs"]["tick"]["queue_size"]) == (
        "dora/timer/millis/20",
        10,
    )

    shown = control("node", "info", "middle")
    assert shown.returncode == 0, shown.stderr
    text = shown.stdout
    shows = ["Node 'middle' of dataflow 'demo'", f"Machine:    {machine}", "Program:    python (middle.py)"]
    shows += ["Inputs", "Outputs", "source/out", "backpressure", "sink/x", "shm", "arrow"]
    assert [word for word in shows if word not in text] == []


def test_node_info_asks_which_dataflow_when_several_run(control: Control) -> None:
    _chain(control, "demo", "other")
    assert eventually(lambda: len(json.loads(control("node", "list", "--output", "json").stdout)) == 6, 15)

    several = control("node", "info", "middle")
    assert several.returncode == 2
    assert "2 dataflows are running (demo, other)" in several.stderr
    assert "--dataflow NAME" in several.stderr
    only = control("node", "list", "--dataflow", "other", "--output", "json")
    assert {n["dataflow"] for n in json.loads(only.stdout)} == {"other"}
    assert _info(control, "sink")["dataflow"] == "demo"

    unknown = control("node", "info", "nope", "--dataflow", "demo")
    assert unknown.returncode == 2
    assert "dataflow 'demo' has no node 'nope' (its nodes: middle, sink, source)" in unknown.stderr
