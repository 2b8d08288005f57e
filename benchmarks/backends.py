"""Backends benchmark: one-way latency and 8 B throughput of every backend, through `doradus run`.

For each backend it runs one real two-node dataflow (`benchmarks/backend_nodes/`) with
`communication: {local: NAME}` at the top level, so every edge (data, burst and the
acknowledgements) travels on that backend, with its default options:

- one-way latency, p50 and p99, for 8 B, 64 KiB and 1 MiB payloads, by the method of the
  main suite's "stamp in metadata" rows (`benchmarks/run.py`): the sender stamps
  `time.monotonic_ns()` in the metadata right before `send_output`, the receiver subtracts
  as soon as the event is there; each message is acknowledged and followed by the same
  pause (5 ms up to 64 KiB, 10 ms above), 10 warm-up messages per size are discarded, and
  percentiles are nearest-rank; the nodes use the native API (`from doradus import Node`);
- throughput: 8-byte messages sent back to back for a fixed time on an input with a
  `queue_size` of 1,000,000 (nothing should drop), once the receiver has acknowledged every
  latency message; the figure is messages received per second from the first send to the
  last arrival, as in the main suite, and every message lost on the way (sent but not
  received) or dropped by the queue is reported;
- the run's `out/<run-id>/edges.json` must name the backend on every edge.

    .venv/bin/python benchmarks/backends.py --publish           # full: results/backends.{json,md} + docs
    .venv/bin/python benchmarks/backends.py --quick --out /tmp/x --backends shm,tcp,redis
    .venv/bin/python benchmarks/backends.py --render benchmarks/results/backends.json [--publish]

Publishing (`--publish`, what `make bench-backends` passes) rewrites the table in
docs/backends.md, and only from a full run on a clean git tree (see `provenance.py`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata as md
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))
from provenance import describe, git_state, publish_refusal, start_refusal  # noqa: E402

NODES = BENCH / "backend_nodes"
RESULTS = BENCH / "results"
DOC = REPO / "docs" / "backends.md"
START, END = "<!-- backends-table:start -->", "<!-- backends-table:end -->"

BACKENDS = ("shm", "tcp", "websocket", "redis", "mqtt", "zenoh", "grpc", "quic", "iceoryx2")
SIZE_NAMES = {8: "8 B", 64 * 1024: "64 KiB", 1024 * 1024: "1 MiB"}
BURST_QUEUE = 1_000_000


@dataclass(frozen=True)
class Plan:
    """How much to measure (the full run or `--quick`)."""

    sizes: tuple[int, ...] = (8, 64 * 1024, 1024 * 1024)
    count: int = 200  # measured messages per size
    warmup: int = 10  # discarded messages per size (the pause after each: benchlib.gap_s)
    duration_s: float = 3.0  # back-to-back 8 B messages
    timeout_s: float = 240.0  # one dataflow run


FULL = Plan()
QUICK = Plan(sizes=(8, 64 * 1024), count=30, warmup=5, duration_s=1.0, timeout_s=60.0)


# ------------------------------------------------------------------------------ metrics
def metric_keys(sizes: tuple[int, ...] | list[int]) -> dict[str, tuple[str, str]]:
    """key: (column title, unit) of every figure of one backend, in table order."""
    keys: dict[str, tuple[str, str]] = {}
    for size in sizes:
        name = SIZE_NAMES.get(size, f"{size:,} B")
        keys[f"p50_{size}"] = (f"{name} p50", "µs")
        keys[f"p99_{size}"] = (f"{name} p99", "µs")
    keys["throughput"] = ("8 B throughput", "msg/s")
    keys["dropped"] = ("dropped", "msg")
    return keys


def fmt_time(us: float) -> str:
    if us < 10:
        return f"{us:.2f} µs"
    if us < 100:
        return f"{us:.1f} µs"
    if us < 1000:
        return f"{us:,.0f} µs"
    if us < 10_000:
        return f"{us / 1000:.2f} ms"
    return f"{us / 1000:,.1f} ms"


def fmt_rate(rate: float) -> str:
    if rate >= 1000:
        return f"{round(rate, -2):,.0f} msg/s"
    return f"{rate:,.0f} msg/s"


def fmt_count(n: float) -> str:
    return f"{n:,.0f} msg"


FORMAT = {"µs": fmt_time, "msg/s": fmt_rate, "msg": fmt_count}


def cell(unit: str, value: float | None, note: str = "not measured") -> dict[str, Any]:
    """One figure: its value, its unit, and the text shown in the table (with the unit)."""
    return {"value": value, "unit": unit, "text": FORMAT[unit](value) if value is not None else note}


def percentile(samples: list[int], q: float) -> float:
    """Nearest rank, as the main suite (p99 of 200 samples is the 2nd largest)."""
    from report import percentile as nearest_rank

    return nearest_rank(samples, q)


# ------------------------------------------------------------------------------ one run
def dataflow(backend: str, plan: Plan, work: Path) -> dict[str, Any]:
    """sender -> receiver (data, burst), receiver -> sender (ack); every edge on `backend`."""
    env = {
        "BENCH_SIZES": ",".join(str(s) for s in plan.sizes),
        "BENCH_COUNT": str(plan.count),
        "BENCH_WARMUP": str(plan.warmup),
        "BENCH_DURATION": str(plan.duration_s),
    }
    return {
        "communication": {"local": backend},
        "nodes": [
            {
                "id": "sender",
                "path": str(NODES / "sender.py"),
                "inputs": {"ack": "receiver/ack"},
                "outputs": ["data", "burst"],
                "env": {**env, "BENCH_OUT": str(work / "sender.json")},
            },
            {
                "id": "receiver",
                "path": str(NODES / "receiver.py"),
                "inputs": {
                    "data": "sender/data",
                    "burst": {"source": "sender/burst", "queue_size": BURST_QUEUE},
                },
                "outputs": ["ack"],
                "env": {**env, "BENCH_OUT": str(work / "receiver.json")},
            },
        ],
    }


def check_edges(work: Path, backend: str) -> dict[str, Any]:
    """Whether the run's edges.json names `backend` on every edge."""
    found = sorted(work.glob("out/*/edges.json"))
    if not found:
        return {"passed": False, "detail": "no out/<run-id>/edges.json"}
    edges = json.loads(found[-1].read_text())
    seen = {f"{e['source']} -> {e['target']}": e["backend"] for e in edges}
    wrong = {k: v for k, v in seen.items() if v != backend}
    passed = len(seen) == 3 and not wrong
    detail = f"{len(seen)} edges, all {backend}" if passed else f"expected 3 edges on {backend}, got {seen}"
    return {"passed": passed, "detail": detail, "edges": edges}


def measure(backend: str, plan: Plan, keep: Path) -> dict[str, Any]:
    """One `doradus run` of the backend's dataflow: its figures, or why it failed."""
    from frameworks import DORADUS, run_dataflow

    keys = metric_keys(plan.sizes)
    work = Path(tempfile.mkdtemp(prefix=f"backends-{backend}-"))
    path = work / "dataflow.yml"
    path.write_text(json.dumps(dataflow(backend, plan, work), indent=2))  # JSON is YAML
    outcome = run_dataflow(DORADUS, path, plan.timeout_s)
    result: dict[str, Any] = {"wall_s": round(outcome.wall_s, 2)}
    problem = None
    received, sent_file = work / "receiver.json", work / "sender.json"
    if outcome.timed_out:
        problem = f"timed out after {plan.timeout_s:.0f} s"
    elif outcome.returncode != 0:
        last = [ln for ln in outcome.log_tail.splitlines() if ln.strip()][-1:] or ["no output"]
        problem = f"exit code {outcome.returncode}: {last[0][:200]}"
    elif not received.exists() or not sent_file.exists():
        problem = "a node wrote no results"
    result["edges_check"] = check_edges(work, backend)
    metrics: dict[str, Any] = {}
    if problem is None:
        data = json.loads(received.read_text())
        sent = json.loads(sent_file.read_text())
        result["ack_timeouts"] = sent["ack_timeouts"]
        result["bad_sizes"] = data["bad_sizes"]
        result["n"] = {}
        for size in plan.sizes:
            lat = data["latency_ns"].get(str(size), [])
            result["n"][str(size)] = len(lat)
            if lat:
                metrics[f"p50_{size}"] = cell("µs", percentile(lat, 50) / 1000)
                metrics[f"p99_{size}"] = cell("µs", percentile(lat, 99) / 1000)
            else:
                metrics[f"p50_{size}"] = metrics[f"p99_{size}"] = cell("µs", None, "failed: no messages")
        got, burst_sent = data["burst_received"], sent["burst_sent"]
        # From the first send to the last arrival, as the main suite counts it.
        span = (data["burst_last_ns"] - sent["burst_start_ns"]) / 1e9
        queue_dropped = sum(
            int(e.get("dropped", 0))
            for e in result["edges_check"].get("edges", [])
            if e["target"].endswith("/burst")
        )
        result["burst"] = {
            "sent": burst_sent,
            "received": got,
            "span_s": round(span, 4),
            "send_s": round(sent["burst_send_s"], 4),
            "queue_dropped": queue_dropped,
            "lost": burst_sent - got - queue_dropped,
        }
        rate = got / span if got > 1 and span > 0 else None
        metrics["throughput"] = cell("msg/s", rate, "failed: fewer than 2 messages")
        paced_lost = sent["sent"] - sum(data["received"].values())
        result["paced_lost"] = paced_lost
        metrics["dropped"] = cell("msg", float(burst_sent - got + paced_lost))
        shutil.rmtree(work, ignore_errors=True)
    else:
        kept = keep / f"failed-backends-{backend}"
        shutil.rmtree(kept, ignore_errors=True)
        keep.mkdir(parents=True, exist_ok=True)
        shutil.move(str(work), kept)
        result["failed"] = f"{problem} (kept {kept})"
        for key, (_, unit) in keys.items():
            metrics[key] = cell(unit, None, f"failed: {problem[:80]}")
    result["edges_check"].pop("edges", None)
    result["metrics"] = metrics
    return result


# ------------------------------------------------------------------------------ machine
def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for package in (
        "doradus",
        "pyarrow",
        "redis",
        "paho-mqtt",
        "eclipse-zenoh",
        "grpcio",
        "aioquic",
        "websockets",
    ):
        try:
            versions[package] = md.version(package)
        except md.PackageNotFoundError:
            versions[package] = "not installed"
    try:
        import redis

        versions["redis-server"] = str(redis.Redis(socket_timeout=2).info("server")["redis_version"])
    except Exception:  # the benchmark itself reports an unreachable server
        versions["redis-server"] = "unknown"
    try:
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        load = "unknown"
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "load_at_start": load,
        "versions": versions,
    }


# ------------------------------------------------------------------------------ report
def render(doc: dict[str, Any]) -> str:
    """The Markdown table (and the machine line) of a results document."""
    meta, plan = doc["meta"], doc["meta"]["plan"]
    m, v = meta["machine"], meta["machine"]["versions"]
    keys = metric_keys(plan["sizes"])
    lines = [
        f"Measured {m['date']} on this machine: {m['cores']} cores ({m['cpu']}), Linux {m['kernel']}, "
        f"Python {m['python']}, load average at start {m['load_at_start']}; "
        f"Redis {v['redis-server']} and Mosquitto on 127.0.0.1, default backend options; "
        f"pyarrow {v['pyarrow']}, redis-py {v['redis']}, paho-mqtt {v['paho-mqtt']}, "
        f"eclipse-zenoh {v['eclipse-zenoh']}, grpcio {v['grpcio']}, aioquic {v['aioquic']}, "
        f"websockets {v['websockets']}. "
        f"`{meta['command']}` ({meta['mode']}, {meta['duration_s']:.0f} s). "
        f"Latency: {plan['count']} paced, acknowledged messages per size after {plan['warmup']} warm-up; "
        f"throughput: 8 B messages back to back for {plan['duration_s']:g} s.",
        "",
    ]
    titles = [keys[k][0] for k in keys]
    lines.append("| backend | " + " | ".join(titles) + " | edges.json |")
    lines.append("|---|" + "---:|" * len(titles) + "---|")
    for backend in doc["backends"]:
        row = doc["results"][backend]
        cells = [row["metrics"][k]["text"] for k in keys]
        check = row["edges_check"]
        mark = f"✓ {backend}" if check["passed"] else f"✗ {check['detail'][:60]}"
        lines.append(f"| {backend} | " + " | ".join(cells) + f" | {mark} |")
    lines.append("")
    lines.append(
        "p50/p99: one-way latency, the sender's `time.monotonic_ns()` right before `send_output` "
        "(metadata stamp) to the receiver's `next()` returning, nearest rank: the method of "
        '`make bench`\'s "stamp in metadata" rows. Throughput: messages received per second from '
        "the first send to the last arrival. Dropped: messages sent but never received, paced and "
        "back to back (lost on the way or dropped by the input queue)."
    )
    git = meta.get("git")
    if git:
        lines[0] = lines[0].replace(
            f"`{meta['command']}`", f"`{meta['command']}` at {describe(git['start'])}"
        )
    return "\n".join(lines) + "\n"


def write_outputs(doc: dict[str, Any], out: Path, docs: Path | None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "backends.json").write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    table = render(doc)
    (out / "backends.md").write_text("# Backends benchmark\n\n" + table)
    if docs is not None:
        text = docs.read_text()
        if START not in text or END not in text:
            raise SystemExit(f"{docs} has no {START} … {END} markers")
        head, rest = text.split(START, 1)
        _, tail = rest.split(END, 1)
        docs.write_text(f"{head}{START}\n{table}{END}{tail}")


# ------------------------------------------------------------------------------ main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="30 messages per size, 8 B and 64 KiB, 1 s burst"
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for backends.json and backends.md")
    parser.add_argument("--backends", help=f"comma-separated subset of {','.join(BACKENDS)}")
    parser.add_argument("--count", type=int, help="measured messages per payload size")
    parser.add_argument(
        "--publish",
        action="store_true",
        help=f"put the table into {DOC.relative_to(REPO)} (a full run of every backend, clean tree only)",
    )
    parser.add_argument("--docs", type=Path, default=DOC, help="the document --publish writes")
    parser.add_argument(
        "--render",
        type=Path,
        help="only re-render the Markdown (and, with --publish, the docs) from a backends.json",
    )
    args = parser.parse_args(argv)
    full = not args.quick and not args.backends and not args.count
    docs = args.docs if args.publish else None
    if args.render:
        rendered = json.loads(args.render.read_text())
        meta = rendered["meta"]
        if docs is not None:
            complete = meta["mode"] == "full" and rendered["backends"] == list(BACKENDS)
            why = None if complete else "not a full run of every backend"
            why = why or (publish_refusal(meta["git"]) if "git" in meta else "the results record no commit")
            if why:
                print(f"error: refusing to publish {args.render}: {why}", file=sys.stderr)
                return 2
        write_outputs(rendered, args.out, docs)
        return 0
    git_start = git_state()
    if args.publish:
        why = start_refusal(full, git_start)
        if why:
            print(f"error: refusing to publish: {why}", file=sys.stderr)
            return 2

    plan = QUICK if args.quick else FULL
    if args.count:
        plan = replace(plan, count=args.count)
    backends = args.backends.split(",") if args.backends else list(BACKENDS)
    unknown = set(backends) - set(BACKENDS)
    if unknown:
        parser.error(f"unknown backend: {', '.join(sorted(unknown))}")
    start = time.perf_counter()
    info = machine()
    results: dict[str, Any] = {}
    for backend in backends:
        print(f"[backends] {backend:<9} doradus run …", end=" ", flush=True)
        results[backend] = got = measure(backend, plan, args.out)
        summary = ", ".join(f"{k} {c['text']}" for k, c in got["metrics"].items())
        print(f"{got['wall_s']:.1f} s: {summary}; edges.json {got['edges_check']['detail']}", flush=True)
    duration = time.perf_counter() - start
    command = (
        "make bench-backends"
        if full
        else "benchmarks/backends.py " + " ".join(sys.argv[1:] if argv is None else argv)
    )
    doc = {
        "meta": {
            "machine": info,
            "mode": "quick" if args.quick else "full",
            "command": command.strip(),
            "duration_s": round(duration, 1),
            "plan": asdict(plan),
            "burst_queue_size": BURST_QUEUE,
            "git": {"start": git_start, "end": git_state()},
        },
        "backends": backends,
        "units": {k: unit for k, (_, unit) in metric_keys(plan.sizes).items()},
        "results": results,
    }
    refused = publish_refusal(doc["meta"]["git"]) if docs is not None else None
    if refused:
        print(f"error: not published: {refused}", file=sys.stderr)
    write_outputs(doc, args.out, None if refused else docs)
    print(render(doc))
    print(
        f"[backends] done in {duration:.0f} s: {args.out / 'backends.json'}" + (f", {docs}" if docs else "")
    )
    failed = [b for b in backends if "failed" in results[b] or not results[b]["edges_check"]["passed"]]
    return 3 if refused else 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
