"""Shared fixtures: write a dataflow and its node files, run the real CLI; nothing left behind.

Every test session (each pytest-xdist worker has its own) is marked: `leave_nothing_behind`
puts ``DORADUS_TEST_SESSION=<id>`` in the environment every process the tests start inherits,
and points Doradus's runtime folder and the temporary folder of those processes at folders of
the session's own. When the session ends it fails, listing what is left, if a process that
carries its mark still runs, a socket file or run folder is left in its folders, a
``/dev/shm`` entry named like Doradus's appeared, or the test process still holds a
shared-memory segment. Other sessions' processes and files are not its business.
"""

from __future__ import annotations

import gc
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
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
        body = textwrap.dedent(text).lstrip("\n")
        path.write_text(body)
        if body.startswith("#!"):
            path.chmod(0o755)


def shm_entries() -> set[str]:
    """Entries of /dev/shm that Doradus could have made.

    Other software on the machine writes there concurrently and is left out: the
    PostgreSQL server, Zenoh (used by dora-rs, which the benchmarks run) and iceoryx2 (the
    benchmarks' IPC floor, ``iox2_*``).
    """
    return {
        name
        for name in os.listdir("/dev/shm")
        if not (name.startswith(("sem.", "PostgreSQL.", "iox2_")) or name.endswith(".zenoh"))
    }


def run_folders() -> set[str]:
    from doradus._paths import runs_dir

    return set(os.listdir(runs_dir()))


def processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes that mention ``text`` (orphans of a run)."""
    import psutil

    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        try:
            cmdline = " ".join(proc.info["cmdline"] or [])
        except (psutil.Error, TypeError):
            continue
        if text in cmdline and proc.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(cmdline)
    return found


def run_ids(folder: Path) -> list[str]:
    """Ids of the runs of the dataflow in ``folder`` (the names of its ``out/`` folders)."""
    return [p.name for p in (folder / "out").glob("*")] if (folder / "out").is_dir() else []


def processes_of_runs(ids: list[str]) -> list[str]:
    """Command lines of live processes started for one of these runs, however deep.

    Every node gets ``DORADUS_RUN_ID`` in its environment and its children inherit it, so this
    finds what a command line would not show: a ``sh`` node's ``sleep``, a helper it left.
    """
    import psutil

    wanted = set(ids)
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        try:
            if proc.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            if proc.environ().get("DORADUS_RUN_ID") in wanted:
                found.append(" ".join(proc.info["cmdline"] or []))
        except (psutil.Error, TypeError):
            continue
    return found


def run_folders_of(ids: list[str]) -> list[str]:
    """Private runtime folders (under ``runs_dir()``) of these runs that still exist."""
    return [name for name in run_folders() if any(name.startswith(rid[:13]) for rid in ids)]


def assert_nothing_left(before_shm: set[str], folder: Path) -> None:
    assert shm_entries() <= before_shm, "a run left files in /dev/shm"
    # Each run's private folder is named after its run id (the name of its out/ folder).
    ids = run_ids(folder)
    assert run_folders_of(ids) == [], "a run left its private runtime folder behind"
    assert processes_mentioning(str(folder)) == [], "a run left node processes behind"
    assert processes_of_runs(ids) == [], "a run left processes of its nodes behind"


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
        assert_nothing_left(before, tmp_path)
        return Ran(proc.returncode, proc.stdout, proc.stderr)

    return run


# ----------------------------------------------------------- CI: no silent skips
# Under CI=true every part of the project must be tested: a test (or a module) that skips
# because a dependency, a broker or a privilege is missing fails the run instead.
_CI = os.environ.get("CI") == "true"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> object:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if _CI and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, which must run every test: {report.longrepr}"
    return None


_SKIPPED_MODULES: list[str] = []


def pytest_collectreport(report: pytest.CollectReport) -> None:
    if _CI and report.skipped:
        _SKIPPED_MODULES.append(f"{report.nodeid}: {report.longrepr}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _SKIPPED_MODULES:
        print("\ntest modules skipped under CI=true, which must run every test:")
        for line in _SKIPPED_MODULES:
            print(f"  {line}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


# ------------------------------------------------------ the session leaves nothing behind
SESSION_MARK = "DORADUS_TEST_SESSION"
LEFTOVER_GRACE = float(os.environ.get("DORADUS_TEST_LEFTOVER_GRACE", "10"))
"""Seconds a session's processes get to finish exiting (a daemon ending after `destroy`)."""


def processes_marked(mark: str) -> list[str]:
    """``pid cmdline`` of every live process (zombies aside) whose environment carries ``mark``.

    The marked processes are the session's descendants: the test process itself and its
    ancestors never carry it (it was set after they started).
    """
    needle = f"{SESSION_MARK}={mark}".encode()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            environ = Path(f"/proc/{name}/environ").read_bytes()
            if needle not in environ.split(b"\0"):
                continue
            state = Path(f"/proc/{name}/stat").read_bytes().rpartition(b")")[2].split()[0]
            cmdline = Path(f"/proc/{name}/cmdline").read_bytes().replace(b"\0", b" ").strip()
        except OSError:
            continue  # gone meanwhile, or not ours to read
        if state not in (b"Z", b"X"):
            found.append(f"{name} {cmdline.decode(errors='replace')}")
    return found


def files_left(folders: list[Path]) -> list[str]:
    """Socket files anywhere under ``folders``, and run or socket folders Doradus makes in them."""
    left = []
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            try:
                mode = path.lstat().st_mode
            except OSError:
                continue
            run_folder = path.parent.name == "runs" and path.parent.parent.name == "doradus"
            socket_folder = path.parent == folder and path.name.startswith("doradus-p")
            if stat.S_ISSOCK(mode) or run_folder or socket_folder:
                left.append(str(path))
    return left


def doradus_shm_entries() -> set[str]:
    """``/dev/shm`` entries named like Doradus's (it shares memory through memfds: there should be none)."""
    return {name for name in os.listdir("/dev/shm") if name.lower().startswith("doradus")}


def memfds_held() -> list[str]:
    """Doradus shared-memory segments this process still holds open or mapped."""
    gc.collect()  # values a finished test dropped, in reference cycles
    held = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("/memfd:doradus"):
            held.append(f"fd {fd} {target}")
    with open("/proc/self/maps") as maps:
        held += [f"mapping {line.split()[0]} {line.split()[5]}" for line in maps if "/memfd:doradus" in line]
    return held


def _end_processes(mark: str) -> list[str]:
    """The marked processes still running after `LEFTOVER_GRACE` (then killed, by pid)."""
    deadline = time.monotonic() + LEFTOVER_GRACE
    while (left := processes_marked(mark)) and time.monotonic() < deadline:
        time.sleep(0.1)
    for line in left:
        try:
            os.kill(int(line.split(" ", 1)[0]), signal.SIGKILL)  # started by this session: ours to end
        except ProcessLookupError:
            pass
    return left


@pytest.fixture(scope="session", autouse=True)
def leave_nothing_behind() -> Iterator[str]:
    """Mark the session's processes and folders; at its end, fail listing whatever they left."""
    mark = f"{uuid.uuid4().hex[:12]}-{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"
    tempfile.gettempdir()  # cached first: this process's own temporary files stay where they were
    folders = [Path(tempfile.mkdtemp(prefix=f"dxs-{kind}-")) for kind in ("r", "t")]  # short: socket paths
    saved = {key: os.environ.get(key) for key in (SESSION_MARK, "XDG_RUNTIME_DIR", "TMPDIR")}
    os.environ.update({SESSION_MARK: mark, "XDG_RUNTIME_DIR": str(folders[0]), "TMPDIR": str(folders[1])})
    shm_before = doradus_shm_entries()
    yield mark
    problems = [f"process {line}" for line in _end_processes(mark)]
    problems += [f"file {path}" for path in files_left(folders)]
    problems += [f"/dev/shm/{name}" for name in sorted(doradus_shm_entries() - shm_before)]
    problems += memfds_held()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)
    if problems:
        pytest.fail("the test session left behind:\n  " + "\n  ".join(problems), pytrace=False)
