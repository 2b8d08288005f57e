"""How a run's nodes end: their exit recorded, signals past their grace, waiting for the last.

A node ends on its own (its exit is recorded by `report_exit`), or after ``stop`` (the
caller gives it a grace: ``doradus run``'s ``--grace-duration``), then SIGTERM, then SIGKILL
`KILL_AFTER_TERM` seconds later (`kill`). `wait` returns once every node has ended;
`results` says how each did. What queues dropped over the run is reported by each node's
last ``stats`` report (`doradus._runtime.metrics.dropped_inputs`).

Example::

    daemon.request_stop()
    if not wait(state, timeout=5.0):
        kill(state, run_log, signal.SIGTERM)
"""

from __future__ import annotations

import os
import signal
import socket
import time

from doradus._runtime.processes import NodeProcess, NodeResult
from doradus._runtime.run_log import RunLog
from doradus._runtime.state import RunState

KILL_AFTER_TERM = 2.0
"""Seconds between SIGTERM and SIGKILL: for nodes past their grace, and at the end of a run
for what is left in the nodes' process groups (helpers a node started)."""
ORPHAN_GRACE = 1.0
"""Seconds between SIGTERM and SIGKILL when the daemon died and its keeper ends the nodes."""
RELEASE_WAIT = 2.0
"""Seconds the end of a run waits, in all, for the nodes' reader threads."""


def report_exit(run_log: RunLog, proc: NodeProcess, code: int) -> None:
    """Record how a node's process ended: its status, or the signal that killed it.

    Example::

        report_exit(run_log, proc, -signal.SIGTERM)   # WARN "stopped: killed by SIGTERM" when we sent it
    """
    node_id = proc.spec.id
    if code == 0:
        run_log.runtime_record("INFO", "exited (status 0)", node_id, {"event": "exited", "exit_code": 0})
    elif code < 0:
        name = signal.Signals(-code).name if -code in signal.valid_signals() else str(-code)
        level = "WARN" if proc.ended_by_us else "ERROR"
        why = "stopped" if proc.ended_by_us else "failed"
        cause = f" ({proc.liveness})" if proc.liveness else ""
        fields = {"event": why, "exit_code": code}
        run_log.runtime_record(level, f"{why}: killed by {name}{cause}", node_id, fields)
    else:
        run_log.runtime_record(
            "ERROR", f"failed: exit status {code}", node_id, {"event": "failed", "exit_code": code}
        )
    if run_log.telemetry is not None:
        run_log.telemetry.node_ended(node_id, code)


def running(state: RunState) -> list[str]:
    """Ids of the nodes started and not ended yet, in dataflow order.

    Example::

        running(state)   # ['camera', 'detector']
    """
    with state.lock:
        return [node_id for node_id, p in state.nodes.items() if p.pid is not None and not p.exited]


def kill(state: RunState, run_log: RunLog, sig: int = signal.SIGKILL) -> list[str]:
    """Signal every node's process group that is still running; returns their ids.

    A node gets a WARN record naming the signal the first time it is sent that signal.

    Example::

        kill(state, run_log, signal.SIGTERM)   # ['detector']
    """
    with state.lock:
        procs = [p for p in state.nodes.values() if p.pid is not None and not p.exited]
    name = signal.Signals(sig).name
    signalled = []
    for proc in procs:
        assert proc.pid is not None
        try:
            # The keeper holds an exited node unreaped until the run ends: the group id is still ours.
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            continue
        proc.killed = True
        signalled.append(proc.spec.id)
        if sig not in proc.signalled:  # callers repeat SIGKILL until the node is seen gone
            proc.signalled.add(sig)
            fields = {"event": "signal", "signal": name}
            run_log.runtime_record("WARN", f"still running: sending {name}", proc.spec.id, fields)
    return signalled


def wait(state: RunState, timeout: float | None = None) -> bool:
    """Wait until every node has ended; False if ``timeout`` passed first.

    Example::

        wait(state, timeout=0.1)   # False: a node still runs
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    with state.lock:
        while not _all_done(state):
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return False
            state.changed.wait(remaining)
        return True


def results(state: RunState) -> list[NodeResult]:
    """How each node ended, in dataflow order.

    Example:
        >>> from pathlib import Path
        >>> from doradus._dataflow.model import Dataflow, NodeSpec
        >>> flow = Dataflow(path=Path("/tmp/df.yml"), nodes=(NodeSpec(id="a", kind="python"),))
        >>> results(RunState.create(flow, run_id="r", machine="m", out_dir=Path("/tmp/r")))
        [NodeResult(node_id='a', returncode=None, killed=False, tail=(), ended_because=None)]
    """
    return [
        NodeResult(p.spec.id, p.returncode, p.killed, tuple(p.tail), p.liveness) for p in state.nodes.values()
    ]


def release_nodes(state: RunState) -> None:
    """As the run closes: close what nodes still hold, wait for their readers, close their logs.

    Each node's reader thread gets its last report in (and records its drops), `RELEASE_WAIT`
    seconds at most for all, before the run's log store closes.

    Example::

        release_nodes(state)
    """
    for proc in state.nodes.values():
        for _link, sock in proc.links:
            if sock is not None:
                sock.close()
        if proc.conn is not None:
            try:
                proc.conn.shutdown(socket.SHUT_RDWR)  # wakes its reader thread
            except OSError:
                pass
    deadline = time.monotonic() + RELEASE_WAIT
    for proc in state.nodes.values():  # their last reports (and drop records) before the store closes
        for reader in proc.readers:
            reader.join(timeout=max(0.0, deadline - time.monotonic()))
        if proc.conn is not None:
            proc.conn.close()
        proc.close_log()


def _all_done(state: RunState) -> bool:
    """Whether every node has ended (a dynamic node that never came counts once we stop).

    A node restarting has not ended, even between its two processes.
    """
    for proc in state.nodes.values():
        if proc.exited and not proc.restarting:
            continue
        if proc.spec.kind == "dynamic" and not proc.registered and state.stopping:
            continue
        return False
    return True
