"""The app against a real coordinator, daemon and dataflow: what it shows, and what its keys do.

Every figure checked comes from the coordinator's stream; every action goes through its HTTP
API and reaches the real node processes.
"""

from __future__ import annotations

from tests.tui.conftest import (
    SENDER_HZ,
    TICKER_HZ,
    Running,
    cell,
    drive,
    has_row,
    put_cursor_on,
    rate_of,
    wait_for,
)
from textual.pilot import Pilot

from doradus._tui.app import DoradusTui
from doradus._tui.screens import ConfigScreen, ConfirmScreen

NODES = ["receiver", "sender", "ticker"]


def _measured(app: DoradusTui) -> bool:
    return all(has_row(app, node) for node in NODES) and all((rate_of(app, node) or 0) > 0 for node in NODES)


def test_the_table_shows_every_node_with_rates_and_sorts_and_filters(running: Running) -> None:
    async def script(app: DoradusTui, pilot: Pilot[None]) -> None:
        await wait_for(pilot, lambda: _measured(app), "every node shown with an input rate above 0")
        assert app.nodes.visible_ids == NODES  # by node id
        assert 0.5 * TICKER_HZ <= (rate_of(app, "ticker") or 0) <= 1.5 * TICKER_HZ
        assert 0.5 * SENDER_HZ <= (rate_of(app, "receiver") or 0) <= 1.5 * SENDER_HZ
        assert (rate_of(app, "sender", "out") or 0) > 0
        assert cell(app, "receiver", "state") == "running"

        app.nodes.focus()
        while app.nodes.sort_key != "in":
            await pilot.press("o")
        assert app.nodes.descending  # numbers: highest first
        await pilot.pause()
        assert app.nodes.visible_ids[0] == "ticker"
        await pilot.press("O")
        await pilot.pause()
        assert app.nodes.visible_ids[-1] == "ticker"

        await pilot.press("slash", *"send", "enter")
        await pilot.pause()
        assert app.nodes.visible_ids == ["sender"]
        await pilot.press("escape")
        await pilot.pause()
        assert sorted(app.nodes.visible_ids) == NODES

    drive(running, script)


def test_the_logs_pane_shows_a_line_the_node_just_logged(running: Running) -> None:
    async def script(app: DoradusTui, pilot: Pilot[None]) -> None:
        await wait_for(pilot, lambda: app.status.state == "connected", "the stream connected")
        before = set(app.logs.lines)

        def fresh() -> list[str]:
            return [line for line in app.logs.lines if line not in before and "received" in line]

        await wait_for(pilot, lambda: bool(fresh()), "a new 'received' line of the receiver in the logs pane")
        assert "receiver: received" in fresh()[-1]
        assert "GREETING=" in fresh()[-1]

    drive(running, script)


def test_pausing_a_node_stops_its_input_and_resuming_restores_it(running: Running) -> None:
    async def script(app: DoradusTui, pilot: Pilot[None]) -> None:
        await wait_for(pilot, lambda: (rate_of(app, "receiver") or 0) > 0, "the receiver receives")
        await put_cursor_on(app, pilot, "receiver")
        await pilot.press("p")
        await wait_for(pilot, lambda: cell(app, "receiver", "state") == "paused", "the receiver shown paused")
        await wait_for(pilot, lambda: rate_of(app, "receiver") == 0.0, "the receiver's input rate at 0.0/s")
        assert (rate_of(app, "sender", "out") or 0) > 0  # its sender goes on sending

        await put_cursor_on(app, pilot, "receiver")
        await pilot.press("r")
        await wait_for(
            pilot, lambda: cell(app, "receiver", "state") == "running", "the receiver running again"
        )
        await wait_for(
            pilot, lambda: (rate_of(app, "receiver") or 0) > 0.5 * SENDER_HZ, "the input rate back"
        )

    drive(running, script)


def test_restart_counts_and_a_config_change_reaches_the_node(running: Running) -> None:
    async def script(app: DoradusTui, pilot: Pilot[None]) -> None:
        await wait_for(pilot, lambda: has_row(app, "receiver"), "the receiver shown")
        restarts = int(cell(app, "receiver", "restarts"))
        await put_cursor_on(app, pilot, "receiver")
        await pilot.press("R")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the restart asks first")
        await pilot.press("y")
        await wait_for(
            pilot, lambda: cell(app, "receiver", "restarts") == str(restarts + 1), "the restart counted"
        )

        await put_cursor_on(app, pilot, "receiver")
        await pilot.press("e")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfigScreen), "the configuration form")
        await pilot.press(*"GREETING=bonjour", "ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the change asks first")
        await pilot.press("y")
        await wait_for(
            pilot,
            lambda: cell(app, "receiver", "restarts") == str(restarts + 2),
            "the change's restart counted",
        )
        await wait_for(
            pilot,
            lambda: any("receiver" in line and "GREETING=bonjour" in line for line in app.logs.lines),
            "the receiver printing the new value in the logs pane",
        )
        await wait_for(pilot, lambda: (rate_of(app, "receiver") or 0) > 0, "the restarted receiver receiving")

    drive(running, script)


def test_with_no_dataflow_asked_the_first_running_one_is_shown(running: Running) -> None:
    async def script(app: DoradusTui, pilot: Pilot[None]) -> None:
        await wait_for(pilot, lambda: app.live.selected == running.flow_id, "the running dataflow selected")
        await wait_for(pilot, lambda: has_row(app, "sender"), "its nodes shown")
        assert app.dataflows.current_key == running.flow_id

    drive(running, script, dataflow=False)
