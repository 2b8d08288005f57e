"""``doradus param list|get|set|delete`` on a real coordinator and daemon: the nodes see each change.

A native node and a dora-API node print every parameter event they get and the parameters
they hold; the tests read those lines back through the coordinator's logs.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
from pathlib import Path

import httpx
from tests.cli.conftest import Control
from tests.cli.test_control_plane import eventually
from tests.cli.test_coordinator_restart import REATTACHED_WITHIN, START_UP, _health, _process

from doradus._control.models import NodeStatus
from doradus._control.persistence import FLUSH_EVERY, StateStore
from doradus._control.state import Run

FLOW = """
    nodes:
      - id: camera
        path: camera.py
        inputs:
          tick: dora/timer/millis/50
      - id: legacy
        path: legacy.py
        inputs:
          tick: dora/timer/millis/50
"""
CAMERA_PY = """
    import json
    from doradus import Node, ParamDeleted, ParamUpdate

    node = Node()
    now = lambda: json.dumps(node.parameters(), sort_keys=True)
    print(f"start restarts={node.restart_count()} params={now()}", flush=True)
    for event in node:
        if isinstance(event, ParamUpdate):
            print(f"update {event.key}={json.dumps(event.value)} now={now()}", flush=True)
        elif isinstance(event, ParamDeleted):
            print(f"deleted {event.key} now={now()}", flush=True)
"""
LEGACY_PY = """
    import json
    from dora import Node

    for event in Node():
        if event["type"] in ("PARAM_UPDATE", "PARAM_DELETED"):
            print(f"{event['type']} {event['id']} {json.dumps(event.get('value'))}", flush=True)
"""
REPORT = 1.0
"""Seconds between two reports of a node (the coordinator learns a node runs within about that)."""


def _start(control: Control) -> None:
    control.write("dataflow.yml", FLOW)
    control.write("camera.py", CAMERA_PY)
    control.write("legacy.py", LEGACY_PY)
    assert control("up").returncode == 0
    started = control("start", "dataflow.yml", "--detach", "--name", "demo")
    assert started.returncode == 0, started.stderr
    assert eventually(lambda: _lines(control, "camera") != [], 15 * REPORT)


def _lines(control: Control, node: str) -> list[str]:
    response = control.api("GET", "/dataflows/demo/logs", params={"node": node})
    response.raise_for_status()
    return [r["message"] for r in response.json() if r.get("source") == "stdout"]


def _printed(control: Control, node: str, line: str) -> bool:
    return eventually(lambda: line in _lines(control, node), 10 * REPORT)


def test_param_set_reaches_the_node_and_survives_its_restart(control: Control) -> None:
    _start(control)
    assert _lines(control, "camera")[0] == "start restarts=0 params={}"

    done = control("param", "set", "camera", "exposure", "0.02")
    assert done.returncode == 0, done.stderr
    assert "Set 'exposure' = 0.02 on node 'camera' of dataflow 'demo'." in done.stderr
    assert _printed(control, "camera", 'update exposure=0.02 now={"exposure": 0.02}')
    roi = control("param", "set", "camera", "roi", '{"x": 1}', "--dataflow", "demo", "--output", "json")
    assert roi.returncode == 0, roi.stderr
    answer = json.loads(roi.stdout)
    assert (answer["action"], answer["key"], answer["value"], answer["forwarded"]) == (
        "set",
        "roi",
        {"x": 1},
        True,
    )
    assert _printed(control, "camera", 'update roi={"x": 1} now={"exposure": 0.02, "roi": {"x": 1}}')

    listed = control("param", "list", "camera", "--output", "json")
    assert json.loads(listed.stdout)["params"] == {"exposure": 0.02, "roi": {"x": 1}}
    assert control("param", "list", "camera").stdout.splitlines() == ["exposure = 0.02", 'roi = {"x": 1}']
    got = control("param", "get", "camera", "roi")
    assert (got.returncode, got.stdout) == (0, '{"x": 1}\n')

    # Set again to the same value: told again, as dora does.
    assert control("param", "set", "camera", "exposure", "0.02").returncode == 0
    assert eventually(
        lambda: (
            _lines(control, "camera").count('update exposure=0.02 now={"exposure": 0.02, "roi": {"x": 1}}')
            == 1
        ),
        10 * REPORT,
    )

    restarted = control("node", "restart", "camera")
    assert restarted.returncode == 0, restarted.stderr
    # The new process has them from the start, and an event for each before anything else.
    start = 'start restarts=1 params={"exposure": 0.02, "roi": {"x": 1}}'
    both = '{"exposure": 0.02, "roi": {"x": 1}}'
    told = [f"update exposure=0.02 now={both}", f'update roi={{"x": 1}} now={both}']
    assert eventually(lambda: _after(control, "camera", start)[:2] == told, 15 * REPORT)

    deleted = control("param", "delete", "camera", "exposure")
    assert deleted.returncode == 0, deleted.stderr
    assert "Deleted 'exposure' of node 'camera' of dataflow 'demo'." in deleted.stderr
    assert _printed(control, "camera", 'deleted exposure now={"roi": {"x": 1}}')
    gone = control("param", "get", "camera", "exposure")
    assert gone.returncode == 2
    assert "node 'camera' of dataflow 'demo' has no parameter 'exposure'" in gone.stderr
    assert "doradus param list camera --dataflow demo" in gone.stderr


def _after(control: Control, node: str, line: str) -> list[str]:
    """The lines ``node`` printed after ``line`` (none before it is printed)."""
    lines = _lines(control, node)
    return lines[lines.index(line) + 1 :] if line in lines else []


def test_a_dora_node_gets_param_update_and_param_deleted_dicts(control: Control) -> None:
    _start(control)

    assert control("param", "set", "legacy", "mode", '"high-res"').returncode == 0
    assert control("param", "set", "legacy", "roi.x", "[1, 2.5, null]").returncode == 0
    assert control("param", "delete", "legacy", "mode").returncode == 0
    told = ['PARAM_UPDATE mode "high-res"', "PARAM_UPDATE roi.x [1, 2.5, null]", "PARAM_DELETED mode null"]
    assert eventually(lambda: _lines(control, "legacy") == told, 10 * REPORT)
    response = control.api("GET", "/dataflows/demo/nodes/legacy/params/roi.x")
    assert response.status_code == 200, response.text
    assert response.json()["value"] == [1, 2.5, None]


def test_param_refuses_what_it_cannot_do_and_says_the_fix(control: Control) -> None:
    control.write("dataflow.yml", FLOW)
    bad = control("param", "set", "camera", "mode", "high-res")
    assert bad.returncode == 2
    assert "'high-res' is not a JSON value" in bad.stderr
    assert """'"high-res"'""" in bad.stderr  # the fix: the same text as a JSON string

    alone = control("param", "list", "camera", "--retries", "0")
    assert alone.returncode == 1
    assert "parameters are kept by a coordinator: start one with `doradus up`" in alone.stderr

    _start(control)
    unknown = control("param", "set", "nope", "x", "1")
    assert unknown.returncode == 2
    assert "dataflow 'demo' has no node 'nope' (its nodes: camera, legacy)" in unknown.stderr
    slash = control("param", "set", "camera", "roi/x", "1")
    assert slash.returncode == 2
    assert "a parameter key cannot hold `/`: write `roi.x`" in slash.stderr
    odd = control.api("PUT", "/dataflows/demo/nodes/camera/params/a%0Ab", json={"value": 1})
    assert odd.status_code == 422
    assert odd.json()["detail"]["error"].startswith("a parameter key is 1 to 256 bytes of printable text")
    big = control.api("PUT", "/dataflows/demo/nodes/camera/params/blob", json={"value": "x" * 70_000})
    assert big.status_code == 422
    assert "over the 65536 a parameter may hold" in big.json()["detail"]["error"]
    missing = control("param", "delete", "camera", "never-set")
    assert missing.returncode == 2
    assert "has no parameter 'never-set'" in missing.stderr

    assert control("stop", "demo").returncode == 0
    assert eventually(
        lambda: control.api("GET", "/dataflows/demo").json()["status"] != "running", 15 * REPORT
    )
    ended = control("param", "set", "camera", "x", "1", "--dataflow", "demo")
    assert ended.returncode == 2
    assert "dataflow 'demo' is not running" in ended.stderr


def test_parameters_survive_a_coordinator_restart_and_are_not_told_twice(control: Control) -> None:
    _start(control)
    assert control("param", "set", "camera", "exposure", "0.02").returncode == 0
    told = 'update exposure=0.02 now={"exposure": 0.02}'
    assert _printed(control, "camera", told)
    port = int(control.address.rpartition(":")[2])
    old = int(json.loads(control.state_file.read_text())["pids"]["coordinator"])
    arguments = [a.decode() for a in Path(f"/proc/{old}/cmdline").read_bytes().split(b"\0")[:-1]]
    database = control.runtime / "doradus" / f"coordinator-{port}.db"
    assert eventually(lambda: _saved_params(database) == 1, 20 * FLUSH_EVERY)  # on disk within a flush
    os.kill(old, signal.SIGKILL)

    with _process(arguments, control, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL):
        assert eventually(lambda: _health(control), START_UP), f"no coordinator again on port {port}"
        listed = control("param", "list", "camera", "--output", "json")
        assert json.loads(listed.stdout)["params"] == {"exposure": 0.02}
        assert eventually(
            lambda: [d["status"] for d in control.api("GET", "/daemons").json()] == ["connected"],
            REATTACHED_WITHIN,
        )
        # The daemon got the node's parameters again when it registered: nothing changed, nothing told.
        assert control("param", "set", "camera", "gain", "3").returncode == 0
        assert _printed(control, "camera", 'update gain=3 now={"exposure": 0.02, "gain": 3}')
        assert _lines(control, "camera").count(told) == 1
        assert control("destroy").returncode == 0


def _saved_params(database: Path) -> int:
    with sqlite3.connect(database) as db:
        return int(db.execute("SELECT count(*) FROM params").fetchone()[0])


def test_the_store_keeps_each_nodes_parameters(tmp_path: Path) -> None:
    path = tmp_path / "coordinator.db"
    store, _snapshot = StateStore.open(path)
    run = Run(id="r1", name="demo", path="/srv/flow.yml", machine="vm", nodes={"a": NodeStatus()})
    store.save_run(run)
    store.save_params("r1", "a", {"gain": 2, "roi": {"x": [1, 2]}})
    store.save_params("r1", "b", {"gone": True})
    store.save_params("r1", "b", {})  # its last one deleted
    store.save_run(Run(id="r2", name="old", path="/srv/flow.yml", machine="vm", status="finished"))
    store.save_params("r2", "a", {"x": 1})
    store.forget(["r2"])
    store.close()

    again, snapshot = StateStore.open(path)
    again.close()
    assert [(r.id, r.params) for r in snapshot.runs] == [("r1", {"a": {"gain": 2, "roi": {"x": [1, 2]}}})]
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM params").fetchone()[0] == 1


def test_a_change_for_a_daemon_away_is_stored_and_sent_when_it_connects_again() -> None:
    from doradus._control.coordinator import create_app
    from doradus._control.node_models import MAX_PARAMS
    from doradus._control.params import param_orders

    app = create_app()
    state = app.state.coordinator
    run = Run(id="r1", name="demo", path="/srv/flow.yml", machine="vm", machines=["vm"])
    run.nodes = {"camera": NodeStatus(state="running")}
    state.dataflows[run.id] = run
    external = Run(id="r2", name="alone", path="/srv/flow.yml", machine="vm", external=True)
    external.nodes = {"camera": NodeStatus(state="running")}
    state.dataflows[external.id] = external
    base = "/api/v1/dataflows/demo/nodes/camera/params"

    async def scenario() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://coordinator") as client:
            done = await client.put(f"{base}/gain", json={"value": 2})
            assert done.status_code == 200, done.text
            assert done.json()["forwarded"] is False
            assert "its daemon is not connected" in done.json()["message"]
            assert param_orders(state, "vm") == [
                {"type": "node_params", "id": "r1", "node": "camera", "params": {"gain": 2}, "touched": None}
            ]
            assert param_orders(state, "other-machine") == []

            for k in range(MAX_PARAMS - 1):
                assert (await client.put(f"{base}/k{k}", json={"value": k})).is_success
            full = await client.put(f"{base}/one-more", json={"value": 1})
            assert full.status_code == 422
            assert f"the node has {MAX_PARAMS} parameters" in full.json()["detail"]["error"]
            again = await client.put(f"{base}/gain", json={"value": None})
            assert again.status_code == 200  # an existing key may change, and null is a value

            refused = await client.put("/api/v1/dataflows/alone/nodes/camera/params/gain", json={"value": 2})
            assert refused.status_code == 409
            assert "runs under `doradus run`" in refused.json()["detail"]["error"]
            # The coordinator has no text for it: node info says what it knows, the rest is null.
            info = (await client.get("/api/v1/dataflows/alone/nodes/camera")).json()
            assert (info["machine"], info["state"], info["kind"], info["inputs"]) == (
                "vm",
                "running",
                None,
                {},
            )

    asyncio.run(scenario())
