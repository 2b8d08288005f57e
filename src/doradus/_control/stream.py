"""The live stream: one WebSocket, ``/api/v1/stream``, pushing a coordinator's state to any client.

A client subscribes (query parameters, later ``subscribe`` messages) to a dataflow, a minimum
log level and some nodes; the coordinator sends a ``hello``, then every interval the list of
dataflows and the subscribed dataflow's nodes, edges and rates, and as they happen its state
changes and log records. The messages are `doradus._control.stream_models`; ``docs/stream.md``
describes them for clients. The terminal UI is one such client; it uses nothing else but the
HTTP API.

Nothing polls: `StreamHub` is one of `CoordinatorState.observers` and is told of each change
as it is applied, on the event loop; it hands each to the `Session` of every client that
wants it. A session never holds the coordinator up: what it owes its client waits in an
`Outbox` of bounded size (periodic updates and state changes replaced by their newest, log
messages dropped oldest first and counted), and only its own sender task waits on the
client's socket.

Example::

    app = FastAPI()
    register_stream_routes(app, CoordinatorState())
    # websockets.sync.client.connect("ws://127.0.0.1:6300/api/v1/stream?dataflow=demo")
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, ParamSpec, cast

from fastapi import FastAPI, HTTPException, WebSocket, WebSocketDisconnect
from pydantic import ValidationError
from starlette.datastructures import QueryParams

from doradus._control.daemon_link import close_reason
from doradus._control.models import DataflowStatus, LevelName, LogRecord, NodeState, NodeStatus
from doradus._control.state import CoordinatorState, Run
from doradus._control.stream_models import (
    DEFAULT_INTERVAL,
    STREAM_PATH,
    SUBSCRIBE_FIXES,
    DataflowsUpdate,
    DataflowUpdate,
    Hello,
    LogMessage,
    NodeStateChange,
    StateChange,
    StreamError,
    Subscribe,
    Subscription,
)
from doradus._control.stream_outbox import Outbox
from doradus._control.stream_stats import LinkFacts, RateBook, edges_of, rate_window, read_link_facts
from doradus._observability.query import LogQuery, QueryError, build_query

__all__ = ["StreamHub", "register_stream_routes"]

BAD_PARAMETER = 4422
PARAMETERS = frozenset(Subscribe.model_fields) - {"type"}
GONE = (WebSocketDisconnect, RuntimeError, OSError)
"""What sending to or reading from a client that went away raises."""
DESCRIPTION = (
    " Live state — dataflows, nodes, edges and their rates, state changes, log records — is pushed "
    f"over the WebSocket `{STREAM_PATH}` (docs/stream.md; its messages' JSON Schema: "
    "docs/stream-schema.json)."
)
_log = logging.getLogger("doradus.coordinator")

_P = ParamSpec("_P")


def register_stream_routes(app: FastAPI, state: CoordinatorState) -> StreamHub:
    """Serve ``/api/v1/stream`` on ``app`` from ``state``, and say so in the API's description.

    Example:
        >>> app = FastAPI(description="The API.")
        >>> hub = register_stream_routes(app, CoordinatorState())
        >>> hub in hub.state.observers, "/api/v1/stream" in app.description
        (True, True)
    """
    hub = StreamHub(state)
    app.description += DESCRIPTION

    @app.websocket(STREAM_PATH)
    async def stream(websocket: WebSocket) -> None:
        """Live state of the coordinator: see docs/stream.md.

        Parameters: ``dataflow``, ``node`` (repeatable), ``level``, ``logs``, ``tail``,
        ``interval``. A bad one: accepted, then closed with 4422; an unknown dataflow: 4404;
        an id prefix of several: 4409. The close reason says why.
        """
        await websocket.accept()
        try:
            request = _from_query(websocket.query_params)
            wants = hub.resolve(request, None)
        except Refusal as exc:
            await websocket.close(code=exc.code, reason=exc.reason())
            return
        await Session(hub, websocket, wants).run(request.tail)

    return hub


class Refusal(Exception):
    """A subscription that cannot be made: the close code at connect, the error and its fix.

    Example:
        >>> Refusal(4422, "interval: too small", "give seconds between 0.1 and 60").reason()
        'interval: too small; give seconds between 0.1 and 60'
    """

    def __init__(self, code: int, error: str, fix: str | None) -> None:
        super().__init__(error)
        self.code = code
        self.error = error
        self.fix = fix

    def reason(self) -> str:
        """A close frame's reason: the error, and its fix when both fit (123 bytes)."""
        both = f"{self.error}; {self.fix}" if self.fix else self.error
        return both if len(both.encode()) <= 123 else close_reason(self.error)


def _from_query(params: QueryParams) -> Subscribe:
    """The subscription a connection's query parameters ask for.

    Raises:
        Refusal: 4422, an unknown parameter or a bad value.
    """
    unknown = sorted(set(params) - PARAMETERS)
    if unknown:
        raise Refusal(BAD_PARAMETER, f"unknown parameter {unknown[0]!r}", _known_keys())
    raw: dict[str, Any] = {key: params[key] for key in params if key != "node"}
    if "node" in params:
        raw["node"] = params.getlist("node")
    if raw.get("dataflow") == "":
        raw["dataflow"] = None  # `dataflow=`: none
    return _validated(raw)


def _validated(raw: object) -> Subscribe:
    """``raw`` read as a `Subscribe` (a bad value is a 4422 `Refusal` naming it)."""
    try:
        return Subscribe.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors(include_input=False, include_url=False)[0]
        key = str(first["loc"][0]) if first["loc"] else ""
        where = f"{key}: " if key else ""
        raise Refusal(
            BAD_PARAMETER, f"{where}{first['msg']}", SUBSCRIBE_FIXES.get(key) or _known_keys()
        ) from None


def _known_keys() -> str:
    return "the subscription's keys are " + ", ".join(sorted(PARAMETERS))


@dataclass(frozen=True)
class Wants:
    """What one client is subscribed to, resolved (`StreamHub.resolve`).

    Example:
        >>> wants = StreamHub(CoordinatorState()).resolve(Subscribe(level="warning"), None)
        >>> wants.subscription()
        Subscription(dataflow=None, name=None, node=[], level='WARN', logs=True)
    """

    run_id: str | None
    name: str | None
    node: list[str]
    level: LevelName
    logs: bool
    interval: float
    query: LogQuery
    """The log records it wants (of ``node``, at or above ``level``)."""

    def subscription(self) -> Subscription:
        """As ``hello`` shows it."""
        return Subscription(
            dataflow=self.run_id, name=self.name, node=self.node, level=self.level, logs=self.logs
        )


def _guarded(method: Callable[_P, None]) -> Callable[_P, None]:
    """An observer's method that logs an error instead of raising it into the coordinator's state."""

    def call(*args: _P.args, **kwargs: _P.kwargs) -> None:
        try:
            method(*args, **kwargs)
        except Exception:
            _log.exception("the live stream failed to pass on a change")

    call.__doc__ = method.__doc__
    return call


class StreamHub:
    """The stream's side of the coordinator: told of each change, it tells the sessions that want it.

    One per coordinator, a `doradus._control.state.StateObserver`; touched only from the
    event loop. It also keeps what the sessions compute from (node reports for rates, the
    dataflows' link facts).

    Example:
        >>> hub = StreamHub(CoordinatorState())
        >>> hub.sessions, hub in hub.state.observers
        (set(), True)
    """

    def __init__(self, state: CoordinatorState) -> None:
        self.state = state
        self.sessions: set[Session] = set()
        self.book = RateBook()
        self.facts: dict[str, LinkFacts | None] = {}
        self._reading: dict[str, asyncio.Task[None]] = {}
        self._gate = asyncio.Semaphore(1)
        state.observers.append(self)

    # ------------------------------------------------------------ observing
    @_guarded
    def dataflow_changed(self, run: Run, previous: DataflowStatus | None) -> None:
        """Tell every session (the dataflows pane shows them all)."""
        message = StateChange(
            dataflow=run.id, name=run.name, status=run.status, previous=previous, reason=run.reason
        )
        for session in self.sessions:
            session.outbox.change(("state", run.id), message)

    @_guarded
    def node_changed(self, run: Run, node_id: str, previous: NodeState, changes: dict[str, Any]) -> None:
        """Keep a report's counters; tell the sessions subscribed to ``run`` of a new state."""
        node = run.nodes[node_id]
        if "inputs" in changes or "outputs" in changes:
            self.book.record(run.id, node_id, node, time.monotonic())
        if node.state == previous:
            return
        message = NodeStateChange(
            dataflow=run.id, node=node_id, state=node.state, previous=previous, reason=node_reason(node)
        )
        for session in self.sessions:
            if session.wants.run_id == run.id:
                session.outbox.change(("node", run.id, node_id), message)

    @_guarded
    def log_added(self, run: Run, record: LogRecord) -> None:
        """Offer the record to every session (each keeps it if it wants it)."""
        for session in self.sessions:
            session.offer_log(run, record)

    # ----------------------------------------------------------- subscribing
    def resolve(self, request: Subscribe, current: Wants | None) -> Wants:
        """What ``request`` asks for, the keys it leaves out kept from ``current`` (else the defaults).

        Raises:
            Refusal: 4422 a bad level; 4404 no such dataflow; 4409 an id prefix of several.

        Example:
            >>> hub = StreamHub(CoordinatorState())
            >>> first = hub.resolve(Subscribe(interval=0.5), None)
            >>> then = hub.resolve(Subscribe.model_validate({"node": ["camera"]}), first)
            >>> then.interval, then.node, then.level
            (0.5, ['camera'], 'INFO')
        """
        given = request.model_fields_set
        run_id, name = (current.run_id, current.name) if current else (None, None)
        if "dataflow" in given:
            run_id = name = None
            if request.dataflow is not None:
                try:
                    run = self.state.find(request.dataflow)
                except HTTPException as exc:
                    detail: Any = exc.detail
                    raise Refusal(4000 + exc.status_code, detail["error"], detail["fix"]) from None
                run_id, name = run.id, run.name
                self.facts_of(run)  # read its text now: the first updates then know each edge's backend
        node = list(request.node or []) if "node" in given else (current.node if current else [])
        level = request.level if "level" in given else (current.level if current else None)
        try:
            query = build_query(node=node, level=level or "INFO")
        except QueryError as exc:
            raise Refusal(BAD_PARAMETER, str(exc), exc.fix) from None
        keep_logs, keep_interval = (current.logs, current.interval) if current else (True, DEFAULT_INTERVAL)
        return Wants(
            run_id=run_id,
            name=name,
            node=node,
            level=cast("LevelName", query.min_level),
            logs=keep_logs if request.logs is None else request.logs,
            interval=keep_interval if request.interval is None else request.interval,
            query=query,
        )

    def hello(self, wants: Wants) -> Hello:
        """The ``hello`` confirming ``wants``.

        Example:
            >>> hub = StreamHub(CoordinatorState())
            >>> hub.hello(hub.resolve(Subscribe(), None)).interval
            1.0
        """
        from doradus import __version__

        return Hello(version=__version__, interval=wants.interval, subscription=wants.subscription())

    # ------------------------------------------------------------- updating
    def dataflow_update(self, run: Run, interval: float) -> DataflowUpdate:
        """``run``, its nodes, edges and rates now, measured over ``interval`` (see `rate_window`).

        Example:
            >>> run = Run(id="r", name="demo", path="/srv/flow.yml", machine="m", external=True)
            >>> update = StreamHub(CoordinatorState()).dataflow_update(run, interval=0.2)
            >>> update.dataflow.name, update.edges, update.rate_window_s
            ('demo', [], 2.0)
        """
        now = time.monotonic()
        window = rate_window(interval)
        rates = {node_id: self.book.rates(run.id, node_id, window, now) for node_id in run.nodes}
        edges = edges_of(run, self.facts_of(run), rates, self.book, window, now)
        return DataflowUpdate(
            dataflow=run.summary(), nodes=dict(run.nodes), edges=edges, rates=rates, rate_window_s=window
        )

    def facts_of(self, run: Run) -> LinkFacts | None:
        """``run``'s link facts, once read (in a worker thread, one text at a time); None until then.

        Example::

            hub.facts_of(run)  # None: reading starts; a moment later, its LinkFacts
        """
        if run.id in self.facts:
            return self.facts[run.id]
        if run.text is None:  # registered by `doradus run`: the coordinator has no text
            self.facts[run.id] = None
        elif run.id not in self._reading:
            self._reading[run.id] = asyncio.get_running_loop().create_task(
                self._read(run.id, run.text, run.path)
            )
        return None

    async def _read(self, run_id: str, text: str, path: str) -> None:
        facts = None
        try:
            async with self._gate:
                facts = await asyncio.to_thread(read_link_facts, text, path)
        except Exception:
            _log.exception("could not read the edges of dataflow %s", run_id)
        finally:
            self.facts[run_id] = facts
            self._reading.pop(run_id, None)

    def forget_gone(self) -> None:
        """Drop what was kept for dataflows the coordinator forgot (`doradus clean`).

        Example:
            >>> hub = StreamHub(CoordinatorState())
            >>> hub.facts["gone"] = None
            >>> hub.forget_gone(); hub.facts
            {}
        """
        known = self.state.dataflows
        self.book.forget(known)
        for run_id in [r for r in self.facts if r not in known]:
            del self.facts[run_id]


def node_reason(node: NodeStatus) -> str | None:
    """Why a node is in its state, when the coordinator knows.

    Example:
        >>> node_reason(NodeStatus(state="failed", exit_code=3)), node_reason(NodeStatus(state="running"))
        ('exit code 3', None)
    """
    if node.state == "lost":
        return "its machine's daemon was lost"
    if node.state in ("finished", "failed", "stopped") and node.exit_code is not None:
        return f"exit code {node.exit_code}"
    return None


class Session:
    """One client's connection: its subscription, its outbox, and the tasks that serve it.

    Three tasks: one reads the client's ``subscribe`` messages, one makes the periodic
    updates, one sends what the outbox holds. The session ends when any of them ends (the
    client went away, or a send failed).

    Example::

        await Session(hub, websocket, hub.resolve(Subscribe(dataflow="demo"), None)).run(tail=0)
    """

    def __init__(self, hub: StreamHub, websocket: WebSocket, wants: Wants) -> None:
        self.hub = hub
        self.websocket = websocket
        self.wants = wants
        self.outbox = Outbox()
        self._retick = asyncio.Event()

    async def run(self, tail: int) -> None:
        """Serve the client until it goes away; ``tail``: records of the dataflow sent first."""
        self.hub.sessions.add(self)
        self.subscribe(self.wants, tail)
        loop = asyncio.get_running_loop()
        tasks = [loop.create_task(work()) for work in (self._receive, self._tick, self._send)]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.hub.sessions.discard(self)
            for task in tasks:
                task.cancel()
            results = await asyncio.gather(*tasks, return_exceptions=True)
        failures = [r for r in results if isinstance(r, Exception) and not isinstance(r, GONE)]
        for failure in failures:
            _log.error("a live stream session failed", exc_info=failure)
        if failures:
            try:
                await self.websocket.close(code=1011, reason="the coordinator failed: see its log")
            except GONE:
                pass

    def subscribe(self, wants: Wants, tail: int) -> None:
        """Take ``wants`` as the subscription: a ``hello``, the last ``tail`` records, an update at once."""
        self.wants = wants
        self.outbox.forget_subscription()
        self.outbox.put(self.hub.hello(wants))
        run = self.hub.state.dataflows.get(wants.run_id) if wants.run_id else None
        if run is not None and tail and wants.logs:
            matching = [r for r in run.logs if wants.query.matches(dict(r))]
            self.outbox.backlog([LogMessage(record=record) for record in matching[-tail:]])
        self._retick.set()

    def offer_log(self, run: Run, record: LogRecord) -> None:
        """Queue ``record`` if this client wants it."""
        wants = self.wants
        if wants.logs and wants.run_id == run.id and wants.query.matches(dict(record)):
            self.outbox.log(LogMessage(record=record))

    def publish(self) -> None:
        """Queue this interval's updates: every dataflow, and the subscribed one."""
        state = self.hub.state
        self.hub.forget_gone()
        self.outbox.update(DataflowsUpdate(dataflows=[run.summary() for run in state.dataflows.values()]))
        run_id = self.wants.run_id
        if run_id is None:
            return
        run = state.dataflows.get(run_id)
        if run is not None:
            self.outbox.update(self.hub.dataflow_update(run, self.wants.interval))
            return
        error = f"dataflow {self.wants.name!r} ({run_id}) was forgotten (`doradus clean`)"
        self.outbox.put(StreamError(error=error, fix="subscribe to another dataflow"))
        self.subscribe(replace(self.wants, run_id=None, name=None), 0)

    def handle(self, text: str) -> None:
        """Apply one message from the client: a ``subscribe``, else an ``error`` back."""
        try:
            try:
                raw = json.loads(text)
            except json.JSONDecodeError as exc:
                raise Refusal(BAD_PARAMETER, f"not JSON: {exc}", 'send {"type": "subscribe", ...}') from None
            if not isinstance(raw, dict) or raw.get("type") != "subscribe":
                raise Refusal(
                    BAD_PARAMETER, "the only message a client sends is a subscribe", SUBSCRIBE_FIXES["type"]
                )
            request = _validated(raw)
            wants = self.hub.resolve(request, self.wants)
        except Refusal as exc:
            self.outbox.put(StreamError(error=exc.error, fix=exc.fix))
            return
        self.subscribe(wants, request.tail)

    async def _receive(self) -> None:
        while True:
            frame = await self.websocket.receive()
            if frame["type"] == "websocket.disconnect":
                return
            text = frame.get("text")
            self.handle(text if text is not None else (frame.get("bytes") or b"").decode(errors="replace"))

    async def _tick(self) -> None:
        while True:
            self._retick.clear()
            self.publish()
            try:
                await asyncio.wait_for(self._retick.wait(), self.wants.interval)
            except TimeoutError:
                pass

    async def _send(self) -> None:
        while True:
            message = self.outbox.next()
            if message is None:
                self.outbox.ready.clear()
                await self.outbox.ready.wait()
                continue
            await self.websocket.send_text(message.model_dump_json())
