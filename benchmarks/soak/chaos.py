"""Kill -9 chaos: SIGKILL a random node of a loaded chain every few seconds, for SOAK_MINUTES (5).

source → middle → sink, plus a ``witness`` reading middle too, under `doradus run`, every node
``restart_policy: always``. The source sends SOAK_CHAOS_RATE numbered messages a second (2,000),
every 50th one 1 MiB (so shared-memory segments are in flight when a node dies), the rest 16
bytes. Every SOAK_KILL_EVERY seconds (3) one of source, middle and sink, chosen at random —
the source too: its receivers must keep their inputs open while it restarts — gets SIGKILL
(SOAK_VICTIMS=middle,sink: only those). The witness is never killed: it counts what is
delivered throughout, and as a receiver that outlives many restarts of its sender it shows
whether anything of the dead senders stays with it. At the end:

- restarts: each kill is followed by exactly one restart (the run's ``restart_scheduled``
  and ``started`` records), and nothing else restarted;
- the dataflow still runs and delivers (the witness's count grows after the last kill);
- sink and witness saw sequence numbers in order within each source incarnation;
- the daemon's open descriptors (and memfds) stay flat over the run, and so do the witness's
  memfds (shared-memory segments it maps);
- Ctrl-C stops it: no process, /dev/shm entry, run folder or socket is left.

    SOAK_MINUTES=0.5 .venv/bin/python benchmarks/soak/chaos.py
"""

from __future__ import annotations

import os
import random
import signal
import sys
import time
from typing import Any

import psutil
from harness import DoradusRun, env_number, eventually, minutes, node, read_json
from results import Part, fmt_mib, record
from watch import fd_trend, node_fd_trend

NODES = ("source", "middle", "sink", "witness")
VICTIMS = ("source", "middle", "sink")
NODE_MEMFD_SLACK = 4
"""Shared-memory segments the witness may map more late in the run than early; one kept per
restart of its sender (a third of the kills) would exceed it."""
POLICY: dict[str, Any] = {"restart_policy": "always"}
FD_SLACK = 2
"""Descriptors the daemon's lowest count may rise by over the run; a leak of one per kill (of
~100 in a full run) is far above it."""


def dataflow(run: DoradusRun, rate: float) -> dict[str, Any]:
    source_env = {"SOAK_RATE": rate, "SOAK_BIG_EVERY": 50, "SOAK_BIG_SIZE": 1024 * 1024}
    return {
        "nodes": [
            node("source", "source.py", source_env, **POLICY),
            node("middle", "relay.py", {}, {"in": {"source": "source/out", "queue_size": 100}}, **POLICY),
            *(
                node(
                    name,
                    "sink.py",
                    {"SOAK_PROGRESS": str(run.file(f"{name}.json")), "SOAK_PROGRESS_S": 0.2},
                    {"in": {"source": "middle/out", "queue_size": 100}},
                    **POLICY,
                )
                for name in ("sink", "witness")
            ),
        ]
    }


def live_nodes(run: DoradusRun) -> dict[str, int]:
    """node id: pid of its process now (a node between two processes is absent)."""
    found = {}
    for label, proc in run.watch.processes():
        try:
            if label.startswith("node ") and proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                found[label[5:]] = proc.pid
        except psutil.Error:
            continue
    return found


class Delivery:
    """What a receiver delivered, summed over its processes (each restart counts from 0)."""

    def __init__(self, run: DoradusRun, name: str) -> None:
        self.name = name
        self.path = run.file(f"{name}.json")
        self.by_pid: dict[int, dict[str, Any]] = {}

    def look(self) -> dict[str, Any] | None:
        now = read_json(self.path)
        if now is not None:
            self.by_pid[int(now["pid"])] = now
        return now

    @property
    def received(self) -> int:
        return sum(int(p["received"]) for p in self.by_pid.values())

    @property
    def out_of_order(self) -> int:
        return sum(int(p["out_of_order"]) for p in self.by_pid.values())

    def grows(self, seconds: float, by: int) -> tuple[bool, str]:
        """Whether the current process receives ``by`` more messages within ``seconds``."""
        start = self.look()
        if start is None:
            return False, f"no progress from the {self.name}"

        def grown() -> bool:
            now = self.look()
            return (
                now is not None and now["pid"] == start["pid"] and now["received"] >= start["received"] + by
            )

        ok = eventually(grown, seconds)
        now = self.look() or start
        return (
            ok,
            f"{self.name} pid {now['pid']}: {start['received']:,} → {now['received']:,} in ≤ {seconds:g} s",
        )


def restart_records(run: DoradusRun) -> dict[str, dict[str, int]]:
    """Per node: its ``started``, ``restart_scheduled`` and ``failed`` records in logs.jsonl."""
    counts = {n: {"started": 0, "restart_scheduled": 0, "failed": 0} for n in NODES}
    for r in run.records():
        event = (r.get("fields") or {}).get("event")
        if r.get("node") in counts and event in counts[r["node"]]:
            counts[r["node"]][event] += 1
    return counts


def chaos(
    run: DoradusRun, deliveries: tuple[Delivery, ...], seconds: float, every: float, part: Part
) -> list[dict[str, Any]]:
    """SIGKILL a random live node every ``every`` seconds for ``seconds``; the kills made."""
    rng = random.Random(int(env_number("SOAK_SEED", 15)))
    victims = set(os.environ.get("SOAK_VICTIMS", ",".join(VICTIMS)).split(",")) & set(VICTIMS)
    kills: list[dict[str, Any]] = []
    killed_pids: set[int] = set()
    start = time.monotonic()
    next_kill = start + every
    while time.monotonic() < start + seconds and run.running():
        time.sleep(max(0.0, min(0.5, next_kill - time.monotonic())))
        for delivery in deliveries:
            delivery.look()
        if time.monotonic() < next_kill:
            continue
        next_kill += every
        candidates = {n: pid for n, pid in live_nodes(run).items() if pid not in killed_pids and n in victims}
        if not candidates:
            part.figures.setdefault("skipped_kills", 0)
            part.figures["skipped_kills"] += 1  # every node between two processes: try next turn
            continue
        victim = rng.choice(sorted(candidates))
        try:
            os.kill(candidates[victim], signal.SIGKILL)
        except ProcessLookupError:
            continue
        killed_pids.add(candidates[victim])
        kills.append({"t": round(time.monotonic() - start, 2), "node": victim, "pid": candidates[victim]})
        if len(kills) % 10 == 0:
            print(f"[soak chaos] {len(kills)} kills, witness received {deliveries[0].received:,}", flush=True)
    return kills


def main() -> int:
    seconds = minutes("SOAK_MINUTES", 5.0)
    every = env_number("SOAK_KILL_EVERY", 3.0)
    rate = env_number("SOAK_CHAOS_RATE", 2000)
    part = Part("chaos", f"kill -9 of a random node every {every:g} s for {seconds / 60:g} min")
    run = DoradusRun("chaos")
    run.write(dataflow(run, rate))
    witness, sink = Delivery(run, "witness"), Delivery(run, "sink")
    print(f"[soak chaos] {seconds:.0f} s of SIGKILLs every {every:g} s, {rate:g} msg/s …", flush=True)
    run.start()
    flowing = eventually(lambda: (witness.look() or {}).get("received", 0) > 0, 60)
    part.check("the chain delivers before the chaos", flowing)
    chaos_from = time.monotonic() - run.watch.start_t
    kills = chaos(run, (witness, sink), seconds, every, part) if flowing else []
    window = (chaos_from, time.monotonic() - run.watch.start_t)
    part.check("kills were made", len(kills) >= max(1, int(seconds / every) // 2), f"{len(kills)} kills")
    part.check("doradus run survived the chaos", run.running())
    back = eventually(lambda: len(live_nodes(run)) == len(NODES), 30)
    part.check("every node runs again after the last kill", back, live_nodes(run))
    grows, detail = witness.grows(30.0, by=int(rate))
    part.check("the dataflow still delivers after the last kill", grows, detail)
    code = run.stop(timeout=60)
    part.check("Ctrl-C stopped the run, every node exiting 0", code == 0, f"exit {code}")
    witness.look()
    sink.look()
    judge(part, run, kills, window, witness, sink)
    part.figures.update(seconds=round(seconds), kill_every_s=every, rate_msg_s=rate, exit_code=code)
    part.summary["messages"] = f"{witness.received:,} to the witness at {rate:,.0f} msg/s"
    part.summary["duration"] = f"{seconds:.0f} s, {len(kills)} kills"
    kept = run.close(keep=not part.passed)
    if kept:
        part.figures["kept"] = kept
        print(f"[soak chaos] kept {kept}\n{run.log_tail()}", flush=True)
    record(part)
    print(f"[soak chaos] {'passed' if part.passed else 'FAILED'}: {part.summary}", flush=True)
    return 0 if part.passed else 1


def judge(
    part: Part,
    run: DoradusRun,
    kills: list[dict[str, Any]],
    window: tuple[float, float],
    witness: Delivery,
    sink: Delivery,
) -> None:
    """The checks made once the run is over: restarts, order, descriptors, leftovers."""
    records = restart_records(run)
    per_node_kills = {n: sum(1 for k in kills if k["node"] == n) for n in NODES}
    restarts = {n: records[n]["started"] - 1 for n in NODES}
    scheduled = {n: records[n]["restart_scheduled"] for n in NODES}
    fds = fd_trend(run.watch.samples, *window)
    node_fds = node_fd_trend(run.watch.samples, *window)
    memory = run.watch.memory()
    part.figures.update(
        kills=len(kills),
        kills_per_node=per_node_kills,
        restarts_per_node=restarts,
        restart_records=records,
        witness_received=witness.received,
        sink_received_seen=sink.received,  # sink processes are killed: what their last reports said
        sink_processes=len(sink.by_pid),
        out_of_order={"witness": witness.out_of_order, "sink": sink.out_of_order},
        daemon_fds=fds,
        node_fds=node_fds,
        memory=memory,
        kill_log=kills,
    )
    part.check("restarts = kills, node by node", restarts == per_node_kills, f"restarts {restarts}")
    part.check("one restart_scheduled record per kill", scheduled == per_node_kills, scheduled)
    order = witness.out_of_order + sink.out_of_order
    part.check("in order within each source incarnation", order == 0, part.figures["out_of_order"])
    part.check(
        "the daemon's open descriptors stay flat",
        fds.get("growth", FD_SLACK + 1) <= FD_SLACK,
        f"{fds.get('first_median')} → {fds.get('last_median')} (min {fds.get('min')}, max {fds.get('max')}, "
        f"lowest rose by {fds.get('growth')}); memfds {fds.get('memfds_first_median')} → "
        f"{fds.get('memfds_last_median')}",
    )
    seen = node_fds.get("node witness", {})
    part.check(
        "the witness's memfds (mapped segments) stay flat",
        bool(seen) and seen["memfds_last_quarter_max"] <= seen["memfds_first_quarter_max"] + NODE_MEMFD_SLACK,
        f"most held: {seen.get('memfds_first_quarter_max')} (first quarter of the chaos), "
        f"{seen.get('memfds_last_quarter_max')} (last), over {per_node_kills['middle']} restarts of middle",
    )
    part.cleanup_checks(run.cleanup_figures())
    cleanup = part.figures["cleanup"]
    part.summary = {
        "drops vs counters": "— (kills lose in-flight messages)",
        "restarts": f"{sum(restarts.values())} restarts / {len(kills)} kills",
        "peak RSS": fmt_mib(memory["peak_tree_mib"]),
        "left over": (
            f"{len(cleanup['leftover_processes'])} processes, {len(cleanup['shm_created_left'])} /dev/shm, "
            f"{len(cleanup['runtime_left'])} sockets; daemon fds {fds.get('first_median', 0):.0f} → "
            f"{fds.get('last_median', 0):.0f}; witness memfds {seen.get('memfds_first_quarter_max')} → "
            f"{seen.get('memfds_last_quarter_max')}"
        ),
    }


if __name__ == "__main__":
    sys.exit(main())
