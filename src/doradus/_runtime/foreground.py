"""``doradus run``: one dataflow in the foreground, from start to the last node's exit.

Example::

    code = run_dataflow(Path("dataflow.yml"), stop_after=10.0)
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from doradus._dataflow.model import Dataflow
from doradus._ids import new_run_id
from doradus._runtime.ending import KILL_AFTER_TERM
from doradus._runtime.processes import InputDrops, NodeResult
from doradus._runtime.supervisor import LocalDaemon

DEFAULT_GRACE = 5.0
NAMED_AT_MOST = 10
"""Nodes named in one line; more are counted."""


@dataclass(frozen=True)
class RunOutcome:
    """The end of a run: its id, where its logs are, how each node ended, what queues dropped."""

    run_id: str
    out_dir: Path
    results: tuple[NodeResult, ...]
    stopped: bool
    duration: float
    drops: tuple[InputDrops, ...] = ()
    """Inputs whose full queue dropped messages, in dataflow order."""

    @property
    def failed(self) -> list[NodeResult]:
        """Nodes that exited with a non-zero status or were killed."""
        return [r for r in self.results if r.returncode is not None and not r.ok]

    @property
    def exit_code(self) -> int:
        """0 when every node exited 0, else 1."""
        return 1 if self.failed else 0


def run_dataflow(
    dataflow: Dataflow,
    *,
    stop_after: float | None = None,
    extra_env: dict[str, str] | None = None,
    grace: float = DEFAULT_GRACE,
    on_record: Callable[[dict[str, Any]], None] | None = None,
    on_info: Callable[[str], None] | None = None,
    on_spawned: Callable[[], None] | None = None,
    run_id: str | None = None,
    log_level: str | None = None,
    on_daemon: Callable[[LocalDaemon], None] | None = None,
) -> RunOutcome:
    """Run ``dataflow`` until every node has ended.

    SIGINT/SIGTERM (when called from the main thread) and ``stop_after`` send
    Stop to every node; nodes still running ``grace`` seconds later get
    SIGTERM, then SIGKILL. A second Ctrl-C forces the kill at once.
    ``on_spawned`` is called once every node process has been started.
    ``run_id`` is the run's id (a new one when None), for callers that must
    know it before the run starts. Every log record at ``log_level`` or above
    is stored in ``out/<run-id>/logs.jsonl`` and passed to ``on_record``.
    ``on_daemon`` receives the `LocalDaemon` once it runs (e.g. to read its
    node metrics).

    Example::

        outcome = run_dataflow(load_dataflow(Path("dataflow.yml")))
        sys.exit(outcome.exit_code)
    """
    run_id = run_id or new_run_id()
    out_dir = dataflow.working_dir / "out" / run_id
    daemon = LocalDaemon(
        dataflow,
        run_id=run_id,
        out_dir=out_dir,
        extra_env=extra_env,
        on_record=on_record,
        log_level=log_level,
    )
    info = on_info or (lambda _text: None)
    stop = _StopState()
    restore = _install_signals(stop)
    started = time.monotonic()
    try:
        daemon.start()
        if on_daemon:
            on_daemon(daemon)
        if on_spawned:
            on_spawned()
        deadline = None if stop_after is None else started + stop_after
        while not daemon.wait(timeout=0.1):
            now = time.monotonic()
            if deadline is not None and now >= deadline and not stop.requested_at:
                info(f"stopping after {stop_after:g}s (--stop-after)")
                stop.request()
            _drive_stop(daemon, stop, grace, info)
    finally:
        restore()
        daemon.kill()  # nothing is left behind, whatever happened above
        daemon.close()
    return RunOutcome(
        run_id,
        out_dir,
        tuple(daemon.results()),
        bool(stop.requested_at),
        time.monotonic() - started,
        tuple(daemon.dropped_inputs()),
    )


class _StopState:
    def __init__(self) -> None:
        self.requested_at = 0.0
        self.signals = 0
        self.sent = False
        self.termed_at = 0.0
        self.killed = False

    def request(self) -> None:
        if not self.requested_at:
            self.requested_at = time.monotonic()


def _drive_stop(daemon: LocalDaemon, stop: _StopState, grace: float, info: Callable[[str], None]) -> None:
    if not stop.requested_at:
        return
    if not stop.sent:
        stop.sent = True
        daemon.request_stop()
    now = time.monotonic()
    if (stop.signals >= 2 or now - stop.requested_at >= grace) and not stop.termed_at:
        running = daemon.running()
        if running and stop.signals < 2:
            info(f"still running after the {grace:g}s grace: {name_nodes(running)}; sending SIGTERM")
        elif running:
            info(f"forced stop: sending SIGTERM to {name_nodes(running)}")
        daemon.kill(signal.SIGTERM)
        stop.termed_at = now
    elif stop.termed_at and now - stop.termed_at >= KILL_AFTER_TERM and not stop.killed:
        stop.killed = True
        running = daemon.running()
        if running:
            info(f"still running {KILL_AFTER_TERM:g}s after SIGTERM: {name_nodes(running)}; sending SIGKILL")
            daemon.kill(signal.SIGKILL)


def not_yet_supported(flow: Dataflow) -> list[str]:
    """What `doradus run` leaves to other commands (building, placing on machines), one note each.

    Settings not applied yet are the dataflow's ``not_applied`` warnings, which ``check`` prints too.

    Example:
        >>> from doradus._dataflow.model import NodeSpec
        >>> nodes = (NodeSpec(id="a", kind="python", build=("make",)), NodeSpec(id="b", kind="python"))
        >>> [note.split(";")[0] for note in not_yet_supported(Dataflow(path=Path("df.yml"), nodes=nodes))]
        ["node 'a' has a `build` command"]
    """
    notes = []
    for node in flow.nodes:
        if node.build:
            notes.append(
                f"node {node.id!r} has a `build` command; `doradus run` does not build: "
                "run `doradus build` first"
            )
    machines = sorted({node.machine for node in flow.nodes if node.machine})
    if len(machines) > 1:
        notes.append(
            f"nodes are placed on machines {', '.join(machines)}; `doradus run` runs every node here: "
            "start a daemon on each machine (`doradus daemon --machine-id NAME -c COORDINATOR`) "
            "and use `doradus start` to place them"
        )
    return notes


def name_nodes(node_ids: list[str]) -> str:
    """Node ids for one line: the first `NAMED_AT_MOST`, then how many more.

    Example:
        >>> name_nodes(["camera", "detector"])
        'camera, detector'
        >>> name_nodes([f"n{i}" for i in range(12)])
        'n0, n1, n2, n3, n4, n5, n6, n7, n8, n9 and 2 more'
    """
    named = ", ".join(node_ids[:NAMED_AT_MOST])
    more = len(node_ids) - NAMED_AT_MOST
    return f"{named} and {more} more" if more > 0 else named


def _install_signals(stop: _StopState) -> Callable[[], None]:
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def handler(_signum: int, _frame: FrameType | None) -> None:
        stop.signals += 1
        stop.request()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}

    def restore() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)

    return restore
