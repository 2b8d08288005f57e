"""The logs pane: live records coloured by level, filtered, grouped, pausable, with a problems summary.

Records come from the stream (the selected dataflow's, from the subscribed level up).
The pane filters them by minimum level (``v`` cycles), by node (``n``: only the node
under the nodes table's cursor) and by text (``/``); it shows them in arrival order,
or grouped by severity (most severe first) or by source node (``b`` cycles). Space
pauses scrolling: records keep arriving and are counted, and show on resume. Beside
it, the recent warnings and errors are summed up per node.

Example::

    pane.add(live.logs[-1])      # a record arrived
    pane.redraw(live.logs)       # a filter changed
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import ClassVar, Literal

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import RichLog, Static

from doradus._observability.records import LEVEL_RANK
from doradus._tui.detail import LEVEL_STYLES, log_line
from doradus._tui.live import NodeProblems
from doradus._tui.records import LogLine

Grouping = Literal["time", "severity", "source"]
GROUPINGS: tuple[Grouping, ...] = ("time", "severity", "source")
LEVEL_CHOICES = ("DEBUG", "INFO", "WARN", "ERROR")
"""The minimum levels ``v`` cycles through."""
GROUPED_REDRAW = 1.0
"""Seconds between two redraws of a grouped view while records arrive."""
SHOWN_LINES = 2000
"""Records the pane holds (older ones scroll away)."""


@dataclass(frozen=True)
class LogFilter:
    """Which records the pane shows.

    Example:
        >>> LogFilter(level="WARN").keeps(LogLine("t", "INFO", "cam", "hello"))
        False
        >>> LogFilter(node="cam", text="HEL").keeps(LogLine("t", "INFO", "cam", "hello"))
        True
    """

    level: str = "INFO"
    node: str | None = None
    text: str = ""

    def keeps(self, line: LogLine) -> bool:
        """Whether ``line`` passes every part of the filter."""
        if LEVEL_RANK.get(line.level, 0) < LEVEL_RANK.get(self.level, 0):
            return False
        if self.node is not None and line.node != self.node:
            return False
        return not self.text or self.text.lower() in f"{line.origin} {line.message}".lower()

    def describe(self) -> str:
        """The filter in a few words, for the pane's title."""
        parts = [f"level ≥ {self.level}", f"node {self.node}" if self.node else "all nodes"]
        if self.text:
            parts.append(f"text {self.text!r}")
        return ", ".join(parts)


def grouped(lines: Iterable[LogLine], by: Grouping) -> list[Text]:
    """The lines as the pane shows them: in order, or under one heading per level or node.

    Example:
        >>> lines = [LogLine("t", "INFO", "a", "x"), LogLine("t", "ERROR", "b", "y")]
        >>> [t.plain for t in grouped(lines, "severity")]
        ['── ERROR (1)', 't ERROR b: y', '── INFO (1)', 't INFO  a: x']
    """
    listed = list(lines)
    if by == "time":
        return [log_line(x.clock, x.level, x.message, x.origin) for x in listed]
    groups: dict[str, list[LogLine]] = {}
    for line in listed:
        groups.setdefault(line.level if by == "severity" else line.origin, []).append(line)
    order = sorted(groups, key=lambda k: -LEVEL_RANK.get(k, 0)) if by == "severity" else sorted(groups)
    out: list[Text] = []
    for key in order:
        out.append(Text(f"── {key} ({len(groups[key])})", style=f"bold {LEVEL_STYLES.get(key, '')}".strip()))
        out += [log_line(x.clock, x.level, x.message, x.origin) for x in groups[key]]
    return out


def shorten(text: str, width: int) -> str:
    """``text`` on one line of at most ``width`` cells, cut with ``…``.

    Example:
        >>> shorten("a long message", 8)
        'a long …'
    """
    line = " ".join(text.split())
    return line if len(line) <= width else line[: max(0, width - 1)] + "…"


def problems_text(problems: list[NodeProblems], limit: int = 6, width: int = 36) -> Text:
    """The summary beside the logs: per node, errors and warnings and the last of them.

    Example:
        >>> found = NodeProblems("cam", warnings=2, errors=1, last="disk full", last_level="ERROR")
        >>> print(problems_text([found]).plain)
        Recent problems
        cam  1 error  2 warn
          disk full
    """
    out = Text()
    out.append("Recent problems", style="bold underline")
    if not problems:
        out.append("\nnone", style="dim")
    for found in problems[:limit]:
        out.append(f"\n{found.node}", style="bold")
        out.append(
            f"  {found.errors} error{'s' if found.errors != 1 else ''}",
            style="red" if found.errors else "dim",
        )
        out.append(f"  {found.warnings} warn", style="yellow" if found.warnings else "dim")
        out.append(f"\n  {shorten(found.last, width - 2)}", style=LEVEL_STYLES.get(found.last_level, ""))
    return out


class LogsPane(Vertical):
    """The pane: the records, and the per-node summary of recent problems.

    Example::

        yield LogsPane(id="logs")
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("space", "toggle_pause", "Pause scroll"),
        Binding("v", "next_level", "Level"),
        Binding("n", "toggle_node", "This node"),
        Binding("b", "next_grouping", "Group"),
    ]
    can_focus = True

    class Changed(Message):
        """The filter or grouping changed: the app redraws from its records."""

        def __init__(self, level_changed: bool = False) -> None:
            self.level_changed = level_changed
            super().__init__()

    class NodeWanted(Message):
        """``n``: the app tells which node is under the nodes table's cursor (`LogsPane.toggle_node`)."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.filter = LogFilter()
        self.grouping: Grouping = "time"
        self.paused = False
        self._stale = False
        self.waiting = 0
        self.dropped = 0
        self._log = RichLog(
            max_lines=SHOWN_LINES, min_width=20, wrap=True, markup=False, auto_scroll=True, id="log-lines"
        )
        self._summary = Static("", id="log-summary", markup=False)

    def compose(self) -> ComposeResult:
        """The records on the left, the summary on the right."""
        with Horizontal():
            yield self._log
            yield self._summary

    def on_mount(self) -> None:
        """Title the pane; grouped views are redrawn once a second when records came."""
        self._retitle()
        self.set_interval(GROUPED_REDRAW, self._redraw_grouped)

    def _redraw_grouped(self) -> None:
        if self._stale and not self.paused:
            self._stale = False
            self.post_message(self.Changed())

    def _retitle(self) -> None:
        self.border_title = f"Logs — {self.filter.describe()}, by {self.grouping}"
        notes = []
        if self.paused:
            notes.append(f"PAUSED, {self.waiting} new")
        if self.dropped:
            notes.append(f"{self.dropped} dropped by the stream")
        self.border_subtitle = " · ".join(notes)

    def add(self, line: LogLine) -> None:
        """A record arrived: show it now when it passes and the pane is live and in order."""
        if not self.filter.keeps(line):
            return
        if self.paused:
            self.waiting += 1
            self._retitle()
        elif self.grouping == "time":
            self._log.write(log_line(line.clock, line.level, line.message, line.origin))
        else:
            self._stale = True  # a grouped view is redrawn whole, at most once a second

    def redraw(self, lines: Iterable[LogLine]) -> None:
        """Show every kept record again (a filter, the grouping or the pause changed)."""
        self._log.clear()
        for text in grouped((x for x in lines if self.filter.keeps(x)), self.grouping):
            self._log.write(text, scroll_end=self.grouping == "time" and not self.paused)
        if self.grouping != "time":
            self._log.scroll_home(animate=False)  # a grouped view reads from its first heading
        self._retitle()

    def summarize(self, problems: list[NodeProblems], dropped: int) -> None:
        """Update the problems summary and the count of records the stream dropped."""
        self._summary.update(problems_text(problems))
        if dropped != self.dropped:
            self.dropped = dropped
            self._retitle()

    @property
    def lines(self) -> list[str]:
        """The text of the records shown, top to bottom."""
        return [strip.text for strip in self._log.lines]

    def action_toggle_pause(self) -> None:
        """Space: stop or restart scrolling."""
        self.paused = not self.paused
        self.waiting = 0
        self._log.auto_scroll = not self.paused
        self.post_message(self.Changed())

    def action_next_level(self) -> None:
        """``v``: the next minimum level."""
        index = LEVEL_CHOICES.index(self.filter.level) if self.filter.level in LEVEL_CHOICES else 0
        self.filter = replace(self.filter, level=LEVEL_CHOICES[(index + 1) % len(LEVEL_CHOICES)])
        self.post_message(self.Changed(level_changed=True))

    def action_toggle_node(self) -> None:
        """``n``: only the node under the nodes table's cursor, or every node again."""
        if self.filter.node is not None:
            self.set_node(None)
        else:
            self.post_message(self.NodeWanted())

    def set_node(self, node: str | None) -> None:
        """Show only ``node``'s records (None: every node's)."""
        self.filter = replace(self.filter, node=node)
        self.post_message(self.Changed())

    def set_text(self, text: str) -> None:
        """Show only records holding ``text`` (any case)."""
        self.filter = replace(self.filter, text=text)
        self.post_message(self.Changed())

    def action_next_grouping(self) -> None:
        """``b``: in order, by severity, by source."""
        self.grouping = GROUPINGS[(GROUPINGS.index(self.grouping) + 1) % len(GROUPINGS)]
        self.post_message(self.Changed())
