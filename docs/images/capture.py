"""Capture real terminal sessions of the CLI as SVG images for the docs.

Runs each command in a tmux pane (a real terminal, so colours and progress show as users
see them), captures the pane with its escape sequences, and renders it with rich.

    .venv/bin/python docs/images/capture.py
"""

from __future__ import annotations

import shlex
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.text import Text

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "docs" / "images"
BIN = Path(sys.executable).parent
SESSION = "doradus-capture"


def tmux(*args: str) -> str:
    """Run a tmux command and return what it printed."""
    return subprocess.run(["tmux", *args], check=True, capture_output=True, text=True).stdout


def capture(commands: list[str], name: str, title: str, settle: float) -> None:
    """Type ``commands`` into a fresh pane, wait ``settle`` s after each, save the screen as SVG."""
    subprocess.run(["tmux", "kill-session", "-t", SESSION], capture_output=True)
    tmux("new-session", "-d", "-s", SESSION, "-x", "118", "-y", "40", "-c", str(ROOT))
    tmux("send-keys", "-t", SESSION, f"export PATH={shlex.quote(str(BIN))}:$PATH PS1='$ '; clear", "Enter")
    time.sleep(0.5)
    for command in commands:
        tmux("send-keys", "-t", SESSION, command, "Enter")
        time.sleep(settle)
    screen = tmux("capture-pane", "-t", SESSION, "-p", "-e")
    tmux("kill-session", "-t", SESSION)
    lines = screen.rstrip("\n").splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    console = Console(record=True, width=118, force_terminal=True, color_system="truecolor")
    console.print(Text.from_ansi("\n".join(lines)))
    console.save_svg(str(OUT / f"{name}.svg"), title=title)
    print(f"wrote {OUT / name}.svg")


def main() -> None:
    """Capture every image the docs use."""
    capture(["doradus run examples/hello-world/dataflow.yml"], "run", "doradus run", settle=4.0)
    capture(
        [
            "doradus up",
            "doradus start examples/camera-pipeline/dataflow.yml --name camera --detach --env FRAMES=100000",
        ],
        "up-start",
        "doradus up / start",
        settle=4.0,
    )
    capture(["doradus status camera"], "status", "doradus status", settle=3.0)
    subprocess.run([str(BIN / "doradus"), "stop", "camera"], capture_output=True)
    subprocess.run([str(BIN / "doradus"), "destroy"], capture_output=True)


if __name__ == "__main__":
    main()
