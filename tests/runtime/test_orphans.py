"""Nothing outlives its run: nodes die with their supervisor, helpers with the run."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.conftest import (
    DORADUS,
    Ran,
    processes_of_runs,
    run_folders,
    run_folders_of,
    run_ids,
    write_files,
)

from doradus._unsafe.keeper import Exited, Keeper, Spawned, SpawnFailed

GONE_WITHIN = 2.0


def _start(folder: Path, files: dict[str, str]) -> subprocess.Popen[str]:
    write_files(folder, files)
    return subprocess.Popen(
        [*DORADUS, "run", str(folder / "dataflow.yml"), "--no-color"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=folder,
    )


def _read_until(proc: subprocess.Popen[str], wanted: set[str]) -> None:
    """Read the run's output until every wanted line has been printed."""
    assert proc.stdout is not None
    seen: list[str] = []
    while not wanted <= set(seen):
        line = proc.stdout.readline()
        assert line, f"the run ended before printing {wanted - set(seen)}: {seen}"
        seen.append(line.rstrip("\n"))


def _left_after_kill(proc: subprocess.Popen[str], folder: Path) -> tuple[list[str], list[str], float]:
    """SIGKILL the runner; wait (at most `GONE_WITHIN`) for its nodes and run folder to go."""
    ids = run_ids(folder)
    assert ids, "the run did not start"
    assert processes_of_runs(ids), "no node was running"
    proc.kill()
    proc.wait(timeout=10)
    killed = time.monotonic()
    while time.monotonic() - killed < GONE_WITHIN:
        if not processes_of_runs(ids) and not run_folders_of(ids):
            break
        time.sleep(0.05)
    left = processes_of_runs(ids), run_folders_of(ids), time.monotonic() - killed
    proc.communicate(timeout=10)
    return left


BUSY = """
from doradus import Node
node = Node()
print("busy", flush=True)
while True:  # computing, never reading an event
    pass
"""


def test_sigkill_of_the_runner_ends_every_kind_of_node(tmp_path: Path) -> None:
    proc = _start(
        tmp_path,
        {
            "dataflow.yml": """
            nodes:
              - id: python
                path: busy.py
              - id: shell
                path: shell
                args: echo sleeping; sleep 600
              - id: binary
                path: /bin/sleep
                args: "600"
            """,
            "busy.py": BUSY,
        },
    )
    _read_until(proc, {"python | busy", "shell  | sleeping"})
    processes, folders, seconds = _left_after_kill(proc, tmp_path)
    assert processes == [], f"still running {seconds:.1f}s after the runner's SIGKILL"
    assert folders == [], "the run folder (its control.sock) stayed behind"


def test_sigkill_of_the_runner_while_it_starts_nodes(tmp_path: Path) -> None:
    nodes = "".join(f"  - id: n{i:03}\n    path: shell\n    args: echo up; sleep 600\n" for i in range(300))
    proc = _start(tmp_path, {"dataflow.yml": "nodes:\n" + nodes})
    assert proc.stdout is not None
    assert proc.stdout.readline().endswith("| up\n")  # the first node runs; most are not started yet
    processes, folders, seconds = _left_after_kill(proc, tmp_path)
    assert processes == [], f"still running {seconds:.1f}s after the runner's SIGKILL"
    assert folders == []
    (logs,) = tmp_path.glob("out/*/logs.jsonl")
    started = logs.read_text().count('"event": "started"')
    assert 0 < started < 300, f"{started} nodes had started: the runner was not killed mid-start"


def test_a_stale_run_folder_is_removed_at_the_next_start(dataflow: Callable[..., Ran]) -> None:
    from doradus._paths import runs_dir

    gone = subprocess.Popen(["true"])
    gone.wait()  # a pid that no longer runs: the supervisor of a run that was killed
    stale = runs_dir() / f"01a00000-dead-p{gone.pid}-x1y2z3"
    stale.mkdir()
    (stale / "control.sock").touch()
    alive = runs_dir() / f"01a00000-live-p{os.getpid()}-x1y2z3"
    alive.mkdir()
    try:
        ran = dataflow({"dataflow.yml": "nodes:\n  - id: a\n    path: shell\n    args: 'true'\n"})
        assert ran.returncode == 0, ran.output
        assert stale.name not in run_folders()
        assert alive.name in run_folders(), "the folder of a live supervisor was removed"
    finally:
        alive.rmdir()


def test_a_helper_left_by_a_node_does_not_hold_the_run(dataflow: Callable[..., Ran]) -> None:
    ran = dataflow(
        {
            "dataflow.yml": """
            nodes:
              - id: parent
                path: shell
                args: sleep 30 & echo exiting $(date +%s.%N)
            """
        }
    )
    ended = time.time()
    assert ran.returncode == 0, ran.output
    (line,) = ran.lines_of("parent")
    exited = float(line.split()[1])
    # The helper keeps the node's stdout open: the run must not wait for it (nor 5 s per pipe).
    assert ended - exited < 1.0, f"the run ended {ended - exited:.1f}s after its last node"


def test_a_helpers_lines_are_logged_until_the_end_and_it_is_ended(
    dataflow: Callable[..., Ran], tmp_path: Path
) -> None:
    ran = dataflow(
        {
            "dataflow.yml": """
            nodes:
              - id: parent
                path: shell
                args: (sleep 0.3; echo helper line; exec sleep 30) & echo parent exits
              - id: other
                path: shell
                args: sleep 1.5
            """
        }
    )
    assert ran.returncode == 0, ran.output
    assert ran.lines_of("parent") == ["parent exits", "helper line"]
    (log,) = tmp_path.glob("out/*/log_parent.txt")
    assert log.read_text() == "parent exits\nhelper line\n"
    # The `dataflow` fixture asserts that no process of the run is left: the helper was ended.


def _wait_gone(pid: int, within: float) -> bool:
    import psutil

    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.02)
    return False


def _spawned_pid(keeper: Keeper) -> int:
    events: list[object] = []
    while not events:
        events = keeper.receive(timeout=5) or []
    (event,) = events
    assert isinstance(event, Spawned), event
    return event.pid


@pytest.mark.parametrize("pidfd", [True, False], ids=["pidfd", "sigchld"])
def test_the_keeper_reports_exits_and_keeps_the_node_limit(pidfd: bool) -> None:
    keeper = Keeper.start(node_files=512, pidfd=pidfd)
    out, into = os.pipe()
    try:
        for i in range(3):
            script = f"ulimit -Sn; sleep 0.{i}; kill -TERM $$" if i == 2 else f"ulimit -Sn; exit {i}"
            keeper.spawn(f"n{i}", ["/bin/sh", "-c", script], cwd="/", env={}, stdout=into, stderr=into)
        keeper.spawn("bad", ["/no/such/program"], cwd="/", env={}, stdout=into, stderr=into)
        os.close(into)
        events: list[object] = []
        while sum(isinstance(e, Exited | SpawnFailed) for e in events) < 4:
            events += keeper.receive(timeout=5) or []
        exits = {e.key: e.code for e in events if isinstance(e, Exited)}
        assert exits == {"n0": 0, "n1": 1, "n2": -signal.SIGTERM}
        (failed,) = [e for e in events if isinstance(e, SpawnFailed)]
        assert failed.key == "bad"
        assert "No such file or directory" in failed.error
        assert keeper.end(grace=1.0)
        assert os.read(out, 100).split() == [b"512"] * 3
    finally:
        keeper.close()
        os.close(out)


def test_nodes_die_with_a_killed_keeper() -> None:
    keeper = Keeper.start()
    try:
        keeper.spawn("sleeper", ["/bin/sleep", "600"], cwd="/", env={}, stdout=1, stderr=2)
        pid = _spawned_pid(keeper)
        os.kill(keeper.pid, signal.SIGKILL)  # no end, no cleanup: only the kernel's PR_SET_PDEATHSIG
        assert _wait_gone(pid, within=GONE_WITHIN), "a node outlived its keeper"
        assert keeper.receive(timeout=5) is None
        keeper.end(grace=0)  # reaps the keeper
    finally:
        keeper.close()


def test_the_keeper_ends_the_group_when_its_supervisor_goes() -> None:
    keeper = Keeper.start(orphan_grace=0.5)
    try:
        # A node that ignores SIGTERM, and a child of it: SIGKILL after the grace ends both.
        script = "trap '' TERM; sleep 600 & echo $!; wait"
        out, into = os.pipe()
        keeper.spawn("stubborn", ["/bin/sh", "-c", script], cwd="/", env={}, stdout=into, stderr=2)
        os.close(into)
        pid = _spawned_pid(keeper)
        child = int(os.read(out, 100))
        os.close(out)
    finally:
        keeper.close()  # as the kernel does when the supervisor dies
    started = time.monotonic()
    assert _wait_gone(pid, within=GONE_WITHIN)
    assert _wait_gone(child, within=GONE_WITHIN)
    assert time.monotonic() - started >= 0.4, "SIGKILL came before the grace"
    assert keeper.end(grace=0)  # the keeper exits once its nodes are reaped
