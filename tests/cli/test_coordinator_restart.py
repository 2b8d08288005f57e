"""The coordinator may restart: its state on disk, daemons reconnecting, dataflows running on.

Real processes: ``doradus up``, a counting dataflow, the coordinator killed with SIGKILL and
started again with the arguments ``up`` gave it; a daemon whose coordinator stays away past
its reconnect window; a coordinator started again without its state. The state store itself
is checked on its own at the end. See docs/cli.md, "When the coordinator restarts".
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import httpx
from tests.cli.conftest import DORADUS, Control, pid_alive
from tests.cli.test_control_plane import eventually

from doradus._control.daemon_connection import MAX_BACKOFF
from doradus._control.daemon_link import HeldDataflow
from doradus._control.models import LogRecord, NodeStatus
from doradus._control.persistence import Snapshot, StateStore, remove_database
from doradus._control.recovery import expire, reattach, restore
from doradus._control.state import HEARTBEAT_INTERVAL, LOG_BACKLOG, CoordinatorState, Daemon, Run

TICK_MS = 50
COUNTING = f"""
    nodes:
      - id: source
        path: source.py
        inputs:
          tick: dora/timer/millis/{TICK_MS}
        outputs: [count]
      - id: sink
        path: sink.py
        inputs:
          count: source/count
"""
SOURCE_PY = """
    from doradus import Input, Node

    node = Node()
    sent = 0
    for event in node:
        if isinstance(event, Input):
            sent += 1
            node.send_output("count", [sent])
"""
SINK_PY = """
    import os
    from doradus import Input, Node

    received = 0
    for event in Node():
        if isinstance(event, Input):
            received += 1
            print(f"count {received}", flush=True)
            with open("count.tmp", "w") as out:
                out.write(str(received))
            os.replace("count.tmp", "count.txt")
"""
START_UP = 10.0
"""Seconds an interpreter may take to start the coordinator and answer, on a busy machine."""
REATTACHED_WITHIN = MAX_BACKOFF + 3 * HEARTBEAT_INTERVAL + 2.0
"""From the new coordinator answering to the dataflow attached again: the daemon's longest wait
between two tries, a few heartbeats, and a margin."""
GROWTH = 10
"""Messages the sink must receive to count as growing (0.5 s of ticks)."""


def _json(control: Control, *args: str) -> Any:
    ran = control(*args, "--output", "json")
    assert ran.returncode == 0, ran.stderr
    return json.loads(ran.stdout)


def _count(control: Control) -> int:
    try:
        return int((control.folder / "count.txt").read_text() or 0)
    except (FileNotFoundError, ValueError):
        return 0


def _counts_in_logs(control: Control, name: str) -> list[int]:
    """The counts the sink printed, as ``logs`` gives them (JSON lines, oldest first)."""
    ran = control("logs", name, "--node", "sink", "--output", "json")
    assert ran.returncode == 0, ran.stderr
    messages = [json.loads(line)["message"] for line in ran.stdout.splitlines() if line.strip()]
    return [int(m.split()[1]) for m in messages if m.startswith("count ")]


def _start_counting(control: Control, name: str) -> None:
    control.write("dataflow.yml", COUNTING)
    control.write("source.py", SOURCE_PY)
    control.write("sink.py", SINK_PY)
    started = control("start", "dataflow.yml", "--detach", "--name", name)
    assert started.returncode == 0, started.stderr
    assert eventually(lambda: _count(control) >= GROWTH, 15), "the sink never counted"


def _node_pids(control: Control, name: str) -> list[int]:
    nodes = _json(control, "status", name)["nodes"]
    return [int(n["pid"]) for n in nodes.values() if n["pid"] is not None]


def _daemons(control: Control) -> list[dict[str, Any]]:
    response = control.api("GET", "/daemons")
    response.raise_for_status()
    return list(response.json())


def _health(control: Control) -> bool:
    try:
        return control.api("GET", "/health").status_code == 200
    except httpx.TransportError:
        return False


@contextmanager
def _process(args: list[str], control: Control, **kwargs: Any) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(args, env=control.env, cwd=control.folder, text=True, **kwargs)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=20)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def test_a_killed_coordinator_started_again_finds_its_dataflow_running(control: Control) -> None:
    up = control("up")
    assert up.returncode == 0, up.stderr
    _start_counting(control, "counting")
    pids = _node_pids(control, "counting")
    port = int(control.address.rpartition(":")[2])
    database = control.runtime / "doradus" / f"coordinator-{port}.db"
    saved = sorted(database.parent.glob(f"{database.name}*"))  # with its -wal and -shm files
    assert [f.stat().st_mode & 0o777 for f in saved] == [0o600] * len(saved)
    assert len(saved) == 3
    old = int(json.loads(control.state_file.read_text())["pids"]["coordinator"])
    arguments = Path(f"/proc/{old}/cmdline").read_bytes().split(b"\0")[:-1]
    assert eventually(lambda: len(_counts_in_logs(control, "counting")) >= GROWTH, 5)

    os.kill(old, signal.SIGKILL)
    at_kill = _count(control)
    # The nodes go on without any coordinator: the sink's count grows while none runs.
    assert eventually(lambda: _count(control) >= at_kill + GROWTH, 5), "the dataflow stalled"
    assert all(pid_alive(p) for p in pids)

    with _process(
        [a.decode() for a in arguments], control, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    ):
        assert eventually(lambda: _health(control), START_UP), "the coordinator did not start again"
        answered = time.monotonic()
        listed = _json(control, "list")
        assert [(d["name"], d["status"], d["nodes"]) for d in listed] == [("counting", "running", 2)]

        def attached() -> bool:
            nodes = _json(control, "status", "counting")["nodes"]
            daemons = [d["status"] for d in _daemons(control)]
            return daemons == ["connected"] and all(n["state"] == "running" for n in nodes.values())

        assert eventually(attached, REATTACHED_WITHIN), _daemons(control)
        assert time.monotonic() - answered <= REATTACHED_WITHIN + 1.0
        assert sorted(_node_pids(control, "counting")) == sorted(pids)  # the same processes
        assert json.loads(control.state_file.read_text())["pids"]["coordinator"] != old

        # `logs` has lines from before the kill, and new ones come: the count keeps growing.
        before = _counts_in_logs(control, "counting")
        assert before[0] == 1
        assert eventually(lambda: max(_counts_in_logs(control, "counting")) >= at_kill + 3 * GROWTH, 10)

        stopped = control("stop", "counting", "--grace-duration", "2s")
        assert stopped.returncode == 0, stopped.stderr
        assert eventually(lambda: _json(control, "list")[0]["status"] in ("stopped", "finished"), 10)
        assert eventually(lambda: not any(pid_alive(p) for p in pids), 5)

        down = control("destroy")
        assert down.returncode == 0, down.stderr
        assert not database.exists()


def test_a_daemon_whose_coordinator_stays_away_stops_its_dataflows(control: Control) -> None:
    port = int(control.address.rpartition(":")[2])
    window = 1.0
    coordinator = [*DORADUS, "coordinator", "--port", str(port)]
    daemon = [*DORADUS, "daemon", "--reconnect-window", f"{window:g}"]
    with _process(coordinator, control, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as coord:
        assert eventually(lambda: _health(control), START_UP)
        with _process(daemon, control, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as daemon_proc:
            assert eventually(lambda: bool(_daemons(control)), START_UP)
            _stays_away(control, coord, daemon_proc, window)


def _stays_away(
    control: Control, coord: subprocess.Popen[str], daemon_proc: subprocess.Popen[str], window: float
) -> None:
    _start_counting(control, "alone")
    pids = _node_pids(control, "alone")
    coord.kill()
    coord.wait(timeout=10)
    # The window, then Stop with a 1 s grace, SIGTERM, SIGKILL 2 s later; a margin for the machine.
    _out, err = daemon_proc.communicate(timeout=window + 1.0 + 2.0 + 10.0)
    assert daemon_proc.returncode == 1, err
    assert f"reconnecting for up to {window:g}s" in err
    assert f"did not come back within {window:g}s (last try: connection refused)" in err
    assert "stopping every dataflow" in err
    assert not any(pid_alive(p) for p in pids)


def test_a_coordinator_without_the_state_tells_a_daemon_to_stop_what_it_runs(control: Control) -> None:
    up = control("up")
    assert up.returncode == 0, up.stderr
    _start_counting(control, "forgotten")
    pids = _node_pids(control, "forgotten")
    port = int(control.address.rpartition(":")[2])
    old = json.loads(control.state_file.read_text())["pids"]["coordinator"]
    os.kill(int(old), signal.SIGKILL)
    remove_database(control.runtime / "doradus" / f"coordinator-{port}.db")
    # A plain `doradus coordinator`: a new token, which the daemon and the commands find.
    coordinator = [*DORADUS, "coordinator", "--port", str(port)]
    with _process(coordinator, control, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL):
        assert eventually(lambda: _health(control), START_UP)
        assert eventually(
            lambda: [d["status"] for d in _daemons(control)] == ["connected"], REATTACHED_WITHIN
        )
        assert _json(control, "list") == []
        # Told to stop (2 s of grace, then SIGTERM): the nodes end, the daemon stays connected.
        assert eventually(lambda: not any(pid_alive(p) for p in pids), 2.0 + 2.0 + 3.0)
        assert [d["status"] for d in _daemons(control)] == ["connected"]
        assert control("destroy").returncode == 0


def test_destroy_without_its_coordinator_ends_the_daemon_and_the_state(control: Control) -> None:
    up = control("up")
    assert up.returncode == 0, up.stderr
    _start_counting(control, "orphan")
    pids = _node_pids(control, "orphan")
    recorded = json.loads(control.state_file.read_text())["pids"]
    port = int(control.address.rpartition(":")[2])
    os.kill(int(recorded["coordinator"]), signal.SIGKILL)
    assert eventually(lambda: _count(control) >= GROWTH, 5)  # still running, reconnecting

    down = control("destroy", "--retries", "0")
    assert down.returncode == 0, down.stderr
    assert not pid_alive(int(recorded["daemon"]))
    assert eventually(lambda: not any(pid_alive(p) for p in pids), 5), "a node outlived its daemon"
    assert not control.state_file.exists()
    assert not list((control.runtime / "doradus").glob(f"coordinator-{port}.db*"))


# ------------------------------------------------------------------------ the state store
def _run(run_id: str, **fields: Any) -> Run:
    return Run(id=run_id, name=f"flow-{run_id}", path="/srv/flow.yml", machine="vm", **fields)


def test_the_store_gives_back_runs_nodes_and_the_last_logs(tmp_path: Path) -> None:
    path = tmp_path / "coordinator.db"
    store, snapshot = StateStore.open(path)
    assert snapshot.runs == []
    run = _run("r1", text="nodes: []", env={"K": "V"}, machines=["vm"], parts_running={"vm"})
    run.nodes = {"sink": NodeStatus()}
    store.save_run(run)
    store.save_node("r1", "sink", NodeStatus(state="running", pid=42, restarts=1, cpu_percent=3.0))
    records = LOG_BACKLOG + 1500
    for k in range(records):
        store.add_log("r1", LogRecord(timestamp="2026-01-01T00:00:00.000000Z", message=f"line {k}"))
    store.save_run(_run("r2", status="finished"))
    store.forget(["r2"])
    assert store.flush()
    store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        kept = db.execute("SELECT count(*) FROM logs").fetchone()[0]
    assert LOG_BACKLOG <= kept <= LOG_BACKLOG + 1000

    again, snapshot = StateStore.open(path)
    again.close()
    [restored] = snapshot.runs
    assert (restored.id, restored.text, restored.env, restored.parts_running) == (
        "r1",
        "nodes: []",
        {"K": "V"},
        {"vm"},
    )
    sink = restored.nodes["sink"]
    assert (sink.state, sink.pid, sink.restarts, sink.cpu_percent) == ("running", 42, 1, None)  # no metrics
    assert len(restored.logs) == LOG_BACKLOG
    assert restored.logs[-1].message == f"line {records - 1}"
    assert restored.logs[0].message == f"line {records - LOG_BACKLOG}"


def test_an_unreadable_store_is_moved_aside(tmp_path: Path) -> None:
    path = tmp_path / "coordinator.db"
    path.write_bytes(b"not a database at all" * 100)
    store, snapshot = StateStore.open(path)
    store.close()
    assert snapshot.runs == []
    assert (tmp_path / "coordinator.db.unreadable").read_bytes().startswith(b"not a database")
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM runs").fetchone()[0] == 0


# ------------------------------------------------------------------ re-attaching daemons
def _restored(*runs: Run) -> CoordinatorState:
    state = CoordinatorState()
    restore(state, Snapshot(list(runs)), window=60.0)
    return state


def _daemon(machine: str) -> Daemon:
    return Daemon(cast("Any", None), machine, "host", 4242)  # its socket is not used here


def test_a_restored_run_is_reattached_or_lost_as_its_daemon_says() -> None:
    kept, gone = _run("kept", machines=["vm"]), _run("gone", machines=["vm"])
    kept.nodes = {"sink": NodeStatus(state="running", pid=7)}
    gone.nodes = {"sink": NodeStatus(state="running", pid=8)}
    state = _restored(kept, gone, _run("old", status="finished", machines=["vm"]))
    assert [d.info().status for d in state.awaited.values()] == ["reconnecting"]
    assert kept.awaiting == {"vm"}

    held = [
        HeldDataflow.model_validate({"id": "kept", "nodes": {"sink": {"state": "running", "pid": 9}}}),
        HeldDataflow(id="unknown"),
        HeldDataflow(id="old"),
    ]
    orders = reattach(state, _daemon("vm"), held)
    assert [(o["type"], o["id"]) for o in orders] == [("stop", "unknown"), ("stop", "old")]
    assert (kept.status, kept.awaiting, kept.parts_running, kept.nodes["sink"].pid) == (
        "running",
        set(),
        {"vm"},
        9,
    )
    assert (gone.status, gone.reason, gone.nodes["sink"].state) == ("failed", "daemon vm lost", "lost")
    assert state.awaited == {}


def test_a_restored_run_whose_daemon_stays_away_fails_after_the_window() -> None:
    run = _run("r1", machines=["vm"])
    state = _restored(run)
    expire(state, 60.0, now=time.time() + 30.0)
    assert run.status == "running"
    expire(state, 60.0, now=time.time() + 61.0)
    assert run.status == "failed"
    assert run.reason == "daemon vm did not reconnect within 60s of the coordinator's restart"
    assert state.awaited["vm"].info().status == "lost"
