"""The node detail side panel: one node's ports with rates and sparklines, its edges, its logs.

`node_detail` builds the panel's text from the `LiveState`: the node's state and
resources (CPU share, memory), then each input (its source, backend and data format,
rate, p50 latency, dropped and queued, and a sparkline of its rate) and each output
(its peers, rate, bytes per second, sparkline), then the node's last log records.
`NodeDetail` shows it beside the nodes table, which stays visible.

Example:
    >>> from doradus._tui.live import LiveState
    >>> from doradus._tui.records import NodeRecord
    >>> live = LiveState(nodes={"cam": NodeRecord("cam", state="running", cpu_percent=3.0)})
    >>> print(node_detail(live, "cam", width=40).plain.splitlines()[0])
    cam  ● running
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from doradus._tui import formatting as fmt
from doradus._tui.columns import STATE_STYLES
from doradus._tui.graph import MARKS
from doradus._tui.live import LiveState
from doradus._tui.records import EdgeRecord, NodeRecord, endpoint_node, endpoint_port

LOG_LINES = 8
"""Log records of the node shown at the bottom of the panel."""
LEVEL_STYLES = {
    "TRACE": "dim",
    "DEBUG": "dim",
    "INFO": "",
    "WARN": "yellow",
    "ERROR": "red",
    "FATAL": "bold red",
}
"""How each log level is coloured (as `doradus logs` colours them)."""


def _facts(pairs: list[tuple[str, str]]) -> Text:
    out = Text()
    for index, (name, value) in enumerate(pairs):
        if index:
            out.append("  ")
        if name:
            out.append(f"{name} ", style="dim")
        out.append(value)
    return out


def _head(node: NodeRecord) -> list[Text]:
    title = Text()
    title.append(node.id, style="bold")
    title.append(f"  {MARKS.get(node.state, '○')} {node.state}", style=STATE_STYLES.get(node.state, ""))
    if node.exit_code is not None:
        title.append(f" (exit {node.exit_code})")
    return [
        title,
        _facts(
            [
                ("pid", fmt.count(node.pid)),
                ("machine", node.machine or "-"),
                ("restarts", fmt.count(node.restarts)),
            ]
        ),
        _facts(
            [
                ("CPU", fmt.percent(node.cpu_percent)),
                ("memory", fmt.size(node.memory_bytes)),
                ("processing", fmt.latency(node.processing_p50_us)),
            ]
        ),
        _facts(
            [
                ("p50", fmt.latency(node.p50_latency_us)),
                ("dropped", fmt.count(node.dropped)),
                ("queued", fmt.count(node.queued)),
                ("errors", fmt.count(node.errors)),
            ]
        ),
    ]


def _port_head(name: str, edge: EdgeRecord | None) -> Text:
    """`` name  shm · arrow``: the port, and how its edge travels."""
    head = Text()
    head.append(f" {name}", style="bold")
    parts = [part for part in (edge.backend, edge.data_format) if part] if edge else []
    if parts:
        head.append(f"  {' · '.join(parts)}", style="magenta")
    return head


def _figures(rate: str, facts: list[tuple[str, str]]) -> Text:
    out = Text("   ")
    out.append(f"{rate:>8}", style="bold")
    out.append("  ")
    return out.append_text(_facts(facts))


def _inputs(live: LiveState, node: NodeRecord, width: int) -> list[Text]:
    lines: list[Text] = []
    rates = live.rates.get(node.id)
    for port in node.inputs.values():
        edge = next((e for e in live.edges if e.target == f"{node.id}/{port.name}"), None)
        latency = edge.p50_latency_us if edge and edge.p50_latency_us is not None else None
        if latency is None:
            latency = fmt.histogram_p50(list(port.latency_bounds_us), list(port.latency_buckets))
        rate = fmt.rate(rates.inputs.get(port.name) if rates else None)
        facts = [("p50", fmt.latency(latency)), ("dropped", str(port.dropped)), ("queued", str(port.queued))]
        history = list(live.history.get((node.id, "in", port.name), []))
        lines += [
            _port_head(port.name, edge),
            Text(f"   ← {port.source or '-'}"),
            _figures(rate, facts),
            Text("   ").append(fmt.sparkline(history, width - 4), style="cyan"),
        ]
    return lines or [Text(" (no inputs)", style="dim")]


def _outputs(live: LiveState, node: NodeRecord, width: int) -> list[Text]:
    lines: list[Text] = []
    rates = live.rates.get(node.id)
    names = list(dict.fromkeys([*node.outputs, *(rates.outputs if rates else {})]))
    for name in names:
        edges = [
            e for e in live.edges if endpoint_node(e.source) == node.id and endpoint_port(e.source) == name
        ]
        sent, total = node.outputs.get(name, (0, 0))
        rate = fmt.rate(rates.outputs.get(name) if rates else None)
        facts = [
            ("", fmt.byte_rate(rates.bytes_out.get(name) if rates else None)),
            ("sent", str(sent)),
            ("", fmt.size(total)),
        ]
        history = list(live.history.get((node.id, "out", name), []))
        lines += [
            _port_head(name, edges[0] if edges else None),
            *[Text(f"   → {edge.target}") for edge in edges],
            *([] if edges else [Text("   → no peer", style="dim")]),
            _figures(rate, facts),
            Text("   ").append(fmt.sparkline(history, width - 4), style="green"),
        ]
    return lines or [Text(" (no outputs)", style="dim")]


def log_line(line_time: str, level: str, message: str, node: str | None = None) -> Text:
    """One log record as the panes show it: time, level (coloured), node, message.

    Example:
        >>> log_line("12:00:01.000", "WARN", "slow", "cam").plain
        '12:00:01.000 WARN  cam: slow'
    """
    out = Text()
    out.append(f"{line_time} ", style="dim")
    out.append(f"{level:<5} ", style=LEVEL_STYLES.get(level, ""))
    if node:
        out.append(f"{node}: ", style="bold")
    out.append(message, style=LEVEL_STYLES.get(level, "") if level != "INFO" else "")
    return out


def node_detail(live: LiveState, node_id: str, width: int = 48) -> Text:
    """The panel's text for ``node_id`` (a short notice when the node is unknown)."""
    node = live.nodes.get(node_id)
    if node is None:
        return Text(f"{node_id}: not in this dataflow (any more)", style="dim")
    logs = [log_line(x.clock, x.level, x.message) for x in live.node_logs(node_id, LOG_LINES)]
    return Text("\n").join(
        [
            *_head(node),
            Text(),
            Text("Inputs", style="bold underline"),
            *_inputs(live, node, width),
            Text(),
            Text("Outputs", style="bold underline"),
            *_outputs(live, node, width),
            Text(),
            Text("Recent logs", style="bold underline"),
            *(logs or [Text(" (none yet)", style="dim")]),
        ]
    )


class NodeDetail(VerticalScroll):
    """The side panel; hidden until a node is opened (Enter on the nodes table).

    Example::

        panel.open("detector", live)
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.node: str | None = None
        self._body = Static("", markup=False)

    def compose(self) -> ComposeResult:
        """The panel's one text block."""
        yield self._body

    def open(self, node_id: str, live: LiveState) -> None:
        """Show ``node_id`` and make the panel visible."""
        self.node = node_id
        self.border_title = f"Node {node_id}"
        self.add_class("open")
        self.redraw(live)

    def close(self) -> None:
        """Hide the panel."""
        self.node = None
        self.remove_class("open")

    @property
    def is_open(self) -> bool:
        """Whether the panel shows a node."""
        return self.node is not None

    def redraw(self, live: LiveState) -> None:
        """Show the latest figures of the open node."""
        if self.node is not None:
            width = max(20, self.size.width - 2) if self.size.width else 48
            self._body.update(node_detail(live, self.node, width))
