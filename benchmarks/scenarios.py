"""The benchmark scenarios: the dataflow each one runs and how its raw figures are read back.

Every scenario builds the same dataflow for every framework; only dora-rs's tuning key
(`shared_memory_pool_size`) differs between the two dora-rs columns. Doradus runs the
tuned file (it accepts and validates the key).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from frameworks import NODES, Framework, Outcome, cpu_percent

KiB = 1024
MiB = 1024 * KiB


@dataclass(frozen=True)
class Plan:
    """How much to measure (full `make bench` or `--quick`)."""

    rounds: int = 3
    sizes: tuple[int, ...] = (8, 4 * KiB, 64 * KiB, MiB, 4 * MiB, 40 * MiB)
    count: int = 200
    warmup: int = 10
    throughput_s: float = 3.0
    fanout_count: int = 200
    chain_count: int = 200
    zerocopy_count: int = 200
    startup_runs: int = 5  # per round
    dora_default: bool = True  # also measure dora-rs without the pool tuning


FULL = Plan()
QUICK = Plan(
    rounds=1,
    sizes=(8, 64 * KiB, 4 * MiB),
    count=50,
    throughput_s=1.0,
    fanout_count=50,
    chain_count=50,
    zerocopy_count=30,
    startup_runs=5,
)


class RunFailed(Exception):
    """A run that produced no usable figures; the message goes into the table."""


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    build: Callable[[Plan, Framework, Path], dict[str, Any]]
    collect: Callable[[Plan, Path, Outcome], dict[str, Any]]
    timeout: Callable[[Plan], float]
    sample_cpu: bool = False


def _node(
    fw: Framework,
    run_dir: Path,
    node_id: str,
    script: str,
    inputs: dict[str, Any] | None = None,
    outputs: list[str] | None = None,
    env: dict[str, Any] | None = None,
) -> dict[str, Any]:
    node: dict[str, Any] = {"id": node_id, "path": str(NODES / script)}
    if inputs:
        node["inputs"] = inputs
    if outputs:
        node["outputs"] = outputs
    node["env"] = {k: str(v) for k, v in {**(env or {}), "BENCH_OUT": run_dir / f"{node_id}.json"}.items()}
    if fw.pool:
        node["shared_memory_pool_size"] = fw.pool
    return node


_EXCEPTION = re.compile(r"\b[A-Z]\w*(Error|Exception|Exit)\b:?.*")


def _reason(outcome: Outcome) -> str:
    """The gist of a failed run: the last exception line of its output, else its last line."""
    lines = [ln.strip() for ln in outcome.log_tail.splitlines() if ln.strip()]
    for line in reversed(lines):
        node, sep, text = line.partition(" | ")
        match = _EXCEPTION.search(text if sep else line)
        if match:
            return f"{node.strip()}: {match.group(0)}" if sep else match.group(0)
    return lines[-1] if lines else "no output"


def _read(run_dir: Path, node_id: str, outcome: Outcome) -> dict[str, Any]:
    path = run_dir / f"{node_id}.json"
    if path.exists():
        data: dict[str, Any] = json.loads(path.read_text())
        return data
    if outcome.timed_out:
        raise RunFailed(f"timed out; node `{node_id}` wrote no results")
    raise RunFailed(f"exit code {outcome.returncode}, no results from `{node_id}`: {_reason(outcome)}")


def _check_exit(outcome: Outcome) -> None:
    if outcome.timed_out:
        raise RunFailed("timed out")
    if outcome.returncode != 0:
        raise RunFailed(f"exit code {outcome.returncode}: {_reason(outcome)}")


def _msg_budget(size: int) -> float:
    """Generous seconds per message for the hard timeout (dora-rs's default pool: ~0.25 s at 40 MiB)."""
    if size >= 16 * MiB:
        return 1.0
    if size >= MiB:
        return 0.1
    return 0.03


def _latency_env(plan: Plan, sizes: tuple[int, ...], count: int, stamp: str, acks: int) -> dict[str, Any]:
    return {
        "BENCH_SIZES": ",".join(str(s) for s in sizes),
        "BENCH_COUNT": count,
        "BENCH_WARMUP": plan.warmup,
        "BENCH_STAMP": stamp,
        "BENCH_ACKS": acks,
    }


# ---------------------------------------------------------------- one-way latency
def _latency(stamp: str) -> Scenario:
    def build(plan: Plan, fw: Framework, run_dir: Path) -> dict[str, Any]:
        env = _latency_env(plan, plan.sizes, plan.count, stamp, 1)
        return {
            "nodes": [
                _node(fw, run_dir, "sender", "latency_sender.py", {"ack": "receiver/ack"}, ["out"], env),
                _node(fw, run_dir, "receiver", "latency_receiver.py", {"in": "sender/out"}, ["ack"], env),
            ]
        }

    def collect(plan: Plan, run_dir: Path, outcome: Outcome) -> dict[str, Any]:
        sender = _read(run_dir, "sender", outcome)
        receiver = _read(run_dir, "receiver", outcome)
        _check_exit(outcome)
        return {"sender": sender, "latency_ns": receiver["latency_ns"], "received": receiver["received"]}

    def timeout(plan: Plan) -> float:
        return 60 + sum((plan.count + plan.warmup) * (_msg_budget(s) + 0.02) for s in plan.sizes)

    where = "the first 8 bytes of the payload" if stamp == "payload" else "metadata `{t: ns}`"
    return Scenario(f"latency-{stamp}", f"one-way latency, stamp in {where}", build, collect, timeout)


# ---------------------------------------------------------------- fan-out 1 → 4
FANOUT_SIZE = 4 * MiB
FANOUT_SINKS = 4


def _fanout_build(plan: Plan, fw: Framework, run_dir: Path) -> dict[str, Any]:
    env = _latency_env(plan, (FANOUT_SIZE,), plan.fanout_count, "payload", FANOUT_SINKS)
    acks = {f"ack{i}": f"sink{i}/ack" for i in range(FANOUT_SINKS)}
    nodes = [_node(fw, run_dir, "sender", "latency_sender.py", acks, ["out"], env)]
    for i in range(FANOUT_SINKS):
        nodes.append(
            _node(fw, run_dir, f"sink{i}", "latency_receiver.py", {"in": "sender/out"}, ["ack"], env)
        )
    return {"nodes": nodes}


def _fanout_collect(plan: Plan, run_dir: Path, outcome: Outcome) -> dict[str, Any]:
    sender = _read(run_dir, "sender", outcome)
    sinks = {f"sink{i}": _read(run_dir, f"sink{i}", outcome) for i in range(FANOUT_SINKS)}
    _check_exit(outcome)
    pooled = [x for s in sinks.values() for x in s["latency_ns"].get(str(FANOUT_SIZE), [])]
    return {
        "sender": sender,
        "latency_ns": {str(FANOUT_SIZE): pooled},
        "per_sink_received": {k: v["received"] for k, v in sinks.items()},
    }


FANOUT = Scenario(
    "fanout",
    "fan-out 1 → 4 at 4 MiB, latency over all receivers",
    _fanout_build,
    _fanout_collect,
    lambda plan: 60 + (plan.fanout_count + plan.warmup) * (4 * _msg_budget(FANOUT_SIZE) + 0.02),
)


# ---------------------------------------------------------------- chain of 3
CHAIN_SIZE = MiB


def _chain_build(plan: Plan, fw: Framework, run_dir: Path) -> dict[str, Any]:
    env = _latency_env(plan, (CHAIN_SIZE,), plan.chain_count, "payload", 1)
    return {
        "nodes": [
            _node(fw, run_dir, "source", "latency_sender.py", {"ack": "sink/ack"}, ["out"], env),
            _node(fw, run_dir, "relay", "relay.py", {"in": "source/out"}, ["out"]),
            _node(fw, run_dir, "sink", "latency_receiver.py", {"in": "relay/out"}, ["ack"], env),
        ]
    }


def _chain_collect(plan: Plan, run_dir: Path, outcome: Outcome) -> dict[str, Any]:
    sender = _read(run_dir, "source", outcome)
    sink = _read(run_dir, "sink", outcome)
    _check_exit(outcome)
    return {"sender": sender, "latency_ns": sink["latency_ns"], "received": sink["received"]}


CHAIN = Scenario(
    "chain",
    "chain source → relay → sink at 1 MiB, end-to-end latency",
    _chain_build,
    _chain_collect,
    lambda plan: 60 + (plan.chain_count + plan.warmup) * (2 * _msg_budget(CHAIN_SIZE) + 0.02),
)


# ---------------------------------------------------------------- zero-copy 40 MiB
ZEROCOPY_SIZE = 40 * MiB


def _zerocopy_build(plan: Plan, fw: Framework, run_dir: Path) -> dict[str, Any]:
    env = {
        **_latency_env(plan, (ZEROCOPY_SIZE,), plan.zerocopy_count, "payload", 1),
        "BENCH_MODE": "zerocopy",
    }
    return {
        "nodes": [
            _node(fw, run_dir, "sender", "latency_sender.py", {"ack": "receiver/ack"}, ["out"], env),
            _node(fw, run_dir, "receiver", "latency_receiver.py", {"in": "sender/out"}, ["ack"], env),
        ]
    }


ZEROCOPY = Scenario(
    "zerocopy",
    "40 MiB zero-copy send (`send_output_raw`, filled in place)",
    _zerocopy_build,
    _latency("payload").collect,
    lambda plan: 60 + (plan.zerocopy_count + plan.warmup) * (_msg_budget(ZEROCOPY_SIZE) + 0.05),
)


# ---------------------------------------------------------------- throughput + daemon CPU
# More than any framework sends in the window here (Doradus: ~150,000 msg/s), so the queue
# never overflows: what is lost is lost by the framework, not by the drop-oldest policy.
THROUGHPUT_QUEUE = 1_000_000


def _throughput_build(plan: Plan, fw: Framework, run_dir: Path) -> dict[str, Any]:
    return {
        "nodes": [
            _node(
                fw,
                run_dir,
                "sender",
                "throughput_sender.py",
                None,
                ["out"],
                {"BENCH_DURATION": plan.throughput_s},
            ),
            _node(
                fw,
                run_dir,
                "receiver",
                "throughput_receiver.py",
                {"in": {"source": "sender/out", "queue_size": THROUGHPUT_QUEUE}},
            ),
        ]
    }


def _throughput_collect(plan: Plan, run_dir: Path, outcome: Outcome) -> dict[str, Any]:
    sender = _read(run_dir, "sender", outcome)
    receiver = _read(run_dir, "receiver", outcome)
    _check_exit(outcome)
    t0, t1 = sender["t_start_ns"], sender["t_end_ns"]
    received = receiver["received"]
    span = (receiver["t_last_ns"] - t0) / 1e9 if received else 0.0
    cpu = cpu_percent(outcome.cpu, t0, t1)
    return {
        "sent": sender["sent"],
        "received": received,
        "lost": sender["sent"] - received,
        "send_window_s": (t1 - t0) / 1e9,
        "delivery_window_s": span,
        "sent_per_s": sender["sent"] / ((t1 - t0) / 1e9),
        "received_per_s": received / span if span > 0 else 0.0,
        "cli_cpu_percent": None if cpu is None else cpu[0],
        "helper_cpu_percent": None if cpu is None else cpu[1],
        "helper_processes": outcome.helpers,
        "cpu_samples": len([s for s in outcome.cpu if t0 <= s[0] <= t1]),
    }


THROUGHPUT = Scenario(
    "throughput",
    "8 B back to back; CPU of the `run` process meanwhile",
    _throughput_build,
    _throughput_collect,
    lambda plan: 90 + 4 * plan.throughput_s,
    sample_cpu=True,
)


# ---------------------------------------------------------------- start-up
def _startup_build(plan: Plan, fw: Framework, run_dir: Path) -> dict[str, Any]:
    return {
        "nodes": [
            _node(fw, run_dir, "sender", "startup_sender.py", None, ["out"]),
            _node(fw, run_dir, "receiver", "startup_receiver.py", {"in": "sender/out"}),
        ]
    }


def _startup_collect(plan: Plan, run_dir: Path, outcome: Outcome) -> dict[str, Any]:
    received = _read(run_dir, "receiver", outcome)["received"]
    _check_exit(outcome)
    if received != 1:
        raise RunFailed(f"the receiver got {received} messages, not 1")
    return {"wall_s": outcome.wall_s}


STARTUP = Scenario(
    "startup",
    "whole-run wall time of a two-node dataflow, one message",
    _startup_build,
    _startup_collect,
    lambda plan: 60,
)

SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (_latency("payload"), _latency("metadata"), THROUGHPUT, FANOUT, CHAIN, ZEROCOPY, STARTUP)
}
