"""What a node reports to its daemon: its log records, and its counters per input and output.

A node's `LogRecord` travels in a ``log`` message; its daemon completes it into a
`RunLogRecord` (the records of the run, which ``logs`` inputs read). Each second a ``stats``
message (`doradus._wire.control.StatsMessage`) carries an `InputReport` per input and an
`OutputReport` per output.

Example:
    >>> report: OutputReport = {"sent": 4, "bytes": 32}
    >>> report["bytes"] // report["sent"]
    8
"""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict


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

    ``received`` counts arrivals, ``delivered`` the messages handed to the node (not while it
    is paused), ``dropped`` those its full queue dropped, ``queued`` those waiting now;
    ``backpressure_timeouts`` the messages a sender did not send because its wait for room in
    this ``queue_policy: backpressure`` input timed out (``backpressure_timeout``); ``shed`` the
    part of ``dropped`` its sender dropped because the node held more of its shared memory than
    the sender's ``shared_memory_pool_size``.

    ``latency_buckets`` counts one-way latencies per bucket of
    `doradus._observability.latency.LATENCY_BOUNDS_US` (one more bucket for the rest).

    Example:
        >>> report: InputReport = {
        ...     "received": 3, "delivered": 2, "dropped": 0, "queued": 1,
        ...     "latency_buckets": [3] + [0] * 17, "latency_sum_us": 40.0, "latency_count": 3,
        ... }
        >>> report["latency_sum_us"] / report["latency_count"] < 25
        True
    """

    received: int
    delivered: NotRequired[int]
    dropped: int
    shed: NotRequired[int]
    backpressure_timeouts: NotRequired[int]
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
