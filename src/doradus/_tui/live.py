"""What the TUI knows right now: `LiveState`, fed one stream message at a time.

`LiveState.apply` takes a decoded message of the stream (``hello``, ``dataflows``,
``dataflow``, ``state``, ``node_state``, ``log``, ``dropped``, ``error``) and returns
which parts changed (`Change`), so the app redraws only those. It keeps, besides the
latest figures, a short history of each port's rate (the detail panel's sparklines)
and the last `LOG_KEEP` log records of the selected dataflow.

Guarantees: `apply` never raises on a well-formed JSON object, whatever its content
(an unknown ``type`` changes nothing); it is not thread safe (the app calls it from
its event loop only).

Example:
    >>> live = LiveState()
    >>> live.apply({"type": "dataflows", "dataflows": [{"id": "a1", "name": "demo", "status": "running"}]})
    <Change.DATAFLOWS: 2>
    >>> live.first_running()
    'a1'
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from doradus._tui.records import (
    DataflowRecord,
    EdgeRecord,
    LogLine,
    NodeRecord,
    PortRates,
    endpoint_node,
    text,
)

HISTORY = 60
"""Rate samples kept per port for the sparklines (a minute at the default 1 s refresh)."""
LOG_KEEP = 5000
"""Log records kept for the logs pane (older ones are forgotten)."""
PROBLEM_LEVELS = ("WARN", "ERROR", "FATAL")
"""Levels the per-node summary of recent problems counts."""


class Change(enum.Flag):
    """What a message changed, so that only those parts are redrawn.

    Example:
        >>> Change.DATAFLOWS | Change.LOGS in Change.DATAFLOWS
        False
    """

    NONE = 0
    HELLO = enum.auto()
    DATAFLOWS = enum.auto()
    DATAFLOW = enum.auto()
    LOGS = enum.auto()
    ERROR = enum.auto()


@dataclass(frozen=True)
class NodeProblems:
    """Recent warnings and errors of one node (or of the runtime, node ``runtime``).

    Example:
        >>> NodeProblems("camera", warnings=2, errors=1, last="disk full").total
        3
    """

    node: str
    warnings: int = 0
    errors: int = 0
    last: str = ""
    last_level: str = "WARN"

    @property
    def total(self) -> int:
        """Warnings and errors together."""
        return self.warnings + self.errors


@dataclass
class LiveState:
    """The latest state of the coordinator's dataflows as the stream told it.

    Example:
        >>> live = LiveState(selected="a1")
        >>> change = live.apply({"type": "dataflow", "dataflow": {"id": "a1", "name": "demo",
        ...     "status": "running"}, "nodes": {"camera": {"state": "running", "output_rate": 30.0}},
        ...     "edges": [], "rates": {"camera": {"outputs": {"frame": 30.0}}}})
        >>> change, live.nodes["camera"].output_rate, list(live.history[("camera", "out", "frame")])
        (<Change.DATAFLOW: 4>, 30.0, [30.0])
    """

    selected: str | None = None
    dataflows: dict[str, DataflowRecord] = field(default_factory=dict)
    flow: DataflowRecord | None = None
    nodes: dict[str, NodeRecord] = field(default_factory=dict)
    edges: list[EdgeRecord] = field(default_factory=list)
    rates: dict[str, PortRates] = field(default_factory=dict)
    history: dict[tuple[str, str, str], deque[float]] = field(default_factory=dict)
    logs: deque[LogLine] = field(default_factory=lambda: deque(maxlen=LOG_KEEP))
    dropped_logs: int = 0
    interval: float | None = None
    version: str | None = None
    updated_at: str | None = None
    last_error: tuple[str, str | None] | None = None

    def select(self, dataflow_id: str | None) -> None:
        """Show ``dataflow_id`` from now on: forget the previous one's nodes, history and logs.

        Example:
            >>> live = LiveState(selected="a1")
            >>> live.select("b2"); live.selected, live.nodes
            ('b2', {})
        """
        self.selected = dataflow_id
        self.flow = self.dataflows.get(dataflow_id) if dataflow_id else None
        self.nodes = {}
        self.edges = []
        self.rates = {}
        self.history = {}
        self.logs.clear()
        self.dropped_logs = 0

    def first_running(self) -> str | None:
        """The id of the first running dataflow (the one shown when none was asked for), if any.

        Example:
            >>> LiveState().first_running() is None
            True
        """
        return next((flow.id for flow in self.dataflows.values() if flow.running), None)

    def apply(self, message: Mapping[str, Any]) -> Change:
        """Take one stream message into account; what it changed.

        Example:
            >>> LiveState().apply({"type": "something new"})
            <Change.NONE: 0>
        """
        kind = message.get("type")
        self.updated_at = text(message.get("time")) or self.updated_at
        handler = _HANDLERS.get(str(kind))
        return handler(self, message) if handler else Change.NONE

    def _hello(self, message: Mapping[str, Any]) -> Change:
        interval = message.get("interval")
        self.interval = float(interval) if isinstance(interval, int | float) else self.interval
        self.version = text(message.get("version")) or self.version
        return Change.HELLO

    def _dataflows(self, message: Mapping[str, Any]) -> Change:
        found = message.get("dataflows")
        flows = (
            [DataflowRecord.from_json(f) for f in found if isinstance(f, Mapping)]
            if isinstance(found, list)
            else []
        )
        self.dataflows = {flow.id: flow for flow in flows}
        if self.selected in self.dataflows:
            self.flow = self.dataflows[self.selected]
        return Change.DATAFLOWS

    def _dataflow(self, message: Mapping[str, Any]) -> Change:
        summary = message.get("dataflow")
        if not isinstance(summary, Mapping):
            return Change.NONE
        flow = DataflowRecord.from_json(summary)
        if self.selected is not None and flow.id != self.selected:
            return Change.NONE  # a late update of the dataflow shown before
        self.flow = flow
        self.dataflows[flow.id] = flow
        nodes = message.get("nodes")
        if isinstance(nodes, Mapping):
            # A dataflow on one machine: that is every node's machine, when the node does not say.
            machine = flow.machine if len(flow.machines) <= 1 else None
            self.nodes = {
                str(node_id): _on(NodeRecord.from_json(str(node_id), data), machine)
                for node_id, data in nodes.items()
                if isinstance(data, Mapping)
            }
        edges = message.get("edges")
        if isinstance(edges, list):
            found = [EdgeRecord.from_json(e) for e in edges if isinstance(e, Mapping)]
            targets = {edge.target for edge in found}
            # The stream's edges join nodes: timers and other `dora/...` sources come from the inputs.
            self.edges = found + [e for e in edges_from_inputs(self.nodes) if e.target not in targets]
        else:
            self.edges = edges_from_inputs(self.nodes)
        rates = message.get("rates")
        if isinstance(rates, Mapping):
            self.rates = {str(n): PortRates.from_json(r) for n, r in rates.items() if isinstance(r, Mapping)}
            self._remember_rates()
        return Change.DATAFLOW

    def _remember_rates(self) -> None:
        for node_id, ports in self.rates.items():
            for direction, values in (("in", ports.inputs), ("out", ports.outputs)):
                for port, value in values.items():
                    samples = self.history.setdefault((node_id, direction, port), deque(maxlen=HISTORY))
                    samples.append(value)

    def _state(self, message: Mapping[str, Any]) -> Change:
        flow_id, status = text(message.get("dataflow")), text(message.get("status"))
        if flow_id is None or status is None:
            return Change.NONE
        reason = text(message.get("reason"))
        if flow_id in self.dataflows:
            self.dataflows[flow_id] = replace(self.dataflows[flow_id], status=status, reason=reason)
        if self.flow is not None and self.flow.id == flow_id:
            self.flow = replace(self.flow, status=status, reason=reason)
            return Change.DATAFLOWS | Change.DATAFLOW
        return Change.DATAFLOWS

    def _node_state(self, message: Mapping[str, Any]) -> Change:
        node_id, state = text(message.get("node")), text(message.get("state"))
        if text(message.get("dataflow")) != self.selected or node_id is None or state is None:
            return Change.NONE
        node = self.nodes.get(node_id, NodeRecord(node_id))
        self.nodes[node_id] = replace(node, state=state)
        return Change.DATAFLOW

    def _log(self, message: Mapping[str, Any]) -> Change:
        record = message.get("record")
        if not isinstance(record, Mapping):
            return Change.NONE
        self.logs.append(LogLine.from_json(record))
        return Change.LOGS

    def _dropped(self, message: Mapping[str, Any]) -> Change:
        logs = message.get("logs")
        self.dropped_logs += int(logs) if isinstance(logs, int) else 0
        return Change.LOGS

    def _error(self, message: Mapping[str, Any]) -> Change:
        self.last_error = (
            str(message.get("error", "the stream reported an error")),
            text(message.get("fix")),
        )
        return Change.ERROR

    def node_logs(self, node_id: str, limit: int = 8) -> list[LogLine]:
        """The last ``limit`` records of one node, oldest first.

        Example:
            >>> LiveState().node_logs("camera")
            []
        """
        found = [line for line in reversed(self.logs) if line.node == node_id][:limit]
        return found[::-1]

    def problems(self) -> list[NodeProblems]:
        """Per node, the warnings and errors among the kept records: most first.

        Example:
            >>> live = LiveState()
            >>> for level in ("WARN", "ERROR", "INFO"):
            ...     record = {"level": level, "node": "cam", "message": level}
            ...     _ = live.apply({"type": "log", "record": record})
            >>> live.problems()
            [NodeProblems(node='cam', warnings=1, errors=1, last='ERROR', last_level='ERROR')]
        """
        found: dict[str, NodeProblems] = {}
        for line in self.logs:
            if line.level not in PROBLEM_LEVELS:
                continue
            node = line.origin
            seen = found.get(node, NodeProblems(node))
            is_warning = line.level == "WARN"
            found[node] = NodeProblems(
                node,
                warnings=seen.warnings + is_warning,
                errors=seen.errors + (not is_warning),
                last=line.message,
                last_level=line.level,
            )
        return sorted(found.values(), key=lambda p: (-p.errors, -p.total, p.node))


def _on(node: NodeRecord, machine: str | None) -> NodeRecord:
    return node if node.machine or machine is None else replace(node, machine=machine)


def edges_from_inputs(nodes: Mapping[str, NodeRecord]) -> list[EdgeRecord]:
    """The edges the nodes' inputs name, for a stream that sends no ``edges``.

    Example:
        >>> from doradus._tui.records import InputRecord
        >>> sink = NodeRecord("sink", inputs={"frame": InputRecord("frame", "camera/frame", received=4)})
        >>> [(e.source, e.target, e.received) for e in edges_from_inputs({"sink": sink})]
        [('camera/frame', 'sink/frame', 4)]
    """
    return [
        EdgeRecord(
            source=port.source,
            target=f"{node.id}/{port.name}",
            received=port.received,
            dropped=port.dropped,
            queued=port.queued,
        )
        for node in nodes.values()
        for port in node.inputs.values()
        if port.source and endpoint_node(port.source)
    ]


_HANDLERS = {
    "hello": LiveState._hello,
    "dataflows": LiveState._dataflows,
    "dataflow": LiveState._dataflow,
    "state": LiveState._state,
    "node_state": LiveState._node_state,
    "log": LiveState._log,
    "dropped": LiveState._dropped,
    "error": LiveState._error,
}
