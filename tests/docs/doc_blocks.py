"""Read the code blocks of the guides (getting started, tutorials) and run their shell sessions.

Every fenced block of a guide is one of:

- a snippet include (``--8<-- "examples/tutorials/<topic>/file"``): the page shows a file that a
  test runs;
- a ``console`` session preceded by ``<!-- run: FOLDER [fails] -->``: each ``$ command`` is run
  with bash in a temporary copy of FOLDER (with ``.venv/bin`` first on ``PATH``, a private
  runtime folder and coordinator port), and every output line the page shows must match a line
  that it printed (``…`` in a shown line matches anything);
- a block preceded by ``<!-- not-run: REASON -->``: allowed only for what cannot run here
  (installing from the network, a container engine), listed in ``NOT_RUN_ALLOWED``.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GUIDES = [ROOT / "docs" / "getting-started.md", *sorted((ROOT / "docs" / "tutorials").glob("*.md"))]
SNIPPET = re.compile(r'^-{1,3}8<-{1,3}\s+"([^"]+)"$')
MARKER = re.compile(r"^<!--\s*(run|not-run):\s*(.*?)\s*-->$")
FENCE = re.compile(r"^(`{3,})\s*([\w+-]*)")


@dataclass
class Block:
    page: Path
    line: int
    lang: str
    body: list[str]
    marker: tuple[str, str] | None

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks(page: Path) -> list[Block]:
    """The fenced code blocks of a page, each with the HTML comment marker just above it."""
    found: list[Block] = []
    lines = page.read_text().splitlines()
    i = 0
    while i < len(lines):
        match = FENCE.match(lines[i].strip())
        if not match:
            i += 1
            continue
        fence, lang, start = match.group(1), match.group(2), i
        prev = next((lines[j].strip() for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        marker = MARKER.match(prev)
        i += 1
        body = []
        while i < len(lines) and lines[i].strip() != fence:
            body.append(lines[i])
            i += 1
        indent = len(lines[start]) - len(lines[start].lstrip())
        body = [b[indent:] if b[:indent].isspace() else b for b in body]
        found.append(
            Block(page, start + 1, lang, body, (marker.group(1), marker.group(2)) if marker else None)
        )
        i += 1
    return found


def snippet_paths(block: Block) -> list[str] | None:
    """The files a block includes, or None when it holds anything but snippet lines."""
    paths = []
    for text in block.body:
        if not text.strip():
            continue
        match = SNIPPET.match(text.strip())
        if not match:
            return None
        paths.append(match.group(1).split(":")[0])
    return paths or None


@dataclass
class Session:
    """The commands of a ``console`` block, and the lines shown after each."""

    commands: list[tuple[str, list[str]]] = field(default_factory=list)

    @classmethod
    def parse(cls, body: list[str]) -> Session:
        session = cls()
        for text in body:
            if text.startswith("$ "):
                session.commands.append((text[2:], []))
            elif session.commands and text.strip():
                session.commands[-1][1].append(text.rstrip())
        return session


def shown_pattern(line: str) -> re.Pattern[str]:
    """A shown output line as a pattern: ``…`` matches anything, the rest literally."""
    return re.compile("^" + ".*".join(re.escape(part) for part in line.split("…")) + "$")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_session(block: Block, folder: str, fails: bool, timeout: float = 60) -> list[str]:
    """Run a console block in a copy of ``folder``; return its problems (empty: as shown)."""
    problems: list[str] = []
    work = Path(tempfile.mkdtemp(prefix="doc-"))
    runtime = Path(tempfile.mkdtemp(prefix="dx-"))
    runtime.chmod(0o700)
    copy = work / Path(folder).name
    shutil.copytree(ROOT / folder, copy, ignore=shutil.ignore_patterns("out", "__pycache__"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DORADUS_", "OTEL_"))}
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        XDG_RUNTIME_DIR=str(runtime),
        DORADUS_COORDINATOR=f"127.0.0.1:{_free_port()}",
        NO_COLOR="1",
        COLUMNS="120",
        PYTHONDONTWRITEBYTECODE="1",
    )
    try:
        for command, shown in Session.parse(block.body).commands:
            proc = subprocess.run(
                ["bash", "-c", command], cwd=copy, env=env, capture_output=True, text=True, timeout=timeout
            )
            printed = [line.rstrip() for line in (proc.stdout + proc.stderr).splitlines()]
            if proc.returncode != 0 and not fails:
                problems.append(
                    f"{block.where}: `{command}` exited {proc.returncode}:\n" + "\n".join(printed)
                )
            for line in shown:
                pattern = shown_pattern(line)
                if not any(pattern.match(p) for p in printed):
                    problems.append(
                        f"{block.where}: `{command}` did not print {line!r}; it printed:\n"
                        + "\n".join(printed)
                    )
    finally:
        if any(c.startswith(("doradus up", "./start-")) for c, _ in Session.parse(block.body).commands):
            subprocess.run(
                ["bash", "-c", "doradus destroy --retries 0"],
                env=env,
                capture_output=True,
                timeout=60,
                check=False,
            )
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(runtime, ignore_errors=True)
    return problems
