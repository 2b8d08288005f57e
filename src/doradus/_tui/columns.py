"""The nodes table's columns: what each shows, how it sorts, and which rows a filter keeps.

`COLUMNS` is the one catalog: its keys are what ``--columns`` and the ``[tui]`` table's
``columns`` name, `DEFAULT_COLUMNS` the ones shown when neither says. A numeric column
sorts highest first the first time it is chosen (the busiest, slowest or most failing
node on top); values not measured yet sort last either way.

Example:
    >>> from doradus._tui.records import NodeRecord
    >>> nodes = [NodeRecord("a", input_rate=5.0), NodeRecord("b", input_rate=20.0), NodeRecord("c")]
    >>> [n.id for n in sort_nodes(nodes, "in", descending=True)]
    ['b', 'a', 'c']
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from rich.text import Text

from doradus._tui import formatting as fmt
from doradus._tui.records import NodeRecord

STATE_STYLES = {
    "running": "green",
    "paused": "yellow",
    "pending": "cyan",
    "restarting": "cyan",
    "finished": "dim",
    "stopped": "dim",
    "failed": "bold red",
    "lost": "bold red",
}
"""How a node's or a dataflow's state is coloured (unknown states stay plain)."""


def state_text(state: str) -> Text:
    """A state, coloured by `STATE_STYLES`.

    Example:
        >>> state_text("failed").style
        'bold red'
    """
    return Text(state, style=STATE_STYLES.get(state, ""))


@dataclass(frozen=True)
class Column:
    """One column of the nodes table.

    Example:
        >>> COLUMNS["in"].title, COLUMNS["in"].show(NodeRecord("a", input_rate=12.0)).plain
        ('In rate', '12.0/s')
    """

    key: str
    title: str
    width: int | None
    """Cells wide (None: as wide as the longest value)."""
    value: Callable[[NodeRecord], float | str | None]
    """What the column sorts by."""
    render: Callable[[NodeRecord], str | Text]
    numeric: bool = True

    def show(self, node: NodeRecord) -> Text:
        """The cell for ``node``: right-aligned for numbers."""
        found = self.render(node)
        cell = found if isinstance(found, Text) else Text(found)
        if self.numeric:
            cell.justify = "right"
        return cell


COLUMNS: dict[str, Column] = {
    column.key: column
    for column in (
        Column("node", "Node", None, lambda n: n.id, lambda n: n.id, numeric=False),
        Column("state", "State", 8, lambda n: n.state, lambda n: state_text(n.state), numeric=False),
        Column("machine", "Machine", None, lambda n: n.machine, lambda n: n.machine or "-", numeric=False),
        Column("pid", "PID", 7, lambda n: n.pid, lambda n: fmt.count(n.pid)),
        Column("in", "In rate", 8, lambda n: n.input_rate, lambda n: fmt.rate(n.input_rate)),
        Column("out", "Out rate", 8, lambda n: n.output_rate, lambda n: fmt.rate(n.output_rate)),
        Column("p50", "p50 latency", 11, lambda n: n.p50_latency_us, lambda n: fmt.latency(n.p50_latency_us)),
        Column("dropped", "Dropped", 7, lambda n: n.dropped, lambda n: fmt.count(n.dropped)),
        Column("queue", "Queue", 5, lambda n: n.queued, lambda n: fmt.count(n.queued)),
        Column("cpu", "CPU", 6, lambda n: n.cpu_percent, lambda n: fmt.percent(n.cpu_percent)),
        Column("memory", "Memory", 9, lambda n: n.memory_bytes, lambda n: fmt.size(n.memory_bytes)),
        Column("restarts", "Restarts", 8, lambda n: n.restarts, lambda n: fmt.count(n.restarts)),
        Column("errors", "Errors", 6, lambda n: n.errors, lambda n: fmt.count(n.errors)),
    )
}
"""Every column, by the key ``--columns`` names it with, in the order they are shown."""
DEFAULT_COLUMNS = (
    "node",
    "state",
    "in",
    "out",
    "p50",
    "dropped",
    "queue",
    "cpu",
    "memory",
    "restarts",
    "errors",
)
"""The columns shown when neither ``--columns`` nor the ``[tui]`` table says."""
NARROW_COLUMNS = ("node", "state", "in", "out", "p50")
"""The columns kept while the detail panel takes the right of the screen (of those chosen)."""
ALWAYS_SHOWN = "node"
"""The column that cannot be hidden: rows are known by it."""


def shown_columns(keys: Iterable[str]) -> list[str]:
    """``keys`` in catalog order, the node column first and always there.

    Raises:
        KeyError: A key is not a column.

    Example:
        >>> shown_columns(["errors", "in"])
        ['node', 'in', 'errors']
    """
    wanted = set(keys)
    unknown = wanted - COLUMNS.keys()
    if unknown:
        raise KeyError(", ".join(sorted(unknown)))
    wanted.add(ALWAYS_SHOWN)
    return [key for key in COLUMNS if key in wanted]


def matches(node: NodeRecord, needle: str) -> bool:
    """Whether a node passes the text filter: in its id, state or machine, any case.

    Example:
        >>> matches(NodeRecord("Camera", state="running"), "cam"), matches(NodeRecord("sink"), "cam")
        (True, False)
    """
    if not needle:
        return True
    lowered = needle.lower()
    return any(lowered in (part or "").lower() for part in (node.id, node.state, node.machine))


def sort_nodes(nodes: Iterable[NodeRecord], key: str, *, descending: bool = False) -> list[NodeRecord]:
    """The nodes ordered by column ``key``; not measured values last; ties by node id.

    Example:
        >>> names = [NodeRecord("b", state="running"), NodeRecord("a", state="failed")]
        >>> [n.id for n in sort_nodes(names, "state")]
        ['a', 'b']
    """
    column = COLUMNS[key]
    by_id = sorted(nodes, key=lambda n: n.id)
    measured = [n for n in by_id if column.value(n) is not None]
    missing = [n for n in by_id if column.value(n) is None]

    def order(node: NodeRecord) -> float | str:
        value = column.value(node)
        assert value is not None
        return value if isinstance(value, str) else float(value)

    return sorted(measured, key=order, reverse=descending) + missing


def next_sort(shown: list[str], current: str) -> tuple[str, bool]:
    """The column ``o`` sorts by after ``current``, and whether it starts highest first.

    Example:
        >>> next_sort(["node", "state", "in"], "state"), next_sort(["node", "in"], "in")
        (('in', True), ('node', False))
    """
    position = shown.index(current) if current in shown else -1
    following = shown[(position + 1) % len(shown)]
    return following, COLUMNS[following].numeric
