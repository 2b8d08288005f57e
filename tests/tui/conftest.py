"""Fixtures of the TUI tests: a real coordinator and daemon running a real dataflow, and the app on it.

`running` starts, once per module, a coordinator and a machine daemon in their own runtime
folder (the `control` fixture's `open_control`) and the dataflow `DATAFLOW` on them: a
sender on a 20 Hz timer, a receiver that prints its ``GREETING`` variable, and a ticker on a
50 Hz timer (a node whose input rate is higher than the others'). `drive` runs the app
headless (`App.run_test`) on that coordinator's stream and HTTP API.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.cli.conftest import Control, open_control
from textual.pilot import Pilot

from doradus._control.client import ControlClient, parse_address
from doradus._tui.app import DoradusTui
from doradus._tui.feed import make_feed
from doradus._tui.settings import Settings

REFRESH = 0.5
"""The refresh interval the tests run the app with (seconds)."""
RATE_WINDOW = 2.0
"""The stream computes rates over at least this many seconds (docs/stream.md)."""
SETTLE = 10 * max(REFRESH, RATE_WINDOW)
"""How long a figure may take to show a change: ten rate windows, generous on a busy machine."""
SENDER_HZ = 20
TICKER_HZ = 50

DATAFLOW = f"""
    nodes:
      - id: sender
        path: sender.py
        inputs:
          tick: dora/timer/millis/{1000 // SENDER_HZ}
        outputs: [n]
      - id: receiver
        path: receiver.py
        env:
          GREETING: hello
        inputs:
          n: sender/n
      - id: ticker
        path: ticker.py
        inputs:
          tick: dora/timer/millis/{1000 // TICKER_HZ}
"""
SENDER_PY = """
    from doradus import Input, Node

    node = Node()
    for event in node:
        if isinstance(event, Input):
            node.send_output("n", [1, 2, 3])
"""
RECEIVER_PY = f"""
    import os

    from doradus import Input, Node

    node = Node()
    print(f"receiver starts: GREETING={{os.environ.get('GREETING')}}", flush=True)
    count = 0
    for event in node:
        if isinstance(event, Input):
            count += 1
            if count % {SENDER_HZ} == 0:
                print(f"received {{count}} GREETING={{os.environ.get('GREETING')}}", flush=True)
"""
TICKER_PY = """
    from doradus import Node

    for event in Node():
        pass
"""


@dataclass
class Running:
    """A coordinator running the test dataflow."""

    control: Control
    flow_id: str

    def client(self) -> ControlClient:
        token = self.control.headers.get("Authorization", "").removeprefix("Bearer ") or None
        return ControlClient(parse_address(self.control.address, "test"), retries=0, token=token)


@pytest.fixture
def control(tmp_path: Path) -> Iterator[Control]:
    """A runtime folder and port of its own, the real CLI (the fixture of tests/cli)."""
    with open_control(tmp_path / "project") as ctl:
        yield ctl


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    with open_control(tmp_path_factory.mktemp("tui") / "project") as control:
        control.write("dataflow.yml", DATAFLOW)
        control.write("sender.py", SENDER_PY)
        control.write("receiver.py", RECEIVER_PY)
        control.write("ticker.py", TICKER_PY)
        up = control("up")
        assert up.returncode == 0, up.stderr
        started = control("start", "dataflow.yml", "--detach", "--name", "tui-demo")
        assert started.returncode == 0, started.stderr
        flow_id = started.stdout.strip().splitlines()[-1]
        yield Running(control, flow_id)


def drive(
    running: Running, script: Callable[[DoradusTui, Pilot[None]], Awaitable[None]], *, dataflow: bool = True
) -> None:
    """Run the app headless on the coordinator's stream (120 by 40), and ``script`` in it."""

    async def main() -> None:
        client = running.client()
        chosen = running.flow_id if dataflow else None
        app = DoradusTui(
            client=client,
            settings=Settings(refresh=REFRESH),
            dataflow=chosen,
            feed=make_feed(client, chosen, REFRESH),
        )
        async with app.run_test(size=(120, 40)) as pilot:
            await script(app, pilot)

    asyncio.run(main())


async def wait_for(pilot: Pilot[None], check: Callable[[], bool], what: str, within: float = SETTLE) -> None:
    """Let the app run until ``check()`` holds; fail naming ``what`` after ``within`` seconds."""
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"after {within:g}s: {what}")
        await pilot.pause(0.1)


def rate_of(app: DoradusTui, node: str, column: str = "in") -> float | None:
    """The rate the nodes table shows for ``node`` (``12.0/s``), or None for ``-`` or no row."""
    text = cell(app, node, column)
    return None if text in ("-", "") else float(text.removesuffix("/s"))


def cell(app: DoradusTui, node: str, column: str) -> str:
    """The text of one cell of the nodes table ("" while the node has no row)."""
    return app.nodes.get_cell(node, column).plain if has_row(app, node) else ""


def has_row(app: DoradusTui, node: str) -> bool:
    """Whether the nodes table shows a row for ``node``."""
    return node in app.nodes.visible_ids


async def put_cursor_on(app: DoradusTui, pilot: Pilot[None], node: str) -> None:
    """Focus the nodes table and move its cursor to ``node``'s row with the arrow keys."""
    app.nodes.focus()
    await pilot.press("home")
    for _ in range(app.nodes.visible_ids.index(node)):
        await pilot.press("down")
    await pilot.pause()
    assert app.nodes.current_key == node
