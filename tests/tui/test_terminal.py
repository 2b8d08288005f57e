"""``doradus tui`` in a real terminal: tmux, 120 by 40, keys typed, screens captured and read."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import pytest
from tests.tui.conftest import SETTLE, Running

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


class Terminal:
    """One tmux session of 120 by 40 running a command."""

    def __init__(self, name: str) -> None:
        self.name = name

    def tmux(self, *args: str) -> str:
        done = subprocess.run(["tmux", *args], capture_output=True, text=True, timeout=10, check=True)
        return done.stdout

    def keys(self, *keys: str) -> None:
        for key in keys:
            self.tmux("send-keys", "-t", self.name, key)
            time.sleep(0.2)

    def screen(self) -> str:
        return self.tmux("capture-pane", "-t", self.name, "-p")

    def wait_for(self, check: Callable[[str], bool], what: str, within: float = SETTLE) -> str:
        deadline = time.monotonic() + within
        while True:
            shown = self.screen()
            if check(shown):
                return shown
            if time.monotonic() > deadline:
                raise AssertionError(f"after {within:g}s the screen shows no {what}:\n{shown}")
            time.sleep(0.2)


@pytest.fixture
def terminal(running: Running) -> Iterator[Terminal]:
    name = f"doradus-tui-test-{os.getpid()}"
    env = running.control.env
    # pytest sets COLUMNS and LINES, which would win over the terminal's size: the app must see tmux's.
    command = (
        f"env -u COLUMNS -u LINES {shlex.quote(sys.executable)} -m doradus.cli tui --refresh 0.5;"
        " echo EXITED $?; sleep 60"
    )
    settings = [f"{key}={env[key]}" for key in ("XDG_RUNTIME_DIR", "DORADUS_COORDINATOR", "PATH")]
    options = [arg for setting in settings for arg in ("-e", setting)]
    size = ["-x", "120", "-y", "40"]
    folder = str(running.control.folder)
    subprocess.run(
        ["tmux", "new-session", "-d", "-s", name, *size, *options, "-c", folder, command],
        check=True,
        timeout=10,
    )
    try:
        yield Terminal(name)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", name], capture_output=True, timeout=10)


def _row(screen: str, node: str) -> list[str]:
    """The cells of ``node``'s row in the nodes table (split on blanks)."""
    for line in screen.splitlines():
        cells = line.strip("│ ").split()
        if cells and cells[0] == node:
            return cells
    return []


def _rates_shown(screen: str) -> bool:
    rows = [_row(screen, node) for node in ("receiver", "sender", "ticker")]
    return all(len(row) > 2 and row[2].endswith("/s") and row[2] != "0.0/s" for row in rows)


def test_doradus_tui_in_a_real_terminal(terminal: Terminal) -> None:
    screen = terminal.wait_for(_rates_shown, "row with a rate for every node")
    assert "Dataflows" in screen
    assert "tui-demo" in screen
    assert "Connected to ws://" in screen
    header = next(line for line in screen.splitlines() if "In rate" in line)
    for title in ("Node", "State", "In rate", "Out rate", "p50 latency", "Dropped", "Restarts", "Errors"):
        assert title in header
    assert _row(screen, "receiver")[1] == "running"

    terminal.keys("/", "t", "i", "c", "k", "Enter")
    screen = terminal.wait_for(lambda s: not _row(s, "sender"), "filtered table")
    assert _row(screen, "ticker")
    assert "filter: tick" in screen
    terminal.keys("Escape")
    terminal.wait_for(lambda s: bool(_row(s, "sender")), "table without its filter")

    terminal.keys("g")
    screen = terminal.wait_for(lambda s: "Graph of tui-demo" in s, "graph")
    assert "╭" in screen
    assert "▶" in screen
    assert "sender/n → receiver/n" in screen  # the edges table under the drawing
    terminal.keys("Escape")

    terminal.keys("?")
    screen = terminal.wait_for(lambda s: "Dataflows pane" in s and "Logs pane" in s, "help")
    terminal.keys("Escape")

    terminal.keys("q")
    screen = terminal.wait_for(lambda s: "EXITED" in s, "exit after q")
    assert "EXITED 0" in screen
