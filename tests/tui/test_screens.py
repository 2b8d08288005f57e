"""The app's widgets and keys on recorded stream messages: in-place updates, panels, logs, columns."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Awaitable, Callable
from typing import Any

from tests.tui.recorded import FLOW_ID, messages
from tests.tui.test_snapshots import recorded_app, replay
from textual.pilot import Pilot

from doradus._tui.app import DoradusTui
from doradus._tui.screens import ColumnsScreen, ConfirmScreen


def run(script: Callable[[DoradusTui, Pilot[None]], Awaitable[None]]) -> None:
    async def main() -> None:
        app = recorded_app()
        async with app.run_test(size=(120, 40)) as pilot:
            await replay(pilot)
            await script(app, pilot)

    asyncio.run(main())


def last_update() -> dict[str, Any]:
    return copy.deepcopy([m for m in messages() if m["type"] == "dataflow"][-1])


def test_an_update_changes_cells_in_place_and_keeps_the_cursor_on_its_node() -> None:
    async def script(app: DoradusTui, pilot: Pilot[None]) -> None:
        table = app.nodes
        table.focus()
        await pilot.press("down")  # on detector
        unchanged = table.get_cell("camera", "memory")
        rows = dict(table.rows)
        table.sort_by("in")  # highest input rate first: sink, camera, detector
        await pilot.pause()
        assert table.visible_ids[:3] == ["sink", "camera", "detector"]
        assert table.current_key == "detector"

        update = last_update()
        update["nodes"]["detector"]["input_rate"] = 99.0  # now the busiest
        update["nodes"]["detector"]["errors"] = 7
        app.take(update)
        await pilot.pause()
        assert table.visible_ids[0] == "detector"
        assert table.current_key == "detector"  # the cursor followed its row
        assert table.get_cell("detector", "in").plain == "99.0/s"
        assert table.get_cell("detector", "errors").plain == "7"
        assert table.get_cell("camera", "memory") is unchanged  # not redrawn: the same cell
        assert dict(table.rows) == rows  # no row was added or rebuilt

    run(script)


def test_the_detail_panel_follows_the_cursor_and_narrows_the_table() -> None:
    async def script(app: DoradusTui, pilot: Pilot[None]) -> None:
        app.nodes.focus()
        await pilot.press("down", "enter")
        assert app.detail.node == "detector"
        assert app.nodes.shown == ["node", "state", "in", "out", "p50"]
        text = str(app.detail._body.render())
        assert "frame  shm · arrow" in text
        assert "← camera/frame" in text
        assert "→ sink/detections" in text
        assert "20.5/s" in text
        await pilot.press("down")
        assert app.detail.node == "logger"
        await pilot.press("escape")
        assert not app.detail.is_open
        assert "errors" in app.nodes.shown

    run(script)


def test_the_logs_pane_pauses_filters_and_groups() -> None:
    async def script(app: DoradusTui, pilot: Pilot[None]) -> None:
        logs = app.logs
        await pilot.press("l")
        assert app.focused is logs
        shown = len(logs.lines)
        await pilot.press("space")
        record = {
            "level": "ERROR",
            "node": "sink",
            "message": "disk full",
            "timestamp": "2026-12-04T13:11:00.1Z",
        }
        app.take({"type": "log", "record": record})
        await pilot.pause()
        assert len(logs.lines) == shown  # paused: held, counted
        assert logs.border_subtitle == "PAUSED, 1 new"
        await pilot.press("space")
        await pilot.pause()
        assert any("disk full" in line for line in logs.lines)

        await pilot.press("v", "v")  # INFO → WARN → ERROR
        await pilot.pause()
        assert logs.filter.level == "ERROR"
        assert all(" ERROR " in line for line in logs.lines if line[:2].isdigit())

        await pilot.press("b")  # grouped by severity
        await pilot.pause()
        assert any(line.startswith("── ERROR") for line in logs.lines)
        assert "by severity" in str(logs.border_title)

    run(script)


def test_the_logs_filter_by_text_and_by_the_node_under_the_cursor() -> None:
    async def script(app: DoradusTui, pilot: Pilot[None]) -> None:
        app.nodes.focus()
        await pilot.press("down", "l", "n")  # the cursor on detector, then its logs only
        await pilot.pause()
        entries = [line for line in app.logs.lines if line[:2].isdigit()]
        assert entries
        assert all("detector:" in line for line in entries)
        await pilot.press("n", "slash", *"queue", "enter")
        await pilot.pause()
        entries = [line for line in app.logs.lines if line[:2].isdigit()]
        assert len(entries) == 2
        assert all("frame queue full" in line for line in entries)

    run(script)


def test_the_column_chooser_changes_the_shown_columns() -> None:
    async def script(app: DoradusTui, pilot: Pilot[None]) -> None:
        app.nodes.focus()
        await pilot.press("c")
        assert isinstance(app.screen, ColumnsScreen)
        await pilot.press("space")  # the first column (state) unticked
        await pilot.press("enter")
        await pilot.pause()
        assert "state" not in app.nodes.shown
        assert app.nodes.shown[0] == "node"
        assert app.nodes.get_cell("camera", "in").plain == "30.2/s"

    run(script)


def test_stopping_a_node_or_a_dataflow_asks_first() -> None:
    async def script(app: DoradusTui, pilot: Pilot[None]) -> None:
        app.nodes.focus()
        await pilot.press("s")
        assert isinstance(app.screen, ConfirmScreen)
        assert app.screen.question == "Stop node 'camera' of dataflow 'camera-pipeline'?"
        await pilot.press("n")
        assert not isinstance(app.screen, ConfirmScreen)
        app.dataflows.focus()
        await pilot.press("s")
        assert isinstance(app.screen, ConfirmScreen)
        assert app.screen.question == "Stop dataflow 'camera-pipeline'?"
        await pilot.press("n")
        assert not isinstance(app.screen, ConfirmScreen)

    run(script)


def test_enter_on_the_dataflows_pane_shows_another_dataflow() -> None:
    async def script(app: DoradusTui, pilot: Pilot[None]) -> None:
        assert app.live.selected == FLOW_ID
        app.dataflows.focus()
        await pilot.press("down", "enter")
        await pilot.pause()
        assert app.live.selected == "9a41d0c2-77aa-4f3b-8d2e-0c5b7e9f1a23"
        assert app.nodes.visible_ids == []  # until the stream sends its nodes
        assert app.focused is app.nodes

    run(script)


def test_a_stream_error_is_shown_with_its_fix() -> None:
    async def script(app: DoradusTui, pilot: Pilot[None]) -> None:
        app.take(
            {"type": "error", "time": "2026-12-04T13:11:00.000Z", "error": "bad level", "fix": "use WARN"}
        )
        await pilot.pause()
        assert any("bad level" in str(n.message) and "use WARN" in str(n.message) for n in app._notifications)

    run(script)


def test_stream_messages_that_arrive_while_the_app_closes_are_dropped() -> None:
    async def main() -> DoradusTui:
        app = recorded_app()
        async with app.run_test(size=(120, 40)) as pilot:
            await replay(pilot)
        return app

    app = asyncio.run(main())
    assert not app.screen_stack  # closed: no screen left to draw on
    # The feed's worker may still hand over what it read meanwhile: nothing is drawn, nothing raised.
    app.on_doradus_tui_streamed(DoradusTui.Streamed(last_update()))
    app.on_doradus_tui_feed_changed(DoradusTui.FeedChanged(app.status))
