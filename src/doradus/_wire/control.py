"""The control channel between a node and its daemon: the messages, typed, and their transport.

A node reaches its daemon over a ``SOCK_SEQPACKET`` Unix socket and both sides exchange JSON
objects there, one per datagram, with file descriptors attached where a message hands over
link ends. Every message has an ``op``; each has one `TypedDict` below, and `ControlMessage` is
the union the channel carries. In order::

    node → daemon   register            the node's id and pid (spawned or ``path: dynamic``)
    daemon → node   config | error      its NodeConfig (link ends attached), or why not
    node → daemon   ready               every link is open: senders may start
    daemon → node   start | stop        the whole dataflow is ready (or is stopping already)
    node → daemon   log, stats          its log records; its counters every second
    daemon → node   peer_gone, log_input, logs_closed, stop

A node Doradus spawns finds the daemon through `ENV_CONFIG` (a `NodeEnvironment`); a dynamic
node finds it in the run folder's ``dynamic.json`` (a `DynamicNodes`).

A receiver tells the messages apart by ``op``: ``message["op"] == "peer_gone"`` narrows the
union to `PeerGoneMessage` for mypy. The shapes are what the two ends promise each other, not
a validation: JSON is read as it came. (Which keys are ``NotRequired`` says
``typing.get_type_hints(shape, include_extras=True)``: under postponed annotations Python 3.11's
``__optional_keys__`` does not see them.)

Example:
    >>> a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    >>> send_control(a, {"op": "peer_gone", "peer": "camera"})
    >>> message, fds = recv_control(b)
    >>> if message is not None and message["op"] == "peer_gone":
    ...     print(message["peer"])
    camera
    >>> a.close(); b.close()
"""

from __future__ import annotations

import array
import json
import socket
from collections.abc import Mapping
from typing import Any, Literal, NotRequired, TypedDict, cast

ENV_CONFIG = "DORADUS_NODE_CONFIG"
"""The environment variable holding a spawned node's `NodeEnvironment` (JSON)."""
MAX_FDS = 250
"""Most file descriptors one control message carries."""
_MAX_MESSAGE = 1 << 20


# ------------------------------------------------------------------ configuration
class NodeEnvironment(TypedDict):
    """What `ENV_CONFIG` holds for a node the daemon spawned: where to register, and as whom.

    Example:
        >>> env: NodeEnvironment = {"control": "/run/c.sock", "node_id": "camera", "run_id": "r1"}
        >>> env["node_id"]
        'camera'
    """

    control: str
    node_id: str
    run_id: str


class DynamicNodes(TypedDict):
    """A run folder's ``dynamic.json``: the ``path: dynamic`` nodes that wait for their process.

    Example:
        >>> waiting: DynamicNodes = {"dataflow": "/f.yml", "nodes": ["ui"], "control": "/c.sock"}
        >>> "ui" in waiting["nodes"]
        True
    """

    dataflow: str
    nodes: list[str]
    control: str


class InputConfig(TypedDict):
    """One input of a node: where it reads from and how much it queues.

    ``kind`` is ``timer`` (``interval_ns`` set), ``node`` (another node's output; ``format``
    set when it is not Arrow: `doradus.codecs.FormatSpec.to_json`'s form) or ``logs`` (log
    records of the run).

    Example:
        >>> tick: InputConfig = {
        ...     "kind": "timer", "queue_size": 10, "policy": "drop-oldest",
        ...     "source": "dora/timer/millis/100", "interval_ns": 100_000_000,
        ... }
        >>> tick["interval_ns"] // 1_000_000
        100
    """

    kind: Literal["timer", "node", "logs"]
    queue_size: int
    policy: str
    source: str
    interval_ns: NotRequired[int]
    format: NotRequired[dict[str, Any]]


class LinkConfig(TypedDict):
    """One link of a node, as the daemon wired it (`doradus.backends.LinkSpec` once opened).

    ``dir`` ``out``: this node sends ``outputs`` to ``peer``; ``in``: ``peer`` sends to this
    node and ``routes`` maps its output ids to this node's input ids. ``options`` are the
    backend's own (addresses, keys); a ``shm`` link has none and its socket end rides along.

    Example:
        >>> link: LinkConfig = {"peer": "cam", "dir": "in", "routes": {"image": ["frame"]}, "backend": "shm"}
        >>> link["routes"]["image"]
        ['frame']
    """

    peer: str
    dir: Literal["in", "out"]
    backend: str
    outputs: NotRequired[list[str]]
    routes: NotRequired[dict[str, list[str]]]
    options: NotRequired[dict[str, Any]]


class NodeConfig(TypedDict):
    """Everything a node learns from its daemon when it registers (the ``config`` message).

    ``descriptor`` is the run folder's copy of the dataflow text (a daemon that keeps none
    leaves it out: the node reads ``dataflow``). ``output_formats`` holds the outputs that are
    not Arrow, in `doradus.codecs.FormatSpec.to_json`'s form. ``backends`` are the names of the
    backends the node's links use. ``stdout_output`` is the output the daemon sends the node's
    stdout lines on (``send_stdout_as``), which the node itself may not send on.

    Example:
        >>> import typing
        >>> hints = typing.get_type_hints(NodeConfig, include_extras=True)
        >>> [key for key, hint in hints.items() if typing.get_origin(hint) is NotRequired]
        ['descriptor']
    """

    node_id: str
    run_id: str
    dataflow: str
    descriptor: NotRequired[str]
    dataflow_name: str
    machine: str
    inputs: dict[str, InputConfig]
    outputs: list[str]
    output_formats: dict[str, dict[str, Any]]
    links: list[LinkConfig]
    backends: list[str]
    restart_count: int
    stdout_output: str | None


# ----------------------------------------------------------------------- records
class LogRecord(TypedDict):
    """A structured log record as a node writes it (its ``logging`` or ``node.log``).

    The daemon completes it into a `RunLogRecord` (see `doradus._observability.records`).

    Example:
        >>> record: LogRecord = {
        ...     "timestamp": "2026-11-25T22:09:02.123456Z", "level": "WARN", "message": "slow",
        ...     "trace_id": None, "span_id": None, "source": "log", "fields": {"logger": "cam"},
        ... }
        >>> record["level"]
        'WARN'
    """

    timestamp: str
    level: str
    message: str
    trace_id: str | None
    span_id: str | None
    source: str
    fields: dict[str, Any]


class RunLogRecord(LogRecord):
    """A log record of the run: a `LogRecord` and where it comes from (``node`` None: the runtime).

    Example:
        >>> record: RunLogRecord = {
        ...     "timestamp": "2026-11-25T22:09:02.123456Z", "level": "INFO", "message": "started",
        ...     "trace_id": None, "span_id": None, "source": "runtime", "fields": {},
        ...     "dataflow": "demo", "run_id": "r1", "node": None, "machine": "m1",
        ... }
        >>> record["node"] is None
        True
    """

    dataflow: str | None
    run_id: str | None
    node: str | None
    machine: str | None


class InputReport(TypedDict):
    """One input in a `StatsMessage`: counters, and the latency histogram since the start.

    ``latency_buckets`` counts one-way latencies per bucket of
    `doradus._observability.latency.LATENCY_BOUNDS_US` (one more bucket for the rest).

    Example:
        >>> report: InputReport = {
        ...     "received": 3, "dropped": 0, "queued": 1,
        ...     "latency_buckets": [3] + [0] * 17, "latency_sum_us": 40.0, "latency_count": 3,
        ... }
        >>> report["latency_sum_us"] / report["latency_count"] < 25
        True
    """

    received: int
    dropped: int
    queued: int
    latency_buckets: list[int]
    latency_sum_us: float
    latency_count: int


class OutputReport(TypedDict):
    """One output in a `StatsMessage`: messages and payload bytes sent.

    Example:
        >>> report: OutputReport = {"sent": 2, "bytes": 16}
        >>> report["bytes"] // report["sent"]
        8
    """

    sent: int
    bytes: int


# ---------------------------------------------------------------- node → daemon
class RegisterMessage(TypedDict):
    """``register``: the first message of a node, naming itself.

    Example:
        >>> RegisterMessage(op="register", node_id="camera", pid=42, dynamic=False)["pid"]
        42
    """

    op: Literal["register"]
    node_id: str
    pid: int
    dynamic: bool


class ReadyMessage(TypedDict):
    """``ready``: the node's links are open (subscriptions confirmed); its senders may start.

    Example:
        >>> ReadyMessage(op="ready")
        {'op': 'ready'}
    """

    op: Literal["ready"]


class LogMessage(TypedDict):
    """``log``: one log record of the node.

    Example:
        >>> record = LogRecord(
        ...     timestamp="2026-11-25T22:09:02.123456Z", level="INFO", message="hello",
        ...     trace_id=None, span_id=None, source="log", fields={},
        ... )
        >>> LogMessage(op="log", record=record)["record"]["message"]
        'hello'
    """

    op: Literal["log"]
    record: LogRecord


class StatsMessage(TypedDict):
    """``stats``: the node's counters, every second and once more when it ends.

    ``latency_p50_us`` is the median one-way latency over the recent messages
    (``latency_samples`` of them; None before any).

    Example:
        >>> report = StatsMessage(
        ...     op="stats", time=0.0, inputs={}, outputs={"out": {"sent": 1, "bytes": 8}},
        ...     latency_p50_us=None, latency_samples=0, errors=0,
        ... )
        >>> report["outputs"]["out"]["sent"]
        1
    """

    op: Literal["stats"]
    time: float
    inputs: dict[str, InputReport]
    outputs: dict[str, OutputReport]
    latency_p50_us: float | None
    latency_samples: int
    errors: int


# ---------------------------------------------------------------- daemon → node
class ConfigMessage(TypedDict):
    """``config``: the answer to ``register``, with the node's ``shm`` link ends attached.

    Example:
        >>> sorted(ConfigMessage.__required_keys__)
        ['config', 'op']
    """

    op: Literal["config"]
    config: NodeConfig


class ErrorMessage(TypedDict):
    """``error``: the answer to a ``register`` the daemon refuses, and why.

    Example:
        >>> ErrorMessage(op="error", message="no node 'x'")["message"]
        "no node 'x'"
    """

    op: Literal["error"]
    message: str


class StartMessage(TypedDict):
    """``start``: every node is ready; what is sent now reaches its receivers.

    Example:
        >>> StartMessage(op="start")
        {'op': 'start'}
    """

    op: Literal["start"]


class StopMessage(TypedDict):
    """``stop``: the dataflow is stopping; the node gets a ``Stop`` event.

    Example:
        >>> StopMessage(op="stop")
        {'op': 'stop'}
    """

    op: Literal["stop"]


class PeerGoneMessage(TypedDict):
    """``peer_gone``: a node sending to this one has ended (its backend stops waiting for it).

    Example:
        >>> PeerGoneMessage(op="peer_gone", peer="camera")["peer"]
        'camera'
    """

    op: Literal["peer_gone"]
    peer: str


class LogInputMessage(TypedDict):
    """``log_input``: a log record of the run for one of the node's ``logs`` inputs.

    Example:
        >>> sorted(LogInputMessage.__annotations__)
        ['input', 'op', 'record']
    """

    op: Literal["log_input"]
    input: str
    record: RunLogRecord


class LogsClosedMessage(TypedDict):
    """``logs_closed``: these ``logs`` inputs get no more records (every writer has ended).

    Example:
        >>> LogsClosedMessage(op="logs_closed", inputs=["logs"])["inputs"]
        ['logs']
    """

    op: Literal["logs_closed"]
    inputs: list[str]


ToDaemon = RegisterMessage | ReadyMessage | LogMessage | StatsMessage
"""What a node sends its daemon."""
ToNode = (
    ConfigMessage
    | ErrorMessage
    | StartMessage
    | StopMessage
    | PeerGoneMessage
    | LogInputMessage
    | LogsClosedMessage
)
"""What a daemon sends a node."""
ControlMessage = ToDaemon | ToNode
"""Every message of the control channel."""


# --------------------------------------------------------------------- transport
def send_control(sock: socket.socket, message: ControlMessage, fds: list[int] | None = None) -> None:
    """Send one control message, optionally handing over file descriptors.

    Args:
        sock: the control socket.
        message: the message.
        fds: descriptors to hand over (at most `MAX_FDS`); the caller still owns its copies.

    Raises:
        OSError: the socket is closed or broken.

    Example:
        >>> a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        >>> send_control(a, {"op": "start"})
        >>> recv_control(b)
        ({'op': 'start'}, [])
        >>> a.close(); b.close()
    """
    send_json(sock, message, fds)


def recv_control(sock: socket.socket) -> tuple[ControlMessage | None, list[int]]:
    """Receive one control message; ``(None, [])`` when the peer has gone.

    Returns:
        The message and the descriptors that came with it (the caller owns them).

    Raises:
        OSError: the socket is broken.
        ValueError: the datagram is not JSON.

    Example:
        >>> a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        >>> a.close(); recv_control(b)
        (None, [])
        >>> b.close()
    """
    message, fds = recv_json(sock)
    return cast("ControlMessage | None", message), fds


def send_json(sock: socket.socket, message: Mapping[str, Any], fds: list[int] | None = None) -> None:
    """`send_control` for a JSON object of any shape (for a side that builds untyped messages).

    Example:
        >>> a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        >>> send_json(a, {"op": "anything", "n": 1}); recv_json(b)
        ({'op': 'anything', 'n': 1}, [])
        >>> a.close(); b.close()
    """
    data = json.dumps(message, separators=(",", ":")).encode()
    if fds:
        sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
    else:
        sock.sendall(data)


def recv_json(sock: socket.socket) -> tuple[dict[str, Any] | None, list[int]]:
    """`recv_control` as a plain ``dict`` (for a side that reads untyped messages).

    Example:
        >>> a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        >>> a.close(); recv_json(b)
        (None, [])
        >>> b.close()
    """
    data, ancdata, _flags, _addr = sock.recvmsg(_MAX_MESSAGE, socket.CMSG_SPACE(MAX_FDS * 4))
    fds = fds_from(ancdata)
    if not data:
        return None, fds
    message: dict[str, Any] = json.loads(data)
    return message, fds


def fds_from(ancdata: list[tuple[int, int, bytes]]) -> list[int]:
    """File descriptors carried in ``recvmsg`` ancillary data.

    Example:
        >>> fds_from([])
        []
    """
    fds: list[int] = []
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            got = array.array("i")
            got.frombytes(payload[: len(payload) - len(payload) % got.itemsize])
            fds.extend(got)
    return fds
