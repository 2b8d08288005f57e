"""The API's shapes for one node: what ``node list|info`` show (`NodeInfo`) and its parameters.

Like `doradus._control.models` (whose conventions they follow: add fields, never rename them),
they are part of the documented contract (``docs/cli.md``, ``docs/openapi.json``).

Example:
    >>> NodeParam(dataflow="demo", id="01a2", node="camera", key="exposure", value=0.02).value
    0.02
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, JsonValue

from doradus._control.models import InputStats, NodeState, OutputStats

MAX_KEY_BYTES = 256
"""The longest parameter key, in bytes of UTF-8 (as dora-rs)."""
MAX_VALUE_BYTES = 64 * 1024
"""The largest parameter value, in bytes of its JSON (as dora-rs)."""
MAX_PARAMS = 256
"""The most parameters one node may have."""


def check_key(key: str) -> str | None:
    """Why ``key`` cannot name a parameter (None: it can): 1 to 256 bytes of printable text, no ``/``.

    Example:
        >>> check_key("roi.x"), check_key("roi/x")
        (None, 'a parameter key cannot hold `/`: write `roi.x`')
    """
    if "/" in key:
        return f"a parameter key cannot hold `/`: write `{key.replace('/', '.')}`"
    if not key or len(key.encode()) > MAX_KEY_BYTES or not key.isprintable():
        return f"a parameter key is 1 to {MAX_KEY_BYTES} bytes of printable text"
    return None


class InputInfo(InputStats):
    """One input of a node, as ``node info`` shows it: its counters, its queue, its rate and latency."""

    queue_size: int | None = Field(
        default=None, description="Its queue's bound, in messages (null: the coordinator has no text)."
    )
    queue_policy: Literal["drop_oldest", "backpressure"] | None = None
    input_timeout_s: float | None = Field(default=None, description="Its `input_timeout`, when it has one.")
    rate: float | None = Field(
        default=None,
        description="Messages per second arriving over `NodeInfo.rate_window_s`; null until the node "
        "has reported twice.",
    )
    p50_latency_us: float | None = Field(
        default=None,
        description="Median one-way latency (µs) of the messages of the rate window, or of every "
        "message when none arrived in it.",
    )


class OutputInfo(OutputStats):
    """One output of a node, as ``node info`` shows it: counters, rate, data format, backends, readers."""

    rate: float | None = Field(default=None, description="Messages per second sent over the rate window.")
    bytes_rate: float | None = Field(default=None, description="Payload bytes per second over the window.")
    data_format: str | None = Field(default=None, description="Its data format (`arrow`, `avro (r.avsc)`).")
    backends: list[str] = Field(
        default_factory=list, description="The backends carrying it to its readers (`shm`, `zenoh`, ...)."
    )
    receivers: list[str] = Field(default_factory=list, description="The inputs reading it (`node/input`).")


class NodeInfo(BaseModel):
    """One node of a dataflow with everything the coordinator knows of it (``doradus node info``).

    The state and metrics are the node's `doradus._control.models.NodeStatus` (null: not measured
    yet); ``kind``, ``path``, the inputs' queues and the outputs' backends come from the dataflow's
    text (null for a dataflow ``doradus run`` registered: the coordinator has no text).
    """

    node: str
    dataflow: str = Field(description="The dataflow's name.")
    dataflow_id: str
    machine: str = Field(description="The machine (daemon) running it.")
    kind: str | None = Field(
        default=None, description="`python`, `executable`, `operator`, `dynamic` or `shell`, from its `path`."
    )
    path: str | None = Field(default=None, description="Its `path` as the dataflow file writes it.")
    state: NodeState = "pending"
    reason: str | None = None
    pid: int | None = None
    exit_code: int | None = None
    restarts: int = 0
    restart_dropped: int | None = None
    cpu_percent: float | None = None
    memory_bytes: int | None = None
    input_rate: float | None = None
    output_rate: float | None = None
    p50_latency_us: float | None = None
    processing_p50_us: float | None = None
    errors: int | None = None
    dropped: int | None = None
    backpressure_timeouts: int | None = None
    queued: int | None = None
    inputs: dict[str, InputInfo] = Field(default_factory=dict)
    outputs: dict[str, OutputInfo] = Field(default_factory=dict)
    rate_window_s: float = Field(description="Seconds the inputs' and outputs' rates span.")
    parameters: dict[str, JsonValue] = Field(
        default_factory=dict, description="Its parameters (`doradus param`): key → JSON value."
    )


class ParamValue(BaseModel):
    """``PUT .../nodes/{node}/params/{key}``: the parameter's new value, any JSON value."""

    value: JsonValue = Field(description=f"Any JSON value, at most {MAX_VALUE_BYTES} bytes as JSON.")


class NodeParams(BaseModel):
    """``GET .../nodes/{node}/params``: every parameter of a node."""

    dataflow: str
    id: str = Field(description="The dataflow's id.")
    node: str
    params: dict[str, JsonValue] = Field(description="Key → JSON value.")


class NodeParam(BaseModel):
    """One parameter of a node."""

    dataflow: str
    id: str = Field(description="The dataflow's id.")
    node: str
    key: str
    value: JsonValue = Field(description="Its value (after a delete: the value it had).")


class ParamChanged(NodeParam):
    """A parameter set or deleted: stored by the coordinator, and sent on to the node's daemon."""

    action: Literal["set", "delete"]
    message: str
    forwarded: bool = Field(
        description="Sent to the daemon running the node, which tells the node (false: its daemon "
        "is not connected; it gets the node's parameters when it connects again)."
    )
