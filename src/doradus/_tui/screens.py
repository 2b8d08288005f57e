"""The screens over the main one: help, confirmation, configuration form, column chooser, graph.

Modal screens return their answer through ``dismiss`` (Textual's screen results):
`ConfirmScreen` a bool, `ConfigScreen` a `ConfigChange` or None, `ColumnsScreen` the
chosen column keys or None. `GraphScreen` is a full screen the app redraws at each
update while it is shown.

Example::

    app.push_screen(ConfirmScreen("Stop dataflow 'demo'?"), on_answer)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import ClassVar

from rich.console import RenderableType
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, HorizontalScroll, Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, Footer, Input, Label, SelectionList, Static, TextArea

from doradus._tui.columns import ALWAYS_SHOWN, COLUMNS

KEYS = (
    ("Anywhere", ""),
    ("q", "quit"),
    ("?", "this help"),
    ("tab / shift+tab", "next / previous pane"),
    ("g", "graph of the dataflow (g or escape to come back)"),
    ("l", "to the logs pane and back"),
    ("/", "filter the nodes table, or the logs when the logs pane has the focus"),
    ("escape", "close the detail panel, clear the filter"),
    ("Dataflows pane", ""),
    ("enter", "show this dataflow"),
    ("p / r", "pause / resume every node of the dataflow"),
    ("R", "restart the dataflow (asks first)"),
    ("s", "stop the dataflow (asks first)"),
    ("Nodes table", ""),
    ("enter", "open or close the node's detail panel"),
    ("p / r", "pause / resume the node"),
    ("R", "restart the node (asks first)"),
    ("e", "edit the node's env, args and data format, then restart it with them (asks first)"),
    ("o / O", "sort by the next column / reverse the order (or click a header)"),
    ("c", "choose the shown columns"),
    ("Logs pane", ""),
    ("space", "pause / resume scrolling"),
    ("v", "minimum level: DEBUG, INFO, WARN, ERROR"),
    ("n", "only the node under the nodes table's cursor / every node"),
    ("b", "in order, grouped by severity, grouped by source node"),
)
"""Every key, by where it acts (rows with no action are headings)."""


def help_text() -> Text:
    """The help screen's text.

    Example:
        >>> "restart the node" in help_text().plain
        True
    """
    out = Text()
    for key, action in KEYS:
        if not action:
            out.append(f"\n{key}\n", style="bold underline")
        else:
            out.append(f"  {key:<16}", style="bold cyan")
            out.append(f"{action}\n")
    return out


class HelpScreen(ModalScreen[None]):
    """Every key and what it does; any of escape, q or ? closes it.

    Example::

        app.push_screen(HelpScreen())
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark", "close", "Close"),
    ]

    def compose(self) -> ComposeResult:
        """The key table."""
        with VerticalScroll(id="help"):
            yield Static(help_text(), markup=False)

    def action_close(self) -> None:
        """Close."""
        self.dismiss(None)


class ConfirmScreen(ModalScreen[bool]):
    """A yes/no question: y or Enter on Yes confirms, n or escape refuses.

    Example::

        app.push_screen(ConfirmScreen("Restart node 'cam'?"), lambda yes: ...)
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(self, question: str, detail: str = "") -> None:
        super().__init__()
        self.question = question
        self.detail = detail

    def compose(self) -> ComposeResult:
        """The question and two buttons."""
        with Vertical(id="confirm"):
            yield Static(self.question, id="question", markup=False)
            if self.detail:
                yield Static(self.detail, id="confirm-detail", markup=False)
            with Horizontal(id="confirm-buttons"):
                yield Button("Yes (y)", variant="error", id="yes")
                yield Button("No (n)", variant="primary", id="no")

    def action_answer(self, yes: bool) -> None:
        """Close with the answer."""
        self.dismiss(yes)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        """A button answers."""
        self.dismiss(event.button.id == "yes")


@dataclass(frozen=True)
class ConfigChange:
    r"""A node's new configuration: ``env`` merged over the dataflow's; the others None: unchanged.

    Example:
        >>> ConfigChange.parse("X=2\n# note\nY = a b", "")
        ConfigChange(env={'X': '2', 'Y': 'a b'}, args=None, data_format=None, schema=None)
        >>> ConfigChange.parse("", "", "avro", "reading.avsc").data_format
        'avro'
    """

    env: dict[str, str]
    args: str | None
    data_format: str | None = None
    """The outputs' new data format (``avro``...), checked by the coordinator before the restart."""
    schema: str | None = None
    """Its schema, ``file[:Type]`` relative to the dataflow file's folder."""

    @classmethod
    def parse(
        cls, env_text: str, args_text: str, format_text: str = "", schema_text: str = ""
    ) -> ConfigChange:
        """Read the form: one ``KEY=VALUE`` a line (blank lines and ``#`` comments skipped).

        Raises:
            ValueError: A line is not ``KEY=VALUE``.
        """
        env: dict[str, str] = {}
        for number, raw in enumerate(env_text.splitlines(), start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            key, sep, value = line.partition("=")
            if not sep or not key.strip():
                raise ValueError(f"line {number} is not KEY=VALUE: {line!r}")
            env[key.strip()] = value.strip()
        return cls(env, args_text.strip() or None, format_text.strip() or None, schema_text.strip() or None)


class ConfigScreen(ModalScreen["ConfigChange | None"]):
    """The form of ``e``: env lines, args, data format and schema for a node, then Apply or Cancel.

    Example::

        app.push_screen(ConfigScreen("detector", "X=1", ""), on_change)
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+s", "apply", "Restart with these"),
    ]

    def __init__(
        self, node: str, env_text: str = "", args_text: str = "", format_text: str = "", schema_text: str = ""
    ) -> None:
        super().__init__()
        self.node = node
        self.env_text = env_text
        self.args_text = args_text
        self.format_text = format_text
        self.schema_text = schema_text

    def compose(self) -> ComposeResult:
        """The form."""
        with Vertical(id="config"):
            yield Label(f"Configuration of node {self.node!r}", id="config-title")
            yield Label("env (KEY=VALUE a line, merged over the dataflow's env)")
            yield TextArea(self.env_text, id="config-env", soft_wrap=False)
            yield Label("args (empty: the dataflow's args)")
            yield Input(self.args_text, id="config-args", placeholder="--flag value")
            yield Label("its outputs' data format · schema file[:Type] (empty: unchanged)")
            with Horizontal(id="config-format-row"):
                yield Input(self.format_text, id="config-format", placeholder="avro")
                yield Input(self.schema_text, id="config-schema", placeholder="schemas/reading.avsc[:Type]")
            yield Static("", id="config-error", markup=False)
            yield Static("Tab: next field · Ctrl+S: restart with these · Escape: cancel", id="config-keys")
            with Horizontal(id="config-buttons"):
                yield Button("Restart with these", variant="warning", id="apply")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        """Start in the env field."""
        self.query_one("#config-env", TextArea).focus()

    def action_cancel(self) -> None:
        """Close without a change."""
        self.dismiss(None)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        """Apply (after checking the env lines) or cancel."""
        if event.button.id == "apply":
            self.action_apply()
        else:
            self.dismiss(None)

    def action_apply(self) -> None:
        """Check the env lines, then close with the change."""
        env_text = self.query_one("#config-env", TextArea).text
        args_text = self.query_one("#config-args", Input).value
        format_text = self.query_one("#config-format", Input).value
        schema_text = self.query_one("#config-schema", Input).value
        try:
            change = ConfigChange.parse(env_text, args_text, format_text, schema_text)
        except ValueError as exc:
            self.query_one("#config-error", Static).update(Text(f"{exc}: write one KEY=VALUE a line", "red"))
            return
        self.dismiss(change)


class ColumnsScreen(ModalScreen["list[str] | None"]):
    """The column chooser of ``c``: space ticks a column, Enter applies, escape cancels.

    Example::

        app.push_screen(ColumnsScreen(table.shown), table.set_columns)
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        Binding("enter", "apply", "Apply", priority=True),  # over the list's own Enter (a tick)
    ]

    def __init__(self, shown: Iterable[str]) -> None:
        super().__init__()
        self.shown = set(shown)

    def compose(self) -> ComposeResult:
        """The list of columns."""
        with Vertical(id="columns"):
            yield Label("Shown columns (space: tick, enter: apply, escape: cancel)")
            yield SelectionList[str](
                *[
                    (column.title, key, key in self.shown)
                    for key, column in COLUMNS.items()
                    if key != ALWAYS_SHOWN
                ],
                id="column-list",
            )

    def action_apply(self) -> None:
        """Close with the ticked columns."""
        chosen = self.query_one("#column-list", SelectionList).selected
        self.dismiss([ALWAYS_SHOWN, *(str(key) for key in chosen)])

    def action_cancel(self) -> None:
        """Close without a change."""
        self.dismiss(None)


class GraphScreen(Screen[None]):
    """The dataflow's graph, redrawn with each update; g or escape goes back.

    Example::

        app.push_screen(GraphScreen(lambda: draw_graph(live.nodes, live.edges, live.rates)))
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,g", "back", "Back"),
        Binding("q", "app.quit", "Quit"),
    ]

    def __init__(self, draw: Callable[[], RenderableType], title: Callable[[], str]) -> None:
        super().__init__()
        self.draw = draw
        self.title_of = title
        self._canvas = Static(draw(), id="graph-canvas", markup=False)

    def compose(self) -> ComposeResult:
        """The drawing, scrollable both ways."""
        with VerticalScroll(id="graph"), HorizontalScroll():
            yield self._canvas
        yield Footer()

    def on_mount(self) -> None:
        """Title it."""
        self.query_one("#graph").border_title = self.title_of()

    def redraw(self) -> None:
        """Draw the latest state."""
        self._canvas.update(self.draw())
        self.query_one("#graph").border_title = self.title_of()

    def action_back(self) -> None:
        """Back to the main screen."""
        self.app.pop_screen()
