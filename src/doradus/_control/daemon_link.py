"""The link between a daemon and its coordinator: message shapes, frame checks, close codes.

Daemons speak JSON text frames over ``/api/v1/daemon``::

    daemon → coordinator: register, heartbeat, spawned, spawn_failed, prepared, node, log,
                          dataflow, goodbye
    coordinator → daemon: welcome (the heartbeat interval), prepare, spawn, stop, peer_gone,
                          node_action, node_params, shutdown

``register`` carries the dataflows the daemon runs (``dataflows``: each one's id, status and
nodes' states, `HeldDataflow`): empty from a daemon that just started, the full list from one
that reconnects after losing its coordinator (it keeps its dataflows running meanwhile, for
its reconnect window, ``doradus daemon --reconnect-window``). The coordinator re-attaches those it
knows as running here and answers ``stop`` for any other (`doradus._control.recovery`).

``node_action`` asks the daemon to steer nodes of a run it has (`doradus._control.node_actions`):
``{"type": "node_action", "id": RUN_ID, "action": "pause"|"resume"|"restart", "nodes": [IDS],
"env": {..}|null, "args": str|null, "grace_seconds": 5.0, "data_format": str|null, "schema":
str|{file, type}|null}``. The daemon answers with the nodes' ``node`` reports (``state``
``paused``, ``restarting``, ``running``; ``restarts``; ``data_formats``); an action a node
cannot take becomes an ERROR log record of that node.

``node_params`` gives the daemon a node's parameters (`doradus._control.params`): ``{"type":
"node_params", "id": RUN_ID, "node": ID, "params": {key: value}, "touched": key|null}``, the
node's whole set after a change (``touched``: the key just set), and every node's set when a
daemon registers again. The daemon tells the node what changed (`doradus._runtime.params`).

A ``node`` message carries any `NodeStatus` fields: its state changes, and each second its
metrics. Every frame from a daemon is checked (`receive_message`) before it touches the
coordinator's state; a frame that is not a valid message closes the link with a code and a
reason (`LinkError`), never a traceback:

====  ====================================================================================
1003  a binary frame (the link speaks JSON text)
1007  a text frame that is not JSON
1009  a frame over `MAX_FRAME_BYTES` (the server closes before reading it)
4400  JSON that is not a valid message: not an object, unknown ``type``, missing or
      mistyped keys
4401  a ``register`` without the daemons' secret or the API token (`doradus._control.auth`)
4408  no ``register`` within `REGISTER_TIMEOUT` seconds
4409  a ``register`` for a machine id whose daemon is still connected
====  ====================================================================================

Example:
    >>> parse_message('{"type": "heartbeat"}')
    Heartbeat(type='heartbeat')
    >>> parse_message('{"type": "node", "id": "r1", "node": 3}')
    Traceback (most recent call last):
    ...
    doradus._control.daemon_link.LinkError: 4400 not a valid message: node: Input should be a valid string
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, TypeAdapter, ValidationError, model_validator

from doradus._control.models import DataflowStatus, LogRecord, NodeState, NodeStatus

MAX_FRAME_BYTES = 16 * 2**20
"""The largest frame a daemon may send (16 MiB: a ``spawned`` reply with early log records)."""
REGISTER_TIMEOUT = 10.0
"""Seconds a new connection has to send its ``register``."""
MAX_HELD_DATAFLOWS = 10_000
"""The most dataflows one ``register`` may list."""
BINARY_FRAME = 1003
NOT_JSON = 1007
BAD_MESSAGE = 4400
NOT_AUTHENTICATED = 4401
NO_REGISTER = 4408
SEAT_TAKEN = 4409
_REASON_BYTES = 123
"""A close frame's reason fits in 123 bytes of UTF-8 (RFC 6455, 5.5)."""


class LinkError(Exception):
    """Why the coordinator closes a daemon's link: a WebSocket close code and a reason.

    Example:
        >>> error = LinkError(4409, "machine id 'a' already has a connected daemon")
        >>> error.code, error.reason
        (4409, "machine id 'a' already has a connected daemon")
    """

    def __init__(self, code: int, reason: str) -> None:
        self.code = code
        self.reason = close_reason(reason)
        super().__init__(f"{code} {self.reason}")


class _Message(BaseModel):
    """A daemon's message; keys this version does not know are ignored."""

    model_config = ConfigDict(extra="ignore")


class HeldNode(_Message):
    """One node of a dataflow a daemon runs, as it says in its ``register``."""

    state: NodeState
    pid: int | None = None
    exit_code: int | None = None
    restarts: int = Field(default=0, ge=0)


class HeldDataflow(_Message):
    """A dataflow a daemon runs (or ran: ``status`` then says how it ended), listed in its ``register``."""

    id: str = Field(min_length=1, max_length=255)
    status: DataflowStatus = "running"
    nodes: dict[str, HeldNode] = Field(default_factory=dict)


class Register(_Message):
    """The first message of a link: who the daemon is, its proof, and the dataflows it runs."""

    type: Literal["register"]
    machine_id: str = Field(min_length=1, max_length=255)
    hostname: str = Field(default="", max_length=255)
    pid: int = Field(default=0, ge=0)
    address: str | None = Field(default=None, max_length=255)
    secret: str | None = Field(default=None, max_length=1024, repr=False)
    dataflows: list[HeldDataflow] = Field(default_factory=list, max_length=MAX_HELD_DATAFLOWS)


class Heartbeat(_Message):
    """Nothing new: the daemon is alive."""

    type: Literal["heartbeat"]


class Goodbye(_Message):
    """The daemon is leaving on purpose (after ``shutdown``)."""

    type: Literal["goodbye"]


class LogReport(_Message):
    """One log record of a dataflow's run."""

    type: Literal["log"]
    id: str
    record: LogRecord


class Spawned(_Message):
    """The daemon started its part of a run: its name, nodes, and records logged meanwhile."""

    type: Literal["spawned"]
    id: str
    name: str | None = None
    nodes: list[str] = Field(default_factory=list)
    early: list[LogReport] = Field(default_factory=list)


class SpawnFailed(_Message):
    """The daemon could not start its part of a run."""

    type: Literal["spawn_failed"]
    id: str
    error: str = "the daemon could not start the dataflow"
    fix: str | None = None


class Prepared(_Message):
    """First round of a multi-machine start: where this machine's nodes listen."""

    type: Literal["prepared"]
    id: str
    listen: dict[str, str] = Field(default_factory=dict)
    router: str | None = None


class NodeReport(_Message):
    """News of one node: any `NodeStatus` fields, checked like the API's own."""

    model_config = ConfigDict(extra="allow")

    type: Literal["node"]
    id: str
    node: str
    _changes: dict[str, Any] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _check_changes(self) -> NodeReport:
        self._changes = node_changes(self.model_extra or {})
        return self

    @property
    def changes(self) -> dict[str, Any]:
        """The `NodeStatus` fields it sets, validated (``inputs`` as `InputStats`...)."""
        return self._changes


class DataflowEnded(_Message):
    """The daemon's part of a run ended."""

    type: Literal["dataflow"]
    id: str
    status: DataflowStatus


DaemonMessage = Annotated[
    Register
    | Heartbeat
    | Goodbye
    | LogReport
    | Spawned
    | SpawnFailed
    | Prepared
    | NodeReport
    | DataflowEnded,
    Field(discriminator="type"),
]
"""Any message a daemon sends."""
Reply = Spawned | SpawnFailed | Prepared
"""What answers a ``prepare`` or ``spawn``."""
_MESSAGE: TypeAdapter[DaemonMessage] = TypeAdapter(DaemonMessage)


def node_changes(values: Mapping[str, Any]) -> dict[str, Any]:
    """The `NodeStatus` fields among ``values``, validated; other keys are left out.

    Raises:
        ValidationError: A field has the wrong type.

    Example:
        >>> node_changes({"state": "running", "pid": 42, "id": "ignored"})
        {'state': 'running', 'pid': 42}
    """
    given = {key: value for key, value in values.items() if key in NodeStatus.model_fields}
    status = NodeStatus.model_validate(given)
    return {key: getattr(status, key) for key in given}


def parse_message(text: str) -> DaemonMessage:
    """One frame's text as a message.

    Raises:
        LinkError: Not JSON (1007), or not a valid message (4400); the reason
            names the keys at fault, never the values.

    Example:
        >>> parse_message('{"type": "register", "machine_id": "robot", "pid": 12}').machine_id
        'robot'
    """
    try:
        return _MESSAGE.validate_json(text)
    except ValidationError as exc:
        errors = exc.errors(include_input=False, include_url=False)
        if any(error["type"] == "json_invalid" for error in errors):
            raise LinkError(NOT_JSON, "not JSON: daemons send one JSON object per text frame") from None
        where = "; ".join(f"{_place(error['loc'])}{error['msg']}" for error in errors[:2])
        raise LinkError(BAD_MESSAGE, f"not a valid message: {where}") from None


def frame_text(frame: Mapping[str, Any]) -> str:
    """The text of an ASGI ``websocket.receive`` message.

    Raises:
        LinkError: A binary frame (1003).

    Example:
        >>> frame_text({"type": "websocket.receive", "text": "{}"})
        '{}'
    """
    text = frame.get("text")
    if text is None:
        raise LinkError(BINARY_FRAME, "binary frame: daemons send JSON text frames")
    return str(text)


def close_reason(text: str) -> str:
    """``text`` cut to fit a close frame (123 bytes of UTF-8).

    Example:
        >>> len(close_reason("é" * 100).encode())
        123
    """
    data = text.encode()
    if len(data) <= _REASON_BYTES:
        return text
    return data[: _REASON_BYTES - 3].decode(errors="ignore") + "..."


def _place(loc: tuple[int | str, ...]) -> str:
    """Where an error is, as ``record.level: ``; nothing for the message as a whole.

    The first element names the union member (``node``) and is dropped.
    """
    keys = [str(part) for part in loc[1:]]
    return f"{'.'.join(keys)}: " if keys else ""
