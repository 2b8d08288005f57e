"""The main screen's tables: the dataflows pane and the nodes table, updated in place.

Both keep their rows keyed by dataflow or node id and, on each update, change only
the cells whose text changed, add and remove only the rows that came or went, and
reorder only when the order changed: nothing is rebuilt, so nothing flickers and the
cursor stays on its row. Keys pressed on them become `Act` messages the app turns
into requests (p, r, R, s on the dataflow or on the node under the cursor).

Example::

    table = NodesTable(columns=DEFAULT_COLUMNS)
    table.show(live.nodes)   # after each stream update
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import DataTable
from textual.widgets.data_table import ColumnKey, RowKey

from doradus._tui import formatting as fmt
from doradus._tui.actions import Verb
from doradus._tui.columns import (
    COLUMNS,
    NARROW_COLUMNS,
    matches,
    next_sort,
    shown_columns,
    sort_nodes,
    state_text,
)
from doradus._tui.records import DataflowRecord, NodeRecord


class Act(Message):
    """A key asked for ``verb`` on the dataflow (``node`` None) or on a node.

    Example::

        def on_act(self, message: Act) -> None: ...
    """

    def __init__(self, verb: Verb | str, node: str | None = None) -> None:
        self.verb = verb
        self.node = node
        super().__init__()


def same_text(old: Text | None, new: Text) -> bool:
    """Whether two cells look the same: text, style, spans and alignment.

    Example:
        >>> same_text(Text("a", style="bold"), Text("a")), same_text(Text("a"), Text("a"))
        (False, True)
    """
    if old is None:
        return False
    return (old.plain, str(old.style), old.spans, old.justify) == (
        new.plain,
        str(new.style),
        new.spans,
        new.justify,
    )


class _KeyedTable(DataTable[Text]):
    """A table whose rows are known by a string key and whose cells change one at a time."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self._cells: dict[tuple[str, str], Text] = {}

    def _put_row(self, key: str, cells: dict[str, Text]) -> None:
        if RowKey(key) not in self._row_locations:
            self.add_row(*cells.values(), key=key)
            self._cells.update({(key, column): cell for column, cell in cells.items()})
            return
        for column, cell in cells.items():
            if not same_text(self._cells.get((key, column)), cell):
                self._cells[(key, column)] = cell
                self.update_cell(key, column, cell)

    def _keep_rows(self, keys: Iterable[str]) -> None:
        wanted = set(keys)
        for row_key in list(self.rows):
            if row_key.value not in wanted:
                self.remove_row(row_key)
                self._cells = {k: v for k, v in self._cells.items() if k[0] != row_key.value}

    def _put_order(self, keys: list[str], by: str) -> None:
        if [row.key.value for row in self.ordered_rows] == keys:
            return
        current = self.current_key
        # The cells in the table are the very objects kept in `_cells`: rank them by identity.
        rank = {id(self._cells[(key, by)]): index for index, key in enumerate(keys)}
        self.sort(by, key=lambda cell: rank.get(id(cell), len(rank)))
        if current is not None and RowKey(current) in self._row_locations:
            self.move_cursor(row=self.get_row_index(current), animate=False, scroll=False)

    @property
    def current_key(self) -> str | None:
        """The key of the row under the cursor, if any."""
        if not self.row_count:
            return None
        try:
            value = self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        except Exception:  # the cursor is past the last row while rows change
            return None
        return value


class DataflowsPane(_KeyedTable):
    """Every dataflow: name, id, state, uptime, node count, machines; Enter selects one.

    Example::

        pane.show(live.dataflows.values(), selected=live.selected)
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("p", "act('pause')", "Pause"),
        Binding("r", "act('resume')", "Resume"),
        Binding("R", "act('restart')", "Restart"),
        Binding("s", "act('stop')", "Stop"),
    ]
    TITLES: ClassVar[dict[str, str]] = {
        "mark": " ",
        "name": "Dataflow",
        "id": "ID",
        "status": "State",
        "uptime": "Uptime",
        "nodes": "Nodes",
        "machines": "Machines",
    }

    class Chosen(Message):
        """Enter was pressed on the dataflow ``dataflow_id``."""

        def __init__(self, dataflow_id: str) -> None:
            self.dataflow_id = dataflow_id
            super().__init__()

    def on_mount(self) -> None:
        """Add the columns."""
        for key, title in self.TITLES.items():
            self.add_column(title, key=key, width=1 if key == "mark" else None)

    def show(self, flows: Iterable[DataflowRecord], selected: str | None) -> None:
        """Show ``flows`` in this order, ``selected`` marked."""
        listed = list(flows)
        for flow in listed:
            self._put_row(flow.id, _flow_cells(flow, flow.id == selected))
        self._keep_rows(flow.id for flow in listed)
        self._put_order([flow.id for flow in listed], "mark")

    def action_act(self, verb: str) -> None:
        """Ask the app for ``verb`` on the dataflow under the cursor."""
        if self.current_key is not None:
            self.post_message(Act(verb))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        """Enter: show this dataflow."""
        event.stop()
        if event.row_key.value is not None:
            self.post_message(self.Chosen(event.row_key.value))


def _flow_cells(flow: DataflowRecord, selected: bool) -> dict[str, Text]:
    machines = ", ".join(flow.machines) or flow.machine or "-"
    uptime = Text(fmt.duration(flow.uptime_s), justify="right")
    return {
        "mark": Text("▶" if selected else " ", style="bold"),
        "name": Text(flow.name, style="bold" if selected else ""),
        "id": Text(flow.id[:8], style="dim"),
        "status": state_text(flow.status),
        "uptime": uptime,
        "nodes": Text(fmt.count(flow.nodes), justify="right"),
        "machines": Text(machines),
    }


class NodesTable(_KeyedTable):
    """The selected dataflow's nodes: the chosen columns, sorted, filtered.

    Example::

        table.sort_by("errors")       # highest first
        table.needle = "cam"; table.show(live.nodes)
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("p", "act('pause')", "Pause"),
        Binding("r", "act('resume')", "Resume"),
        Binding("R", "act('restart')", "Restart"),
        Binding("s", "act('stop')", "Stop"),
        Binding("e", "act('edit')", "Edit config"),
        Binding("o", "next_sort", "Sort"),
        Binding("O", "reverse_sort", "Reverse", show=False),
        Binding("c", "act('columns')", "Columns"),
    ]

    class Opened(Message):
        """Enter was pressed on the node ``node``."""

        def __init__(self, node: str) -> None:
            self.node = node
            super().__init__()

    def __init__(self, columns: Iterable[str], *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.chosen = shown_columns(columns)
        self.shown = self.chosen
        self.is_narrow = False
        self.sort_key = "node"
        self.descending = False
        self.needle = ""
        self._records: Mapping[str, NodeRecord] = {}

    def on_mount(self) -> None:
        """Add the columns."""
        self._add_columns()

    def _add_columns(self) -> None:
        for key in self.shown:
            column = COLUMNS[key]
            width = None if column.width is None else max(column.width, len(column.title) + 1)
            self.add_column(self._title(key), key=key, width=width)

    def _title(self, key: str) -> Text:
        column = COLUMNS[key]
        arrow = ("▼" if self.descending else "▲") if key == self.sort_key else ""
        return Text(column.title + arrow, justify="right" if column.numeric else "left", style="bold")

    def set_columns(self, keys: Iterable[str]) -> None:
        """Show these columns from now on (the node column always)."""
        self.chosen = shown_columns(keys)
        self._relayout()

    def narrow(self, narrow: bool) -> None:
        """Keep only `NARROW_COLUMNS` of the chosen ones (the detail panel is open), or all again."""
        if narrow != self.is_narrow:
            self.is_narrow = narrow
            self._relayout()

    def _relayout(self) -> None:
        self.shown = [key for key in self.chosen if key in NARROW_COLUMNS] if self.is_narrow else self.chosen
        if self.sort_key not in self.shown:
            self.sort_key, self.descending = "node", False
        current = self.current_key
        self.clear(columns=True)
        self._cells.clear()
        self._add_columns()
        self.show(self._records)
        if current is not None and RowKey(current) in self._row_locations:
            self.move_cursor(row=self.get_row_index(current), animate=False)

    def sort_by(self, key: str, descending: bool | None = None) -> None:
        """Sort by column ``key`` (numbers highest first unless ``descending`` says)."""
        self.sort_key = key
        self.descending = COLUMNS[key].numeric if descending is None else descending
        for column in self.shown:
            self.columns[ColumnKey(column)].label = self._title(column)
        self._require_update_dimensions = True
        self.show(self._records)

    def show(self, nodes: Mapping[str, NodeRecord]) -> None:
        """Show ``nodes`` (those passing the filter, in the sort order), changing only what changed."""
        self._records = nodes
        rows = sort_nodes(
            (n for n in nodes.values() if matches(n, self.needle)), self.sort_key, descending=self.descending
        )
        for node in rows:
            self._put_row(node.id, {key: COLUMNS[key].show(node) for key in self.shown})
        self._keep_rows(node.id for node in rows)
        self._put_order([node.id for node in rows], "node")
        self.border_subtitle = f"filter: {self.needle}" if self.needle else ""

    @property
    def visible_ids(self) -> list[str]:
        """The node ids shown, top to bottom."""
        return [str(row.key.value) for row in self.ordered_rows]

    def action_act(self, verb: str) -> None:
        """Ask the app for ``verb`` on the node under the cursor."""
        if self.current_key is not None:
            self.post_message(Act(verb, self.current_key))

    def action_next_sort(self) -> None:
        """``o``: sort by the next shown column."""
        self.sort_by(*next_sort(self.shown, self.sort_key))

    def action_reverse_sort(self) -> None:
        """``O``: reverse the order."""
        self.sort_by(self.sort_key, not self.descending)

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        """A click on a header sorts by it; a second click reverses."""
        event.stop()
        key = str(event.column_key.value)
        if key == self.sort_key:
            self.action_reverse_sort()
        else:
            self.sort_by(key)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        """Enter: open the node's detail."""
        event.stop()
        if event.row_key.value is not None:
            self.post_message(self.Opened(event.row_key.value))
