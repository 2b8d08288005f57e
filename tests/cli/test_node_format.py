"""``doradus node set NAME --data-format ... --schema ...`` and its API, on a real coordinator and daemon.

A shm chain source (Arrow) → middle → sink runs under ``doradus start``; ``middle`` changes to
Avro live. The sink goes on receiving, now Avro, without an ``InputClosed``; ``status``, the
live stream's edges and the logs say so. A change the dataflow's checks refuse is a 422 (the
CLI exits 2) and the chain runs on unchanged.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from tests.cli.conftest import DORADUS, Control
from tests.cli.test_control_plane import eventually
from tests.runtime.test_format_change import CHAIN, MIDDLE_PY, READING_AVSC, SINK_PY, SOURCE_PY
from websockets.sync.client import connect

REPORT = 1.0
"""Seconds between two reports of a node (its counters reach the coordinator that often)."""
STREAM_INTERVAL = 0.5
"""The live stream's update interval the tests ask for (seconds)."""


def _chain(control: Control) -> None:
    for name, text in {
        "dataflow.yml": CHAIN,
        "source.py": SOURCE_PY,
        "middle.py": MIDDLE_PY,
        "sink.py": SINK_PY,
        "reading.avsc": READING_AVSC,
    }.items():
        control.write(name, text)
    assert control("up").returncode == 0
    started = control("start", "dataflow.yml", "--detach", "--name", "demo")
    assert started.returncode == 0, started.stderr
    assert eventually(lambda: _delivered(control, "sink") > 10, 15 * REPORT)


def _node(control: Control, node: str) -> dict[str, Any]:
    response = control.api("GET", "/dataflows/demo")
    response.raise_for_status()
    return dict(response.json()["nodes"][node])


def _delivered(control: Control, node: str) -> int:
    return int(_node(control, node).get("inputs", {}).get("x", {}).get("delivered", 0))


def _lines(control: Control, node: str) -> list[str]:
    response = control.api("GET", "/dataflows/demo/logs", params={"node": node})
    response.raise_for_status()
    return [r["message"] for r in response.json()]


def _edge_format(control: Control, target: str, wanted: Callable[[str | None], bool]) -> str | None:
    """The stream's ``data_format`` of the edge into ``target``, once ``wanted`` (within 20 updates)."""
    query = urlencode({"dataflow": "demo", "interval": STREAM_INTERVAL, "logs": "false"})
    url = f"ws://{control.address}/api/v1/stream?{query}"
    seen: str | None = None
    deadline = time.monotonic() + 20 * STREAM_INTERVAL + 10
    with connect(url, additional_headers=control.headers, max_size=None, open_timeout=10) as ws:
        while time.monotonic() < deadline:
            message = json.loads(ws.recv(timeout=deadline - time.monotonic()))
            edges = (
                {e["target"]: e for e in message.get("edges", [])} if message["type"] == "dataflow" else {}
            )
            if target in edges:
                seen = edges[target]["data_format"]
                if wanted(seen):
                    return seen
    return seen


def test_node_set_changes_a_running_nodes_data_format(control: Control) -> None:
    _chain(control)
    assert _edge_format(control, "sink/x", lambda f: f == "arrow") == "arrow"
    assert _node(control, "middle")["data_formats"] == {"out": "arrow"}

    change = ["--data-format", "avro", "--schema", "reading.avsc", "--env", "FORMAT=avro"]
    changed = control("node", "set", "middle", *change, timeout=90)
    assert changed.returncode == 0, changed.stderr
    assert (
        "Restarted node 'middle' of dataflow 'demo' with new configuration (restarts: 1)." in changed.stderr
    )

    assert eventually(
        lambda: _node(control, "middle")["data_formats"] == {"out": "avro (reading.avsc)"}, 5 * REPORT
    )
    shown = json.loads(control("status", "demo", "--output", "json").stdout)
    assert shown["nodes"]["middle"]["data_formats"] == {"out": "avro (reading.avsc)"}
    assert shown["nodes"]["middle"]["restarts"] == 1
    assert eventually(
        lambda: any(x.startswith("sink avro {'seq': ") for x in _lines(control, "sink")), 10 * REPORT
    )
    before = _delivered(control, "sink")
    assert eventually(lambda: _delivered(control, "sink") > before + 20, 10 * REPORT)
    assert _node(control, "sink")["restarts"] == 0
    assert _node(control, "sink")["errors"] == 0
    sink, middle = _lines(control, "sink"), _lines(control, "middle")
    assert not [line for line in sink + middle if "InputClosed" in line or line.startswith("sink error")]
    assert "middle restart=True FORMAT=avro" in middle
    # The stream reads the edges from the coordinator's copy of the text: it follows the change.
    assert _edge_format(control, "sink/x", lambda f: f == "avro") == "avro"
    assert _edge_format(control, "middle/x", lambda f: f is not None) == "arrow"


def test_a_refused_data_format_changes_nothing(control: Control) -> None:
    _chain(control)
    pid = _node(control, "middle")["pid"]

    unknown = control("node", "set", "middle", "--data-format", "avroo", timeout=60)
    assert unknown.returncode == 2
    assert "the new data format of node 'middle' is refused:" in unknown.stderr
    assert "did you mean `avro`?" in unknown.stderr

    no_schema = control.api("POST", "/dataflows/demo/nodes/middle/restart", json={"data_format": "avro"})
    assert no_schema.status_code == 422
    detail = no_schema.json()["detail"]
    assert (
        detail["error"]
        == "the new data format of node 'middle' is refused: data format `avro` needs a schema"
    )
    assert detail["fix"] == "add `schema: schemas/<file>.avsc`"
    wrong_type = control.api(
        "POST", "/dataflows/demo/nodes/middle/restart", json={"schema": ["reading.avsc"]}
    )
    assert wrong_type.status_code == 422

    middle = _node(control, "middle")
    assert (middle["restarts"], middle["pid"], middle["state"]) == (0, pid, "running")
    assert middle["data_formats"] == {"out": "arrow"}
    before = _delivered(control, "sink")
    assert eventually(lambda: _delivered(control, "sink") > before + 20, 10 * REPORT)
    assert not [line for line in _lines(control, "sink") if "avro" in line or "error" in line]
    assert _edge_format(control, "sink/x", lambda f: f is not None) == "arrow"


def test_a_dataflow_run_by_doradus_run_changes_format_too(control: Control) -> None:
    for name, text in {
        "dataflow.yml": CHAIN,
        "source.py": SOURCE_PY,
        "middle.py": MIDDLE_PY,
        "sink.py": SINK_PY,
        "reading.avsc": READING_AVSC,
    }.items():
        control.write(name, text)
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
        assert eventually(  # every node reported running: the one to change among them
            lambda: {n["state"] for n in control.api("GET", f"/dataflows/{name}").json()["nodes"].values()}
            == {"running"},
            15,
        )
        # The coordinator has not its text: `doradus run` checks, and logs a refusal as an ERROR of the node.
        refused = control("node", "set", "middle", "--data-format", "avro", "--no-wait", timeout=60)
        assert refused.returncode == 0, refused.stderr
        change = ["--data-format", "avro", "--schema", "reading.avsc", "--env", "FORMAT=avro"]
        changed = control("node", "set", "middle", *change, timeout=90)
        assert changed.returncode == 0, changed.stderr
        middle = control.api("GET", f"/dataflows/{name}").json()["nodes"]["middle"]
        assert middle["restarts"] == 1
        assert eventually(
            lambda: (
                control.api("GET", f"/dataflows/{name}").json()["nodes"]["middle"]["data_formats"]
                == {"out": "avro (reading.avsc)"}
            ),
            5 * REPORT,
        )
        errors = control.api(
            "GET", f"/dataflows/{name}/logs", params={"node": "middle", "level": "ERROR"}
        ).json()
        assert any("needs a schema" in r["message"] for r in errors)
    finally:
        assert control("stop", "--all").returncode == 0
        out, _err = run.communicate(timeout=30)
    assert "sink avro {'seq': " in out
    assert "InputClosed" not in out
    assert "sink error" not in out
