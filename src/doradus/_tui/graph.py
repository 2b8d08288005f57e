"""The graph view's drawing: boxes for nodes, box-drawing lines for edges, live rates on them.

`draw_graph` lays the dataflow out (`graph_layout`) from left (sources) to right
(sinks) and draws it on a character canvas: each node a rounded box with its id and
its state (failed and lost nodes in red with ``✖``, paused ones in yellow with ``‖``),
each edge a line from a row of its source's right side to a row of its target's left
side, ending in ``▶``, labelled near its source with its rate (and its output, when
the node has several). Timers
and other ``dora/...`` sources are small dim boxes. Lines that cross or join are merged
into the right box-drawing character. Edges that close a cycle are listed below.

Example:
    >>> from doradus._tui.records import EdgeRecord, NodeRecord
    >>> nodes = {"a": NodeRecord("a", state="running"), "b": NodeRecord("b", state="paused")}
    >>> print(draw_graph(nodes, [EdgeRecord("a/out", "b/in", rate=20.0)]).plain)
    ╭───────────╮              ╭──────────╮
    │ a         ├─ 20.0/s ────▶│ b        │
    │ ● running │              │ ‖ paused │
    ╰───────────╯              ╰──────────╯
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cmp_to_key

from rich.table import Table
from rich.text import Text

from doradus._tui import formatting as fmt
from doradus._tui.columns import STATE_STYLES
from doradus._tui.graph_layout import Layout, Vertex, lay_out
from doradus._tui.records import TIMER_PREFIX, EdgeRecord, NodeRecord, PortRates, endpoint_port

UP, DOWN, LEFT, RIGHT = 1, 2, 4, 8
_LINES = {
    LEFT | RIGHT: "─",
    LEFT: "─",
    RIGHT: "─",
    UP | DOWN: "│",
    UP: "│",
    DOWN: "│",
    DOWN | RIGHT: "╭",
    DOWN | LEFT: "╮",
    UP | RIGHT: "╰",
    UP | LEFT: "╯",
    UP | DOWN | RIGHT: "├",
    UP | DOWN | LEFT: "┤",
    LEFT | RIGHT | DOWN: "┬",
    LEFT | RIGHT | UP: "┴",
    UP | DOWN | LEFT | RIGHT: "┼",
}
MARKS = {
    "running": "●",
    "paused": "‖",
    "restarting": "↻",
    "failed": "✖",
    "lost": "✖",
    "finished": "✓",
    "stopped": "■",
}
"""The sign before a node's state in its box (others: ``○``)."""
MIN_BOX = 12
"""The narrowest box, in cells."""


@dataclass
class Canvas:
    """A grid of characters with styles; lines are kept as directions and merged when drawn.

    Example:
        >>> canvas = Canvas()
        >>> canvas.line(0, 0, 3, 0); canvas.line(2, 0, 2, 1)
        >>> print(canvas.text().plain)
        ──┬─
          │
    """

    lines: dict[tuple[int, int], int] = field(default_factory=dict)
    chars: dict[tuple[int, int], tuple[str, str]] = field(default_factory=dict)
    line_styles: dict[tuple[int, int], str] = field(default_factory=dict)

    def put(self, x: int, y: int, text: str, style: str = "") -> None:
        """Write ``text`` from ``(x, y)`` to the right, over any line there."""
        for offset, char in enumerate(text):
            self.chars[(x + offset, y)] = (char, style)

    def line(self, x1: int, y1: int, x2: int, y2: int, style: str = "") -> None:
        """A horizontal or vertical line between two cells, both included."""
        if y1 == y2:
            left, right = sorted((x1, x2))
            for x in range(left, right + 1):
                self._join(x, y1, (LEFT if x > left else 0) | (RIGHT if x < right else 0), style)
        else:
            top, bottom = sorted((y1, y2))
            for y in range(top, bottom + 1):
                self._join(x1, y, (UP if y > top else 0) | (DOWN if y < bottom else 0), style)

    def _join(self, x: int, y: int, directions: int, style: str) -> None:
        self.lines[(x, y)] = self.lines.get((x, y), 0) | directions
        self.line_styles.setdefault((x, y), style)

    def text(self) -> Text:
        """The canvas as styled text, trailing blanks of each row cut."""
        cells = {
            key: (_LINES.get(bits, " "), self.line_styles[key]) for key, bits in self.lines.items() if bits
        }
        cells.update(self.chars)
        if not cells:
            return Text()
        width = max(x for x, _ in cells) + 1
        height = max(y for _, y in cells) + 1
        out = Text()
        for y in range(height):
            row = [cells.get((x, y), (" ", "")) for x in range(width)]
            while row and row[-1][0] == " ":
                row.pop()
            for char, style in row:
                out.append(char, style)
            if y < height - 1:
                out.append("\n")
        return out


def source_label(source: str) -> str:
    """How a ``dora/...`` source is named in its box: ``timer 50 ms``, ``timer 30 Hz``, ``logs``.

    Example:
        >>> source_label("dora/timer/millis/50"), source_label("dora/timer/hz/30"), source_label("dora/logs")
        ('timer 50 ms', 'timer 30 Hz', 'logs')
    """
    parts = source.removeprefix(TIMER_PREFIX).split("/")
    if parts[0] == "timer" and len(parts) == 3:
        unit = {"millis": "ms", "secs": "s", "hz": "Hz"}.get(parts[1], parts[1])
        return f"timer {parts[2]} {unit}"
    return "/".join(parts)


def edge_rate(edge: EdgeRecord, rates: Mapping[str, PortRates]) -> float | None:
    """The edge's rate: its own, else its target input's in ``rates``.

    Example:
        >>> edge_rate(EdgeRecord("a/o", "b/i"), {"b": PortRates(inputs={"i": 3.0})})
        3.0
    """
    if edge.rate is not None:
        return edge.rate
    ports = rates.get(edge.target_node)
    return ports.inputs.get(endpoint_port(edge.target)) if ports else None


def edge_label(edge: EdgeRecord, rates: Mapping[str, PortRates], *, named: bool = False) -> str:
    """The label on an edge, spaces around: its rate, after its output when ``named``.

    Outputs are named when their node has several: one output needs no name.

    Example:
        >>> edge = EdgeRecord("camera/frame", "sink/frame", rate=30.0)
        >>> edge_label(edge, {}), edge_label(edge, {}, named=True)
        (' 30.0/s ', ' frame 30.0/s ')
    """
    port = endpoint_port(edge.source) if named and not edge.source.startswith(TIMER_PREFIX) else ""
    return " " + " ".join(part for part in (port, fmt.rate(edge_rate(edge, rates))) if part) + " "


@dataclass
class _Box:
    lines: list[tuple[str, str]]
    style: str
    width: int


def _box(name: str, nodes: Mapping[str, NodeRecord]) -> _Box:
    if name.startswith(TIMER_PREFIX):
        label = source_label(name)
        return _Box([(label, "dim"), ("source", "dim")], "dim", max(MIN_BOX, len(label) + 4))
    state = nodes[name].state if name in nodes else "unknown"
    style = STATE_STYLES.get(state, "")
    status = f"{MARKS.get(state, '○')} {state}"
    width = max(MIN_BOX, len(name) + 4, len(status) + 4)
    return _Box([(name, "bold"), (status, style)], style or "dim", width)


def draw_graph(
    nodes: Mapping[str, NodeRecord], edges: Sequence[EdgeRecord], rates: Mapping[str, PortRates] | None = None
) -> Text:
    """The dataflow drawn left to right, as styled text.

    Example:
        >>> draw_graph({}, []).plain
        '(no nodes)'
    """
    if not nodes and not edges:
        return Text("(no nodes)", style="dim")
    rates = rates or {}
    pairs = [(edge.source_node, edge.target_node) for edge in edges]
    layout = lay_out(list(nodes), pairs)
    outputs: dict[str, set[str]] = {}
    for edge in edges:
        outputs.setdefault(edge.source_node, set()).add(edge.source)
    labels = [edge_label(edge, rates, named=len(outputs[edge.source_node]) > 1) for edge in edges]
    drawing = _Drawing(
        layout, {v.name: _box(v.name, nodes) for layer in layout.layers for v in layer if v.name}
    )
    canvas = drawing.draw(labels)
    out = canvas.text()
    for index in layout.back_edges:
        edge = edges[index]
        out.append(
            f"\n↺ {edge.source} → {edge.target} {fmt.rate(edge_rate(edge, rates))} (closes a cycle)", "dim"
        )
    return out


def _crossings(left: tuple[int, int], right: tuple[int, int]) -> int:
    """Crossings of two segments (source row, target row) when ``left`` takes the lane on the left.

    The left one's last stretch (at its target row) crosses the right one's lane, and
    the right one's first stretch (at its source row) crosses the left one's lane.
    """

    def inside(row: int, span: tuple[int, int]) -> bool:
        return min(span) <= row <= max(span)

    return inside(left[1], right) + inside(right[0], left)


@dataclass
class _Drawing:
    layout: Layout
    boxes: dict[str, _Box]
    top: dict[int, int] = field(default_factory=dict)
    """Each vertex's top row, by id()."""
    left: list[int] = field(default_factory=list)
    """Each layer's first column."""

    def height(self, vertex: Vertex) -> int:
        if vertex.name is None:
            return 1
        return 2 + max(len(self.boxes[vertex.name].lines), len(vertex.ins), len(vertex.outs))

    def draw(self, labels: Sequence[str]) -> Canvas:
        canvas = Canvas()
        layers = self.layout.layers
        widths = [
            max((self.boxes[v.name].width for v in layer if v.name), default=MIN_BOX) for layer in layers
        ]
        gaps = [self._gap(number, labels) for number in range(len(layers) - 1)]
        x = 0
        for number, layer in enumerate(layers):
            self.left.append(x)
            y = 0
            for vertex in layer:
                self.top[id(vertex)] = y
                y += self.height(vertex) + 1
            x += widths[number] + (gaps[number][0] if number < len(gaps) else 0)
        for number, layer in enumerate(layers):
            for vertex in layer:
                self._vertex(canvas, vertex, self.left[number], widths[number])
        for number, (_, label_width, lanes) in enumerate(gaps):
            self._segments(canvas, number, widths[number], label_width, lanes, labels)
        return canvas

    def _gap(self, number: int, labels: Sequence[str]) -> tuple[int, int, list[int]]:
        """(width, label width, the segments in lane order) of the gap after layer ``number``."""
        inside = [i for i, s in enumerate(self.layout.segments) if s.source.layer == number]
        label_width = max(
            (len(labels[self.layout.segments[i].edge]) for i in inside if self.layout.segments[i].first),
            default=0,
        )
        rows = {i: (self._row(i, True), self._row(i, False)) for i in inside}
        by_row = sorted(inside, key=lambda i: rows[i])

        def fewer_crossings(a: int, b: int) -> int:
            return _crossings(rows[a], rows[b]) - _crossings(rows[b], rows[a])

        lanes = sorted(by_row, key=cmp_to_key(fewer_crossings))
        return 2 + label_width + 2 * len(lanes) + 2, label_width, lanes

    def _row(self, segment: int, leaving: bool) -> int:
        found = self.layout.segments[segment]
        vertex = found.source if leaving else found.target
        ports = vertex.outs if leaving else vertex.ins
        top = self.top.get(id(vertex), vertex.position * 4)
        return top if vertex.name is None else top + 1 + ports.index(segment)

    def _vertex(self, canvas: Canvas, vertex: Vertex, x: int, width: int) -> None:
        y = self.top[id(vertex)]
        if vertex.name is None:
            canvas.line(x, y, x + width - 1, y, "dim")
            return
        box = self.boxes[vertex.name]
        inner = self.height(vertex) - 2
        canvas.put(x, y, "╭" + "─" * (box.width - 2) + "╮", box.style)
        for row in range(inner):
            content, style = box.lines[row] if row < len(box.lines) else ("", "")
            canvas.put(x, y + 1 + row, "│", box.style)
            canvas.put(x + 1, y + 1 + row, f" {content}".ljust(box.width - 2), style)
            edge_out = row < len(vertex.outs)
            canvas.put(x + box.width - 1, y + 1 + row, "├" if edge_out else "│", box.style)
        canvas.put(x, y + inner + 1, "╰" + "─" * (box.width - 2) + "╯", box.style)

    def _segments(
        self,
        canvas: Canvas,
        number: int,
        width: int,
        label_width: int,
        lanes: list[int],
        labels: Sequence[str],
    ) -> None:
        start = self.left[number] + width
        end = self.left[number + 1] - 1
        for lane, index in enumerate(lanes):
            segment = self.layout.segments[index]
            y1, y2 = self._row(index, True), self._row(index, False)
            source_right = self.left[number] + (
                self.boxes[segment.source.name].width if segment.source.name else width
            )
            lane_x = start + 2 + label_width + 2 * lane
            canvas.line(source_right, y1, lane_x, y1, "dim")
            canvas.line(lane_x, y1, lane_x, y2, "dim")
            arrow = segment.target.name is not None
            canvas.line(lane_x, y2, end - 1 if arrow else end, y2, "dim")
            if arrow:
                canvas.put(end, y2, "▶", "dim")
            if segment.first:
                canvas.put(start + 1, y1, labels[segment.edge], "cyan")


def edges_table(edges: Sequence[EdgeRecord], rates: Mapping[str, PortRates] | None = None) -> Table:
    """Every edge with how it travels and its figures, under the drawing.

    Example:
        >>> table = edges_table([EdgeRecord("a/o", "b/i", backend="shm", rate=2.0)])
        >>> table.row_count, [column.header for column in table.columns][:3]
        (1, ['Edge', 'Backend', 'Format'])
    """
    table = Table(box=None, padding=(0, 2, 0, 0), header_style="bold", pad_edge=False)
    table.add_column("Edge")
    table.add_column("Backend")
    table.add_column("Format")
    for title in ("Rate", "p50 latency", "Received", "Dropped", "Queued"):
        table.add_column(title, justify="right")
    for edge in edges:
        table.add_row(
            f"{edge.source} → {edge.target}",
            edge.backend or "-",
            edge.data_format or "-",
            fmt.rate(edge_rate(edge, rates or {})),
            fmt.latency(edge.p50_latency_us),
            str(edge.received),
            Text(str(edge.dropped), style="yellow" if edge.dropped else ""),
            str(edge.queued),
        )
    return table


LEGEND = "● running  ‖ paused  ↻ restarting  ✖ failed or lost  ■ stopped  ✓ finished  ○ pending"
"""The line under the drawing that says what the marks mean."""
