"""The validated, normalised form of a dataflow file.

`doradus._dataflow.loader.load_dataflow` turns a YAML file into these frozen records;
everything after loading (the runner, the nodes, the CLI) reads only these.

Example:
    >>> spec = TimerSource(source="dora/timer/millis/20", interval_ns=20_000_000)
    >>> spec.interval_ns
    20000000
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

NodeKind = Literal["python", "executable", "dynamic", "operator", "shell"]
QueuePolicy = Literal["drop_oldest", "backpressure"]
RestartPolicy = Literal["never", "on-failure", "always"]

DEFAULT_QUEUE_SIZE = 10
DEFAULT_BACKPRESSURE_TIMEOUT = 5.0
"""Seconds a sender waits for room in a ``queue_policy: backpressure`` input, then drops (counted)."""


@dataclass(frozen=True)
class Location:
    """A place in a dataflow file (1-based line and column).

    Example:
        >>> str(Location(Path("df.yml"), 3, 7))
        'df.yml:3:7'
    """

    file: Path
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True)
class TimerSource:
    """A timer input: ticks generated inside the receiving node.

    Example:
        >>> TimerSource(source="dora/timer/hz/50", interval_ns=20_000_000).interval_ns
        20000000
    """

    source: str
    interval_ns: int


@dataclass(frozen=True)
class NodeSource:
    """An input fed by another node's output.

    ``output`` may contain a ``/`` for operator outputs (``op/out`` of an
    ``operators:`` node).

    Example:
        >>> str(NodeSource(node="camera", output="frame"))
        'camera/frame'
    """

    node: str
    output: str

    def __str__(self) -> str:
        return f"{self.node}/{self.output}"


@dataclass(frozen=True)
class LogSource:
    """An input carrying log records (``dora/logs[/<level>[/<node>]]``).

    Example:
        >>> LogSource(source="dora/logs/info", level="info", node=None).level
        'info'
    """

    source: str
    level: str | None
    node: str | None


InputSource = TimerSource | NodeSource | LogSource


@dataclass(frozen=True)
class InputSpec:
    """One input of a node.

    Example:
        >>> spec = InputSpec("tick", TimerSource("dora/timer/millis/5", 5_000_000))
        >>> spec.queue_size
        10
    """

    id: str
    source: InputSource
    queue_size: int = DEFAULT_QUEUE_SIZE
    queue_policy: QueuePolicy = "drop_oldest"
    input_timeout: float | None = None
    backpressure_timeout: float = DEFAULT_BACKPRESSURE_TIMEOUT
    """With ``queue_policy: backpressure``: how long a sender waits for room before it drops."""


@dataclass(frozen=True)
class OperatorSpec:
    """A Python operator hosted by a runtime node.

    ``id`` is None for the single ``operator:`` form; inputs and outputs are
    the operator's own (not prefixed).

    Example:
        >>> OperatorSpec(id=None, python=Path("op.py")).outputs
        ()
    """

    id: str | None
    python: Path
    inputs: dict[str, InputSpec] = field(default_factory=dict)
    outputs: tuple[str, ...] = ()
    name: str | None = None
    description: str | None = None
    send_stdout_as: str | None = None
    """The operator output that carries its stdout lines, if any."""


@dataclass(frozen=True)
class NodeSpec:
    """One node of a dataflow, normalised.

    For operator nodes, ``inputs`` and ``outputs`` hold the node-level view:
    with ``operators:`` each id is prefixed ``<operator-id>/``; with
    ``operator:`` they are the operator's own ids.

    Example:
        >>> node = NodeSpec(id="a", kind="dynamic")
        >>> node.outputs
        ()
    """

    id: str
    kind: NodeKind
    path: str | None = None
    """The path as written in the file."""
    executable: str | None = None
    """Resolved absolute file, or command name for console scripts on PATH."""
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    """Node env merged over the dataflow's global env, values as strings."""
    build: tuple[str, ...] = ()
    """Build commands, one per line; for operator nodes the node's own, then each operator's."""
    inputs: dict[str, InputSpec] = field(default_factory=dict)
    outputs: tuple[str, ...] = ()
    operators: tuple[OperatorSpec, ...] = ()
    name: str | None = None
    description: str | None = None
    restart_policy: RestartPolicy = "never"
    max_restarts: int = 0
    restart_delay: float | None = None
    max_restart_delay: float | None = None
    restart_window: float | None = None
    health_check_timeout: float | None = None
    finish_grace_secs: float | None = None
    startup_timeout: float | None = None
    shared_memory_pool_size: int | None = None
    cpu_affinity: tuple[int, ...] = ()
    machine: str | None = None
    data_format: str | None = None
    output_formats: dict[str, Any] = field(default_factory=dict)
    """Output id → its `doradus.codecs.FormatSpec` (every output; Arrow unless declared)."""
    input_formats: dict[str, Any] = field(default_factory=dict)
    """Node-fed input id → the `FormatSpec` it decodes with (its source's, plus an Avro reader schema)."""
    communication: Any = None
    location: Location | None = None
    raw: dict[str, Any] = field(default_factory=dict)
    """The node's mapping as written (after YAML parsing)."""
    send_stdout_as: str | None = None
    """The output (node-level id) that carries the node's stdout lines, if any."""


@dataclass(frozen=True)
class Dataflow:
    """A whole dataflow.

    Example:
        >>> df = Dataflow(path=Path("/tmp/df.yml"), nodes=())
        >>> df.working_dir
        PosixPath('/tmp')
    """

    path: Path
    nodes: tuple[NodeSpec, ...]
    env: dict[str, str] = field(default_factory=dict)
    communication: dict[str, Any] = field(default_factory=dict)
    default_data_format: str | None = None
    health_check_interval: float = 5.0
    raw: dict[str, Any] = field(default_factory=dict)
    text: str = ""
    """The YAML text it was read from (what a run copies to its folder for its nodes)."""
    warnings: tuple[Any, ...] = ()
    """Problems of severity warning found while loading (``Problem`` records)."""
    not_applied: tuple[Any, ...] = ()
    """Warnings (``Problem`` records) for the settings of `NOT_APPLIED` that the file gives.

    Kept apart from ``warnings``: the file is right, the runtime does not do it yet.
    ``doradus check`` and ``doradus run`` show both.
    """

    @property
    def working_dir(self) -> Path:
        """The folder nodes run in: the dataflow file's folder."""
        return self.path.parent

    @property
    def name(self) -> str:
        """A display name: the file name without its suffix, or its folder's for ``dataflow.yml``."""
        if self.path.stem in ("dataflow", "dataflow.yaml") and self.path.parent.name:
            return self.path.parent.name
        return self.path.stem

    def node(self, node_id: str) -> NodeSpec:
        """Return the node with this id.

        Example:
            >>> Dataflow(Path("d.yml"), (NodeSpec("a", "dynamic"),)).node("a").id
            'a'
        """
        for node in self.nodes:
            if node.id == node_id:
                return node
        raise KeyError(node_id)


Scope = Literal["dataflow", "node", "input"]


@dataclass(frozen=True)
class NotApplied:
    """A setting Doradus reads and checks but does not apply yet, and what happens instead.

    ``key`` is the key as written (dotted below a mapping: ``deploy.labels``);
    ``case`` narrows it when only some of its uses are not applied.

    Example:
        >>> NOT_APPLIED["queue_policy on this edge's backend"].scope
        'input'
    """

    key: str
    scope: Scope
    instead: str
    case: str = ""

    def message(
        self, node: str | None = None, input_id: str | None = None, value: object = None, detail: str = ""
    ) -> str:
        """The warning: where, the key (with its value when it is a scalar), and what happens instead.

        Example:
            >>> logs = NOT_APPLIED["queue_policy on a `dora/logs` input"]
            >>> print(logs.message("cam", "logs", "backpressure"))
            input `logs` of node `cam`: `queue_policy: backpressure` is not applied yet on a `dora/logs`
            input; drop_oldest is used: the daemon does not wait for a node to take log records
        """
        scalar = value is not None and not isinstance(value, (dict, list))
        shown = f"{self.key}: {_scalar(value)}" if scalar else self.key
        where = ""
        if input_id is not None:
            where = f"input `{input_id}` of node `{node}`: "
        elif node is not None:
            where = f"node `{node}`: "
        case = f" {self.case}" if self.case else ""
        more = f" ({detail})" if detail else ""
        return f"{where}`{shown}` is not applied yet{case}; {self.instead}{more}"


def _scalar(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


_TOP = "at the top level"

NOT_APPLIED: Mapping[str, NotApplied] = MappingProxyType(
    {
        " ".join(filter(None, (entry.key, entry.case))): entry
        for entry in (
            NotApplied("cpu_affinity", "node", "the node may run on any CPU"),
            NotApplied("deploy.working_dir", "node", "the node runs in the dataflow file's folder"),
            NotApplied("deploy.labels", "node", "nodes are placed by `deploy.machine` alone"),
            NotApplied(
                "send_stdout_as",
                "node",
                "Doradus does not read the stdout of a node it does not start",
                "on a `path: dynamic` node",
            ),
            NotApplied(
                "send_stdout_as",
                "node",
                "only readers on the node's own machine get its stdout lines",
                "across machines",
            ),
            NotApplied(
                "queue_policy",
                "input",
                "drop_oldest is used: a full queue drops its oldest message",
                "on this edge's backend",
            ),
            NotApplied(
                "queue_policy",
                "input",
                "drop_oldest is used: the daemon does not wait for a node to take log records",
                "on a `dora/logs` input",
            ),
            NotApplied(
                "input_timeout",
                "input",
                "the operator's input waits for messages without a deadline",
                "on an operator's input",
            ),
            NotApplied("exit_when_nodes_finish", "dataflow", "the dataflow ends when every node has exited"),
            NotApplied("strict_types", "dataflow", "message types are not checked"),
            NotApplied("type_rules", "dataflow", "message types are not checked"),
            NotApplied("debug.enable_debug_inspection", "dataflow", "no debug inspection is offered"),
            NotApplied("deploy.working_dir", "dataflow", "nodes run in the dataflow file's folder", _TOP),
            NotApplied("deploy.labels", "dataflow", "nodes are placed by `deploy.machine` alone", _TOP),
        )
    }
)
"""Every setting Doradus reads but does not apply yet, by key (then its case, if any).

Values that Doradus applies anyway give no warning: ``queue_policy: drop_oldest``, ``strict_types: false`` and
``debug.enable_debug_inspection: false``. ``doradus._dataflow.not_applied`` finds
these settings in a file; ``doradus check`` and ``doradus run`` print them.
Remove an entry when its feature lands.

Example:
    >>> NOT_APPLIED["send_stdout_as across machines"].key
    'send_stdout_as'
"""
