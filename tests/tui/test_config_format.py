"""The configuration form's data format: typed in the TUI, checked by the real coordinator, applied live.

Against the `running` dataflow of this folder's conftest (a sender on a 20 Hz timer sending
``[1, 2, 3]`` to a receiver): a data format the dataflow's checks refuse comes back as the
coordinator's message and fix; with its schema the sender restarts in Avro and the receiver
goes on receiving.
"""

from __future__ import annotations

import json

from tests.tui.conftest import Running, cell, drive, put_cursor_on, rate_of, wait_for
from textual.pilot import Pilot
from textual.widgets import Input

from doradus._tui.app import DoradusTui
from doradus._tui.screens import ConfigScreen, ConfirmScreen

NUMBERS_AVSC = json.dumps({"type": "array", "items": "long"})
"""An Avro schema for what the sender sends: a list of integers."""


async def _fill_format(app: DoradusTui, pilot: Pilot[None], data_format: str, schema: str) -> None:
    """Open the sender's form (e), type the data format and schema in their fields, apply and confirm."""
    app.nodes.focus()
    await pilot.press(*["up"] * len(app.nodes.visible_ids))  # to the first row (home keeps the cursor)
    await put_cursor_on(app, pilot, "sender")
    await pilot.press("e")
    await wait_for(pilot, lambda: isinstance(app.screen, ConfigScreen), "the configuration form")
    form = app.screen
    fields = {name: form.query_one(f"#config-{name}", Input) for name in ("format", "schema")}
    for name, text in (("format", data_format), ("schema", schema)):
        while not fields[name].has_focus:
            await pilot.press("tab")
        await pilot.press("ctrl+a", "ctrl+k", *text)
        assert fields[name].value == text
    await pilot.press("ctrl+s")
    await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the change asks first")
    await pilot.press("y")
    await wait_for(pilot, lambda: app.screen is app.screen_stack[0], "back on the main screen")


def test_the_form_sends_a_data_format_the_coordinator_checks_then_applies(running: Running) -> None:
    running.control.write("numbers.avsc", NUMBERS_AVSC)

    def formats() -> dict[str, str]:
        return dict(
            running.control.api("GET", f"/dataflows/{running.flow_id}").json()["nodes"]["sender"][
                "data_formats"
            ]
        )

    async def script(app: DoradusTui, pilot: Pilot[None]) -> None:
        await wait_for(pilot, lambda: (rate_of(app, "receiver") or 0) > 0, "the receiver receives")
        restarts = int(cell(app, "sender", "restarts"))

        await _fill_format(app, pilot, "avro", "")
        await wait_for(
            pilot,
            lambda: any("needs a schema" in str(n.message) for n in app._notifications),
            "the coordinator's refusal shown",
        )
        refusal = next(str(n.message) for n in app._notifications if "needs a schema" in str(n.message))
        assert "the new data format of node 'sender' is refused" in refusal
        assert "Fix: add `schema: schemas/<file>.avsc`" in refusal
        assert cell(app, "sender", "restarts") == str(restarts)  # nothing was stopped
        assert formats() == {"n": "arrow"}

        await _fill_format(app, pilot, "avro", "numbers.avsc")
        await wait_for(
            pilot, lambda: cell(app, "sender", "restarts") == str(restarts + 1), "the sender restarted"
        )
        await wait_for(pilot, lambda: formats() == {"n": "avro (numbers.avsc)"}, "the sender writing Avro")
        await wait_for(
            pilot,
            lambda: cell(app, "receiver", "state") == "running" and (rate_of(app, "receiver") or 0) > 0,
            "the receiver receiving the Avro messages",
        )
        assert cell(app, "receiver", "restarts") == "0"

    drive(running, script)
