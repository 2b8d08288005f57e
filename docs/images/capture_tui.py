"""Capture the screens of ``doradus tui`` shown in docs/tui.md, from a real run.

Starts a coordinator and a daemon in a private runtime folder, runs the camera pipeline
example on them, runs the TUI headless at 120 by 40 on its stream for a while (so the
sparklines have a history), and saves Textual's SVG export of three screens: the main
view, the detector's detail panel, and the graph. Then stops everything it started.

    .venv/bin/python docs/images/capture_tui.py
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "docs" / "images"
EXAMPLE = ROOT / "examples" / "camera-pipeline" / "dataflow.yml"
HISTORY_SECONDS = 25
"""How long the app watches before the first capture: a sparkline's worth of samples."""


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _doradus(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "doradus.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return done.stdout


async def _capture(address: str, token: str | None, flow_id: str) -> None:
    from doradus._control.client import ControlClient, parse_address
    from doradus._tui.app import DoradusTui
    from doradus._tui.feed import make_feed
    from doradus._tui.settings import Settings

    client = ControlClient(parse_address(address, "capture"), retries=0, token=token)
    app = DoradusTui(
        client=client, settings=Settings(), dataflow=flow_id, feed=make_feed(client, flow_id, 1.0)
    )
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(HISTORY_SECONDS)
        (OUT / "tui-main.svg").write_text(app.export_screenshot(title="doradus tui"))
        app.nodes.focus()
        await pilot.press("home", "down", "enter")  # detector: camera < detector < sink
        await pilot.pause(2.0)
        (OUT / "tui-detail.svg").write_text(app.export_screenshot(title="doradus tui: node detail"))
        await pilot.press("escape", "g")
        await pilot.pause(2.0)
        (OUT / "tui-graph.svg").write_text(app.export_screenshot(title="doradus tui: graph"))
    print(f"wrote {OUT}/tui-main.svg, tui-detail.svg, tui-graph.svg")


def main() -> None:
    """Run the example, capture the three screens, stop everything."""
    runtime = Path(tempfile.mkdtemp(prefix="dx-"))
    runtime.chmod(0o700)
    address = f"127.0.0.1:{_port()}"
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime), "DORADUS_COORDINATOR": address}
    _doradus(env, "up")
    try:
        size = ["--env", "FRAMES=1000000", "--env", "WIDTH=640", "--env", "HEIGHT=480"]
        started = _doradus(env, "start", str(EXAMPLE), "--name", "camera", "--detach", *size)
        flow_id = started.strip().splitlines()[-1]
        token_file = runtime / "doradus" / f"coordinator-{address.rpartition(':')[2]}.token"
        token = token_file.read_text().strip() if token_file.exists() else None
        asyncio.run(_capture(address, token, flow_id))
    finally:
        subprocess.run(
            [sys.executable, "-m", "doradus.cli", "destroy"], env=env, capture_output=True, timeout=60
        )


if __name__ == "__main__":
    main()
