"""The frameworks under test and how one dataflow run is executed, timed and cleaned up."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "benchmarks"
NODES = BENCH / "nodes"
DORADUS_VENV = REPO / ".venv"
DORA_VENV = BENCH / ".venv-dora"
DORA_POOL = "256MB"

# Variables that would leak one environment into the other's nodes, or change dora-rs's
# error paths (RUST_BACKTRACE makes every error capture a backtrace).
_SCRUB = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "RUST_BACKTRACE", "DORA_NODE_CONFIG")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


@dataclass(frozen=True)
class Framework:
    """One column of the results: a CLI, its environment and dataflow tuning."""

    key: str  # "doradus", "dora-tuned", "dora"
    label: str
    cli: Path
    venv: Path
    pool: str | None  # shared_memory_pool_size put on every node, or None

    def command(self, dataflow: Path) -> list[str]:
        return [str(self.cli), "run", str(dataflow)]

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in _SCRUB}
        env["PATH"] = f"{self.venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        env["VIRTUAL_ENV"] = str(self.venv)
        env["NO_COLOR"] = "1"
        return env


DORADUS = Framework("doradus", "Doradus", DORADUS_VENV / "bin" / "doradus", DORADUS_VENV, DORA_POOL)
DORA_TUNED = Framework(
    "dora-tuned", f"dora-rs ({DORA_POOL} pool)", DORA_VENV / "bin" / "dora", DORA_VENV, DORA_POOL
)
DORA = Framework("dora", "dora-rs (as installed)", DORA_VENV / "bin" / "dora", DORA_VENV, None)


def dora_available() -> tuple[bool, str]:
    """Whether `make bench-dora-venv` produced a working dora-rs CLI, and why not."""
    if not (DORA_VENV / ".installed").exists():
        return False, f"{DORA_VENV.relative_to(REPO)} was not created (no network?)"
    try:
        out = subprocess.run(
            [str(DORA_VENV / "bin" / "dora"), "--version"], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"dora --version failed: {exc}"
    if out.returncode != 0:
        return False, f"dora --version exited {out.returncode}"
    return True, out.stdout.strip()


def package_version(venv: Path, package: str) -> str:
    code = f"import importlib.metadata as m; print(m.version({package!r}))"
    try:
        out = subprocess.run(
            [str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.strip() or "unknown"


@dataclass
class Outcome:
    """What one `… run dataflow.yml` did."""

    returncode: int | None
    wall_s: float
    timed_out: bool
    log_tail: str
    # (monotonic ns, CPU seconds of the CLI process itself, CPU seconds of its helper children)
    cpu: list[tuple[int, float, float]] = field(default_factory=list)
    helpers: list[str] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)


class _Watcher(threading.Thread):
    """Records every descendant of the run (to kill leftovers) and, optionally, CPU times."""

    def __init__(self, pid: int, period: float, sample_cpu: bool) -> None:
        super().__init__(daemon=True)
        self.proc = psutil.Process(pid)
        self.period = period
        self.sample_cpu = sample_cpu
        self.seen: dict[int, psutil.Process] = {}
        self.cpu: list[tuple[int, float, float]] = []
        self.helpers: Counter[str] = Counter()
        self.done = threading.Event()

    def scan(self) -> list[psutil.Process]:
        try:
            children = self.proc.children(recursive=True)
        except psutil.Error:
            return []
        for child in children:
            self.seen.setdefault(child.pid, child)
        return children

    def run(self) -> None:
        while not self.done.is_set():
            children = self.scan()
            if self.sample_cpu:
                try:
                    t = self.proc.cpu_times()
                    now = time.monotonic_ns()
                except psutil.Error:
                    break
                self.cpu.append((now, t.user + t.system, self._helper_cpu(children)))
            self.done.wait(self.period)

    def _helper_cpu(self, children: list[psutil.Process]) -> float:
        """CPU of descendants that are not benchmark nodes (a separate daemon, if any)."""
        total = 0.0
        for child in children:
            try:
                if any(str(NODES) in arg for arg in child.cmdline()):
                    continue
                t = child.cpu_times()
                self.helpers[child.name()] += 1
            except psutil.Error:
                continue
            total += t.user + t.system
        return total


def _kill(procs: list[psutil.Process]) -> list[str]:
    """SIGKILL the given processes that still run; `is_running` checks the pid was not reused."""
    killed = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                killed.append(f"{p.pid} {' '.join(p.cmdline())[:120]}")
                p.send_signal(signal.SIGKILL)
        except psutil.Error:
            continue
    return killed


def run_dataflow(framework: Framework, dataflow: Path, timeout: float, sample_cpu: bool = False) -> Outcome:
    """Run one dataflow to completion, with a hard timeout; kill whatever it leaves behind."""
    log_path = dataflow.parent / "run.log"
    with open(log_path, "wb") as log:
        start = time.perf_counter()
        proc = subprocess.Popen(
            framework.command(dataflow),
            cwd=dataflow.parent,
            env=framework.env(),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        watcher = _Watcher(proc.pid, 0.05 if sample_cpu else 0.2, sample_cpu)
        watcher.start()
        timed_out = False
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            watcher.scan()
            _kill([watcher.proc, *watcher.seen.values()])
            proc.wait()
        except BaseException:  # Ctrl-C: the run is in its own session and would survive us
            watcher.scan()
            _kill([watcher.proc, *watcher.seen.values()])
            raise
        wall = time.perf_counter() - start
        watcher.done.set()
        watcher.join()
    leftovers = _kill(list(watcher.seen.values()))
    text = _ANSI.sub("", log_path.read_text(errors="replace"))
    tail = "\n".join(line for line in text.splitlines() if line.strip())[-2000:]
    return Outcome(
        returncode=None if timed_out else proc.returncode,
        wall_s=wall,
        timed_out=timed_out,
        log_tail=tail,
        cpu=watcher.cpu,
        # A name seen in one or two samples is a node between fork and exec, not a helper.
        helpers=sorted(name for name, seen in watcher.helpers.items() if seen >= 3),
        leftovers=leftovers,
    )


def cpu_percent(samples: list[tuple[int, float, float]], t0: int, t1: int) -> tuple[float, float] | None:
    """% of one core used by the CLI process (and by its helpers) between t0 and t1 (ns)."""
    inside = [s for s in samples if t0 <= s[0] <= t1]
    if len(inside) < 2:
        return None
    (a_t, a_cpu, a_help), (b_t, b_cpu, b_help) = inside[0], inside[-1]
    span = (b_t - a_t) / 1e9
    if span <= 0:
        return None
    return 100 * (b_cpu - a_cpu) / span, 100 * (b_help - a_help) / span
