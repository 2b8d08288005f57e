"""The stream's messages as typed, frozen records (``docs/stream.md`` has the schema).

Reading is lenient on purpose: a field the coordinator does not send (an older one) or
a state this client does not know (a newer one) becomes None or stays a plain string,
never an exception, so the TUI keeps drawing whatever it gets. Numbers that are not
numbers count as "not measured".

Example:
    >>> node = NodeRecord.from_json("camera", {"state": "running", "input_rate": 19.9, "restarts": 1})
    >>> node.state, node.input_rate, node.restarts, node.memory_bytes
    ('running', 19.9, 1, None)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

RUNTIME = "runtime"
"""The origin shown for the runtime's own records (they have no node)."""
TIMER_PREFIX = "dora/"
"""Sources that are not nodes (``dora/timer/millis/50``, ``dora/logs``) start with this."""


def number(value: Any) -> float | None:
    """``value`` as a float when it is a number (bools are not), else None.

    Example:
        >>> number(3), number("3"), number(None), number(True)
        (3.0, None, None, None)
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def integer(value: Any) -> int | None:
    """``value`` as an int when it is a whole number, else None.

    Example:
        >>> integer(4), integer(4.0), integer("4")
        (4, 4, None)
    """
    found = number(value)
    return None if found is None else int(found)


def text(value: Any) -> str | None:
    """``value`` when it is a non-empty string, else None.

    Example:
        >>> text("shm"), text(""), text(3)
        ('shm', None, None)
    """
    return value if isinstance(value, str) and value else None


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


@dataclass(frozen=True)
class DataflowRecord:
    """One dataflow as the ``dataflows`` and ``dataflow`` messages give it.

    Example:
        >>> flow = DataflowRecord.from_json({"id": "0a1b", "name": "demo", "status": "running", "nodes": 3})
        >>> flow.name, flow.status, flow.nodes, flow.running
        ('demo', 'running', 3, True)
        >>> DataflowRecord.from_json({"id": "0a1b", "status": "running", "paused": True}).status
        'paused'
    """

    id: str
    name: str
    status: str
    uptime_s: float | None = None
    nodes: int | None = None
    machine: str | None = None
    machines: tuple[str, ...] = ()
    reason: str | None = None
    started_at: str | None = None

    @property
    def running(self) -> bool:
        """Whether it runs (paused dataflows run too: their processes live)."""
        return self.status in ("running", "paused")

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DataflowRecord:
        """Read a ``DataflowSummary`` object."""
        machines = data.get("machines")
        return cls(
            id=str(data.get("id", "")),
            name=str(data.get("name", data.get("id", ""))),
            status="paused"
            if data.get("paused") and data.get("status") == "running"
            else str(data.get("status", "unknown")),
            uptime_s=number(data.get("uptime_s")),
            nodes=integer(data.get("nodes")),
            machine=text(data.get("machine")),
            machines=tuple(str(m) for m in machines) if isinstance(machines, list) else (),
            reason=text(data.get("reason")),
            started_at=text(data.get("started_at")),
        )


@dataclass(frozen=True)
class InputRecord:
    """One input of a node: where it comes from and its counters.

    Example:
        >>> InputRecord.from_json("frame", {"source": "camera/frame", "received": 10}).received
        10
    """

    name: str
    source: str | None = None
    received: int = 0
    dropped: int = 0
    queued: int = 0
    latency_bounds_us: tuple[float, ...] = ()
    latency_buckets: tuple[int, ...] = ()

    @classmethod
    def from_json(cls, name: str, data: Mapping[str, Any]) -> InputRecord:
        """Read an ``InputStats`` object."""
        bounds = data.get("latency_bounds_us")
        buckets = data.get("latency_buckets")
        return cls(
            name=name,
            source=text(data.get("source")),
            received=integer(data.get("received")) or 0,
            dropped=integer(data.get("dropped")) or 0,
            queued=integer(data.get("queued")) or 0,
            latency_bounds_us=tuple(float(b) for b in bounds if number(b) is not None)
            if isinstance(bounds, list)
            else (),
            latency_buckets=tuple(int(b) for b in buckets if integer(b) is not None)
            if isinstance(buckets, list)
            else (),
        )


@dataclass(frozen=True)
class NodeRecord:
    """One node of the selected dataflow (a ``NodeStatus`` object and its id).

    Example:
        >>> NodeRecord.from_json("sink", {"state": "failed", "exit_code": 1}).exit_code
        1
    """

    id: str
    state: str = "pending"
    pid: int | None = None
    machine: str | None = None
    cpu_percent: float | None = None
    memory_bytes: int | None = None
    exit_code: int | None = None
    restarts: int | None = None
    errors: int | None = None
    input_rate: float | None = None
    output_rate: float | None = None
    p50_latency_us: float | None = None
    processing_p50_us: float | None = None
    """The median time the node's code took with one input message."""
    dropped: int | None = None
    queued: int | None = None
    inputs: Mapping[str, InputRecord] = field(default_factory=dict)
    outputs: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    """Per output: (messages sent, payload bytes sent)."""

    @classmethod
    def from_json(cls, node_id: str, data: Mapping[str, Any]) -> NodeRecord:
        """Read a ``NodeStatus`` object."""
        inputs = {
            name: InputRecord.from_json(name, _mapping(v)) for name, v in _mapping(data.get("inputs")).items()
        }
        outputs = {
            name: (integer(_mapping(v).get("sent")) or 0, integer(_mapping(v).get("bytes")) or 0)
            for name, v in _mapping(data.get("outputs")).items()
        }
        return cls(
            id=node_id,
            state=str(data.get("state", "pending")),
            pid=integer(data.get("pid")),
            machine=text(data.get("machine")),
            cpu_percent=number(data.get("cpu_percent")),
            memory_bytes=integer(data.get("memory_bytes")),
            exit_code=integer(data.get("exit_code")),
            restarts=integer(data.get("restarts")),
            errors=integer(data.get("errors")),
            input_rate=number(data.get("input_rate")),
            output_rate=number(data.get("output_rate")),
            p50_latency_us=number(data.get("p50_latency_us")),
            processing_p50_us=number(data.get("processing_p50_us")),
            dropped=integer(data.get("dropped")),
            queued=integer(data.get("queued")),
            inputs=inputs,
            outputs=outputs,
        )


def endpoint_node(endpoint: str) -> str:
    """The node of an edge end ``node/port``; a ``dora/...`` source is its own node.

    Example:
        >>> endpoint_node("camera/frame"), endpoint_node("dora/timer/millis/50")
        ('camera', 'dora/timer/millis/50')
    """
    if endpoint.startswith(TIMER_PREFIX):
        return endpoint
    return endpoint.partition("/")[0]


def endpoint_port(endpoint: str) -> str:
    """The port (output or input id) of an edge end ``node/port``.

    Example:
        >>> endpoint_port("camera/frame"), endpoint_port("dora/timer/millis/50")
        ('frame', 'millis/50')
    """
    if endpoint.startswith(TIMER_PREFIX):
        return endpoint.removeprefix(TIMER_PREFIX).partition("/")[2]
    return endpoint.partition("/")[2]


@dataclass(frozen=True)
class EdgeRecord:
    """One edge: ``source`` output to ``target`` input, how it travels, and its counters.

    Example:
        >>> edge = EdgeRecord.from_json({"source": "camera/frame", "target": "sink/frame", "rate": 30.0})
        >>> edge.source_node, edge.target_node, edge.rate
        ('camera', 'sink', 30.0)
    """

    source: str
    target: str
    backend: str | None = None
    data_format: str | None = None
    received: int = 0
    dropped: int = 0
    queued: int = 0
    rate: float | None = None
    p50_latency_us: float | None = None

    @property
    def source_node(self) -> str:
        """The node (or ``dora/...`` source) the edge leaves."""
        return endpoint_node(self.source)

    @property
    def target_node(self) -> str:
        """The node the edge reaches."""
        return endpoint_node(self.target)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EdgeRecord:
        """Read an ``Edge`` object."""
        return cls(
            source=str(data.get("source", "")),
            target=str(data.get("target", "")),
            backend=text(data.get("backend")),
            data_format=text(data.get("data_format")),
            received=integer(data.get("received")) or 0,
            dropped=integer(data.get("dropped")) or 0,
            queued=integer(data.get("queued")) or 0,
            rate=number(data.get("rate")),
            p50_latency_us=number(data.get("p50_latency_us")),
        )


@dataclass(frozen=True)
class PortRates:
    """One node's per-port rates over the last interval (the ``rates`` of a ``dataflow`` message).

    Example:
        >>> PortRates.from_json({"inputs": {"frame": 29.5}, "outputs": {}, "bytes_out": {}}).inputs
        {'frame': 29.5}
    """

    inputs: Mapping[str, float] = field(default_factory=dict)
    outputs: Mapping[str, float] = field(default_factory=dict)
    bytes_out: Mapping[str, float] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PortRates:
        """Read one node's ``{"inputs", "outputs", "bytes_out"}``."""

        def rates(key: str) -> dict[str, float]:
            found = _mapping(data.get(key))
            return {name: value for name, v in found.items() if (value := number(v)) is not None}

        return cls(rates("inputs"), rates("outputs"), rates("bytes_out"))


@dataclass(frozen=True)
class LogLine:
    """One log record (a ``log`` message's ``record``).

    Example:
        >>> line = LogLine.from_json({"timestamp": "2026-01-02T03:04:05.678901Z", "level": "warning",
        ...                           "node": "camera", "message": "slow"})
        >>> line.level, line.clock, line.node
        ('WARN', '03:04:05.678', 'camera')
    """

    timestamp: str
    level: str
    node: str | None
    message: str
    source: str = "log"

    @property
    def origin(self) -> str:
        """Who wrote it: the node, or ``runtime`` for Doradus's own records."""
        return self.node or RUNTIME

    @property
    def clock(self) -> str:
        """The time of day to the millisecond (``03:04:05.678``), or the raw timestamp."""
        _, sep, rest = self.timestamp.partition("T")
        return rest[:12] if sep else self.timestamp

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LogLine:
        """Read a ``LogRecord`` object (an unknown level reads as INFO)."""
        from doradus._observability.records import normalize_level

        return cls(
            timestamp=str(data.get("timestamp", "")),
            level=normalize_level(str(data.get("level", "INFO"))) or "INFO",
            node=text(data.get("node")),
            message=str(data.get("message", "")),
            source=str(data.get("source", "log")),
        )
