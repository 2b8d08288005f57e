"""What the coordinator knows, and how daemons' messages change it.

`CoordinatorState` keeps the daemons (one seat per machine id), the dataflows
it started or that ``doradus run`` registered, their nodes and log lines. It is
touched only from the coordinator's event loop. Messages reach it already
checked (`doradus._control.daemon_link`), so applying one never raises.

A daemon that sends nothing for two heartbeat intervals (or whose connection
drops without a ``goodbye``) is marked ``lost``: its running dataflows fail
with the reason ``daemon <machine> lost`` and their nodes become ``lost``. A
machine id has one seat: a second ``register`` for it is refused while its
daemon is connected, and taken once that daemon is lost or gone.

With a `store` (``doradus coordinator`` gives it one: `doradus._control.persistence`), every
change that matters after a restart is saved as it is applied: dataflows, node state changes
(not metrics), log records. A restarted coordinator restores them and waits for their daemons
(`doradus._control.recovery`).

Example:
    >>> state = CoordinatorState(daemon_key="k")
    >>> state.proves("k"), state.proves("guess")
    (True, False)
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from fastapi import HTTPException, WebSocket

from doradus._control.auth import matches
from doradus._control.daemon_link import (
    NOT_AUTHENTICATED,
    SEAT_TAKEN,
    DaemonMessage,
    DataflowEnded,
    Goodbye,
    LinkError,
    LogReport,
    NodeReport,
    Prepared,
    Register,
    Reply,
    Spawned,
    SpawnFailed,
)
from doradus._control.models import (
    DaemonInfo,
    DataflowDetail,
    DataflowStatus,
    DataflowSummary,
    LogRecord,
    NodeAction,
    NodeState,
    NodeStatus,
    StartRequest,
)

if TYPE_CHECKING:
    from doradus._control.persistence import StateStore
    from doradus._control.recovery import AwaitedDaemon

LOG_BACKLOG = 10_000
HEARTBEAT_INTERVAL = 1.0
MISSED_HEARTBEATS = 2
"""A daemon silent for this many heartbeat intervals is lost."""


def fail(status: int, error: str, fix: str | None = None) -> HTTPException:
    """An API error with the ``{"error", "fix"}`` detail every route answers with.

    Example:
        >>> fail(404, "no dataflow named 'x'").detail
        {'error': "no dataflow named 'x'", 'fix': None}
    """
    return HTTPException(status, detail={"error": error, "fix": fix})


def moment(seconds: float) -> datetime:
    """A `time.time()` value as the aware UTC `datetime` the API models carry.

    Example:
        >>> moment(0).isoformat()
        '1970-01-01T00:00:00+00:00'
    """
    return datetime.fromtimestamp(seconds, UTC)


@dataclass(eq=False)
class Daemon:
    """One daemon's link: who it is, when it was last heard, the replies it owes."""

    ws: WebSocket
    machine_id: str
    hostname: str
    pid: int
    connected_at: float = field(default_factory=time.time)
    last_heartbeat: float = field(default_factory=time.time)
    pending: dict[str, tuple[asyncio.Future[Reply], StartRequest | None]] = field(default_factory=dict)
    status: Literal["connected", "lost", "disconnected"] = "connected"
    said_goodbye: bool = False
    address: str | None = None
    """The IP other machines reach this daemon at (as it connected to us)."""

    def info(self) -> DaemonInfo:
        """What ``GET /daemons`` shows of it."""
        return DaemonInfo(
            machine_id=self.machine_id,
            hostname=self.hostname,
            pid=self.pid,
            connected_at=moment(self.connected_at),
            last_heartbeat_at=moment(self.last_heartbeat),
            last_seen_at=moment(self.last_heartbeat),
            status=self.status,
        )


@dataclass(eq=False)
class Run:
    """One dataflow run the coordinator started (or that ``doradus run`` registered)."""

    id: str
    name: str
    path: str
    machine: str
    text: str | None = None
    """The dataflow's text as started: ``restart`` starts it again (None for external runs)."""
    status: DataflowStatus = "running"
    started_at: float = field(default_factory=time.time)
    """Seconds since the epoch, kept as numbers for arithmetic (`clean`); `summary` makes them times."""
    finished_at: float | None = None
    stop_requested: bool = False
    reason: str | None = None
    external: bool = False
    env: dict[str, str] = field(default_factory=dict)
    log_level: str | None = None
    machines: list[str] = field(default_factory=list)
    """Every machine running a part of it (one for most dataflows)."""
    placement: dict[str, str] = field(default_factory=dict)
    """Node id → machine, for dataflows placed on several machines."""
    parts_running: set[str] = field(default_factory=set)
    failed_parts: set[str] = field(default_factory=set)
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    nodes: dict[str, NodeStatus] = field(default_factory=dict)
    logs: deque[LogRecord] = field(default_factory=lambda: deque(maxlen=LOG_BACKLOG))
    followers: set[asyncio.Queue[LogRecord | None]] = field(default_factory=set)
    actions: deque[NodeAction] = field(default_factory=lambda: deque(maxlen=32))
    """Node actions asked of an external run, for its `doradus run` (`doradus._control.node_actions`)."""
    awaiting: set[str] = field(default_factory=set)
    """Restored by a restarted coordinator: the machines (or, external, its `doradus run`) not back yet."""
    reattach_by: float | None = None
    """When a restored run whose parts are still `awaiting` is given up on (`time.time()` seconds)."""
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Node id → its parameters (``doradus param``: key → JSON value; `doradus._control.params`)."""

    def summary(self) -> DataflowSummary:
        """What ``list`` shows of it."""
        ended = self.finished_at if self.finished_at is not None else time.time()
        return DataflowSummary(
            name=self.name,
            id=self.id,
            status=self.status,
            nodes=len(self.nodes),
            machine=self.machine,
            path=self.path,
            started_at=moment(self.started_at),
            finished_at=None if self.finished_at is None else moment(self.finished_at),
            uptime_s=round(max(0.0, ended - self.started_at), 3),
            reason=self.reason,
            external=self.external,
            stop_requested=self.stop_requested,
            machines=list(self.machines or [self.machine]),
            node_actions=list(self.actions),
            paused=self.paused,
        )

    @property
    def paused(self) -> bool:
        """Whether it runs with every live node paused (``doradus node pause``, ``POST .../pause``)."""
        live = [n.state for n in self.nodes.values() if n.state in ("running", "paused", "restarting")]
        return self.status == "running" and bool(live) and all(state == "paused" for state in live)

    def detail(self) -> DataflowDetail:
        """What ``status`` shows of it: the summary with each node."""
        return DataflowDetail(**self.summary().model_dump(exclude={"nodes"}), nodes=dict(self.nodes))


class StateObserver(Protocol):
    """Told of each change as `CoordinatorState` applies it (``observers``; the live stream is one).

    Called on the coordinator's event loop, right after the change: an observer must return
    at once and never raise (it queues what it needs; `doradus._control.stream`).
    """

    def dataflow_changed(self, run: Run, previous: DataflowStatus | None) -> None:
        """``run``'s status changed from ``previous`` (None: a new run)."""

    def node_changed(self, run: Run, node_id: str, previous: NodeState, changes: dict[str, Any]) -> None:
        """A node's fields changed (its state, or its metrics each second); ``previous``: its state before."""

    def log_added(self, run: Run, record: LogRecord) -> None:
        """``run`` got a log record."""


class CoordinatorState:
    """Everything the coordinator knows; touched only from its event loop.

    Args:
        heartbeat_interval: Seconds between daemon heartbeats.
        token: The API token, which daemons on other machines prove themselves with.
        daemon_key: The secret daemons on this machine prove themselves with.
    """

    def __init__(
        self,
        heartbeat_interval: float = HEARTBEAT_INTERVAL,
        *,
        token: str | None = None,
        daemon_key: str | None = None,
    ) -> None:
        self.heartbeat_interval = heartbeat_interval
        self.token = token
        self.daemon_key = daemon_key
        self.daemons: dict[str, Daemon] = {}
        self.gone: dict[str, Daemon] = {}
        """Daemons that were lost or left, by machine id, until one registers again."""
        self.dataflows: dict[str, Run] = {}
        self.shutdown: asyncio.Event | None = None
        self.no_daemons = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self.observers: list[StateObserver] = []
        """Told of every dataflow, node and log change as it is applied."""
        self.store: StateStore | None = None
        """Where changes are saved, to be restored after a restart (None: kept in memory only)."""
        self.awaited: dict[str, AwaitedDaemon] = {}
        """Daemons of restored dataflows that have not registered again yet, by machine id."""
        self.destroyed = False
        """``POST /destroy`` was asked: the saved state goes with the coordinator."""

    # ------------------------------------------------------------------ daemons
    def proves(self, secret: str | None) -> bool:
        """Whether ``secret`` is the daemon key or the API token."""
        return matches(secret, self.daemon_key, self.token)

    def seat(self, register: Register, ws: WebSocket) -> Daemon:
        """Give the machine id of ``register`` to a new daemon link.

        Raises:
            LinkError: 4401 without a valid secret; 4409 while another daemon holds
                the seat (a daemon whose old link is gone takes it back).
        """
        if not self.proves(register.secret):
            raise LinkError(
                NOT_AUTHENTICATED,
                "daemon refused: no valid secret (the daemon key of this machine's runtime folder, "
                "or the API token)",
            )
        holder = self.daemons.get(register.machine_id)
        if holder is not None:
            raise LinkError(
                SEAT_TAKEN,
                f"machine id {register.machine_id!r} already has a connected daemon (pid {holder.pid})",
            )
        daemon = Daemon(ws, register.machine_id, register.hostname, register.pid, address=register.address)
        self.daemons[daemon.machine_id] = daemon
        self.gone.pop(daemon.machine_id, None)
        self.no_daemons.clear()
        if self.store is not None:
            self.store.save_daemon(daemon.info())
        return daemon

    def lost(self, daemon: Daemon) -> None:
        """A daemon disconnected or went silent: its running dataflows fail and their nodes are lost.

        Idempotent; a daemon that said ``goodbye`` is ``disconnected``, any other ``lost``.
        """
        if daemon.status != "connected":
            return
        daemon.status = "disconnected" if daemon.said_goodbye else "lost"
        if self.daemons.get(daemon.machine_id) is not daemon:
            return  # never seated: nothing of the machine's is its to lose
        del self.daemons[daemon.machine_id]
        self.gone[daemon.machine_id] = daemon
        if not self.daemons:
            self.no_daemons.set()
        for run_id, (future, _request) in daemon.pending.items():
            if not future.done():
                future.set_result(
                    SpawnFailed(type="spawn_failed", id=run_id, error="the daemon disconnected")
                )
        for run in self.dataflows.values():
            if daemon.machine_id in run.machines and run.status == "running" and not run.external:
                self.lose_part(run, daemon.machine_id)

    def lose_part(self, run: Run, machine: str, reason: str | None = None) -> None:
        """The part of ``run`` on ``machine`` is gone: its live nodes are ``lost``, the run ``failed``.

        ``reason`` defaults to ``daemon <machine> lost``; the other machines' parts are told to stop.
        """
        gone = [n for n, m in run.placement.items() if m == machine] or list(run.nodes)
        for node_id in gone:
            node = run.nodes.get(node_id)
            if node is not None and node.state in ("pending", "running", "paused", "restarting"):
                self.set_node(run, node_id, {"state": "lost"})
        reason = reason or f"daemon {machine} lost"
        lost_nodes = ", ".join(sorted(gone))
        self.end(run, "failed", f"{reason} (nodes lost: {lost_nodes})" if run.placement else reason)
        run.parts_running.discard(machine)
        self.relay(run, machine, {"type": "stop", "id": run.id, "grace_seconds": 2.0})

    def silent(self, daemon: Daemon) -> bool:
        """Whether no message came from ``daemon`` for `MISSED_HEARTBEATS` intervals."""
        return time.time() - daemon.last_heartbeat > MISSED_HEARTBEATS * self.heartbeat_interval

    def handle(self, daemon: Daemon, message: DaemonMessage) -> None:
        """Apply one (checked) message from a daemon."""
        daemon.last_heartbeat = time.time()
        match message:
            case Goodbye():
                daemon.said_goodbye = True
            case Spawned() | SpawnFailed() | Prepared():
                self._reply(daemon, message)
            case LogReport(id=run_id, record=record) if run_id in self.dataflows:
                self.add_log(self.dataflows[run_id], record)
            case NodeReport(id=run_id) if run_id in self.dataflows:
                self._node_news(daemon, self.dataflows[run_id], message)
            case DataflowEnded(id=run_id) if run_id in self.dataflows:
                self._part_ended(daemon, self.dataflows[run_id], message)
            case _:
                pass  # heartbeats, a repeated register, news of a forgotten run

    def _reply(self, daemon: Daemon, reply: Reply) -> None:
        pending = daemon.pending.pop(reply.id, None)
        if pending is None or pending[0].done():
            return
        if isinstance(reply, Spawned) and pending[1] is not None:
            self._add(daemon, reply, pending[1])
        pending[0].set_result(reply)

    def _node_news(self, daemon: Daemon, run: Run, report: NodeReport) -> None:
        self.set_node(run, report.node, report.changes)
        if len(run.machines) > 1 and report.changes.get("state") in ("finished", "failed", "stopped"):
            self.relay(run, daemon.machine_id, {"type": "peer_gone", "id": run.id, "node": report.node})

    def _part_ended(self, daemon: Daemon, run: Run, message: DataflowEnded) -> None:
        run.parts_running.discard(daemon.machine_id)
        if message.status == "failed":
            run.failed_parts.add(daemon.machine_id)
        if run.parts_running:
            self.save(run)
            return  # other machines still run parts of it
        if run.failed_parts:
            self.end(run, "failed")
        elif message.status in ("failed", "finished"):
            self.end(run, "stopped" if run.stop_requested else "finished")

    def _add(self, daemon: Daemon, reply: Spawned, request: StartRequest) -> None:
        run = Run(
            id=reply.id,
            name=request.name or self.unique_name(reply.name or Path(request.path).stem),
            path=request.path,
            machine=daemon.machine_id,
            text=request.text,
            env=dict(request.env),
            log_level=request.log_level,
            machines=[daemon.machine_id],
            parts_running={daemon.machine_id},
            nodes={node: NodeStatus() for node in reply.nodes},
        )
        self.add_run(run)
        for early in reply.early:
            self.handle(daemon, early)

    def add_run(self, run: Run) -> None:
        """Keep a new dataflow run (saved, and told to every observer)."""
        self.dataflows[run.id] = run
        self.save(run)
        for observer in self.observers:
            observer.dataflow_changed(run, None)

    def save(self, run: Run) -> None:
        """Save ``run``'s own fields (status, reason, stop requested...) to the `store`, if there is one."""
        if self.store is not None:
            self.store.save_run(run)

    def relay(self, run: Run, origin: str, message: dict[str, Any]) -> None:
        """Send ``message`` to the daemons of ``run``'s other machines (in the background)."""
        targets = [self.daemons[m] for m in run.machines if m != origin and m in self.daemons]
        if not targets:
            return
        loop = asyncio.get_running_loop()
        for target in targets:
            task = loop.create_task(send_quietly(target, message))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    # ---------------------------------------------------------------- dataflows
    def find(self, name_or_id: str) -> Run:
        """The dataflow with this id, id prefix or name (a running one first, else the latest)."""
        if name_or_id in self.dataflows:
            return self.dataflows[name_or_id]
        named = [d for d in self.dataflows.values() if d.name == name_or_id]
        if not named:
            named = [d for d in self.dataflows.values() if d.id.startswith(name_or_id)]
            if len(named) > 1:
                raise fail(409, f"{name_or_id!r} matches {len(named)} dataflow ids", "give more of the id")
        if not named:
            raise fail(404, f"no dataflow named {name_or_id!r}", "see the names with `doradus list`")
        named.sort(key=lambda d: (d.status == "running", d.started_at))
        return named[-1]

    def unique_name(self, base: str) -> str:
        """``base``, or ``base-2``, ``base-3``... when a running dataflow already has it."""
        taken = {d.name for d in self.dataflows.values() if d.status == "running"}
        name, k = base, 1
        while name in taken:
            k += 1
            name = f"{base}-{k}"
        return name

    def end(self, run: Run, status: DataflowStatus, reason: str | None = None) -> None:
        """Mark a dataflow ended and close its followers."""
        if run.status != "running":
            return
        previous = run.status
        run.status = status
        run.reason = reason
        run.finished_at = time.time()
        run.awaiting.clear()
        run.ended.set()
        self.save(run)
        for queue in run.followers:
            queue.put_nowait(None)
        for observer in self.observers:
            observer.dataflow_changed(run, previous)

    def clean(self, older_than: float | None) -> list[str]:
        """Forget ended dataflows (finished at least ``older_than`` seconds ago); their ids."""
        now = time.time()
        ids = [
            d.id
            for d in self.dataflows.values()
            if d.status != "running"
            and (older_than is None or now - (d.finished_at or d.started_at) >= older_than)
        ]
        for run_id in ids:
            del self.dataflows[run_id]
        if self.store is not None and ids:
            self.store.forget(ids)
        return ids

    def add_log(self, run: Run, line: LogRecord) -> None:
        """Keep a line and pass it to every follower."""
        run.logs.append(line)
        if self.store is not None:
            self.store.add_log(run.id, line)
        for queue in run.followers:
            queue.put_nowait(line)
        for observer in self.observers:
            observer.log_added(run, line)

    def set_node(self, run: Run, node_id: str, changes: dict[str, Any]) -> None:
        """Apply checked `NodeStatus` fields (`doradus._control.daemon_link.node_changes`) to one node."""
        node = run.nodes.setdefault(node_id, NodeStatus())
        previous = node.state
        for key, value in changes.items():
            setattr(node, key, value)
        if self.store is not None:
            self.store.save_node(run.id, node_id, node)
        for observer in self.observers:
            observer.node_changed(run, node_id, previous, changes)


async def send_quietly(daemon: Daemon, message: dict[str, Any]) -> None:
    """Send ``message`` to ``daemon``; a link that closed meanwhile is not an error here."""
    try:
        await daemon.ws.send_json(message)
    except (RuntimeError, OSError):
        pass
