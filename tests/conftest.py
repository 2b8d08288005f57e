"""Shared fixtures: write a dataflow and its node files, run the real CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

DORADUS = [sys.executable, "-m", "doradus.cli"]


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def lines_of(self, node: str) -> list[str]:
        """Lines printed by one node (``node | text`` prefix removed)."""
        out = []
        for line in self.stdout.splitlines():
            name, sep, rest = line.partition(" | ")
            if sep and name.strip() == node:
                out.append(rest)
        return out


def write_files(folder: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
        if name.endswith((".sh", ".bin")) or text.startswith("#!"):
            path.chmod(0o755)


def shm_entries() -> set[str]:
    return set(os.listdir("/dev/shm"))


@pytest.fixture
def dataflow(tmp_path: Path) -> Callable[..., Ran]:
    """Write files into tmp_path and run ``doradus run dataflow.yml``."""

    def run(files: dict[str, str], *args: str, timeout: float = 60, cwd: Path | None = None) -> Ran:
        write_files(tmp_path, files)
        before = shm_entries()
        proc = subprocess.run(
            [*DORADUS, "run", str(tmp_path / "dataflow.yml"), "--no-color", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=cwd or tmp_path.parent,
        )
        assert shm_entries() <= before, "a run left files in /dev/shm"
        return Ran(proc.returncode, proc.stdout, proc.stderr)

    return run
