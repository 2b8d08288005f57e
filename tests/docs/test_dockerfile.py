"""The project's Dockerfile: linted statically, and its command run outside a container.

No container engine runs here, so the test checks what it can: the instructions follow the
rules below, and the image's exact ENTRYPOINT + CMD runs the dataflow the image copies, from a
temporary folder laid out as the image's working directory.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    found: list[tuple[str, str]] = []
    pending = ""
    for raw in (ROOT / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        pending += line[:-1] + " " if line.endswith("\\") else line
        if not line.endswith("\\"):
            keyword, _, args = pending.partition(" ")
            found.append((keyword.upper(), args.strip()))
            pending = ""
    return found


def _one(keyword: str) -> str:
    values = [args for key, args in instructions() if key == keyword]
    assert len(values) == 1, f"the Dockerfile should have one {keyword}, has {len(values)}"
    return values[0]


def test_base_image_is_pinned() -> None:
    base = _one("FROM")
    pinned = re.fullmatch(r"[\w./-]+(:\d+\.\d+\.\d+[\w.-]*)?(@sha256:[0-9a-f]{64})?", base)
    assert pinned, f"FROM {base}: not an image reference"
    assert pinned.group(1) or pinned.group(2), f"FROM {base}: pin an exact tag or a digest"
    assert "latest" not in base


def test_runs_as_a_user_that_is_not_root() -> None:
    users = [args for key, args in instructions() if key == "USER"]
    assert users, "add a USER"
    assert users[-1].split(":")[0] not in {"root", "0"}
    created = " ".join(args for key, args in instructions() if key == "RUN")
    assert f"useradd --create-home --uid 10001 --shell /usr/sbin/nologin {users[-1]}" in created


def test_no_remote_add_and_no_pip_cache() -> None:
    for key, args in instructions():
        assert key != "ADD" or not re.search(r"https?://", args), f"ADD {args}: download in RUN, checked"
        if key == "RUN" and "pip install" in args:
            for command in args.split("&&"):
                if "pip install" in command:
                    assert "--no-cache-dir" in command, f"RUN {command}: add --no-cache-dir"
                    assert "--no-deps" in command, f"RUN {command}: install the lock, resolve nothing"
    assert any(key == "RUN" and "--require-hashes -" in args for key, args in instructions())


def test_healthcheck_is_set_or_explained() -> None:
    check = _one("HEALTHCHECK")
    if check == "NONE":
        text = (ROOT / "Dockerfile").read_text()
        assert re.search(r"#.*No HEALTHCHECK:", text), "HEALTHCHECK NONE needs a comment saying why"


def _ignored(path: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatch(path, p) or fnmatch.fnmatch(path, p.removeprefix("**/")) for p in patterns)


def test_dockerignore_keeps_local_state_out() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip()[:1] not in {"", "#"}
    ]
    for needed in (".venv", ".git", "**/out", "**/__pycache__"):
        assert needed in patterns
    for key, args in instructions():
        if key == "COPY":
            sources = [a for a in args.split() if not a.startswith("--")][:-1]
            for source in sources:
                assert (ROOT / source).exists(), f"COPY {source}: no such file"
                assert not _ignored(source, patterns), f"COPY {source}: excluded by .dockerignore"


def test_the_image_command_runs_the_dataflow(tmp_path: Path) -> None:
    workdir = [args for key, args in instructions() if key == "WORKDIR"][-1]
    copies = [args.split() for key, args in instructions() if key == "COPY"]
    source = next(c[-2] for c in copies if c[-1] == workdir)
    folder = tmp_path / "dataflow"
    shutil.copytree(ROOT / source, folder, ignore=shutil.ignore_patterns("out", "__pycache__"))
    command = json.loads(_one("ENTRYPOINT")) + json.loads(_one("CMD"))
    assert command[0] == "doradus"
    executable = Path(sys.executable).parent / "doradus"
    proc = subprocess.run(
        [str(executable), *command[1:]], cwd=folder, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "receiver | received 11 greetings" in proc.stdout
    assert "✓ dataflow finished" in proc.stderr
    assert len(list((folder / "out").iterdir())) == 1, "the run's logs go to out/ in the working directory"
