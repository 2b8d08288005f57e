"""The coordinator: one per cluster, the HTTP + WebSocket API under ``/api/v1``.

It keeps what daemons report (dataflows, node states, log lines) in memory
and forwards commands (spawn, stop, shutdown) to the daemon that runs them.
Daemons speak JSON text messages over ``/api/v1/daemon``::

    daemon → coordinator: register, heartbeat, spawned, spawn_failed, node, log, dataflow, goodbye

A ``node`` message carries any `NodeStatus` fields: its state changes, and
each second its metrics (CPU, memory, rates, dropped, queued, latency, errors).
    coordinator → daemon: welcome (the heartbeat interval), spawn, stop, shutdown

A daemon that sends nothing for two heartbeat intervals (or whose
connection drops without a ``goodbye``) is marked ``lost``: its running
dataflows fail with the reason ``daemon <machine> lost`` and their nodes
become ``lost``. ``doradus run`` registers the dataflows it runs itself
through ``POST /dataflows/external`` and reports on them, so they are
listed too.

Example::

    app = create_app()
    serve(app, "127.0.0.1", 6300)
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import os
import secrets
import socket
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import FastAPI, HTTPException, Query, WebSocket, WebSocketDisconnect
from starlette.types import ASGIApp, Receive, Scope, Send

from doradus._api_models import (
    Accepted,
    CleanRequest,
    CleanResult,
    DaemonInfo,
    DataflowDetail,
    DataflowStatus,
    DataflowSummary,
    ErrorBody,
    ExternalDataflow,
    ExternalReport,
    Health,
    InputStats,
    LogRecord,
    NodeStatus,
    OutputStats,
    RestartRequest,
    StartRequest,
    StopRequest,
)
from doradus._ids import new_run_id
from doradus._logquery import QueryError, build_query
from doradus._prometheus import mount_metrics

LOG_BACKLOG = 10_000
NODE_FIELDS = tuple(NodeStatus.model_fields)
"""What a daemon's ``node`` message may set: state changes and heartbeat metrics."""
SPAWN_TIMEOUT = 30.0
HEARTBEAT_INTERVAL = 1.0
MISSED_HEARTBEATS = 2
"""A daemon silent for this many heartbeat intervals is lost."""
RESTART_STOP_TIMEOUT = 10.0
"""``restart`` waits the grace period plus this long for the old run to end."""
ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody},
    409: {"model": ErrorBody},
    422: {"model": ErrorBody},
    503: {"model": ErrorBody},
}


def _fail(status: int, error: str, fix: str | None = None) -> HTTPException:
    return HTTPException(status, detail={"error": error, "fix": fix})


def _moment(seconds: float) -> datetime:
    """A `time.time()` value as the aware UTC `datetime` the API models carry."""
    return datetime.fromtimestamp(seconds, UTC)


@dataclass(eq=False)
class _Daemon:
    ws: WebSocket
    machine_id: str
    hostname: str
    pid: int
    connected_at: float = field(default_factory=time.time)
    last_heartbeat: float = field(default_factory=time.time)
    pending: dict[str, tuple[asyncio.Future[dict[str, Any]], StartRequest | None]] = field(
        default_factory=dict
    )
    status: Literal["connected", "lost", "disconnected"] = "connected"
    said_goodbye: bool = False
    address: str | None = None
    """The IP other machines reach this daemon at (as it connected to us)."""

    def info(self) -> DaemonInfo:
        return DaemonInfo(
            machine_id=self.machine_id,
            hostname=self.hostname,
            pid=self.pid,
            connected_at=_moment(self.connected_at),
            last_heartbeat_at=_moment(self.last_heartbeat),
            last_seen_at=_moment(self.last_heartbeat),
            status=self.status,
        )


@dataclass(eq=False)
class _Dataflow:
    id: str
    name: str
    path: str
    machine: str
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

    def summary(self) -> DataflowSummary:
        ended = self.finished_at if self.finished_at is not None else time.time()
        return DataflowSummary(
            name=self.name,
            id=self.id,
            status=self.status,
            nodes=len(self.nodes),
            machine=self.machine,
            path=self.path,
            started_at=_moment(self.started_at),
            finished_at=None if self.finished_at is None else _moment(self.finished_at),
            uptime_s=round(max(0.0, ended - self.started_at), 3),
            reason=self.reason,
            external=self.external,
            stop_requested=self.stop_requested,
            machines=list(self.machines or [self.machine]),
        )

    def detail(self) -> DataflowDetail:
        return DataflowDetail(**self.summary().model_dump(exclude={"nodes"}), nodes=dict(self.nodes))


class CoordinatorState:
    """Everything the coordinator knows; touched only from its event loop."""

    def __init__(self, heartbeat_interval: float = HEARTBEAT_INTERVAL) -> None:
        self.heartbeat_interval = heartbeat_interval
        self.daemons: dict[str, _Daemon] = {}
        self.gone: dict[str, _Daemon] = {}
        """Daemons that were lost or left, by machine id, until one registers again."""
        self.dataflows: dict[str, _Dataflow] = {}
        self.shutdown: asyncio.Event | None = None
        self.no_daemons = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    def find(self, name_or_id: str) -> _Dataflow:
        """The dataflow with this id, id prefix or name (a running one first, else the latest)."""
        if name_or_id in self.dataflows:
            return self.dataflows[name_or_id]
        named = [d for d in self.dataflows.values() if d.name == name_or_id]
        if not named:
            named = [d for d in self.dataflows.values() if d.id.startswith(name_or_id)]
            if len(named) > 1:
                raise _fail(409, f"{name_or_id!r} matches {len(named)} dataflow ids", "give more of the id")
        if not named:
            raise _fail(404, f"no dataflow named {name_or_id!r}", "see the names with `doradus list`")
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

    def end(self, flow: _Dataflow, status: DataflowStatus, reason: str | None = None) -> None:
        """Mark a dataflow ended and close its followers."""
        if flow.status != "running":
            return
        flow.status = status
        flow.reason = reason
        flow.finished_at = time.time()
        flow.ended.set()
        for queue in flow.followers:
            queue.put_nowait(None)

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
        return ids

    def add_log(self, flow: _Dataflow, line: LogRecord) -> None:
        """Keep a line and pass it to every follower."""
        flow.logs.append(line)
        for queue in flow.followers:
            queue.put_nowait(line)

    def set_node(self, flow: _Dataflow, node_id: str, values: dict[str, Any]) -> None:
        """Apply the `NodeStatus` fields in ``values`` to one node."""
        node = flow.nodes.setdefault(node_id, NodeStatus())
        for key in NODE_FIELDS:
            if key in values:
                value = values[key]
                if key == "inputs":
                    value = {str(k): InputStats.model_validate(v) for k, v in dict(value or {}).items()}
                elif key == "outputs":
                    value = {str(k): OutputStats.model_validate(v) for k, v in dict(value or {}).items()}
                setattr(node, key, value)

    def handle(self, daemon: _Daemon, message: dict[str, Any]) -> None:
        """Apply one message from a daemon."""
        kind = message.get("type")
        daemon.last_heartbeat = time.time()
        if kind == "goodbye":
            daemon.said_goodbye = True
            return
        flow = self.dataflows.get(str(message.get("id")))
        if kind in ("spawned", "spawn_failed", "prepared"):
            pending = daemon.pending.pop(str(message.get("id")), None)
            if pending is not None and not pending[0].done():
                if kind == "spawned" and pending[1] is not None:
                    self._add(daemon, message, pending[1])
                pending[0].set_result(message)
        elif flow is None:
            return
        elif kind == "log":
            self.add_log(flow, LogRecord.model_validate(message["record"]))
        elif kind == "node":
            self.set_node(flow, str(message["node"]), message)
            if len(flow.machines) > 1 and message.get("state") in ("finished", "failed", "stopped"):
                self.relay(
                    flow, daemon.machine_id, {"type": "peer_gone", "id": flow.id, "node": message["node"]}
                )
        elif kind == "dataflow":
            status = message.get("status")
            flow.parts_running.discard(daemon.machine_id)
            if status == "failed":
                flow.failed_parts.add(daemon.machine_id)
            if flow.parts_running:
                return  # other machines still run parts of it
            if flow.failed_parts:
                self.end(flow, "failed")
            elif status in ("failed", "finished"):
                self.end(flow, "stopped" if flow.stop_requested else "finished")

    def _add(self, daemon: _Daemon, reply: dict[str, Any], request: StartRequest) -> None:
        run_id = str(reply["id"])
        self.dataflows[run_id] = _Dataflow(
            id=run_id,
            name=request.name or self.unique_name(str(reply.get("name") or Path(request.path).stem)),
            path=request.path,
            machine=daemon.machine_id,
            env=dict(request.env),
            log_level=request.log_level,
            machines=[daemon.machine_id],
            parts_running={daemon.machine_id},
            nodes={str(n): NodeStatus() for n in reply.get("nodes", [])},
        )
        for message in reply.get("early", []):
            self.handle(daemon, message)

    def lost(self, daemon: _Daemon) -> None:
        """A daemon disconnected or went silent: its running dataflows fail and their nodes are lost.

        Idempotent; a daemon that said ``goodbye`` is ``disconnected``, any other ``lost``.
        """
        if daemon.status != "connected":
            return
        daemon.status = "disconnected" if daemon.said_goodbye else "lost"
        if self.daemons.get(daemon.machine_id) is daemon:
            del self.daemons[daemon.machine_id]
            self.gone[daemon.machine_id] = daemon
        if not self.daemons:
            self.no_daemons.set()
        for future, _request in daemon.pending.values():
            if not future.done():
                future.set_result({"type": "spawn_failed", "error": "the daemon disconnected"})
        reason = f"daemon {daemon.machine_id} lost"
        for flow in self.dataflows.values():
            if daemon.machine_id not in flow.machines or flow.status != "running" or flow.external:
                continue
            gone = [n for n, m in flow.placement.items() if m == daemon.machine_id] or list(flow.nodes)
            for node_id in gone:
                node = flow.nodes.get(node_id)
                if node is not None and node.state in ("pending", "running"):
                    node.state = "lost"
            lost_nodes = ", ".join(sorted(gone))
            self.end(flow, "failed", f"{reason} (nodes lost: {lost_nodes})" if flow.placement else reason)
            flow.parts_running.discard(daemon.machine_id)
            self.relay(flow, daemon.machine_id, {"type": "stop", "id": flow.id, "grace_seconds": 2.0})

    def relay(self, flow: _Dataflow, origin: str, message: dict[str, Any]) -> None:
        """Send ``message`` to the daemons of ``flow``'s other machines (in the background)."""
        targets = [self.daemons[m] for m in flow.machines if m != origin and m in self.daemons]
        if not targets:
            return
        loop = asyncio.get_running_loop()
        for target in targets:
            task = loop.create_task(_send_quietly(target, message))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def silent(self, daemon: _Daemon) -> bool:
        """Whether no message came from ``daemon`` for `MISSED_HEARTBEATS` intervals."""
        return time.time() - daemon.last_heartbeat > MISSED_HEARTBEATS * self.heartbeat_interval


class _TokenGuard:
    """ASGI middleware: every HTTP request and WebSocket must carry ``Bearer <token>``."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            given = dict(scope.get("headers") or []).get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                if scope["type"] == "websocket":
                    await send({"type": "websocket.close", "code": 1008})
                    return
                body = b'{"detail":{"error":"missing or wrong token","fix":"pass --token-file"}}'
                await send(
                    {
                        "type": "http.response.start",
                        "status": 401,
                        "headers": [(b"content-type", b"application/json")],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


def create_app(token: str | None = None, heartbeat_interval: float = HEARTBEAT_INTERVAL) -> FastAPI:
    """The coordinator's FastAPI application.

    Args:
        token: When set, every request must send ``Authorization: Bearer <token>``.
        heartbeat_interval: Seconds between daemon heartbeats; two missed ones mark a daemon lost.

    Example:
        >>> create_app().title
        'Doradus coordinator'
    """
    from doradus import __version__

    app = FastAPI(
        title="Doradus coordinator",
        version=__version__,
        description="Control API of Doradus: start, stop, list and watch dataflows.",
    )
    state = CoordinatorState(heartbeat_interval)
    app.state.coordinator = state
    if token:
        app.add_middleware(_TokenGuard, token=token)

    @app.get("/api/v1/health", response_model=Health)
    async def health() -> Health:
        """Liveness, with counts of daemons and dataflows."""
        return Health(
            version=__version__, pid=os.getpid(), daemons=len(state.daemons), dataflows=len(state.dataflows)
        )

    @app.get("/api/v1/daemons", response_model=list[DaemonInfo])
    async def daemons() -> list[DaemonInfo]:
        """The daemons: connected ones, and those lost or gone (until they register again)."""
        return [d.info() for d in [*state.daemons.values(), *state.gone.values()]]

    @app.get("/api/v1/dataflows", response_model=list[DataflowSummary])
    async def list_dataflows() -> list[DataflowSummary]:
        """Every dataflow this coordinator has started, running or ended, oldest first."""
        return [d.summary() for d in state.dataflows.values()]

    @app.get("/api/v1/dataflows/{name_or_id}", response_model=DataflowDetail, responses=ERRORS)
    async def get_dataflow(name_or_id: str) -> DataflowDetail:
        """One dataflow with each node's state and metrics."""
        return state.find(name_or_id).detail()

    @app.post("/api/v1/dataflows", response_model=DataflowSummary, status_code=201, responses=ERRORS)
    async def start_dataflow(request: StartRequest) -> DataflowSummary:
        """Start a dataflow file on a connected daemon."""
        return await _start(request)

    async def _start(request: StartRequest) -> DataflowSummary:
        if not state.daemons:
            raise _fail(503, "no daemon is connected", "start one with `doradus up` or `doradus daemon`")
        if request.name and any(
            d.name == request.name and d.status == "running" for d in state.dataflows.values()
        ):
            raise _fail(
                409,
                f"a dataflow named {request.name!r} is already running",
                "stop it first, or choose another --name",
            )
        placement = place_nodes(request.path, request.env, state)
        machines = sorted(set(placement.values()))
        if len(machines) > 1:
            return await _start_across(request, placement, machines)
        daemon = state.daemons[machines[0]] if machines else next(iter(state.daemons.values()))
        run_id = new_run_id()
        reply = await _ask(
            daemon,
            run_id,
            request,
            {
                "type": "spawn",
                "id": run_id,
                "path": request.path,
                "env": request.env,
                "log_level": request.log_level,
            },
        )
        if reply.get("type") != "spawned":
            raise _fail(422, str(reply.get("error")), reply.get("fix"))
        return state.dataflows[run_id].summary()

    async def _ask(
        daemon: _Daemon, run_id: str, request: StartRequest | None, message: dict[str, Any]
    ) -> dict[str, Any]:
        """Send ``message`` to ``daemon`` and wait for its reply about ``run_id``."""
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        daemon.pending[run_id] = (future, request)
        await daemon.ws.send_json(message)
        try:
            return await asyncio.wait_for(future, SPAWN_TIMEOUT)
        except TimeoutError as exc:
            raise _fail(503, f"daemon {daemon.machine_id!r} did not answer in {SPAWN_TIMEOUT:g}s") from exc
        finally:
            daemon.pending.pop(run_id, None)

    async def _start_across(
        request: StartRequest, placement: dict[str, str], machines: list[str]
    ) -> DataflowSummary:
        """Start a dataflow whose nodes are placed on several machines.

        Two rounds: each daemon *prepares* (announces where its nodes listen for links from
        other machines, and its Zenoh router's endpoint), then each *spawns* its nodes with
        every daemon's announcements.
        """
        missing = [m for m in machines if m not in state.daemons]
        if missing:
            raise _fail(
                503,
                f"machine(s) {', '.join(missing)} named by `deploy` have no connected daemon",
                f"start `doradus daemon --machine-id {missing[0]} -c <coordinator>` on it",
            )
        run_id = new_run_id()
        base: dict[str, Any] = {"id": run_id, "path": request.path, "env": request.env}
        base.update(placement=placement, log_level=request.log_level)
        prepared = await asyncio.gather(
            *(_ask(state.daemons[m], run_id, None, {"type": "prepare", **base}) for m in machines)
        )
        failed = next((p for p in prepared if p.get("type") != "prepared"), None)
        if failed is not None:
            raise _fail(422, str(failed.get("error")), failed.get("fix"))
        listen: dict[str, str] = {}
        routers: dict[str, str] = {}
        for machine, reply in zip(machines, prepared, strict=True):
            listen.update(reply.get("listen") or {})
            if reply.get("router"):
                routers[machine] = str(reply["router"])
        remote = {"listen": listen, "routers": routers}
        spawned = await asyncio.gather(
            *(
                _ask(state.daemons[m], run_id, None, {"type": "spawn", **base, "remote": remote})
                for m in machines
            ),
            return_exceptions=True,
        )
        errors = [r for r in spawned if not isinstance(r, dict) or r.get("type") != "spawned"]
        if errors:
            for machine in machines:
                await _send_quietly(
                    state.daemons[machine], {"type": "stop", "id": run_id, "grace_seconds": 1.0}
                )
            first = errors[0]
            raise _fail(422, str(first.get("error") if isinstance(first, dict) else first))
        replies = [r for r in spawned if isinstance(r, dict)]
        first_reply = replies[0]
        flow = _Dataflow(
            id=run_id,
            name=request.name or state.unique_name(str(first_reply.get("name") or Path(request.path).stem)),
            path=request.path,
            machine=machines[0],
            env=dict(request.env),
            log_level=request.log_level,
            machines=list(machines),
            placement=dict(placement),
            parts_running=set(machines),
            nodes={n: NodeStatus() for n in placement},
        )
        state.dataflows[run_id] = flow
        for machine, reply in zip(machines, replies, strict=True):
            for early in reply.get("early", []):
                state.handle(state.daemons[machine], early)
        return flow.summary()

    @app.post("/api/v1/dataflows/clean", response_model=CleanResult, responses=ERRORS)
    async def clean(request: CleanRequest) -> CleanResult:
        """Forget ended dataflows (finished, failed, stopped); running ones are kept."""
        ids = state.clean(request.older_than)
        return CleanResult(removed=len(ids), ids=ids)

    @app.post("/api/v1/dataflows/external", response_model=DataflowSummary, status_code=201, responses=ERRORS)
    async def register_external(request: ExternalDataflow) -> DataflowSummary:
        """Register a dataflow that `doradus run` runs itself, so list, status and logs see it."""
        if request.id in state.dataflows:
            raise _fail(409, f"a dataflow with id {request.id!r} is already registered")
        flow = _Dataflow(
            id=request.id,
            name=state.unique_name(request.name),
            path=request.path,
            machine=request.machine,
            external=True,
            nodes={n: NodeStatus() for n in request.nodes},
        )
        state.dataflows[flow.id] = flow
        return flow.summary()

    @app.post("/api/v1/dataflows/{name_or_id}/report", response_model=DataflowSummary, responses=ERRORS)
    async def report_external(name_or_id: str, report: ExternalReport) -> DataflowSummary:
        """News of an external dataflow: node fields, output lines, and its end."""
        flow = state.find(name_or_id)
        if not flow.external:
            raise _fail(409, f"dataflow {flow.name!r} is run by a daemon, not by `doradus run`")
        for line in report.logs:
            state.add_log(flow, line)
        for node_id, values in report.nodes.items():
            state.set_node(flow, node_id, values)
        if report.status is not None and report.status != "running":
            state.end(flow, report.status, report.reason)
        return flow.summary()

    @app.post("/api/v1/dataflows/{name_or_id}/restart", response_model=DataflowSummary, responses=ERRORS)
    async def restart_dataflow(name_or_id: str, request: RestartRequest) -> DataflowSummary:
        """Stop the dataflow (Stop, SIGTERM after the grace period), then start its file again.

        The new run keeps the name, environment and log level; its id is new.
        """
        flow = state.find(name_or_id)
        if flow.external:
            raise _fail(409, f"dataflow {flow.name!r} was run by `doradus run`", "run it again yourself")
        if flow.status == "running":
            flow.stop_requested = True
            daemon = state.daemons.get(flow.machine)
            if daemon is not None:
                await daemon.ws.send_json(
                    {"type": "stop", "id": flow.id, "grace_seconds": request.grace_seconds}
                )
            try:
                await asyncio.wait_for(flow.ended.wait(), request.grace_seconds + RESTART_STOP_TIMEOUT)
            except TimeoutError as exc:
                raise _fail(
                    503, f"dataflow {flow.name!r} did not stop in time", "try `doradus stop --force`"
                ) from exc
        return await _start(
            StartRequest.model_validate(
                {"path": flow.path, "name": flow.name, "env": flow.env, "log_level": flow.log_level}
            )
        )

    @app.post("/api/v1/dataflows/{name_or_id}/stop", response_model=DataflowSummary, responses=ERRORS)
    async def stop_dataflow(name_or_id: str, request: StopRequest) -> DataflowSummary:
        """Ask a running dataflow to stop: Stop, then SIGTERM after the grace period, then SIGKILL."""
        flow = state.find(name_or_id)
        if flow.status == "running":
            flow.stop_requested = True
            for machine in flow.machines or [flow.machine]:
                daemon = state.daemons.get(machine)
                if daemon is not None:
                    await daemon.ws.send_json({"type": "stop", "id": flow.id, **request.model_dump()})
        return flow.summary()

    @app.get("/api/v1/dataflows/{name_or_id}/logs", response_model=list[LogRecord], responses=ERRORS)
    async def logs(
        name_or_id: str,
        tail: int | None = Query(None, ge=0, description="Only the last N matching records."),
        node: Annotated[
            list[str] | None, Query(description="Only these nodes' records (repeat: node=a&node=b).")
        ] = None,
        level: str | None = Query(
            None, description="Minimum level: TRACE, DEBUG, INFO, WARN, ERROR or FATAL (any case)."
        ),
        filter: str | None = Query(None, description="Only these exact levels, comma separated: WARN,ERROR."),
        grep: str | None = Query(
            None, description="Python regular expression searched in the message and in str(fields)."
        ),
        since: float | None = Query(None, description="Only records at or after this time (epoch seconds)."),
        until: float | None = Query(None, description="Only records at or before this time (epoch seconds)."),
    ) -> list[LogRecord]:
        """The dataflow's log records, oldest first (the last 10 000 are kept), filtered.

        Every given filter must hold; ``tail`` then keeps the last N. An unknown
        level or an invalid regular expression is a 422 naming the parameter.
        """
        try:
            query = build_query(node=node, level=level, levels=filter, grep=grep, since=since, until=until)
        except QueryError as exc:
            raise _fail(422, str(exc), exc.fix) from exc
        flow = state.find(name_or_id)
        records = [x for x in flow.logs if query.matches(dict(x))] if query.filters else list(flow.logs)
        return records[-tail:] if tail else ([] if tail == 0 else records)

    @app.websocket("/api/v1/dataflows/{name_or_id}/logs/follow")
    async def follow(
        websocket: WebSocket,
        name_or_id: str,
        tail: int = Query(0, ge=0, description="Send the last N matching records first."),
        node: Annotated[list[str] | None, Query(description="Only these nodes (repeatable).")] = None,
        level: str | None = Query(None, description="Minimum level."),
        filter: str | None = Query(None, description="Only these exact levels, comma separated."),
        grep: str | None = Query(None, description="Regular expression searched in message and fields."),
        since: float | None = Query(None, description="Only records at or after this time (epoch seconds)."),
        until: float | None = Query(None, description="Only records at or before this time (epoch seconds)."),
    ) -> None:
        """Stream log records as JSON objects (the last ``tail`` matching first) until the dataflow ends.

        The filters are those of ``GET .../logs`` and apply to the backlog and to
        live records. Unknown dataflow: closed with code 4404; a bad filter: 4422.
        """
        try:
            query = build_query(node=node, level=level, levels=filter, grep=grep, since=since, until=until)
        except QueryError:
            await websocket.close(code=4422)
            return
        try:
            flow = state.find(name_or_id)
        except HTTPException:
            await websocket.close(code=4404)
            return
        await websocket.accept()
        queue: asyncio.Queue[LogRecord | None] = asyncio.Queue()
        matching = [x for x in flow.logs if query.matches(dict(x))] if query.filters else list(flow.logs)
        backlog = matching[-tail:] if tail else []
        if flow.status == "running":
            flow.followers.add(queue)
        else:
            queue.put_nowait(None)
        try:
            for line in backlog:
                await websocket.send_json(line.model_dump())
            while (item := await queue.get()) is not None:
                if query.matches(dict(item)):
                    await websocket.send_json(item.model_dump())
            await websocket.close()
        except WebSocketDisconnect:
            pass
        finally:
            flow.followers.discard(queue)

    @app.websocket("/api/v1/daemon")
    async def daemon_socket(websocket: WebSocket) -> None:
        """Where daemons connect: one ``register`` message, then reports; commands go back."""
        await websocket.accept()
        first = await websocket.receive_json()
        if first.get("type") != "register":
            await websocket.close(code=1002)
            return
        daemon = _Daemon(
            websocket, str(first["machine_id"]), str(first.get("hostname")), int(first.get("pid", 0))
        )
        daemon.address = str(first.get("address") or "") or None
        state.daemons[daemon.machine_id] = daemon
        state.gone.pop(daemon.machine_id, None)
        state.no_daemons.clear()
        await websocket.send_json({"type": "welcome", "heartbeat_interval": state.heartbeat_interval})
        watchdog = asyncio.get_running_loop().create_task(_watch_heartbeats(state, daemon))
        try:
            while True:
                state.handle(daemon, await websocket.receive_json())
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            watchdog.cancel()
            state.lost(daemon)

    @app.post("/api/v1/destroy", response_model=Accepted)
    async def destroy() -> Accepted:
        """Stop every dataflow, tell every daemon to exit, then exit the coordinator."""
        for flow in state.dataflows.values():
            if flow.status == "running":
                flow.stop_requested = True
        for daemon in list(state.daemons.values()):
            try:
                await daemon.ws.send_json({"type": "shutdown"})
            except (RuntimeError, OSError):
                pass
        asyncio.get_running_loop().create_task(_exit_when_daemons_gone(state))
        return Accepted(message=f"stopping {len(state.daemons)} daemon(s) and the coordinator")

    mount_metrics(app, state)
    return app


async def _send_quietly(daemon: _Daemon, message: dict[str, Any]) -> None:
    try:
        await daemon.ws.send_json(message)
    except (RuntimeError, OSError):
        pass


async def _watch_heartbeats(state: CoordinatorState, daemon: _Daemon) -> None:
    """Mark ``daemon`` lost and close its socket once it has been silent too long."""
    while daemon.status == "connected":
        await asyncio.sleep(state.heartbeat_interval / 4)
        if state.silent(daemon):
            state.lost(daemon)
            try:
                await asyncio.wait_for(daemon.ws.close(code=1001), 1.0)
            except (TimeoutError, RuntimeError, OSError):
                pass
            return


async def _exit_when_daemons_gone(state: CoordinatorState, limit: float = 15.0) -> None:
    if state.daemons:
        try:
            await asyncio.wait_for(state.no_daemons.wait(), limit)
        except TimeoutError:
            pass
    if state.shutdown is not None:
        state.shutdown.set()


def place_nodes(path: str, env: dict[str, str], state: CoordinatorState) -> dict[str, str]:
    """Node id → machine from the dataflow's ``deploy: {machine}`` (``{}`` when nothing is placed).

    Nodes without a machine go with the first connected daemon. When the
    coordinator cannot read the file (it lives on the daemons' machines
    only), the whole dataflow goes to one daemon.

    Example::

        place_nodes("/srv/flow.yml", {}, state)   # {'camera': 'robot', 'planner': 'gpu'}
    """
    from doradus._descriptor import load_dataflow
    from doradus._exceptions import DescriptorError

    try:
        flow = load_dataflow(Path(path), extra_env=env)
    except (DescriptorError, OSError):
        return {}
    if not any(spec.machine for spec in flow.nodes):
        return {}
    default = next(iter(state.daemons), "")
    return {spec.id: spec.machine or default for spec in flow.nodes}


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine.

    Example:
        >>> is_loopback("127.0.0.1"), is_loopback("::1"), is_loopback("192.0.2.7")
        (True, True, False)
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def new_token_file(folder: Path) -> Path:
    """Generate a token into ``folder/token`` with mode 0600.

    Example::

        path = new_token_file(runtime_base())
    """
    path = folder / "token"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(secrets.token_urlsafe(32) + "\n")
    os.chmod(path, 0o600)
    return path


def serve(app: FastAPI, host: str, port: int) -> None:
    """Serve ``app`` until ``POST /destroy`` or a signal; raises OSError if the port is taken.

    Example::

        serve(create_app(), "127.0.0.1", 6300)
    """
    import uvicorn

    with socket.create_server((host, port), family=_family(host)) as sock:
        config = uvicorn.Config(app, log_level="warning", ws="websockets-sansio", lifespan="off")
        server = uvicorn.Server(config)
        state: CoordinatorState = app.state.coordinator

        async def main() -> None:
            state.shutdown = asyncio.Event()

            async def watch() -> None:
                assert state.shutdown is not None
                await state.shutdown.wait()
                server.should_exit = True

            watcher = asyncio.create_task(watch())
            await server.serve(sockets=[sock])
            watcher.cancel()

        asyncio.run(main())


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def openapi_text() -> str:
    """The API's OpenAPI description as committed in ``docs/openapi.json``.

    Regenerate with ``python -m doradus._coordinator > docs/openapi.json``.

    Example:
        >>> openapi_text().startswith("{")
        True
    """
    import json

    return json.dumps(create_app().openapi(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    print(openapi_text(), end="")
