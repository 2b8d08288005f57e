"""Fixtures for control-plane tests: an isolated runtime folder and port, the real CLI."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

DORADUS = [sys.executable, "-m", "doradus.cli"]


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str
    seconds: float


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Control:
    """Runs ``doradus`` with this test's runtime folder and coordinator address."""

    env: dict[str, str]
    runtime: Path
    folder: Path

    @property
    def state_file(self) -> Path:
        return self.runtime / "doradus" / "up.json"

    def __call__(self, *args: str, timeout: float = 30) -> Result:
        import time

        began = time.monotonic()
        proc = subprocess.run(
            [*DORADUS, *args], capture_output=True, text=True, env=self.env, timeout=timeout, cwd=self.folder
        )
        return Result(proc.returncode, proc.stdout, proc.stderr, time.monotonic() - began)

    def write(self, name: str, text: str) -> Path:
        path = self.folder / name
        path.write_text(textwrap.dedent(text).lstrip("\n"))
        return path

    @property
    def address(self) -> str:
        return self.env["DORADUS_COORDINATOR"]

    @property
    def headers(self) -> dict[str, str]:
        """The bearer token `doradus up` generated (none before `up`, or after `up --no-token`)."""
        return api_headers(self.runtime / "doradus", int(self.address.rpartition(":")[2]))

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request to ``/api/v1{path}`` with the token, as any API client would send it."""
        return httpx.request(
            method, f"http://{self.address}/api/v1{path}", headers=self.headers, timeout=10, **kwargs
        )


@contextmanager
def open_control(folder: Path) -> Iterator[Control]:
    """A `Control` with its own runtime folder and port; destroys what it started when done."""
    # Short: node control sockets live under it and AF_UNIX paths are limited to 107 bytes.
    runtime = Path(tempfile.mkdtemp(prefix="dx-"))
    runtime.chmod(0o700)
    folder.mkdir()
    env = dict(os.environ)
    env.pop("DORADUS_TOKEN_FILE", None)
    env.update(XDG_RUNTIME_DIR=str(runtime), DORADUS_COORDINATOR=f"127.0.0.1:{free_port()}", NO_COLOR="1")
    ctl = Control(env, runtime, folder)
    pids: list[int] = []
    try:
        yield ctl
    finally:
        if ctl.state_file.exists():
            import json

            pids = [int(p) for p in json.loads(ctl.state_file.read_text())["pids"].values()]
            ctl("destroy", "--retries", "0", timeout=40)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(runtime, ignore_errors=True)


@pytest.fixture
def control(tmp_path: Path) -> Iterator[Control]:
    with open_control(tmp_path / "project") as ctl:
        yield ctl


def api_headers(runtime: Path, port: int) -> dict[str, str]:
    """``Authorization`` for the coordinator on ``port`` whose token is in ``runtime`` (if any).

    ``runtime`` is the Doradus runtime folder (``$XDG_RUNTIME_DIR/doradus``).
    """
    token = runtime / f"coordinator-{port}.token"
    return {"Authorization": f"Bearer {token.read_text().strip()}"} if token.exists() else {}


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        import psutil

        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
