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
        body = textwrap.dedent(text).lstrip("\n")
        path.write_text(body)
        if body.startswith("#!"):
            path.chmod(0o755)


def shm_entries() -> set[str]:
    """Entries of /dev/shm that Doradus could have made.

    Other software on the machine writes there concurrently and is left out: the
    PostgreSQL server, and Zenoh (used by dora-rs, which the benchmarks run).
    """
    return {
        name
        for name in os.listdir("/dev/shm")
        if not (name.startswith(("sem.", "PostgreSQL.")) or name.endswith(".zenoh"))
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
