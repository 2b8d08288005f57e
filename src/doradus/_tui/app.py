"""The Textual app of ``doradus tui``: the main screen, its keys, and what they ask the coordinator.

The main screen follows the layout users know from the proposal: the dataflows pane
on top, a line about the selected dataflow, its nodes table (with the node detail
panel beside it once opened), the logs pane, a status line about the stream, and the
keys. Every stream message goes through `DoradusTui.take`: `LiveState` applies it and
says what changed, and only those widgets are updated, in place.

Keys on the dataflows pane act on the dataflow, keys on the nodes table on the node
(`panes.Act`); destructive ones (restart, stop, a configuration change) ask first.
Requests go through the coordinator's HTTP API (`actions`); their answer, or their
error with its fix, shows as a notification, and the change itself arrives with the
next stream update.

Example::

    app = DoradusTui(client=client, settings=Settings(refresh=0.5), dataflow="0a1b2c")
    app.run()
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, ClassVar

from rich.console import Group
from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import DataTable, Footer, Header, Input, Static

from doradus._control.client import ApiError, ControlClient, ServiceUnreachable
from doradus._observability.records import LEVEL_RANK
from doradus._tui import formatting as fmt
from doradus._tui.actions import DESTRUCTIVE, Action, as_verb, perform
from doradus._tui.columns import state_text
from doradus._tui.detail import NodeDetail
from doradus._tui.feed import FeedStatus, StreamFeed
from doradus._tui.graph import LEGEND, draw_graph, edges_table
from doradus._tui.live import Change, LiveState
from doradus._tui.logs_pane import LogsPane
from doradus._tui.panes import Act, DataflowsPane, NodesTable
from doradus._tui.records import DataflowRecord
from doradus._tui.screens import (
    ColumnsScreen,
    ConfigChange,
    ConfigScreen,
    ConfirmScreen,
    GraphScreen,
    HelpScreen,
)
from doradus._tui.settings import Settings

STATUS_STYLES = {"connecting": "yellow", "connected": "green", "retrying": "yellow", "gone": "bold red"}


class DoradusTui(App[None]):
    """The live terminal UI.

    Args:
        client: Reaches the coordinator's HTTP API (actions); None: no actions.
        settings: Theme, shown columns, refresh interval.
        dataflow: The id of the dataflow to show first; None: the first running one.
        feed: The stream client (`feed.make_feed`); None: no stream, messages come only
            through `take`.

    Example::

        DoradusTui(client=None, settings=Settings()).take({"type": "dataflows", "dataflows": []})
    """

    CSS_PATH = "styles.tcss"
    TITLE = "Doradus"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark", "help", "Help"),
        Binding("g", "graph", "Graph"),
        Binding("l", "logs", "Logs"),
        Binding("slash", "filter", "Filter"),
        Binding("escape", "escape", "Close", show=False),
    ]

    def __init__(
        self,
        *,
        client: ControlClient | None,
        settings: Settings,
        dataflow: str | None = None,
        feed: StreamFeed | None = None,
    ) -> None:
        super().__init__()
        self.client = client
        self.settings = settings
        self.live = LiveState(selected=dataflow)
        self.sub_title = str(client.address) if client else "offline"
        self.feed = feed
        self.status = FeedStatus("connecting", "Not connected")
        self._configs: dict[tuple[str, str], ConfigChange] = {}
        self._filter_target = "nodes"
        self.dataflows = DataflowsPane(id="dataflows")
        self.nodes = NodesTable(settings.columns, id="nodes")
        self.detail = NodeDetail(id="detail")
        self.logs = LogsPane(id="logs")
        self._info = Static("", id="info", markup=False)
        self._filter_box = Input(id="filter", placeholder="Filter — Enter applies, Escape clears")
        self._status_line = Static("", id="status", markup=False)

    def compose(self) -> ComposeResult:
        """The main screen."""
        yield Header(show_clock=False)
        yield self.dataflows
        yield self._info
        with Horizontal(id="middle"):
            yield self.nodes
            yield self.detail
        yield self.logs
        yield self._filter_box
        yield self._status_line
        yield Footer()

    def on_mount(self) -> None:
        """Theme, titles, focus, and the stream in a worker."""
        self.theme = self.settings.theme
        self.dataflows.border_title = "Dataflows"
        self.nodes.border_title = "Nodes"
        self.nodes.focus()
        self._show_info()
        self._show_status()
        if self.feed is not None:
            self.run_worker(self.feed.run(self._streamed, self._feed_changed), name="stream", group="stream")

    class Streamed(Message):
        """A stream message arrived (posted by the feed's worker)."""

        def __init__(self, payload: dict[str, Any]) -> None:
            self.payload = payload
            super().__init__()

    class FeedChanged(Message):
        """The stream connected, dropped, is retrying or gave up."""

        def __init__(self, status: FeedStatus) -> None:
            self.status = status
            super().__init__()

    def _streamed(self, payload: dict[str, Any]) -> None:
        self.post_message(self.Streamed(payload))

    def _feed_changed(self, status: FeedStatus) -> None:
        self.post_message(self.FeedChanged(status))

    def on_doradus_tui_streamed(self, message: Streamed) -> None:
        """A stream message, through the app's message queue (dropped once the app is closing)."""
        if not self.screen_stack:
            return  # the app is shutting down: its screens are gone, nothing is shown any more
        self.take(message.payload)

    def on_doradus_tui_feed_changed(self, message: FeedChanged) -> None:
        """A change of the stream's connection, through the app's message queue."""
        if self.screen_stack:  # else the app is shutting down
            self.on_feed_status(message.status)

    # ------------------------------------------------------------------ the stream
    def take(self, message: dict[str, Any]) -> None:
        """One stream message: apply it, then update what it changed.

        Example::

            app.take({"type": "log", "record": {"level": "INFO", "node": "cam", "message": "hi"}})
        """
        change = self.live.apply(message)
        if Change.DATAFLOWS in change:
            self.dataflows.show(self.live.dataflows.values(), self.live.selected)
            gone = self.live.selected is not None and self.live.selected not in self.live.dataflows
            if (self.live.selected is None or gone) and (
                first := self.live.first_running()
            ) != self.live.selected:
                self.select(first)  # the first running one (None: wait for one)
        if Change.DATAFLOW in change:
            self.nodes.show(self.live.nodes)
            self.detail.redraw(self.live)
            top = self.screen_stack[-1] if self.screen_stack else None
            if isinstance(top, GraphScreen):
                top.redraw()
        if Change.LOGS in change:
            if message.get("type") == "log":
                self.logs.add(self.live.logs[-1])
            self.logs.summarize(self.live.problems(), self.live.dropped_logs)
        if Change.ERROR in change and self.live.last_error:
            error, fix = self.live.last_error
            self.notify(f"{error}\nFix: {fix}" if fix else error, title="Stream", severity="error")
        if change & (Change.DATAFLOWS | Change.DATAFLOW | Change.HELLO):
            self._show_info()
            self._show_status()

    def on_feed_status(self, status: FeedStatus) -> None:
        """The stream connected, dropped, is retrying, or gave up."""
        if status.state == "connected" and self.status.state == "retrying":
            self.live.logs.clear()  # the new connection sends its backlog again
            self.logs.redraw(self.live.logs)
        self.status = status
        self._show_status()
        if status.state == "gone":
            self.notify(f"{status.text}\nFix: {status.fix}", title="Stream", severity="error", timeout=30)

    def select(self, dataflow_id: str | None) -> None:
        """Show the dataflow ``dataflow_id`` from now on."""
        self.live.select(dataflow_id)
        self.dataflows.show(self.live.dataflows.values(), self.live.selected)
        self.nodes.show(self.live.nodes)
        self._close_detail()
        self.logs.redraw(self.live.logs)
        self._show_info()
        self._subscribe()

    def _subscribe(self) -> None:
        if self.feed is not None:
            wanted = replace(
                self.feed.subscription, dataflow=self.live.selected, level=self.logs.filter.level
            )
            self.run_worker(self.feed.subscribe(wanted), group="subscribe")

    def _show_info(self) -> None:
        flow = self.live.flow
        info = self._info
        if flow is None:
            waiting = "No dataflow selected" if self.live.dataflows else "No dataflow runs yet"
            info.update(
                Text(f"{waiting}: start one with `doradus start FILE`, or pick one above (Enter).", "dim")
            )
            return
        line = Text.assemble(("Selected: ", "dim"), (flow.name, "bold"), f" ({flow.id[:8]})  ")
        line.append_text(state_text(flow.status))
        machines = ", ".join(flow.machines) or flow.machine or "-"
        count = len(self.live.nodes) or fmt.count(flow.nodes)
        line.append(f"  ·  Nodes: {count}  ·  up {fmt.duration(flow.uptime_s)}  ·  machines: {machines}")
        if flow.reason:
            line.append(f"  ·  {flow.reason}", style="red")
        info.update(line)

    def _show_status(self) -> None:
        status = Text()
        status.append(self.status.text, style=STATUS_STYLES.get(self.status.state, ""))
        status.append(f"  ·  refresh {self.settings.refresh:g}s", style="dim")
        if self.live.updated_at:
            status.append(f"  ·  updated {self.live.updated_at[11:19]} UTC", style="dim")
        self._status_line.update(status)

    # ------------------------------------------------------------------ keys
    def on_dataflows_pane_chosen(self, message: DataflowsPane.Chosen) -> None:
        """Enter on the dataflows pane."""
        self.select(message.dataflow_id)
        self.nodes.focus()

    def on_nodes_table_opened(self, message: NodesTable.Opened) -> None:
        """Enter on the nodes table: open (or close) the node's detail panel."""
        if self.detail.node == message.node:
            self._close_detail()
        else:
            self.nodes.narrow(True)
            self.detail.open(message.node, self.live)

    def _close_detail(self) -> None:
        self.detail.close()
        self.nodes.narrow(False)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        """The detail panel follows the nodes table's cursor."""
        if event.data_table is self.nodes and self.detail.is_open and event.row_key.value:
            self.detail.open(event.row_key.value, self.live)

    def on_act(self, message: Act) -> None:
        """A key on the dataflows pane or the nodes table."""
        if message.verb == "columns":
            self.push_screen(ColumnsScreen(self.nodes.chosen), self._set_columns)
            return
        flow = self.live.flow if message.node else self._flow_under_cursor()
        if flow is None:
            self.notify("No dataflow is selected.", severity="warning")
            return
        if message.verb == "edit" and message.node:
            self._edit(flow.id, flow.name, message.node)
        elif (verb := as_verb(message.verb)) is not None:
            self.request(Action(verb, flow.id, node=message.node, label=flow.name))

    def _flow_under_cursor(self) -> DataflowRecord | None:
        key = self.dataflows.current_key
        return self.live.dataflows.get(key) if key else None

    def _set_columns(self, chosen: list[str] | None) -> None:
        if chosen:
            self.nodes.set_columns(chosen)

    def _edit(self, flow_id: str, flow_name: str, node: str) -> None:
        before = self._configs.get((flow_id, node), ConfigChange({}, None))
        env_text = "\n".join(f"{key}={value}" for key, value in before.env.items())

        def answer(change: ConfigChange | None) -> None:
            if change is None:
                return
            self._configs[(flow_id, node)] = change
            action = Action(
                "restart",
                flow_id,
                node=node,
                env=change.env or None,
                args=change.args,
                data_format=change.data_format,
                schema=change.schema,
                label=flow_name,
            )
            self.request(action)

        form = ConfigScreen(node, env_text, before.args or "", before.data_format or "", before.schema or "")
        self.push_screen(form, answer)

    def request(self, action: Action) -> None:
        """Send ``action`` (after a yes, for a destructive one).

        Example::

            app.request(Action("pause", flow_id, node="detector"))
        """
        if action.verb not in DESTRUCTIVE:
            self.run_worker(self._send(action), group="actions")
            return

        def answer(yes: bool | None) -> None:
            if yes:
                self.run_worker(self._send(action), group="actions")

        detail = "Its process is stopped (Stop event, then SIGTERM/SIGKILL after the grace period)."
        self.push_screen(ConfirmScreen(action.question(), detail), answer)

    async def _send(self, action: Action) -> None:
        if self.client is None:
            self.notify("Not connected to a coordinator.", severity="error")
            return
        try:
            answer = await perform(self.client, action)
        except ApiError as exc:
            self.notify(f"{exc}\nFix: {exc.fix}" if exc.fix else str(exc), title="Refused", severity="error")
            return
        except ServiceUnreachable as exc:
            self.notify(f"{exc}\nFix: {exc.fix}", title="No coordinator", severity="error")
            return
        self.notify(action.done(), title="Done")
        if action.verb == "restart" and action.node is None and isinstance(answer, dict) and answer.get("id"):
            self.select(str(answer["id"]))  # a restarted dataflow is a new run

    # ------------------------------------------------------------------ app keys
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """The main screen's keys (logs, filter, graph) do nothing over another screen."""
        return not (action in ("logs", "filter", "graph") and len(self.screen_stack) > 1)

    def action_help(self) -> None:
        """``?``: every key."""
        self.push_screen(HelpScreen())

    def action_graph(self) -> None:
        """``g``: the graph of the selected dataflow."""
        live = self.live

        def title() -> str:
            name = live.flow.name if live.flow else "no dataflow"
            return f"Graph of {name}: {len(live.nodes)} nodes, rates per edge (g or escape: back)"

        def draw() -> Group:
            legend = Text(LEGEND, style="dim")
            return Group(
                draw_graph(live.nodes, live.edges, live.rates),
                Text(),
                legend,
                Text(),
                edges_table(live.edges, live.rates),
            )

        self.push_screen(GraphScreen(draw, title))

    def action_logs(self) -> None:
        """``l``: to the logs pane, and back to the nodes table."""
        if self.focused is self.logs:
            self.nodes.focus()
        else:
            self.logs.focus()

    def action_filter(self) -> None:
        """``/``: type a filter for the nodes table, or for the logs when they have the focus."""
        self._filter_target = "logs" if self.focused is self.logs else "nodes"
        box = self._filter_box
        box.value = self.logs.filter.text if self._filter_target == "logs" else self.nodes.needle
        box.placeholder = f"Filter {self._filter_target} — Enter applies, Escape clears"
        box.add_class("open")
        box.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Enter in the filter box applies it."""
        if event.input.id == "filter":
            self._apply_filter(event.value)

    def _apply_filter(self, text: str) -> None:
        box = self._filter_box
        box.remove_class("open")
        if self._filter_target == "logs":
            self.logs.set_text(text)
            self.logs.focus()
        else:
            self.nodes.needle = text
            self.nodes.show(self.live.nodes)
            self.nodes.focus()

    def action_escape(self) -> None:
        """Escape: close the filter box, else the detail panel, else clear the nodes filter."""
        box = self._filter_box
        if box.has_class("open"):
            self._apply_filter("")
        elif self.detail.is_open:
            self._close_detail()
        elif self.nodes.needle:
            self.nodes.needle = ""
            self.nodes.show(self.live.nodes)

    def on_logs_pane_changed(self, message: LogsPane.Changed) -> None:
        """A logs filter changed: redraw; below the subscribed level, resubscribe for the records missing.

        A higher level filters the records already here; a lower one needs the stream to
        send the lower records too: the logs start again from its backlog (``tail``).
        """
        subscribed = LEVEL_RANK[self.feed.subscription.level] if self.feed else 0
        if message.level_changed and LEVEL_RANK[self.logs.filter.level] < subscribed:
            self.live.logs.clear()
            self._subscribe()
        self.logs.redraw(self.live.logs)

    def on_logs_pane_node_wanted(self, message: LogsPane.NodeWanted) -> None:
        """``n`` on the logs pane: only the node under the nodes table's cursor."""
        if self.nodes.current_key:
            self.logs.set_node(self.nodes.current_key)
