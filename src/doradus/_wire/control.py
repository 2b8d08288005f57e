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
    daemon → node   pause, resume       hold or deliver the messages of its inputs again
    daemon → node   peer_restarting     a linked node is restarting: its links' end is no end
    node → daemon   ack                 ``peer_restarting`` taken (the daemon may stop that peer)
    daemon → node   input_format        an input's sender restarts with a new data format: decode with it
    daemon → node   peer_links          the new link ends to a restarted peer (descriptors attached)
    daemon → node   peer_restarted      a sender restarted after it ended (its restart policy)
    daemon → node   peer_failed         a sender failed and is not restarted: its inputs close
    daemon → node   param_update        a parameter of the node set (``doradus param set``), or
                                        one it has, right after ``config`` (a restarted node's)
    daemon → node   param_deleted       a parameter of the node deleted (``doradus param delete``)

What a node learns (`NodeConfig` and its parts, and how a spawned node finds its daemon) is
in `doradus._wire.node_config`; what it reports (log records, counters) in
`doradus._wire.node_reports`.

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

from doradus._wire.node_config import LinkConfig, NodeConfig
from doradus._wire.node_reports import InputReport, LogRecord, OutputReport, RunLogRecord

MAX_FDS = 250
"""Most file descriptors one control message carries."""
_MAX_MESSAGE = 1 << 20


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
    (``latency_samples`` of them; None before any); ``processing_p50_us`` the median time the
    node's code took with one input message (from the event handed out to its next request
    for one; absent from nodes that do not measure it). ``peer_restart_drops`` counts, per
    receiving node, the messages this node's outputs could not deliver while that node was
    restarting (absent when none).

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
    processing_p50_us: NotRequired[float | None]
    peer_restart_drops: NotRequired[dict[str, int]]
    busy_ms: NotRequired[float]
    """How long the node's code has held its current input message (0: it waits for events)."""


class AckMessage(TypedDict):
    """``ack``: the node has acted on a daemon's message (``of``: its op) about ``peer``.

    Example:
        >>> AckMessage(op="ack", of="peer_restarting", peer="detector")["of"]
        'peer_restarting'
    """

    op: Literal["ack"]
    of: str
    peer: str


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


class PeerFailedMessage(TypedDict):
    """``peer_failed``: a node sending to this one failed and will not be restarted.

    The node gets a `doradus.NodeFailed` event naming its inputs fed by ``peer``, then those
    inputs close (what ``peer`` sent before it failed is delivered first).

    Example:
        >>> PeerFailedMessage(op="peer_failed", peer="camera", error="exit status 1")["error"]
        'exit status 1'
    """

    op: Literal["peer_failed"]
    peer: str
    error: str


class PeerRestartedMessage(TypedDict):
    """``peer_restarted``: node ``peer``, which sends to this one, ended and was started again.

    Sent once its new links are handed over (``peer_links``); the node gets a
    `doradus.NodeRestarted` event.

    Example:
        >>> PeerRestartedMessage(op="peer_restarted", peer="camera")["peer"]
        'camera'
    """

    op: Literal["peer_restarted"]
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


class PauseMessage(TypedDict):
    """``pause``: deliver no input messages until ``resume``; they queue (and drop) per input.

    Control events (``Stop``, ``InputClosed``, errors) still reach the node.

    Example:
        >>> PauseMessage(op="pause")
        {'op': 'pause'}
    """

    op: Literal["pause"]


class ResumeMessage(TypedDict):
    """``resume``: deliver input messages again, the queued ones first.

    Example:
        >>> ResumeMessage(op="resume")
        {'op': 'resume'}
    """

    op: Literal["resume"]


class PeerRestartingMessage(TypedDict):
    """``peer_restarting``: node ``peer`` is about to be stopped and started again.

    The node stops sending to it (what it would send is dropped and counted, see
    `StatsMessage`) and takes the end of its links from ``peer`` as no end: its inputs stay
    open. It answers ``ack`` before the daemon stops ``peer``.

    Example:
        >>> PeerRestartingMessage(op="peer_restarting", peer="detector")["peer"]
        'detector'
    """

    op: Literal["peer_restarting"]
    peer: str


class PeerLinksMessage(TypedDict):
    """``peer_links``: the node's new links to the restarted ``peer``, one descriptor each attached.

    Example:
        >>> link: LinkConfig = {"peer": "detector", "dir": "out", "outputs": ["image"], "backend": "shm"}
        >>> PeerLinksMessage(op="peer_links", peer="detector", links=[link])["links"][0]["dir"]
        'out'
    """

    op: Literal["peer_links"]
    peer: str
    links: list[LinkConfig]


class InputFormatMessage(TypedDict):
    """``input_format``: ``input`` now reads ``format`` (`doradus.codecs.FormatSpec.to_json`'s form).

    Its sender restarts with a new data format (``doradus node set --data-format``): the daemon
    says so after the old sender has ended and before the new one starts, so the node switches
    its decoder before any message in the new format can reach it. Messages the old sender sent
    in the old format, still queued, are decoded in that format.

    Example:
        >>> avro = {"name": "avro", "schema": "/s/r.avsc", "type": None, "reader_schema": None}
        >>> InputFormatMessage(op="input_format", input="reading", format=avro)["format"]["name"]
        'avro'
    """

    op: Literal["input_format"]
    input: str
    format: dict[str, Any]


class ParamUpdateMessage(TypedDict):
    """``param_update``: the node's parameter ``key`` is ``value`` now (any JSON value).

    Sent when ``doradus param set`` changes it, and for each parameter the node has right after
    ``config`` (a restarted node gets its current ones); the node gets a `doradus.ParamUpdate`
    event.

    Example:
        >>> ParamUpdateMessage(op="param_update", key="exposure", value=0.02)["value"]
        0.02
    """

    op: Literal["param_update"]
    key: str
    value: Any


class ParamDeletedMessage(TypedDict):
    """``param_deleted``: the node's parameter ``key`` was deleted (a `doradus.ParamDeleted` event).

    Example:
        >>> ParamDeletedMessage(op="param_deleted", key="exposure")["key"]
        'exposure'
    """

    op: Literal["param_deleted"]
    key: str


ToDaemon = RegisterMessage | ReadyMessage | LogMessage | StatsMessage | AckMessage
"""What a node sends its daemon."""
ToNode = (
    ConfigMessage
    | ErrorMessage
    | StartMessage
    | StopMessage
    | PeerGoneMessage
    | LogInputMessage
    | LogsClosedMessage
    | PauseMessage
    | ResumeMessage
    | PeerRestartingMessage
    | PeerLinksMessage
    | InputFormatMessage
    | PeerFailedMessage
    | PeerRestartedMessage
    | ParamUpdateMessage
    | ParamDeletedMessage
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
    try:
        data, ancdata, _flags, _addr = sock.recvmsg(_MAX_MESSAGE, socket.CMSG_SPACE(MAX_FDS * 4))
    except ConnectionResetError:
        # The peer ended with messages of ours unread: the kernel says so once, *before* the
        # messages the peer sent last (its final report, say). Read on: those, then the end.
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
