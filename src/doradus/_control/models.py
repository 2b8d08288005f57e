"""The coordinator's JSON shapes (``/api/v1``), shared by the server and the CLI.

Every field name here is part of the documented contract (``docs/cli.md``,
``docs/openapi.json``): add fields, never rename them.

Times are `UtcTime`: ISO 8601 UTC to the millisecond with ``Z`` in JSON
(``2026-12-04T13:07:44.862Z``), in keys ending in ``_at``; durations are
numbers of seconds in keys ending in ``_s`` (``uptime_s``).

Example:
    >>> StopRequest().grace_seconds
    5.0
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, PlainSerializer, WithJsonSchema

from doradus._dataflow.loader import MAX_DATAFLOW_BYTES
from doradus._observability.records import iso_timestamp


def _json_time(value: datetime) -> str:
    return iso_timestamp(value.timestamp(), timespec="milliseconds")


UtcTime = Annotated[
    AwareDatetime,
    PlainSerializer(_json_time, return_type=str, when_used="json"),
    # Without this, the serializer's plain `str` would drop `format: date-time` from the schema.
    WithJsonSchema({"type": "string", "format": "date-time", "examples": ["2026-12-04T13:07:44.862Z"]}),
]
"""A moment: an aware `datetime` in Python, ``2026-12-04T13:07:44.862Z`` in JSON."""

DataflowStatus = Literal["running", "finished", "failed", "stopped"]
NodeState = Literal["pending", "running", "paused", "restarting", "finished", "failed", "stopped", "lost"]
"""A node's state: ``paused`` runs with its input messages held (it is up), ``restarting`` is
between its stopped process and the new one (docs/steering.md)."""
NodeActionName = Literal["pause", "resume", "stop", "restart"]
"""What ``doradus node`` (and ``POST .../nodes/{node}/...``) asks of a running node."""
LevelName = Literal["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"]
"""A record level, as `doradus._observability.records.LEVELS` lists them (a test pins the two)."""
DaemonStatus = Literal["connected", "lost", "disconnected", "reconnecting"]


class Health(BaseModel):
    """``GET /api/v1/health``."""

    status: Literal["ok"] = "ok"
    version: str
    pid: int
    daemons: int
    dataflows: int


class DaemonInfo(BaseModel):
    """One connected daemon (one per machine)."""

    machine_id: str
    hostname: str
    pid: int
    connected_at: UtcTime
    last_heartbeat_at: UtcTime
    last_seen_at: UtcTime = Field(description="When the last message from this daemon arrived.")
    status: DaemonStatus = Field(
        default="connected",
        description="connected; lost (no heartbeat for 2 intervals, or the connection dropped); "
        "disconnected (left after a shutdown); reconnecting (it ran dataflows when this coordinator "
        "restarted, and has not registered again yet).",
    )


class InputStats(BaseModel):
    """One input of a node: what arrived on it, what was dropped, and its latency histogram.

    ``latency_buckets`` counts messages per bucket (not cumulative): bucket
    ``i`` holds latencies at most ``latency_bounds_us[i]`` and above the
    previous bound; the last bucket holds the rest (``+Inf``).
    """

    source: str | None = Field(default=None, description="`node/output`, or the timer/logs source.")
    received: int = Field(default=0, description="Messages that arrived (dropped ones included).")
    delivered: int = Field(
        default=0,
        description="Messages handed to the node (none while it is paused): what `input_rate` counts.",
    )
    dropped: int = Field(default=0, description="Messages its full queue dropped (the oldest first).")
    backpressure_timeouts: int = Field(
        default=0,
        description="With `queue_policy: backpressure`: messages its sender did not send because its "
        "wait for room timed out (`backpressure_timeout`).",
    )
    queued: int = 0
    latency_bounds_us: list[float] = Field(default_factory=list)
    latency_buckets: list[int] = Field(default_factory=list)
    latency_sum_us: float = 0.0
    latency_count: int = 0


class OutputStats(BaseModel):
    """One output of a node: messages and payload bytes sent."""

    sent: int = 0
    bytes: int = 0


class NodeStatus(BaseModel):
    """One node of a dataflow, as ``status`` shows it. Metrics not measured yet are null.

    Rates are messages per second over the node's last report interval (1 s):
    ``input_rate`` counts the messages handed to the node, summed over its inputs
    (``delivered``: it falls to 0 while the node is paused, though messages go on
    arriving, queued and dropped), ``output_rate`` those it sent, summed over its outputs.
    ``restarts`` counts its restarts in this run; ``restart_dropped`` the messages its
    senders could not deliver to it while it restarted.
    ``p50_latency_us`` is the median one-way latency (receive time minus the
    sender's timestamp) of the node's last 256 received messages.
    """

    state: NodeState = "pending"
    reason: str | None = Field(
        default=None,
        description="Why the node is in its state, when that needs saying: not ready N s after it "
        "started, not reading its inputs (busy with one message while an input queue is full), or "
        "why the watchdog ended it (`startup_timeout`, `health_check_timeout`, `finish_grace_secs`).",
    )
    pid: int | None = None
    cpu_percent: float | None = None
    memory_bytes: int | None = None
    exit_code: int | None = None
    restarts: int = 0
    restart_dropped: int | None = None
    errors: int | None = None
    input_rate: float | None = None
    output_rate: float | None = None
    latency_p50_ms: float | None = Field(
        default=None, description="p50_latency_us / 1000 (kept for compatibility)."
    )
    p50_latency_us: float | None = None
    processing_p50_us: float | None = Field(
        default=None,
        description="Median time the node's code took with one input message, µs: from the event "
        "handed out to the node's next request for one (its last 256 messages).",
    )
    dropped: int | None = None
    backpressure_timeouts: int | None = Field(
        default=None, description="Summed over its inputs: messages their senders gave up waiting to send."
    )
    queued: int | None = None
    inputs: dict[str, InputStats] = Field(default_factory=dict, description="Per input (edge) counters.")
    outputs: dict[str, OutputStats] = Field(default_factory=dict, description="Per output counters.")
    data_formats: dict[str, str] = Field(
        default_factory=dict,
        description="Each output's data format as the node runs now (`arrow`, `avro (reading.avsc)`): "
        "`doradus node set --data-format` changes it.",
    )


class _DataflowBase(BaseModel):
    name: str
    id: str
    status: DataflowStatus
    machine: str
    path: str
    started_at: UtcTime
    finished_at: UtcTime | None = None
    uptime_s: float = Field(
        ge=0, description="Seconds it has run: until now while running, else until finished_at."
    )
    reason: str | None = Field(default=None, description="Why it failed, when known.")
    external: bool = Field(default=False, description="Registered by `doradus run`, not started here.")
    stop_requested: bool = Field(
        default=False, description="`stop` was asked; a `doradus run` learns it with its next report."
    )
    machines: list[str] = Field(default_factory=list, description="Every machine running a part of it.")
    paused: bool = Field(
        default=False, description="It runs with every live node paused (its status stays `running`)."
    )
    node_actions: list[NodeAction] = Field(
        default_factory=list,
        description="For a dataflow run by `doradus run`: the node actions asked of it (the latest "
        "32), which it learns with its next report and takes in order of `seq`.",
    )


class SchemaRef(BaseModel):
    """A schema written as a mapping: ``{file, type}`` (``file`` relative to the dataflow's folder)."""

    model_config = ConfigDict(extra="forbid")

    file: str = Field(min_length=1, max_length=4096)
    type: str | None = Field(default=None, max_length=256)


_DATA_FORMAT = Field(
    default=None,
    min_length=1,
    max_length=64,
    description="The node's outputs' new data format (`arrow`, `avro`, `capnp`, `flatbuffers`, or a "
    "registered one); outputs listed under its `output_formats` keep theirs.",
)
SchemaText = Annotated[str, Field(min_length=1, max_length=4096)]
"""A schema written as text: ``file[:Type]``."""
_SCHEMA = Field(
    default=None,
    alias="schema",
    description="Its schema as a dataflow file writes it: `file[:Type]` or `{file, type}`, relative to "
    "the dataflow file's folder. With `data_format`: none given means none.",
)


class NodeAction(BaseModel):
    """One node action asked of a dataflow (``node`` null: every node of it)."""

    model_config = ConfigDict(populate_by_name=True)

    seq: int = Field(ge=1, description="Its number in the dataflow's actions, from 1.")
    action: NodeActionName
    node: str | None = None
    env: dict[str, str] | None = None
    args: str | None = None
    grace_seconds: float = 5.0
    data_format: str | None = _DATA_FORMAT
    schema_: SchemaText | SchemaRef | None = _SCHEMA


class NodeStopRequest(BaseModel):
    """``POST .../nodes/{node}/stop``: end the node for good while the dataflow runs on.

    The node gets ``Stop``, SIGTERM after ``grace_seconds``, SIGKILL 2 s later; the nodes
    reading its outputs see those inputs close.
    """

    grace_seconds: float = Field(default=5.0, ge=0, le=3600, description="Seconds between Stop and SIGTERM.")


class NodeRestartRequest(BaseModel):
    """``POST .../nodes/{node}/restart``: stop the node and start it again, its edges kept.

    A configuration change is a restart with new values: ``env`` is merged over the node's
    dataflow values (and the run's), ``args`` replaces its arguments (shell-quoted),
    ``data_format`` and ``schema`` set its outputs' format (checked first as ``doradus check``
    would: 422 with the checker's message and fix when refused).
    """

    model_config = ConfigDict(populate_by_name=True)

    env: dict[str, str] | None = None
    args: str | None = Field(default=None, max_length=65536)
    grace_seconds: float = Field(default=5.0, ge=0, le=3600)
    data_format: str | None = _DATA_FORMAT
    schema_: SchemaText | SchemaRef | None = _SCHEMA

    def schema_value(self) -> str | dict[str, str] | None:
        """``schema`` as a dataflow file writes it (a mapping without its null ``type``).

        Example:
            >>> NodeRestartRequest.model_validate({"schema": {"file": "r.capnp"}}).schema_value()
            {'file': 'r.capnp'}
        """
        if isinstance(self.schema_, SchemaRef):
            return {k: v for k, v in self.schema_.model_dump().items() if v is not None}
        return self.schema_


class NodeActionAccepted(BaseModel):
    """A node action accepted: the dataflow's daemons (or its `doradus run`) carry it out."""

    accepted: bool = True
    message: str
    dataflow: str
    id: str
    action: NodeActionName
    nodes: list[str] = Field(description="The nodes it applies to.")


class DataflowSummary(_DataflowBase):
    """One dataflow as ``list`` shows it; ``nodes`` is the node count."""

    nodes: int


class DataflowDetail(_DataflowBase):
    """One dataflow with its nodes keyed by node id (``status NAME``)."""

    nodes: dict[str, NodeStatus] = Field(default_factory=dict)


class StartRequest(BaseModel):
    """``POST /api/v1/dataflows``: a dataflow file's text, and where the file lives.

    The coordinator never opens ``path``: it names the file in messages, and the
    daemons run the nodes from its folder (relative node paths start there). A
    request without ``text`` (clients before the text was sent) is refused with
    422: the coordinator does not read files a client names.
    """

    path: str = Field(
        min_length=1,
        max_length=4096,
        description="The dataflow file's absolute path on the daemons' machines: its folder is where "
        "relative node paths start and nodes run; never read by the coordinator.",
    )
    text: str | None = Field(
        default=None,
        max_length=MAX_DATAFLOW_BYTES,
        description="The dataflow file's text, at most 1 MiB. Required: a request without it is refused "
        "with 422.",
    )
    name: str | None = None
    env: dict[str, str] = Field(default_factory=dict)
    log_level: LevelName | None = Field(
        default=None,
        description="Minimum level of the records kept; null: DORADUS_LOG_LEVEL of the dataflow's env, "
        "else INFO.",
    )


class LogRecord(BaseModel):
    """One structured log record (see ``doradus._observability.records``).

    A node's log call or output line, or the runtime's own news (``source: runtime``,
    ``node`` null or the node it is about).
    """

    timestamp: str = Field(description="ISO 8601 UTC with microseconds and Z.")
    level: LevelName = "INFO"
    dataflow: str | None = None
    run_id: str | None = None
    node: str | None = None
    machine: str | None = None
    message: str = ""
    trace_id: str | None = None
    span_id: str | None = None
    source: Literal["log", "stdout", "stderr", "runtime"] = "log"
    fields: dict[str, Any] = Field(default_factory=dict)


class RestartRequest(BaseModel):
    """``POST /api/v1/dataflows/{name_or_id}/restart``: stop it, then start its file again."""

    grace_seconds: float = 5.0


class CleanRequest(BaseModel):
    """``POST /api/v1/dataflows/clean``: forget ended dataflows (finished longer ago than ``older_than``)."""

    older_than: float | None = Field(default=None, ge=0, description="Seconds; null: every ended one.")


class CleanResult(BaseModel):
    """How many ended dataflows ``clean`` removed, and their ids."""

    removed: int
    ids: list[str]


class ExternalDataflow(BaseModel):
    """``POST /api/v1/dataflows/external``: a dataflow `doradus run` runs itself, registered to be seen."""

    name: str = Field(min_length=1, max_length=256)
    id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
    nodes: list[str] = Field(max_length=100_000)
    machine: str = Field(min_length=1, max_length=256)
    path: str = Field(min_length=1, max_length=4096)


class ExternalReport(BaseModel):
    """``POST /api/v1/dataflows/{name_or_id}/report``: news of an external dataflow.

    ``nodes`` maps node ids to the `NodeStatus` fields that changed.
    """

    status: DataflowStatus | None = None
    reason: str | None = None
    nodes: dict[str, dict[str, Any]] = Field(default_factory=dict)
    logs: list[LogRecord] = Field(default_factory=list)


class StopRequest(BaseModel):
    """``POST /api/v1/dataflows/{name_or_id}/stop``."""

    grace_seconds: float = Field(default=5.0, ge=0, le=3600, description="Seconds between Stop and SIGTERM.")
    force: bool = False


class ErrorBody(BaseModel):
    """The ``detail`` of every error response: what failed and how to fix it."""

    error: str
    fix: str | None = None


class ErrorResponse(BaseModel):
    """An error response (404, 409, 503): ``{"detail": {"error": ..., "fix": ...}}``."""

    detail: ErrorBody


class InvalidRequest(BaseModel):
    """A refused request (400, 422): ``detail`` is an `ErrorBody`, a list of wrong fields or a sentence.

    The list (of ``loc``, ``msg``, ``type``) answers a parameter or body of the wrong shape
    (422), the sentence a body that is not JSON at all (400).
    """

    detail: ErrorBody | list[dict[str, Any]] | str


class Accepted(BaseModel):
    """A request that was accepted and completes in the background."""

    accepted: bool = True
    message: str


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": InvalidRequest},
    404: {"model": ErrorResponse},
    409: {"model": ErrorResponse},
    422: {"model": InvalidRequest},
    503: {"model": ErrorResponse},
}
"""The error answers the API's routes document (FastAPI's ``responses``)."""
