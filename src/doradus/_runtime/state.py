"""The state one run's parts share: its dataflow, its nodes here, one lock and where the run is.

The supervisor's parts (`control_socket`, `spawn`, `output`, `log_inputs`, `links`,
`metrics`, `ending`) each hold the same `RunState`. Its ``lock`` guards the nodes' records
and the flags below; ``changed`` (a condition on it) wakes whoever waits for a node to
register, become ready, be answered or end.

Example:
    >>> from pathlib import Path
    >>> from doradus._dataflow.model import Dataflow, NodeSpec
    >>> flow = Dataflow(path=Path("/tmp/df.yml"), nodes=(NodeSpec(id="a", kind="python"),))
    >>> state = RunState.create(flow, run_id="r1", machine="m1", out_dir=Path("/tmp/out/r1"))
    >>> list(state.nodes), state.started
    (['a'], False)
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from doradus._dataflow.model import Dataflow, NodeSpec
from doradus._runtime.processes import NodeProcess

if TYPE_CHECKING:
    from doradus._runtime.stdout_relay import StdoutRelay


@dataclass(eq=False)
class RunState:
    """One run on this machine: what every part of its supervisor reads and updates."""

    dataflow: Dataflow
    run_id: str
    machine: str
    dataflow_name: str
    out_dir: Path
    nodes: dict[str, NodeProcess]
    """The nodes this daemon runs (all of the dataflow's, or those placed on ``machine``)."""
    specs: dict[str, NodeSpec]
    """Every node of the dataflow, wherever it runs."""
    lock: threading.Lock = field(default_factory=threading.Lock)
    changed: threading.Condition = field(init=False)
    started: bool = False
    """Every node in the start barrier is ready (or ended): the dataflow runs."""
    stopping: bool = False
    closed: bool = False
    ending: bool = False
    """The run is ending: the keeper's end is expected."""
    edge_backends: dict[tuple[str, str], str] = field(default_factory=dict)
    """(sender, output) → the backend carrying its edges."""
    relays: dict[str, StdoutRelay] = field(default_factory=dict)
    """Node id → the `StdoutRelay` sending its stdout lines (``send_stdout_as``)."""
    held: set[str] = field(default_factory=set)
    """Nodes started again when they end (`doradus._runtime.restart_policy`): their receivers'
    links are ``held`` (their end waits for the daemon's word)."""

    def __post_init__(self) -> None:
        self.changed = threading.Condition(self.lock)

    @classmethod
    def create(
        cls,
        dataflow: Dataflow,
        *,
        run_id: str,
        machine: str,
        out_dir: Path,
        dataflow_name: str | None = None,
        placement: Mapping[str, str] | None = None,
    ) -> RunState:
        """The state of a run starting: a record for each node placed here (all without ``placement``).

        Example:
            >>> from doradus._dataflow.model import Dataflow, NodeSpec
            >>> nodes = (NodeSpec(id="a", kind="python"), NodeSpec(id="b", kind="python"))
            >>> flow = Dataflow(path=Path("/tmp/df.yml"), nodes=nodes)
            >>> state = RunState.create(flow, run_id="r1", machine="m1", out_dir=Path("/tmp/r1"),
            ...                         placement={"a": "m1", "b": "m2"})
            >>> list(state.nodes), list(state.specs)
            (['a'], ['a', 'b'])
        """
        return cls(
            dataflow=dataflow,
            run_id=run_id,
            machine=machine,
            dataflow_name=dataflow_name or dataflow.name,
            out_dir=out_dir,
            nodes={
                spec.id: NodeProcess(spec)
                for spec in dataflow.nodes
                if not placement or placement.get(spec.id) == machine
            },
            specs={spec.id: spec for spec in dataflow.nodes},
        )

    def relays_stdout(self, node_id: str) -> bool:
        """Whether this daemon sends the node's stdout lines: it has ``send_stdout_as``, we start it.

        Example:
            >>> from doradus._dataflow.model import Dataflow, NodeSpec
            >>> talker = NodeSpec(id="t", kind="shell", outputs=("out",), send_stdout_as="out")
            >>> flow = Dataflow(path=Path("/tmp/df.yml"), nodes=(talker,))
            >>> RunState.create(flow, run_id="r", machine="m", out_dir=Path("/tmp/r")).relays_stdout("t")
            True
        """
        proc = self.nodes.get(node_id)
        return proc is not None and proc.spec.kind != "dynamic" and proc.spec.send_stdout_as is not None
