"""Watching a process tree: memory per process, descriptors, and what it leaves behind.

`TreeWatch` samples every process under some roots (resident memory per process, the
daemon's open descriptors and memfds, each node's) and remembers every process and
``/dev/shm`` object it saw, so leftovers can be counted once the run is over; `fd_trend` and
`node_fd_trend` say whether descriptors stayed flat.
"""

from __future__ import annotations

import os
import signal
import stat
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

MIB = 1024 * 1024
SHM = Path("/dev/shm")


@dataclass
class Sample:
    """One look at the tree: time, resident memory (per label and total), the daemon's descriptors."""

    t: float
    rss: dict[str, int]
    fds: int | None
    memfds: int | None
    node_fds: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Per node (label): its open descriptors and memfds among them."""

    @property
    def total(self) -> int:
        return sum(self.rss.values())


class TreeWatch(threading.Thread):
    """Samples every process under ``roots()`` every ``period`` seconds, until `finish`.

    ``daemon_pid()`` names the process whose open descriptors (and memfds among them) are
    counted. Every process seen is kept (a ``psutil.Process`` checks its start time, so a
    reused pid is not mistaken for it), and every ``/dev/shm`` object any of them mapped or
    held open.
    """

    def __init__(
        self,
        roots: Callable[[], Iterable[int]],
        daemon_pid: Callable[[], int | None],
        period: float = 0.5,
    ) -> None:
        super().__init__(daemon=True, name="tree-watch")
        self.roots = roots
        self.daemon_pid = daemon_pid
        self.period = period
        self.start_t = time.monotonic()
        self.samples: list[Sample] = []
        self.seen: dict[tuple[int, float], psutil.Process] = {}
        self.labels: dict[tuple[int, float], str] = {}
        self.shm_seen: set[str] = set()
        self._done = threading.Event()
        self._lock = threading.Lock()

    def run(self) -> None:
        turn = 0
        while not self._done.is_set():
            self.sample(look_for_shm=turn % 4 == 0)
            turn += 1
            self._done.wait(self.period)

    def finish(self) -> None:
        """One last sample, then stop sampling."""
        self._done.set()
        self.join(timeout=10)
        self.sample(look_for_shm=True)

    def processes(self) -> list[tuple[str, psutil.Process]]:
        """(label, process) of every live process of the tree now; records new ones."""
        found: list[psutil.Process] = []
        for pid in self.roots():
            try:
                root = psutil.Process(pid)
                found += [root, *root.children(recursive=True)]
            except psutil.Error:
                continue
        out = []
        with self._lock:
            for proc in found:
                try:
                    key = (proc.pid, proc.create_time())
                except psutil.Error:
                    continue
                if key not in self.seen:
                    self.seen[key] = proc
                if not self.labels.get(key, "").startswith("node "):
                    # Between fork and exec a process still looks like its parent: only a
                    # node's label (from its environment, set at exec) is final.
                    self.labels[key] = label_of(self.seen[key])
                out.append((self.labels[key], self.seen[key]))
        return out

    def sample(self, look_for_shm: bool = False) -> Sample:
        rss: dict[str, int] = {}
        node_fds: dict[str, tuple[int, int]] = {}
        for label, proc in self.processes():
            try:
                if proc.status() == psutil.STATUS_ZOMBIE:
                    continue  # ended, not reaped yet (the keeper holds a run's ended nodes)
            except psutil.Error:
                continue
            if label.startswith("node "):
                count, memfd = descriptors(proc.pid)
                if count is not None and memfd is not None:
                    node_fds[label] = (count, memfd)
            try:
                used = proc.memory_info().rss
            except psutil.Error:
                continue
            if used:  # 0: a zombie
                rss[label] = rss.get(label, 0) + used
            if look_for_shm:
                self.shm_seen |= shm_objects(proc.pid)
        fds = memfds = None
        pid = self.daemon_pid()
        if pid is not None:
            fds, memfds = descriptors(pid)
        got = Sample(time.monotonic() - self.start_t, rss, fds, memfds, node_fds)
        self.samples.append(got)
        return got

    def leftovers(self) -> tuple[list[str], int]:
        """Processes seen that still run (described), and how many are zombies (ended, not reaped)."""
        alive, zombies = [], 0
        with self._lock:
            items = list(self.seen.items())
        for key, proc in items:
            try:
                if not proc.is_running():
                    continue
                if proc.status() == psutil.STATUS_ZOMBIE:
                    zombies += 1
                    continue
            except psutil.Error:
                continue
            alive.append(f"{proc.pid} {self.labels[key]}")
        return alive, zombies

    def kill_leftovers(self) -> None:
        with self._lock:
            procs = list(self.seen.values())
        for proc in procs:
            try:
                if proc.is_running():
                    proc.send_signal(signal.SIGKILL)
            except psutil.Error:
                continue

    def memory(self) -> dict[str, Any]:
        """Peak resident memory of the whole tree, and start/peak/end per process label (MiB)."""
        if not self.samples:
            return {"peak_tree_mib": None, "per_process": {}}
        per: dict[str, list[int]] = {}
        for s in self.samples:
            for label, value in s.rss.items():
                per.setdefault(label, []).append(value)
        return {
            "peak_tree_mib": round(max(s.total for s in self.samples) / MIB, 1),
            "per_process": {
                label: {
                    "start_mib": round(v[0] / MIB, 1),
                    "peak_mib": round(max(v) / MIB, 1),
                    "end_mib": round(v[-1] / MIB, 1),
                }
                for label, v in per.items()
            },
        }


def label_of(proc: psutil.Process) -> str:
    """A node's id (``DORADUS_NODE_ID`` in its environment), else what the Doradus process is."""
    try:
        node = proc.environ().get("DORADUS_NODE_ID")
        if node:
            return f"node {node}"
        args = proc.cmdline()
    except psutil.Error:
        return f"pid {proc.pid}"
    if any("keeper" in a for a in args[:4]):
        return "doradus keeper"
    for word in ("coordinator", "daemon", "run"):
        if word in args[:5]:
            return f"doradus {word}"
    return str(proc.name())


def descriptors(pid: int) -> tuple[int | None, int | None]:
    """How many descriptors ``pid`` holds open, and how many of them are memfds."""
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return None, None
    memfds = 0
    for name in names:
        try:
            if os.readlink(f"/proc/{pid}/fd/{name}").startswith("/memfd:"):
                memfds += 1
        except OSError:
            continue
    return len(names), memfds


def shm_objects(pid: int) -> set[str]:
    """Names of the ``/dev/shm`` objects ``pid`` maps or holds open."""
    found = set()
    try:
        for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
            at = line.find("/dev/shm/")
            if at >= 0:
                found.add(line[at + len("/dev/shm/") :].split(" (deleted)")[0])
        for name in os.listdir(f"/proc/{pid}/fd"):
            target = os.readlink(f"/proc/{pid}/fd/{name}")
            if target.startswith("/dev/shm/"):
                found.add(target[len("/dev/shm/") :])
    except OSError:
        pass
    return found


def shm_listing() -> set[str]:
    try:
        return set(os.listdir(SHM))
    except OSError:
        return set()


def shm_created(before: set[str], watch: TreeWatch) -> tuple[list[str], int]:
    """``/dev/shm`` entries left that this run created, and how many new ones were others'.

    An entry is this run's when one of its processes mapped or opened it, or its name says
    Doradus; other new entries come from whatever else runs on the machine meanwhile.
    """
    new = shm_listing() - before
    ours = sorted(n for n in new if n in watch.shm_seen or "doradus" in n.lower())
    return ours, len(new) - len(ours)


def sockets_under(folder: Path) -> list[str]:
    """Unix sockets and run folders left under a runtime folder."""
    found = []
    runs = folder / "doradus" / "runs"
    if runs.is_dir():
        found += [f"run folder {p.name}" for p in runs.iterdir()]
    for path in folder.rglob("*"):
        try:
            if stat.S_ISSOCK(path.lstat().st_mode):
                found.append(f"socket {path}")
        except OSError:
            continue
    return found


def node_fd_trend(samples: list[Sample], start: float = 0.0, end: float = float("inf")) -> dict[str, Any]:
    """Per node: the most descriptors and memfds its processes held, in the first and last quarter."""
    inside = [s for s in samples if start <= s.t <= end]
    quarter = max(1, len(inside) // 4)
    found: dict[str, Any] = {}
    for label in sorted({k for s in inside for k in s.node_fds}):

        def most(part: list[Sample], i: int, label: str = label) -> int:
            return max((s.node_fds[label][i] for s in part if label in s.node_fds), default=0)

        found[label] = {
            "fds_first_quarter_max": most(inside[:quarter], 0),
            "fds_last_quarter_max": most(inside[-quarter:], 0),
            "memfds_first_quarter_max": most(inside[:quarter], 1),
            "memfds_last_quarter_max": most(inside[-quarter:], 1),
        }
    return found


def fd_trend(
    samples: list[Sample], start: float = 0.0, end: float = float("inf"), parts: int = 4
) -> dict[str, Any]:
    """The daemon's descriptor counts between ``start`` and ``end`` (seconds into the watch).

    ``growth``: the lowest count of the last of ``parts`` equal parts minus the first part's.
    Counts swing while a node restarts or the daemon reconnects; a leak raises the floor they
    swing from. ``first_median``/``last_median``: the same parts' medians.
    """
    inside = [s for s in samples if start <= s.t <= end]
    counts = [s.fds for s in inside if s.fds is not None]
    memfds = [s.memfds for s in inside if s.memfds is not None]
    if len(counts) < parts:
        return {"samples": len(counts)}
    quarter = max(1, len(counts) // parts)

    def median(values: list[int]) -> float:
        ordered = sorted(values)
        return float(ordered[len(ordered) // 2])

    step = max(1, len(counts) // 20)
    return {
        "samples": len(counts),
        "series": counts[::step],
        "growth": min(counts[-quarter:]) - min(counts[:quarter]),
        "first_median": median(counts[:quarter]),
        "last_median": median(counts[-quarter:]),
        "min": min(counts),
        "max": max(counts),
        "memfds_first_median": median(memfds[:quarter]) if memfds else None,
        "memfds_last_median": median(memfds[-quarter:]) if memfds else None,
    }
