"""The validated, normalised form of a dataflow file.

`doradus._descriptor.load_dataflow` turns a YAML file into these frozen records;
everything after loading (the runner, the nodes, the CLI) reads only these.

Example:
    >>> spec = TimerSource(source="dora/timer/millis/20", interval_ns=20_000_000)
    >>> spec.interval_ns
    20000000
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

NodeKind = Literal["python", "executable", "dynamic", "operator", "shell"]
QueuePolicy = Literal["drop_oldest", "backpressure"]
RestartPolicy = Literal["never", "on-failure", "always"]

DEFAULT_QUEUE_SIZE = 10


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
    warnings: tuple[Any, ...] = ()
    """Problems of severity warning found while loading (``Problem`` records)."""

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
