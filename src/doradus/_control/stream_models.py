"""The messages of the coordinator's live stream (``/api/v1/stream``), and their JSON Schema.

Every message is a JSON object with ``type`` and ``time`` (when the coordinator made it,
ISO 8601 UTC to the millisecond, ``...Z``). The server sends `Hello`, `DataflowsUpdate`,
`DataflowUpdate`, `StateChange`, `NodeStateChange`, `LogMessage`, `Dropped` and
`StreamError` (`ServerMessage`); a client may send `Subscribe`. As with the HTTP models
(`doradus._control.models`), field names are a contract: add fields, never rename them.

``docs/stream-schema.json`` is `schema_text` committed; regenerate it with
``python -m doradus._control.stream_models > docs/stream-schema.json`` (a test checks it is
current). ``docs/stream.md`` describes the stream.

Example:
    >>> Dropped(logs=3).model_dump(mode="json")["type"]
    'dropped'
    >>> sorted(stream_schema()["$defs"]["ServerMessage"]["discriminator"]["mapping"])[:3]
    ['dataflow', 'dataflows', 'dropped']
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from doradus._control.models import (
    DataflowStatus,
    DataflowSummary,
    LevelName,
    LogRecord,
    NodeState,
    NodeStatus,
    UtcTime,
)
from doradus._control.state import moment

STREAM_PATH = "/api/v1/stream"
MIN_INTERVAL = 0.1
MAX_INTERVAL = 60.0
DEFAULT_INTERVAL = 1.0
MAX_TAIL = 1000
"""The most records a ``tail`` asks for: what a client's log queue holds."""


def _now() -> datetime:
    return moment(time.time())


_SENT = ConfigDict(json_schema_serialization_defaults_required=True)
"""Fields with defaults are always sent: the schema marks them required."""


class _Message(BaseModel):
    model_config = _SENT

    time: UtcTime = Field(default_factory=_now, description="When the coordinator made the message.")


class Subscription(BaseModel):
    """What a client is subscribed to, as `Hello` confirms it."""

    model_config = _SENT

    dataflow: str | None = Field(description="The subscribed dataflow's id (resolved), or null: none.")
    name: str | None = Field(default=None, description="That dataflow's name.")
    node: list[str] = Field(
        default_factory=list, description="Only these nodes' log records; empty: every node's."
    )
    level: LevelName = Field(default="INFO", description="The lowest level of the log records sent.")
    logs: bool = Field(default=True, description="Whether log records are sent at all.")


class Hello(_Message):
    """First on every connection, and again after each accepted `Subscribe`."""

    type: Literal["hello"] = "hello"
    version: str = Field(description="The coordinator's Doradus version.")
    interval: float = Field(description="Seconds between periodic updates.")
    subscription: Subscription


class DataflowsUpdate(_Message):
    """Every interval: every dataflow the coordinator knows (what ``GET /api/v1/dataflows`` returns)."""

    type: Literal["dataflows"] = "dataflows"
    dataflows: list[DataflowSummary]


class Edge(BaseModel):
    """One edge of a dataflow: a node's output feeding another node's input, with its counters.

    Counters are the receiving input's (`doradus._control.models.InputStats`). ``backend`` and
    ``data_format`` are read from the dataflow's text (null for a run ``doradus run``
    registered, whose text the coordinator does not have, or while it is being read).
    """

    model_config = _SENT

    source: str = Field(description="`node/output`.", examples=["camera/image"])
    target: str = Field(description="`node/input`.", examples=["detector/image"])
    backend: str | None = Field(default=None, description="The backend carrying it (`shm`, `tcp`, ...).")
    data_format: str | None = Field(default=None, description="Its data format (`arrow`, `capnp`, ...).")
    received: int = 0
    dropped: int = 0
    queued: int = 0
    rate: float | None = Field(
        default=None,
        description="Messages per second arriving over the rate window (`DataflowUpdate.rate_window_s`); "
        "null until the receiving node has reported twice.",
    )
    p50_latency_us: float | None = Field(
        default=None,
        description="Median one-way latency (µs) from the input's latency histogram: of the messages "
        "of the rate window, or of every message when none arrived in it; null before any arrived.",
    )


class NodeRates(BaseModel):
    """One node's rates over the rate window, per input and per output (null: not measured yet)."""

    model_config = _SENT

    inputs: dict[str, float | None] = Field(default_factory=dict, description="Input → messages/s.")
    outputs: dict[str, float | None] = Field(default_factory=dict, description="Output → messages/s.")
    bytes_out: dict[str, float | None] = Field(default_factory=dict, description="Output → payload bytes/s.")


class DataflowUpdate(_Message):
    """Every interval while a dataflow is subscribed: it, its nodes, its edges and their rates."""

    type: Literal["dataflow"] = "dataflow"
    dataflow: DataflowSummary
    nodes: dict[str, NodeStatus] = Field(description="Node id → its state and metrics.")
    edges: list[Edge]
    rates: dict[str, NodeRates] = Field(description="Node id → its rates.")
    rate_window_s: float = Field(
        description="Seconds the rates span: the interval, but at least two of the nodes' reports "
        "(they report once a second)."
    )


class StateChange(_Message):
    """A dataflow's status changed (any dataflow, subscribed or not): sent as it happens."""

    type: Literal["state"] = "state"
    dataflow: str = Field(description="The dataflow's id.")
    name: str
    status: DataflowStatus
    previous: DataflowStatus | None = Field(description="Its status before; null for a new dataflow.")
    reason: str | None = None


class NodeStateChange(_Message):
    """A node of the subscribed dataflow changed state: sent as it happens."""

    type: Literal["node_state"] = "node_state"
    dataflow: str = Field(description="The dataflow's id.")
    node: str
    state: NodeState
    previous: NodeState | None = Field(description="Its state before.")
    reason: str | None = Field(default=None, description="Why, when known: `exit code 1`, `daemon lost`.")


class LogMessage(_Message):
    """One log record of the subscribed dataflow, at or above the subscribed level, as it arrives."""

    type: Literal["log"] = "log"
    record: LogRecord


class Dropped(_Message):
    """The client read too slowly: this many log messages were dropped (the oldest first)."""

    type: Literal["dropped"] = "dropped"
    logs: int = Field(ge=1)


class StreamError(_Message):
    """A `Subscribe` was refused (the old subscription goes on), or the subscribed dataflow is gone."""

    type: Literal["error"] = "error"
    error: str
    fix: str | None = None


ServerMessage = Annotated[
    Hello
    | DataflowsUpdate
    | DataflowUpdate
    | StateChange
    | NodeStateChange
    | LogMessage
    | Dropped
    | StreamError,
    Field(discriminator="type"),
]
"""Any message the coordinator sends on the stream."""


class Subscribe(BaseModel):
    """Client → coordinator: change the subscription (the same names as the URL's query parameters).

    Keys left out keep their current value; ``"dataflow": null`` unsubscribes from the
    dataflow. At connect, the query parameters are read with this model too (left out:
    the defaults).

    Example:
        >>> Subscribe.model_validate({"type": "subscribe", "interval": "0.5"}).interval
        0.5
    """

    model_config = ConfigDict(extra="forbid")

    type: Literal["subscribe"] = "subscribe"
    dataflow: str | None = Field(default=None, description="A dataflow's name, id or id prefix; null: none.")
    node: list[str] | None = Field(default=None, description="Only these nodes' log records.")
    level: str | None = Field(
        default=None, description="Lowest log level: TRACE, DEBUG, INFO, WARN, ERROR or FATAL (any case)."
    )
    logs: bool | None = Field(default=None, description="Whether to send log records.")
    interval: float | None = Field(
        default=None, ge=MIN_INTERVAL, le=MAX_INTERVAL, description="Seconds between periodic updates."
    )
    tail: int = Field(
        default=0, ge=0, le=MAX_TAIL, description="Send the last N matching records of the dataflow first."
    )


SUBSCRIBE_FIXES = {
    "type": 'send {"type": "subscribe", ...}',
    "dataflow": "give a dataflow's name, id or id prefix (see `doradus list`), or null",
    "node": "give a list of node ids",
    "level": "give TRACE, DEBUG, INFO, WARN, ERROR or FATAL",
    "logs": "give true or false",
    "interval": f"give seconds between {MIN_INTERVAL:g} and {MAX_INTERVAL:g}",
    "tail": f"give a count from 0 to {MAX_TAIL}",
}
"""The fix an `error` (or a 4422 close) gives for a bad value of each subscription key."""


def stream_schema() -> dict[str, Any]:
    """The JSON Schema of every stream message: ``ServerMessage`` and ``Subscribe`` under ``$defs``.

    Example:
        >>> schema = stream_schema()
        >>> schema["$defs"]["Subscribe"]["properties"]["interval"]["anyOf"][0]["maximum"]
        60.0
    """
    template = "#/$defs/{model}"
    server = TypeAdapter(ServerMessage).json_schema(mode="serialization", ref_template=template)
    client = TypeAdapter(Subscribe).json_schema(mode="validation", ref_template=template)
    defs: dict[str, Any] = {**server.pop("$defs"), **client.pop("$defs", {})}
    defs["ServerMessage"] = {
        "description": "A message the coordinator sends: JSON text frames, one object each.",
        **server,
    }
    defs["Subscribe"] = client
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Doradus coordinator stream",
        "description": f"The messages of the WebSocket {STREAM_PATH} (docs/stream.md): the server sends "
        "ServerMessage objects, a client may send Subscribe objects.",
        "oneOf": [{"$ref": "#/$defs/ServerMessage"}, {"$ref": "#/$defs/Subscribe"}],
        "$defs": dict(sorted(defs.items())),
    }


def schema_text() -> str:
    """`stream_schema` as committed in ``docs/stream-schema.json``.

    Example:
        >>> json.loads(schema_text())["title"]
        'Doradus coordinator stream'
    """
    return json.dumps(stream_schema(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    print(schema_text(), end="")
