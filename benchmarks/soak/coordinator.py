"""Coordinator restart under load: SIGKILL the coordinator of `doradus up` while a chain streams.

In a private runtime folder and port: `doradus up`, then `doradus start --detach` of source →
middle → sink (SOAK_COORD_RATE numbered messages a second, 5,000; inputs ``queue_policy:
backpressure``). SOAK_COORD_KILLS times (5): SIGKILL the coordinator (its pid from ``up.json``),
check the sink's count grows while none runs, start it again with the arguments ``up`` gave it
(read from ``/proc/<pid>/cmdline`` before the kill), then check that ``doradus list`` shows the
dataflow ``running``, how long that took, and that the count keeps growing. At the end: the
same node processes ran throughout, ``doradus status`` shows every node running, ``doradus node
stop source`` lets the chain drain and finish, the sink got every message sent, in order
(backpressure loses nothing), ``destroy`` works, the daemon's descriptors stayed flat, and no
process, /dev/shm entry or socket is left.

    SOAK_COORD_KILLS=1 .venv/bin/python benchmarks/soak/coordinator.py
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from harness import DORADUS, VENV_BIN, env_number, eventually, node, read_json
from results import Part, fmt_mib, record
from watch import TreeWatch, fd_trend, shm_created, shm_listing, sockets_under

NAME = "soak-coordinator"
LISTED_WITHIN = 15.0
"""Seconds from the new coordinator starting to `list` showing the dataflow running: its
start-up on a busy machine, the daemon's reconnect backoff (a few seconds at most) and a few
heartbeats."""
FD_SLACK = 2
"""Descriptors the daemon's lowest count may rise by over the restarts (`watch.fd_trend`, by
thirds: its count swings by a few from one reconnect to the next, and a leak raises the floor)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Cluster:
    """`doradus up` in a private runtime folder and port, and the commands run against it."""

    def __init__(self) -> None:
        self.work = Path(tempfile.mkdtemp(prefix="soak-coordinator-"))
        self.runtime = Path(tempfile.mkdtemp(prefix="sk-"))
        self.runtime.chmod(0o700)
        self.env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DORADUS_TOKEN_FILE")}
        self.env.update(
            XDG_RUNTIME_DIR=str(self.runtime),
            DORADUS_COORDINATOR=f"127.0.0.1:{free_port()}",
            NO_COLOR="1",
            PATH=f"{VENV_BIN}:{self.env.get('PATH', '')}",
        )
        self.started: list[subprocess.Popen[bytes]] = []
        self.window = (0.0, float("inf"))
        """Seconds into the watch between the first kill and the last restart's checks."""
        self.shm_before = shm_listing()
        self.watch = TreeWatch(self.roots, lambda: self.pids().get("daemon"))

    @property
    def state_file(self) -> Path:
        return self.runtime / "doradus" / "up.json"

    def pids(self) -> dict[str, int]:
        state = read_json(self.state_file) or {}
        return {k: int(v) for k, v in (state.get("pids") or {}).items()}

    def roots(self) -> list[int]:
        return list(self.pids().values()) + [p.pid for p in self.started if p.poll() is None]

    def __call__(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(DORADUS), *args],
            cwd=self.work,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def listed(self) -> dict[str, Any] | None:
        """This dataflow's entry in `doradus list --output json`, None while none answers."""
        try:
            ran = self("list", "--output", "json", "--retries", "0", timeout=20)
        except subprocess.TimeoutExpired:
            return None
        if ran.returncode != 0:
            return None
        found = [d for d in json.loads(ran.stdout) if d.get("name") == NAME]
        return found[0] if found else None

    def restart_coordinator(self, argv: list[str]) -> None:
        log = self.runtime / "doradus" / "coordinator.log"
        with open(log, "ab") as out:
            self.started.append(
                subprocess.Popen(
                    argv,
                    cwd=self.work,
                    env=self.env,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )

    def close(self, keep: bool) -> str | None:
        self.watch.kill_leftovers()
        for proc in self.started:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        if keep or os.environ.get("SOAK_KEEP"):
            shutil.copytree(
                self.runtime, self.work / "runtime", dirs_exist_ok=True, ignore_dangling_symlinks=True
            )
            shutil.rmtree(self.runtime, ignore_errors=True)
            return str(self.work)
        shutil.rmtree(self.runtime, ignore_errors=True)
        shutil.rmtree(self.work, ignore_errors=True)
        return None


def dataflow(cluster: Cluster, rate: float) -> dict[str, Any]:
    queue = {"queue_size": 1000, "queue_policy": "backpressure"}
    return {
        "nodes": [
            node("source", "source.py", {"SOAK_RATE": rate, "SOAK_OUT": str(cluster.work / "source.json")}),
            node("middle", "relay.py", {}, {"in": {"source": "source/out", **queue}}),
            node(
                "sink",
                "sink.py",
                {
                    "SOAK_PROGRESS": str(cluster.work / "progress.json"),
                    "SOAK_OUT": str(cluster.work / "sink.json"),
                },
                {"in": {"source": "middle/out", **queue}},
            ),
        ]
    }


def count(cluster: Cluster) -> int:
    return int((read_json(cluster.work / "progress.json") or {}).get("received", 0))


def grows(cluster: Cluster, by: int, within: float) -> tuple[bool, str]:
    start = count(cluster)
    ok = eventually(lambda: count(cluster) >= start + by, within)
    return ok, f"{start:,} → {count(cluster):,}"


def node_pids(cluster: Cluster) -> dict[str, int]:
    found = {}
    for label, proc in cluster.watch.processes():
        if label.startswith("node "):
            found[label[5:]] = proc.pid
    return found


def one_restart(cluster: Cluster, part: Part, rate: float, turn: int) -> dict[str, Any]:
    """Kill the coordinator, check the flow goes on, start it again, check `list` and the flow."""
    old = cluster.pids()["coordinator"]
    argv = [a.decode() for a in Path(f"/proc/{old}/cmdline").read_bytes().split(b"\0")[:-1]]
    os.kill(old, signal.SIGKILL)
    killed_at = time.monotonic()
    while_down, down_detail = grows(cluster, int(rate), 20)
    part.check(f"restart {turn}: the sink's count grows while no coordinator runs", while_down, down_detail)
    cluster.restart_coordinator(argv)
    restarted_at = time.monotonic()
    running = eventually(lambda: (cluster.listed() or {}).get("status") == "running", LISTED_WITHIN, 0.25)
    listed_after = time.monotonic() - restarted_at
    part.check(
        f"restart {turn}: `doradus list` shows it running",
        running,
        f"after {listed_after:.1f} s" if running else f"not within {LISTED_WITHIN:g} s: {cluster.listed()}",
    )
    after, after_detail = grows(cluster, int(rate), 20)
    part.check(f"restart {turn}: the count keeps growing", after, after_detail)
    new = cluster.pids().get("coordinator")
    part.check(f"restart {turn}: up.json names the new coordinator", new not in (None, old), f"{old} → {new}")
    return {
        "old_pid": old,
        "new_pid": new,
        "down_s": round(restarted_at - killed_at, 1),
        "listed_running_after_s": round(listed_after, 1) if running else None,
    }


def main() -> int:
    kills = int(env_number("SOAK_COORD_KILLS", 5))
    rate = env_number("SOAK_COORD_RATE", 5000)
    part = Part("coordinator", f"coordinator SIGKILLed and started again {kills}x under {rate:,.0f} msg/s")
    cluster = Cluster()
    cluster.watch.start()
    restarts: list[dict[str, Any]] = []
    print(
        f"[soak coordinator] doradus up, a chain at {rate:,.0f} msg/s, {kills} coordinator kills …",
        flush=True,
    )
    try:
        up = cluster("up")
        if part.check("doradus up", up.returncode == 0, up.stderr.strip()[-300:]):
            (cluster.work / "dataflow.yml").write_text(json.dumps(dataflow(cluster, rate), indent=2))
            started = cluster("start", "dataflow.yml", "--detach", "--name", NAME)
            if part.check("doradus start --detach", started.returncode == 0, started.stderr.strip()[-300:]):
                run_cycles(cluster, part, rate, kills, restarts)
    finally:
        cluster.watch.finish()
    finish(cluster, part, rate, restarts)
    kept = cluster.close(keep=not part.passed)
    if kept:
        part.figures["kept"] = kept
        print(f"[soak coordinator] kept {kept}", flush=True)
    record(part)
    print(f"[soak coordinator] {'passed' if part.passed else 'FAILED'}: {part.summary}", flush=True)
    return 0 if part.passed else 1


def run_cycles(cluster: Cluster, part: Part, rate: float, kills: int, restarts: list[dict[str, Any]]) -> None:
    flowing = eventually(lambda: count(cluster) > rate, 60)
    if not part.check("the chain delivers", flowing, f"{count(cluster):,} received"):
        return
    before = node_pids(cluster)
    window_from = time.monotonic() - cluster.watch.start_t
    for turn in range(1, kills + 1):
        restarts.append(one_restart(cluster, part, rate, turn))
        time.sleep(2.0)
    cluster.window = (window_from, time.monotonic() - cluster.watch.start_t)
    part.check(
        "the same node processes ran throughout",
        node_pids(cluster) == before,
        f"{before} → {node_pids(cluster)}",
    )
    status = cluster("status", NAME, "--output", "json")
    nodes = json.loads(status.stdout).get("nodes", {}) if status.returncode == 0 else {}
    states = {k: v.get("state") for k, v in nodes.items()}
    part.check("`doradus status` shows every node running", set(states.values()) == {"running"}, states)
    # The source stopped by itself: the chain drains and the dataflow finishes, nothing in flight.
    stopped = cluster("node", "stop", "source", "--dataflow", NAME, "--grace-duration", "10s")
    part.check("doradus node stop source", stopped.returncode == 0, stopped.stderr.strip()[-300:])
    done = eventually(lambda: (cluster.listed() or {}).get("status") == "finished", 60)
    part.check("the dataflow drains and finishes", done, (cluster.listed() or {}).get("status"))
    destroyed = cluster("destroy")
    part.check("doradus destroy", destroyed.returncode == 0, destroyed.stderr.strip()[-300:])
    for proc in cluster.started:  # the coordinators started here end with destroy
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass


def finish(cluster: Cluster, part: Part, rate: float, restarts: list[dict[str, Any]]) -> None:
    source = read_json(cluster.work / "source.json") or {}
    sink = read_json(cluster.work / "sink.json") or {}
    records: list[dict[str, Any]] = []
    edges: list[dict[str, Any]] = []
    for out in sorted(cluster.work.glob("out/*/logs.jsonl")):
        records += [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
        if (out.parent / "edges.json").exists():
            edges += json.loads((out.parent / "edges.json").read_text())
    undelivered = sum(
        int((r.get("fields") or {}).get("undelivered", 0))
        for r in records
        if (r.get("fields") or {}).get("event") == "dropped"
    )
    dropped = sum(int(e.get("dropped", 0)) + int(e.get("backpressure_timeouts", 0)) for e in edges)
    sent, received = int(source.get("sent", 0)), int(sink.get("received", 0))
    fds = fd_trend(cluster.watch.samples, *cluster.window, parts=3)
    memory = cluster.watch.memory()
    alive, zombies = cluster.watch.leftovers()
    shm_ours, shm_others = shm_created(cluster.shm_before, cluster.watch)
    cleanup: dict[str, Any] = {
        "processes_seen": len(cluster.watch.seen),
        "leftover_processes": alive,
        "zombies": zombies,
        "shm_created_left": shm_ours,
        "shm_new_not_ours": shm_others,
        "runtime_left": sockets_under(cluster.runtime),
    }
    part.figures.update(
        rate_msg_s=rate,
        restarts=restarts,
        sent=sent,
        received=received,
        sequence_missing=sink.get("missing"),
        out_of_order=sink.get("out_of_order"),
        counted_dropped=dropped,
        undelivered=undelivered,
        daemon_fds=fds,
        memory=memory,
    )
    part.check(
        "no gap in the sequence, in order",
        sink.get("missing") == 0 and sink.get("out_of_order") == 0,
        f"missing {sink.get('missing')}, out of order {sink.get('out_of_order')}",
    )
    part.check(
        "zero loss: every message sent was received",
        sent > 0 and sent == received and undelivered == dropped == 0,
        f"sent {sent:,}, received {received:,}, undelivered {undelivered:,}, dropped {dropped:,}",
    )
    if len(restarts) >= 3:
        part.check("the daemon's descriptors stay flat", fds.get("growth", FD_SLACK + 1) <= FD_SLACK, fds)
    else:  # its count swings by a few with each reconnect: a trend needs a few restarts
        print(f"[soak coordinator] descriptors not judged over {len(restarts)} restarts: {fds}")
    part.cleanup_checks(cleanup)
    listed = [r["listed_running_after_s"] for r in restarts if r["listed_running_after_s"] is not None]
    part.summary = {
        "messages": f"{received:,} delivered at {rate:,.0f} msg/s, 0 gaps"
        if sink.get("missing") == 0
        else f"{received:,} delivered, {sink.get('missing')} missing",
        "duration": f"{len(restarts)} coordinator kills; listed running "
        f"{max(listed, default=0):.1f} s after restart at most",
        "drops vs counters": f"{sent - received:,} lost, {undelivered + dropped:,} counted",
        "restarts": f"{len(restarts)} coordinator restarts",
        "peak RSS": fmt_mib(memory["peak_tree_mib"]),
        "left over": f"{len(alive)} processes, {len(shm_ours)} /dev/shm, "
        f"{len(cleanup['runtime_left'])} sockets",
    }


if __name__ == "__main__":
    sys.exit(main())
