"""A node's latest counters as the runtime keeps them: its ``stats`` report, with rates.

Every node sends a `doradus._wire.control.StatsMessage` each second and once more as it ends
(see `doradus._node.statistics`). The runtime keeps the latest as a frozen `NodeStats`: the
totals over the node's inputs and outputs, each input's counters with where it reads from,
and the input and output rates since the report before. `next_stats` makes one from the
previous: a report replaces its record, it never changes it, so a reader holding one needs
no lock.

Example:
    >>> from doradus._dataflow.model import NodeSpec
    >>> report = {"op": "stats", "time": 0.0, "inputs": {}, "outputs": {"out": {"sent": 10, "bytes": 80}},
    ...           "latency_p50_us": None, "latency_samples": 0, "errors": 0}
    >>> first = next_stats(NodeSpec(id="camera", kind="python"), report, None, now=100.0)
    >>> report["outputs"]["out"]["sent"] = 30
    >>> next_stats(NodeSpec(id="camera", kind="python"), report, first, now=102.0).output_rate
    10.0
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple, NotRequired, cast

from doradus._dataflow.model import NodeSource, NodeSpec
from doradus._observability.latency import LATENCY_BOUNDS_US
from doradus._wire.control import StatsMessage
from doradus._wire.node_reports import InputReport, OutputReport

RATE_SPAN = 0.05
"""Seconds two reports must be apart to measure a rate between them."""


class InputStats(InputReport):
    """One input's counters as its node reported them, with where it reads from.

    ``source`` is the input's source as written in the dataflow (``camera/image``,
    ``dora/timer/millis/100``); ``latency_bounds_us`` the upper bounds of the latency
    histogram's buckets (`doradus._observability.latency.LATENCY_BOUNDS_US`).

    Example:
        >>> entry: InputStats = {"received": 3, "dropped": 0, "queued": 1, "latency_buckets": [],
        ...                      "latency_sum_us": 0.0, "latency_count": 0, "source": "camera/image"}
        >>> entry["source"]
        'camera/image'
    """

    source: NotRequired[str]
    latency_bounds_us: NotRequired[list[int]]


class Counted(NamedTuple):
    """Messages a node had been delivered and sent in all at one moment: where its next rates start.

    Example:
        >>> Counted(at=12.5, received=40, sent=40).received
        40
    """

    at: float
    """`time.monotonic` when the report arrived."""
    received: int
    """Messages handed to the node (``delivered``; ``received`` from a node that does not say)."""
    sent: int


@dataclass(frozen=True)
class NodeStats:
    """A node's latest ``stats`` report, summed up, with the rates since the report before.

    Rates are messages per second handed to the node over all its inputs (``input_rate``:
    ``delivered``, so a paused node's falls to 0 while messages go on arriving) and sent
    on all its outputs (``output_rate``); None until two reports came far enough apart
    (`RATE_SPAN`). ``peer_restart_drops`` is what the node could not send to each receiver
    while that receiver restarted.

    Example:
        >>> NodeStats(None, None, 0, 0, None, 0, {}, {}, Counted(0.0, 0, 0)).errors
        0
    """

    input_rate: float | None
    output_rate: float | None
    dropped: int
    queued: int
    p50_latency_us: float | None
    errors: int
    inputs: dict[str, InputStats]
    outputs: dict[str, OutputReport]
    counted: Counted
    """The totals the next rates are measured from."""
    peer_restart_drops: dict[str, int] = field(default_factory=dict)
    processing_p50_us: float | None = None
    """The median time the node's code took with one input message (µs), when it measures it."""
    backpressure_timeouts: int = 0
    """Messages not sent to the node's backpressure inputs: their sender's wait for room timed out."""
    busy_ms: float = 0.0
    """How long the node's code had held its current input message at the report (0: waiting)."""

    def queued_of(self, input_id: str) -> int:
        """Messages waiting in one input's queue at the report.

        Example:
            >>> NodeStats(None, None, 0, 0, None, 0, {}, {}, Counted(0.0, 0, 0)).queued_of("x")
            0
        """
        found = self.inputs.get(input_id)
        return int(found.get("queued", 0)) if found is not None else 0


def next_stats(spec: NodeSpec, message: StatsMessage, before: NodeStats | None, now: float) -> NodeStats:
    """The record of a node's new ``stats`` report, its rates measured from ``before``.

    Args:
        spec: the node, to name each input's source.
        message: the report, read as it came (missing counters count as 0).
        before: the node's previous record, None for its first report.
        now: `time.monotonic` at the report's arrival.

    Example:
        >>> report = {"op": "stats", "time": 0.0, "inputs": {}, "outputs": {}, "latency_p50_us": 12.0,
        ...           "latency_samples": 3, "errors": 1}
        >>> stats = next_stats(NodeSpec(id="camera", kind="python"), report, None, now=5.0)
        >>> stats.p50_latency_us, stats.errors, stats.input_rate
        (12.0, 1, None)
    """
    inputs = {input_id: _input_stats(spec, input_id, report) for input_id, report in _inputs(message)}
    outputs = dict(message.get("outputs") or {})
    received = sum(int(v.get("delivered", v.get("received", 0))) for v in inputs.values())
    sent = sum(int(v.get("sent", 0)) for v in outputs.values())
    input_rate = output_rate = None
    counted = before.counted if before is not None else None
    if counted is not None and now - counted.at > RATE_SPAN:
        span = now - counted.at
        input_rate = round(max(0, received - counted.received) / span, 2)
        output_rate = round(max(0, sent - counted.sent) / span, 2)
    elif before is not None:  # two reports close together (e.g. the last, at exit)
        input_rate, output_rate = before.input_rate, before.output_rate
    if counted is None or now - counted.at > RATE_SPAN:
        counted = Counted(now, received, sent)
    return NodeStats(
        input_rate=input_rate,
        output_rate=output_rate,
        dropped=sum(int(v.get("dropped", 0)) for v in inputs.values()),
        backpressure_timeouts=sum(int(v.get("backpressure_timeouts", 0)) for v in inputs.values()),
        queued=sum(int(v.get("queued", 0)) for v in inputs.values()),
        p50_latency_us=message.get("latency_p50_us"),
        processing_p50_us=message.get("processing_p50_us"),
        errors=int(message.get("errors") or 0),
        inputs=inputs,
        outputs=outputs,
        counted=counted,
        peer_restart_drops=dict(message.get("peer_restart_drops") or {}),
        busy_ms=float(message.get("busy_ms") or 0.0),
    )


def _inputs(message: StatsMessage) -> list[tuple[str, InputReport]]:
    return list((message.get("inputs") or {}).items())


def _input_stats(spec: NodeSpec, input_id: str, report: InputReport) -> InputStats:
    # A copy of what the node sent, read as it came: the runtime only adds its own keys.
    entry = cast("InputStats", dict(report))
    inp = spec.inputs.get(input_id)
    if inp is not None:
        entry["source"] = inp.source.source if not isinstance(inp.source, NodeSource) else str(inp.source)
    if "latency_buckets" in entry:
        entry["latency_bounds_us"] = list(LATENCY_BOUNDS_US)
    return entry
