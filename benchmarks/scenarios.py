"""The benchmark scenarios: the dataflow each one runs and how its raw figures are read back.

Every scenario builds the same dataflow for every framework; only dora-rs's tuning key
(`shared_memory_pool_size`) differs between the two dora-rs columns. Doradus runs the
tuned file (it accepts and validates the key). The raw IPC anchors run the same nodes'
counterparts in `anchor_nodes/` with the same `env:` (`anchors.py`), for the scenarios that
name them.

A run is complete or it fails: a latency run that lost a sample (a message, an
acknowledgement, a warm-up short) raises `RunFailed` saying what is missing, and so does a
stream whose receiver got fewer messages than were sent when the scenario promises none are
lost, or a run whose process tree's CPU time could not all be counted.
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
    # Whole-tree CPU (issue-sized in both plans: per message figures need the same counts).
    cpu_small_count: int = 50_000  # 8 B back to back
    cpu_large_count: int = 5_000  # 64 KiB paced at cpu_rate_hz
    cpu_rate_hz: float = 1000.0


FULL = Plan()
QUICK = Plan(
    rounds=1,
    sizes=(8, 64 * KiB, 4 * MiB),
    count=50,
    throughput_s=1.0,
    fanout_count=30,
    chain_count=30,
    zerocopy_count=20,  # dora-rs as installed takes ~0.5 s per 40 MiB message (8 MB pool)
    startup_runs=3,
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
    # The framework columns that run it (None: all) and the raw IPC anchors that do.
    frameworks: tuple[str, ...] | None = None
    anchors: tuple[str, ...] = ()

    def runs_on(self, fw: Framework) -> bool:
        if fw.anchor:
            return fw.key in self.anchors
        return self.frameworks is None or fw.key in self.frameworks


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


def _size_name(n: int) -> str:
    for unit, factor in (("MiB", MiB), ("KiB", KiB)):
        if n >= factor:
            return f"{n // factor} {unit}"
    return f"{n} B"


def _check_samples(
    plan_count: int,
    sizes: tuple[int, ...],
    sender: dict[str, Any],
    receivers: dict[str, dict[str, Any]],
) -> None:
    """Every message sent, received and measured: a run that lost a latency sample fails."""
    problems = []
    expected = len(sizes) * (plan_count + int(sender.get("warmup", 0)))
    if sender.get("ack_timeouts"):
        problems.append(f"{sender['ack_timeouts']} acknowledgement(s) never came")
    for name, got in receivers.items():
        if got["received"] != sender["sent"]:
            problems.append(f"{name} received {got['received']} of {sender['sent']} messages")
        for size in sizes:
            n = len(got["latency_ns"].get(str(size), []))
            if n != plan_count:
                problems.append(f"{name}: {n} of {plan_count} latency samples at {_size_name(size)}")
    if sender["sent"] < expected:
        problems.append(f"the sender sent {sender['sent']} of {expected} messages")
    if problems:
        raise RunFailed("incomplete, lost latency samples: " + "; ".join(problems))


def _tree_cpu(outcome: Outcome) -> dict[str, Any]:
    if outcome.tree_cpu is None:
        raise RunFailed("no CPU time for the process tree")
    tree = outcome.tree_cpu.as_dict()
    if not tree["complete"]:
        raise RunFailed(
            f"the process tree's CPU is incomplete: wait4 counted {tree['total_s']:.3f} s, its "
            f"processes were seen using {tree['sampled_lower_bound_s']:.3f} s (a descendant not reaped)"
        )
    return tree


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
        sizes = tuple(int(s) for s in sender["sizes"])
        _check_samples(int(sender["count"]), sizes, sender, {"receiver": receiver})
        return {"sender": sender, "latency_ns": receiver["latency_ns"], "received": receiver["received"]}

    def timeout(plan: Plan) -> float:
        return 60 + sum((plan.count + plan.warmup) * (_msg_budget(s) + 0.02) for s in plan.sizes)

    where = "the first 8 bytes of the payload" if stamp == "payload" else "metadata `{t: ns, seq: n}`"
    anchors = ("iceoryx2", "pyzmq") if stamp == "payload" else ()
    return Scenario(
        f"latency-{stamp}", f"one-way latency, stamp in {where}", build, collect, timeout, anchors=anchors
    )


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
    _check_samples(plan.fanout_count, (FANOUT_SIZE,), sender, sinks)
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
    _check_samples(plan.chain_count, (CHAIN_SIZE,), sender, {"sink": sink})
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
    "40 MiB zero-copy send (`send_output_raw`, filled in place; iceoryx2: a loaned sample)",
    _zerocopy_build,
    _latency("payload").collect,
    lambda plan: 60 + (plan.zerocopy_count + plan.warmup) * (_msg_budget(ZEROCOPY_SIZE) + 0.05),
    anchors=("iceoryx2",),  # pyzmq has no zero-copy path between processes
)


# ---------------------------------------------------------------- streams: throughput, CPU
# More than any framework sends in the window here (Doradus: ~150,000 msg/s), so the queue
# never overflows: what is lost is lost by the framework, not by the drop-oldest policy.
THROUGHPUT_QUEUE = 1_000_000


def _stream_build(
    fw: Framework, run_dir: Path, env: dict[str, Any], queue: dict[str, Any] | None = None
) -> dict[str, Any]:
    """sender → receiver, and `ready` back: the sender starts once the receiver runs."""
    return {
        "nodes": [
            _node(fw, run_dir, "sender", "throughput_sender.py", {"ready": "receiver/ready"}, ["out"], env),
            _node(
                fw,
                run_dir,
                "receiver",
                "throughput_receiver.py",
                {"in": {"source": "sender/out", **(queue or {"queue_size": THROUGHPUT_QUEUE})}},
                ["ready"],
                env,
            ),
        ]
    }


def _throughput_build(
    plan: Plan, fw: Framework, run_dir: Path, queue: dict[str, Any] | None = None
) -> dict[str, Any]:
    return _stream_build(fw, run_dir, {"BENCH_DURATION": plan.throughput_s}, queue)


def _stream_read(run_dir: Path, outcome: Outcome) -> tuple[dict[str, Any], dict[str, Any]]:
    sender = _read(run_dir, "sender", outcome)
    receiver = _read(run_dir, "receiver", outcome)
    _check_exit(outcome)
    if not sender.get("receiver_ready"):
        raise RunFailed("the receiver's `ready` never reached the sender")
    return sender, receiver


def _throughput_collect(plan: Plan, run_dir: Path, outcome: Outcome) -> dict[str, Any]:
    sender, receiver = _stream_read(run_dir, outcome)
    t0, t1 = sender["t_start_ns"], sender["t_end_ns"]
    received = receiver["received"]
    span = (receiver["t_last_ns"] - t0) / 1e9 if received else 0.0
    cpu = cpu_percent(outcome.cpu, t0, t1)
    return {
        "sent": sender["sent"],
        "received": received,
        # Counted from the first send after the receiver said `ready`: no start-up race.
        "lost": sender["sent"] - received,
        "send_window_s": (t1 - t0) / 1e9,
        "delivery_window_s": span,
        "sent_per_s": sender["sent"] / ((t1 - t0) / 1e9),
        "received_per_s": received / span if span > 0 else 0.0,
        "cli_cpu_percent": None if cpu is None else cpu[0],
        "helper_cpu_percent": None if cpu is None else cpu[1],
        "helper_processes": outcome.helpers,
        "cpu_samples": len([s for s in outcome.cpu if t0 <= s[0] <= t1]),
        "tree_cpu": None if outcome.tree_cpu is None else outcome.tree_cpu.as_dict(),
    }


THROUGHPUT = Scenario(
    "throughput",
    "8 B back to back once the receiver is ready; CPU of the `run` process meanwhile",
    _throughput_build,
    _throughput_collect,
    lambda plan: 90 + 4 * plan.throughput_s,
    sample_cpu=True,
    anchors=("iceoryx2", "pyzmq"),
)


# The same into a `queue_policy: backpressure` input: nothing may be lost, the sender is paced by
# the receiver (Doradus: a credit back per message taken; dora-rs 1.1: it queues up to 10 x
# queue_size, 100 at least, then drops the oldest).
BACKPRESSURE_QUEUE = {"queue_size": 100, "queue_policy": "backpressure"}

THROUGHPUT_BACKPRESSURE = Scenario(
    "throughput_backpressure",
    "8 B back to back into a backpressure input (queue_size 100)",
    lambda plan, fw, run_dir: _throughput_build(plan, fw, run_dir, BACKPRESSURE_QUEUE),
    _throughput_collect,
    lambda plan: 90 + 4 * plan.throughput_s,
)


def _cpu(name: str, size: int, count: Callable[[Plan], int], paced: bool) -> Scenario:
    """The whole-tree CPU of one complete `run`: `count` messages of `size`, start-up included."""

    def env(plan: Plan) -> dict[str, Any]:
        rate = plan.cpu_rate_hz if paced else 0
        return {"BENCH_SIZE": size, "BENCH_COUNT": count(plan), "BENCH_RATE_HZ": rate}

    def collect(plan: Plan, run_dir: Path, outcome: Outcome) -> dict[str, Any]:
        sender, receiver = _stream_read(run_dir, outcome)
        n = count(plan)
        if sender["sent"] != n:
            raise RunFailed(f"incomplete: the sender sent {sender['sent']} of {n} messages")
        tree = _tree_cpu(outcome)
        return {
            "messages": n,
            # What the framework lost on the way is shown beside its figure, not hidden: the
            # CPU time is still that of the whole run (dora-rs 1.1 drops some 8 B messages
            # sent back to back even with a queue that never fills).
            "lost": n - receiver["received"],
            "tree_cpu": tree,
            "cpu_s": tree["total_s"],
            "cpu_us_per_message": tree["total_s"] / n * 1e6,
            "wall_s": outcome.wall_s,
            "stream_s": (sender["t_end_ns"] - sender["t_start_ns"]) / 1e9,
        }

    default = Plan()  # both plans use the same counts, so the title can name them
    pace = f"paced at {default.cpu_rate_hz:g} Hz" if paced else "back to back"
    title = f"whole-tree CPU of a `run`: {count(default):,} x {_size_name(size)} {pace}, start-up included"
    return Scenario(
        name,
        title,
        lambda plan, fw, run_dir: _stream_build(fw, run_dir, env(plan)),
        collect,
        lambda plan: 90 + count(plan) * (1 / plan.cpu_rate_hz if paced else 0.002) * 3,
        # Both frameworks tuned alike (`shared_memory_pool_size: 256MB`), as the issue asks.
        frameworks=("doradus", "dora-tuned"),
        anchors=("iceoryx2", "pyzmq"),
    )


CPU_SMALL = _cpu("cpu-8b", 8, lambda plan: plan.cpu_small_count, paced=False)
CPU_LARGE = _cpu("cpu-64k", 64 * KiB, lambda plan: plan.cpu_large_count, paced=True)


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
    for s in (
        *(_latency("payload"), _latency("metadata"), THROUGHPUT, THROUGHPUT_BACKPRESSURE),
        *(CPU_SMALL, CPU_LARGE, FANOUT, CHAIN, ZEROCOPY, STARTUP),
    )
}
