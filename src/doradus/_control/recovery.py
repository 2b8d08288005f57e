"""A coordinator started again: restoring its dataflows, re-attaching their daemons, giving up on late ones.

`restore` puts back what `doradus._control.persistence` saved. A dataflow that was running
stays ``running`` and waits for its parts (``Run.awaiting``): each machine's daemon, which
kept the nodes running while the coordinator was away and reconnects within a few seconds
(its backoff stops at 2 s), or for an external run its ``doradus run``, which reports every
half second. Meanwhile ``GET /daemons`` lists such a daemon as ``reconnecting`` (`AwaitedDaemon`).

When a daemon registers, `reattach` compares the dataflows it says it runs with the books:

- one known as running on that machine is attached again (same id; node states from the
  daemon), or ended if the daemon says it ended meanwhile;
- one the books do not have as running there (say, the state was destroyed, or the dataflow
  failed when the daemon was lost) is told to stop;
- one the books await from that machine but the daemon does not run (a daemon killed and
  started again: its nodes died with it) is lost, as when a daemon is lost.

`expire` fails the dataflows still awaited `reattach_window` seconds after the restart, with
a reason that says so.

Example::

    restore(state, snapshot, window=60.0)
    orders = reattach(state, daemon, register.dataflows)   # "stop" messages for the daemon
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from doradus._control.daemon_link import DataflowEnded, HeldDataflow
from doradus._control.models import DaemonInfo
from doradus._control.state import moment

if TYPE_CHECKING:
    from pathlib import Path

    from doradus._control.persistence import Snapshot
    from doradus._control.state import CoordinatorState, Daemon, Run

EXTERNAL = "doradus run"
"""What an external run awaits: its `doradus run`'s next report."""
UNKNOWN_STOP_GRACE = 2.0
"""Seconds of grace given to the nodes of a dataflow a daemon runs but the coordinator does not know."""
_log = logging.getLogger("doradus.coordinator")


@dataclass(eq=False)
class AwaitedDaemon:
    """A daemon that ran restored dataflows and has not registered with this coordinator yet.

    Example:
        >>> AwaitedDaemon("vm").info().status
        'reconnecting'
    """

    machine_id: str
    hostname: str = ""
    pid: int = 0
    connected_at: float = field(default_factory=time.time)
    status: Literal["reconnecting", "lost"] = "reconnecting"

    def info(self) -> DaemonInfo:
        """What ``GET /daemons`` shows of it: last seen when this coordinator started.

        Example::

            awaited.info().status   # 'reconnecting'
        """
        return DaemonInfo(
            machine_id=self.machine_id,
            hostname=self.hostname,
            pid=self.pid,
            connected_at=moment(self.connected_at),
            last_heartbeat_at=moment(self.connected_at),
            last_seen_at=moment(self.connected_at),
            status=self.status,
        )


def open_saved_state(state: CoordinatorState, path: Path, window: float) -> None:
    """Give ``state`` the store at ``path`` and restore what it holds (see `restore`).

    A database that cannot be opened now (locked, no permission) is left alone: the
    coordinator then runs without saving, and says so in its log.

    Example::

        open_saved_state(state, database_path(6300), window=60.0)
    """
    import sqlite3

    from doradus._control.persistence import StateStore

    try:
        state.store, snapshot = StateStore.open(path)
    except sqlite3.OperationalError as exc:
        _log.warning("cannot open the saved state %s (%s): running without saving it", path, exc)
        return
    restore(state, snapshot, window)


def restore(state: CoordinatorState, snapshot: Snapshot, window: float) -> None:
    """Put ``snapshot``'s dataflows back; running ones await their parts for ``window`` seconds.

    Example::

        restore(state, snapshot, window=60.0)
    """
    now = time.time()
    for run in snapshot.runs:
        state.dataflows[run.id] = run
        if run.status != "running":
            continue
        if run.external:
            run.awaiting = {EXTERNAL}
        else:
            run.awaiting = set(run.parts_running or run.machines or [run.machine])
            run.parts_running = set()
        run.reattach_by = now + window
        for machine in run.awaiting - {EXTERNAL}:
            seen = snapshot.daemons.get(machine)
            if machine not in state.awaited:
                state.awaited[machine] = AwaitedDaemon(
                    machine,
                    hostname=seen.hostname if seen else "",
                    pid=seen.pid if seen else 0,
                    connected_at=seen.last_seen_at.timestamp() if seen else now,
                )
    if snapshot.runs:
        _log.warning(
            "restored %d dataflow(s), %d running; awaiting the daemons of %s",
            len(snapshot.runs),
            sum(run.status == "running" for run in snapshot.runs),
            ", ".join(sorted(state.awaited)) or "none",
        )


def reattach(state: CoordinatorState, daemon: Daemon, held: list[HeldDataflow]) -> list[dict[str, Any]]:
    """Attach the dataflows ``daemon`` says it runs; the ``stop`` messages it must be sent.

    Example::

        for order in reattach(state, daemon, register.dataflows):
            await send_quietly(daemon, order)
    """
    machine = daemon.machine_id
    state.awaited.pop(machine, None)
    orders: list[dict[str, Any]] = []
    for entry in held:
        run = state.dataflows.get(entry.id)
        if run is None or run.external or run.status != "running" or machine not in run.machines:
            if entry.status == "running":
                _log.warning(
                    "daemon %s runs dataflow %s, unknown here as running: told it to stop", machine, entry.id
                )
                orders.append({"type": "stop", "id": entry.id, "grace_seconds": UNKNOWN_STOP_GRACE})
            continue
        if machine in run.awaiting:
            _attach(state, daemon, run, entry)
        if run.status == "running" and run.stop_requested:
            orders.append({"type": "stop", "id": run.id, "grace_seconds": UNKNOWN_STOP_GRACE})
    listed = {entry.id for entry in held}
    for run in list(state.dataflows.values()):
        if run.status == "running" and machine in run.awaiting and run.id not in listed:
            run.awaiting.discard(machine)
            state.lose_part(run, machine)
    return orders


def _attach(state: CoordinatorState, daemon: Daemon, run: Run, entry: HeldDataflow) -> None:
    run.awaiting.discard(daemon.machine_id)
    run.parts_running.add(daemon.machine_id)
    for node_id, node in entry.nodes.items():
        state.set_node(run, node_id, node.model_dump())
    state.save(run)
    if entry.status != "running":
        state.handle(daemon, DataflowEnded(type="dataflow", id=run.id, status=entry.status))


def reported(state: CoordinatorState, run: Run) -> None:
    """An external run reported: it is attached again, if it was awaited.

    Example::

        reported(state, run)
    """
    if EXTERNAL in run.awaiting:
        run.awaiting.discard(EXTERNAL)
        state.save(run)


def expire(state: CoordinatorState, window: float, now: float | None = None) -> None:
    """Fail the restored dataflows whose parts did not come back in time.

    Example::

        expire(state, window=60.0)
    """
    now = time.time() if now is None else now
    for run in list(state.dataflows.values()):
        if run.status != "running" or not run.awaiting or run.reattach_by is None or run.reattach_by > now:
            continue
        if EXTERNAL in run.awaiting:
            why = f"`doradus run` did not report within {window:g}s of the coordinator's restart"
            state.end(run, "failed", why)
            continue
        for machine in sorted(run.awaiting):
            run.awaiting.discard(machine)
            if machine in state.awaited:
                state.awaited[machine].status = "lost"
            why = f"daemon {machine} did not reconnect within {window:g}s of the coordinator's restart"
            state.lose_part(run, machine, why)


async def watch_restored(state: CoordinatorState, window: float, every: float = 1.0) -> None:
    """Call `expire` every ``every`` seconds while a restored dataflow is awaited.

    Example::

        asyncio.get_running_loop().create_task(watch_restored(state, 60.0))
    """
    while any(run.awaiting for run in state.dataflows.values() if run.status == "running"):
        await asyncio.sleep(every)
        expire(state, window)
