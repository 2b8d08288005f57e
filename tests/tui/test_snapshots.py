"""SVG snapshots of the TUI's screens, from recorded stream messages (no live processes, fixed times).

A change in what a screen shows makes its test fail; after a deliberate change, look at the
new screens and accept them with ``pytest tests/tui/test_snapshots.py --snapshot-update``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from tests.tui.recorded import FLOW_ID, messages
from textual.pilot import Pilot

from doradus._control.client import ControlClient, parse_address
from doradus._tui.app import DoradusTui
from doradus._tui.feed import FeedStatus
from doradus._tui.settings import Settings

SIZE = (120, 40)
Compare = Callable[..., bool]


def recorded_app(settings: Settings | None = None) -> DoradusTui:
    """The app as it would run against robot-1:6300, with no stream: the test feeds it."""
    client = ControlClient(parse_address("robot-1:6300", "snapshot"), retries=0)
    return DoradusTui(client=client, settings=settings or Settings(), dataflow=FLOW_ID, feed=None)


async def replay(pilot: Pilot[None], extra: Iterable[dict[str, Any]] = ()) -> None:
    """Feed the recorded session into the app, as the stream would have."""
    app = pilot.app
    assert isinstance(app, DoradusTui)
    app.on_feed_status(FeedStatus("connected", "Connected to ws://robot-1:6300/api/v1/stream"))
    for message in [*messages(), *extra]:
        app.take(message)
    await pilot.pause()


def test_main_screen(snap_compare: Compare) -> None:
    assert snap_compare(recorded_app(), terminal_size=SIZE, run_before=replay)


def test_node_detail(snap_compare: Compare) -> None:
    assert snap_compare(recorded_app(), terminal_size=SIZE, run_before=replay, press=["down", "enter"])


def test_graph(snap_compare: Compare) -> None:
    assert snap_compare(recorded_app(), terminal_size=SIZE, run_before=replay, press=["g"])


def test_help(snap_compare: Compare) -> None:
    assert snap_compare(recorded_app(), terminal_size=SIZE, run_before=replay, press=["question_mark"])


def test_logs_grouped_by_severity(snap_compare: Compare) -> None:
    assert snap_compare(recorded_app(), terminal_size=SIZE, run_before=replay, press=["l", "b"])


def test_sorted_by_latency_and_filtered(snap_compare: Compare) -> None:
    keys = ["o", "o", "o", "o", "slash", *"e", "enter"]  # node → state → in → out → p50; filter "e"
    assert snap_compare(recorded_app(), terminal_size=SIZE, run_before=replay, press=keys)


def test_restart_asks_first(snap_compare: Compare) -> None:
    assert snap_compare(recorded_app(), terminal_size=SIZE, run_before=replay, press=["down", "R"])


def test_config_form(snap_compare: Compare) -> None:
    keys = ["down", "e", *"THRESHOLD=0.8"]
    assert snap_compare(recorded_app(), terminal_size=SIZE, run_before=replay, press=keys)


def test_chosen_columns_and_theme(snap_compare: Compare) -> None:
    settings = Settings(theme="nord", columns=("node", "state", "machine", "pid", "in", "errors"))
    assert snap_compare(recorded_app(settings), terminal_size=SIZE, run_before=replay)
