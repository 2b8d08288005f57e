"""The session fixture `leave_nothing_behind` catches what a test session leaves, and only that.

Each case runs a small pytest session of its own in a subprocess, with the fixture of
tests/conftest.py, and reads its verdict.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONFTEST = "from tests.conftest import leave_nothing_behind  # noqa: F401\n"
LEAKY = """
import os, socket, subprocess
from pathlib import Path

def test_leaks_a_process_and_a_socket():
    subprocess.Popen(["sleep", "300"], start_new_session=True)  # never waited for, never ended
    folder = Path(os.environ["XDG_RUNTIME_DIR"]) / "doradus"
    folder.mkdir(exist_ok=True)
    socket.socket(socket.AF_UNIX).bind(str(folder / "left.sock"))  # its file is never removed
"""
TIDY = """
import subprocess

def test_waits_for_what_it_starts():
    assert subprocess.run(["sleep", "0.1"], check=False).returncode == 0
"""


def _session(tmp_path: Path, test: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_it.py").write_text(test)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DORADUS_TEST_LEFTOVER_GRACE": "1",
        "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
    }
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def test_a_leaked_process_and_socket_fail_the_session_by_name(tmp_path: Path) -> None:
    ran = _session(tmp_path, LEAKY)
    said = ran.stdout + ran.stderr
    assert ran.returncode != 0, said
    assert "the test session left behind:" in said
    # One leaked process; its line may show twice (under CI=true pytest repeats it untruncated).
    (process,) = {line.split()[1] for line in said.splitlines() if line.strip().startswith("process ")}
    pid = int(process)
    assert f"process {pid} sleep 300" in said  # pid and command line
    assert "left.sock" in said
    deadline = time.monotonic() + 10
    while _running(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _running(pid):  # the fixture should have ended it: never leave it to the machine
        os.kill(pid, 9)
        raise AssertionError(f"the leaked process {pid} was left running")


def test_a_session_that_waits_for_its_processes_passes(tmp_path: Path) -> None:
    ran = _session(tmp_path, TIDY)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "left behind" not in ran.stdout
