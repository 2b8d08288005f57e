"""The frameworks under test and how one dataflow run is executed, timed and cleaned up.

Five columns: Doradus, dora-rs tuned (`shared_memory_pool_size: 256MB`), dora-rs as
installed, and two raw IPC anchors (iceoryx2 and pyzmq between two plain Python processes,
`anchors.py`), which run the same sender and receiver method without a framework.

Every run's process tree is reaped with `os.wait4`, whose resource usage covers the `run`
process and every descendant it reaped: every node, start-up and idle time included
(`TreeCpu`). A watcher samples each descendant's own CPU time meanwhile, so a descendant
that was not reaped (its time missing from `wait4`) is noticed, not silently dropped.
"""

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
from typing import Any

import psutil

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "benchmarks"
NODES = BENCH / "nodes"
DORADUS_VENV = REPO / ".venv"
DORA_VENV = BENCH / ".venv-dora"
IPC_VENV = BENCH / ".venv-ipc"
DORA_POOL = "256MB"

# Variables that would leak one environment into the other's nodes, or change dora-rs's
# error paths (RUST_BACKTRACE makes every error capture a backtrace).
_SCRUB = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "RUST_BACKTRACE", "DORA_NODE_CONFIG")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


@dataclass(frozen=True)
class Framework:
    """One column of the results: a CLI (or, for an anchor, an interpreter), its environment
    and dataflow tuning."""

    key: str  # "doradus", "dora-tuned", "dora", "iceoryx2", "pyzmq"
    label: str
    cli: Path
    venv: Path
    pool: str | None  # shared_memory_pool_size put on every node, or None
    anchor: bool = False  # a raw IPC floor: the dataflow's nodes run as plain processes

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
ICEORYX2 = Framework(
    "iceoryx2", "iceoryx2 (raw IPC)", IPC_VENV / "bin" / "python", IPC_VENV, None, anchor=True
)
PYZMQ = Framework("pyzmq", "pyzmq ipc:// (raw IPC)", IPC_VENV / "bin" / "python", IPC_VENV, None, anchor=True)
ANCHORS = (ICEORYX2, PYZMQ)


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


def ipc_available() -> tuple[bool, str]:
    """Whether `make bench-ipc-venv` produced the anchors' environment (iceoryx2, pyzmq)."""
    if not (IPC_VENV / ".installed").exists():
        return False, f"{IPC_VENV.relative_to(REPO)} was not created (make bench-ipc-venv failed?)"
    code = "import iceoryx2, zmq, numpy"
    try:
        out = subprocess.run([str(IPC_VENV / "bin" / "python"), "-c", code], capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"importing the anchors' libraries failed: {exc}"
    if out.returncode != 0:
        return False, f"importing the anchors' libraries failed: {out.stderr.decode()[-200:]}"
    return True, "ok"


@dataclass
class TreeCpu:
    """User + system CPU seconds of a whole run: the process and every descendant it reaped."""

    user_s: float
    system_s: float
    # The sum of each process's own CPU time as last sampled while it ran: a lower bound that
    # `wait4` must reach, or some descendant was not reaped and its time is missing.
    sampled_s: float
    processes: int

    @property
    def total_s(self) -> float:
        return self.user_s + self.system_s

    @property
    def complete(self) -> bool:
        return self.total_s + 0.05 >= self.sampled_s

    def as_dict(self) -> dict[str, Any]:
        return {
            "user_s": round(self.user_s, 4),
            "system_s": round(self.system_s, 4),
            "total_s": round(self.total_s, 4),
            "sampled_lower_bound_s": round(self.sampled_s, 4),
            "processes": self.processes,
            "complete": self.complete,
        }


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
    tree_cpu: TreeCpu | None = None


class _Watcher(threading.Thread):
    """Records every descendant of the run (to kill leftovers, and their CPU time as a check of
    `wait4`) and, optionally, the CPU time of the `run` process itself."""

    def __init__(self, pid: int, period: float, sample_cpu: bool) -> None:
        super().__init__(daemon=True)
        self.proc = psutil.Process(pid)
        self.period = period
        self.sample_cpu = sample_cpu
        self.seen: dict[int, psutil.Process] = {}
        self.own_cpu: dict[int, float] = {}  # pid -> its own user+system at the last sample
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
        for p in (self.proc, *children):
            try:
                t = p.cpu_times()
            except psutil.Error:
                continue
            self.own_cpu[p.pid] = max(self.own_cpu.get(p.pid, 0.0), t.user + t.system)
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


def kill_processes(procs: list[psutil.Process]) -> list[str]:
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


class Reaper(threading.Thread):
    """`os.wait4` on one child in a thread, so the caller can wait with a timeout."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.status: int | None = None
        self.usage: Any = None
        self.ended_ns = 0

    def run(self) -> None:
        _, self.status, self.usage = os.wait4(self.pid, 0)
        self.ended_ns = time.perf_counter_ns()

    @property
    def returncode(self) -> int | None:
        return None if self.status is None else os.waitstatus_to_exitcode(self.status)


def start(command: list[str], cwd: Path, env: dict[str, str], log: Any) -> subprocess.Popen[bytes]:
    """A process in its own session (so Ctrl-C of the suite never reaches it half-way)."""
    return subprocess.Popen(
        command,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def run_dataflow(framework: Framework, dataflow: Path, timeout: float, sample_cpu: bool = False) -> Outcome:
    """Run one dataflow to completion, with a hard timeout; kill whatever it leaves behind."""
    if framework.anchor:
        from anchors import run_anchor

        return run_anchor(framework, dataflow, timeout)
    log_path = dataflow.parent / "run.log"
    with open(log_path, "wb") as log:
        t0 = time.perf_counter_ns()
        proc = start(framework.command(dataflow), dataflow.parent, framework.env(), log)
        watcher = _Watcher(proc.pid, 0.05 if sample_cpu else 0.2, sample_cpu)
        watcher.start()
        reaper = Reaper(proc.pid)
        reaper.start()
        try:
            reaper.join(timeout)
        except BaseException:  # Ctrl-C: the run is in its own session and would survive us
            watcher.scan()
            kill_processes([watcher.proc, *watcher.seen.values()])
            raise
        timed_out = reaper.is_alive()
        if timed_out:
            watcher.scan()
            kill_processes([watcher.proc, *watcher.seen.values()])
            reaper.join()
        proc.returncode = reaper.returncode  # reaped by wait4: Popen must not wait again
        watcher.done.set()
        watcher.join()
    leftovers = kill_processes(list(watcher.seen.values()))
    usage = reaper.usage
    tree = TreeCpu(usage.ru_utime, usage.ru_stime, sum(watcher.own_cpu.values()), len(watcher.own_cpu))
    return Outcome(
        returncode=None if timed_out else proc.returncode,
        wall_s=(reaper.ended_ns - t0) / 1e9,
        timed_out=timed_out,
        log_tail=read_tail(log_path),
        cpu=watcher.cpu,
        # A name seen in one or two samples is a node between fork and exec, not a helper.
        helpers=sorted(name for name, seen in watcher.helpers.items() if seen >= 3),
        leftovers=leftovers,
        tree_cpu=tree,
    )


def read_tail(log_path: Path) -> str:
    text = _ANSI.sub("", log_path.read_text(errors="replace"))
    return "\n".join(line for line in text.splitlines() if line.strip())[-2000:]


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
