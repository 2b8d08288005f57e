"""The raw IPC anchors: a scenario's nodes run as two plain Python processes, no framework.

An anchor column (iceoryx2, pyzmq over `ipc://`) reads the same generated dataflow as the
frameworks and starts, for each node, the script of the same name in `anchor_nodes/` with
the node's own `env:` (sizes, counts, warm-up, pacing, `BENCH_OUT`), from the anchors'
environment `benchmarks/.venv-ipc`. The scripts follow the framework nodes line for line
(stamp, send, wait for the acknowledgement, pause), so the difference between a framework's
column and an anchor's is what the framework adds on top of the IPC library.

The processes are started directly and reaped with `os.wait4`, so the tree CPU of an anchor
run is the sum of its two processes (start-up included), like a framework's whole tree.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import Any

import psutil
import yaml
from frameworks import BENCH, Framework, Outcome, Reaper, TreeCpu, kill_processes, read_tail, start

ANCHOR_NODES = BENCH / "anchor_nodes"


def anchor_scripts(dataflow: dict[str, Any]) -> list[tuple[str, Path, dict[str, str]]]:
    """(node id, anchor script, env) for every node of a generated dataflow."""
    out = []
    for node in dataflow["nodes"]:
        script = ANCHOR_NODES / Path(node["path"]).name
        if not script.exists():
            raise FileNotFoundError(f"no anchor version of {Path(node['path']).name} in {ANCHOR_NODES}")
        out.append((node["id"], script, {k: str(v) for k, v in node.get("env", {}).items()}))
    return out


def run_anchor(fw: Framework, dataflow: Path, timeout: float) -> Outcome:
    """Run each node of `dataflow` as `fw`'s plain process; kill everything after `timeout`."""
    run_dir = dataflow.parent
    nodes = anchor_scripts(yaml.safe_load(dataflow.read_text()))
    # A short name: it becomes iceoryx2 service names and a Unix socket path.
    channel = f"bench-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    base = fw.env() | {"BENCH_TRANSPORT": fw.key, "BENCH_CHANNEL": channel, "PYTHONUNBUFFERED": "1"}
    t0 = time.perf_counter_ns()
    procs, reapers, logs = [], [], []
    try:
        for node_id, script, env in nodes:
            log_path = run_dir / f"{node_id}.log"
            logs.append((node_id, log_path))
            with open(log_path, "wb") as log:
                env = base | env | {"BENCH_NODE_ID": node_id}
                proc = start([str(fw.cli), str(script)], run_dir, env, log)
            procs.append(proc)
            reapers.append(Reaper(proc.pid))
            reapers[-1].start()
        deadline = time.monotonic() + timeout
        for reaper in reapers:
            reaper.join(max(0.0, deadline - time.monotonic()))
    except BaseException:
        kill_processes([psutil.Process(p.pid) for p in procs if p.returncode is None])
        raise
    timed_out = any(r.is_alive() for r in reapers)
    if timed_out:
        alive = []
        for proc, reaper in zip(procs, reapers, strict=True):
            if reaper.is_alive():
                try:
                    alive.append(psutil.Process(proc.pid))
                except psutil.Error:
                    continue
        kill_processes(alive)
        for reaper in reapers:
            reaper.join()
    codes = [r.returncode for r in reapers]
    for proc, code in zip(procs, codes, strict=True):
        proc.returncode = code
    failed = [c for c in codes if c != 0]
    user = sum(r.usage.ru_utime for r in reapers)
    system = sum(r.usage.ru_stime for r in reapers)
    tail = "\n".join(f"{node_id} | {line}" for node_id, path in logs for line in read_tail(path).splitlines())
    return Outcome(
        returncode=None if timed_out else (failed[0] if failed else 0),
        wall_s=(max(r.ended_ns for r in reapers) - t0) / 1e9,
        timed_out=timed_out,
        log_tail=tail[-2000:],
        # Each process is reaped directly: nothing can escape wait4, so the bound is the total.
        tree_cpu=TreeCpu(user, system, user + system, len(reapers)),
    )
