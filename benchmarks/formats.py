"""Data formats benchmark: Arrow, Cap'n Proto, FlatBuffers and Avro on three typical records.

For each format and record (a small control message, a 1,000-float sensor reading, a 1 MiB
image) it measures, in this process, through the Doradus codec an output of that format uses:

- encode: build the format's object from the application's data, then `codec.encode`;
- decode: `codec.decode` (what a receiver's `event.value` is);
- decode + touch: decode, then read one field through the reader;
- size: the encoded bytes;
- peak memory of one encode + decode + touch: the Python heap (tracemalloc, which sees numpy
  and `bytes`), plus the peak of Arrow's memory pool, plus the words a Cap'n Proto builder
  holds in C++ (neither of which tracemalloc sees);

and, through a real two-node `doradus run` dataflow per format, the one-way latency from the
sender's `time.monotonic_ns()` before building the value to the receiver having read one field
(`benchmarks/format_nodes/`). That latency is the main suite's method (`benchmarks/run.py`:
the same clock, paced and acknowledged messages, the same pauses, 10 warm-up messages,
nearest-rank percentiles) with one difference on purpose: it includes building and encoding
the value in the sender and decoding it and reading a field in the receiver, which is what
differs between formats. Every format carries the same fields, the sensor's values the same
typed float32 array in each (Arrow `list<float32>`, Cap'n Proto `List(Float32)`, FlatBuffers
`[float]`, Avro `array<float>`).

    .venv/bin/python benchmarks/formats.py --publish  # full: results/formats.{json,md}, docs table
    .venv/bin/python benchmarks/formats.py --quick --out /tmp/x
    .venv/bin/python benchmarks/formats.py --render benchmarks/results/formats.json [--publish]
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import importlib.metadata as md
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
NODES = BENCH / "format_nodes"
RESULTS = BENCH / "results"
DOC = REPO / "docs" / "data-formats.md"
START, END = "<!-- formats-table:start -->", "<!-- formats-table:end -->"
sys.path.insert(0, str(NODES))
sys.path.insert(0, str(BENCH))

import formatlib as fl  # noqa: E402
from provenance import describe, git_state, publish_refusal, start_refusal  # noqa: E402

METRICS = {
    # key: (column title, unit kind)
    "encode": ("encode", "time"),
    "decode": ("decode", "time"),
    "decode_touch": ("decode + read one field", "time"),
    "size": ("encoded size", "bytes"),
    "peak_memory": ("peak memory (encode + decode)", "memory"),
    "e2e_p50": ("one-way p50", "time"),
    "e2e_p99": ("one-way p99", "time"),
}
UNITS = {"time": "µs", "bytes": "B", "memory": "B"}


@dataclass(frozen=True)
class Plan:
    """How much to measure (the full run or `--quick`)."""

    target_s: float = 0.5  # timing budget per measurement, shared by the rounds
    rounds: int = 5
    min_reps: int = 100
    max_reps: int = 20_000
    warmup: int = 20
    memory_reps: int = 5
    e2e_count: int = 500
    e2e_warmup: int = 10
    e2e_timeout_s: float = 120.0


FULL = Plan()
QUICK = Plan(
    target_s=0.02,
    rounds=1,
    min_reps=5,
    max_reps=200,
    warmup=3,
    memory_reps=1,
    e2e_count=20,
    e2e_warmup=3,
    e2e_timeout_s=60.0,
)


# ------------------------------------------------------------------------------ units
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


def fmt_bytes(n: float) -> str:
    return f"{n:,.0f} B"


def fmt_memory(n: float) -> str:
    if n < 1024:
        return f"{n:,.0f} B"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f} KiB"
    return f"{n / 1024 / 1024:.2f} MiB"


FORMATTERS: dict[str, Callable[[float], str]] = {"time": fmt_time, "bytes": fmt_bytes, "memory": fmt_memory}


def cell(metric: str, value: float | None, note: str = "not measured") -> dict[str, Any]:
    """One figure: its value (µs or B), its unit, and the text shown in the table (with the unit)."""
    kind = METRICS[metric][1]
    text = FORMATTERS[kind](value) if value is not None else note
    return {"value": value, "unit": UNITS[kind], "text": text}


# ------------------------------------------------------------------------------ in-process
def time_samples(fn: Callable[[], Any], plan: Plan) -> list[int]:
    """Nanoseconds of single calls for one round's share of the budget (after warm-up; GC off)."""
    for _ in range(plan.warmup):
        fn()
    samples: list[int] = []
    budget = max(1, plan.max_reps // plan.rounds)
    least = max(1, plan.min_reps // plan.rounds)
    gc.collect()
    gc.disable()
    try:
        clock = time.perf_counter_ns
        end = clock() + int(plan.target_s / plan.rounds * 1e9)
        while len(samples) < budget and (len(samples) < least or clock() < end):
            t = clock()
            fn()
            samples.append(clock() - t)
    finally:
        gc.enable()
    return samples


def peak_bytes(fn: Callable[[], Any], plan: Plan) -> float:
    """Median over a few runs of the peak bytes one call allocates (see the module docstring)."""
    fn()
    peaks = []
    for _ in range(plan.memory_reps):
        gc.collect()
        default = pa.default_memory_pool()
        pool = pa.proxy_memory_pool(default)
        pa.set_memory_pool(pool)
        tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            extra = fn()
            _, python_peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
            pa.set_memory_pool(default)
        peaks.append(python_peak + pool.max_memory() + extra)
        del extra
    return float(statistics.median(peaks))


OPS = ("encode", "decode", "decode_touch")


def prepare(fmt: str, record: str) -> dict[str, Callable[[], Any]]:
    """The calls measured for one format and record (raises if its codec is missing or broken)."""
    codec = fl.codec_for(fmt, record)
    build, touch = fl.BUILD[fmt], fl.TOUCH[fmt]
    app = fl.app_data(record)
    encoded = codec.encode(build(record, app, 1))
    buffer = pa.py_buffer(encoded)  # what a receiving node hands the codec
    assert touch(record, codec.decode(buffer)) is not None

    def encode() -> Any:
        return codec.encode(build(record, app, 1))

    def decode() -> Any:
        return codec.decode(buffer)

    def decode_touch() -> Any:
        return touch(record, codec.decode(buffer))

    def round_trip() -> int:
        value = build(record, app, 1)
        data = codec.encode(value)
        touch(record, codec.decode(pa.py_buffer(data)))
        # A Cap'n Proto builder's segments live in C++ memory that tracemalloc does not see.
        return int(value.total_size.word_count) * 8 if fmt == "capnp" else 0

    return {
        "encode": encode,
        "decode": decode,
        "decode_touch": decode_touch,
        "round_trip": round_trip,
        "size": lambda: len(memoryview(encoded).cast("B")),
    }


def measure_in_process(
    formats: list[str], records: list[str], plan: Plan
) -> tuple[dict[str, dict[str, Any]], list[int]]:
    """Every in-process figure; the timings in interleaved rounds so that a burst of load
    from elsewhere on the machine spreads over all the formats instead of hitting one."""
    results: dict[str, dict[str, Any]] = {f: {} for f in formats}
    calls: dict[tuple[str, str], dict[str, Callable[[], Any]]] = {}
    for fmt in formats:
        for record in records:
            try:
                calls[(fmt, record)] = prepare(fmt, record)
            except Exception as exc:  # a codec missing or broken: its rows say so
                reason = f"not measured: {type(exc).__name__}: {str(exc)[:160]}"
                print(f"[formats] {fmt} {record}: {reason}", flush=True)
                results[fmt][record] = {k: cell(k, None, reason) for k in (*OPS, "size", "peak_memory")}
    samples: dict[tuple[str, str, str], list[int]] = {}
    for n in range(plan.rounds):
        print(f"[formats] in process, round {n + 1}/{plan.rounds} …", flush=True)
        for (fmt, record), fns in calls.items():
            for op in OPS:
                samples.setdefault((fmt, record, op), []).extend(time_samples(fns[op], plan))
    reps: list[int] = []
    for (fmt, record), fns in calls.items():
        row: dict[str, Any] = {}
        for op in OPS:
            got = samples[(fmt, record, op)]
            reps.append(len(got))
            row[op] = cell(op, statistics.median(got) / 1000)
        row["size"] = cell("size", float(fns["size"]()))
        row["peak_memory"] = cell("peak_memory", peak_bytes(fns["round_trip"], plan))
        results[fmt][record] = row
    return results, reps


# ------------------------------------------------------------------------------ end to end
def dataflow(fmt: str, records: list[str], plan: Plan, work: Path) -> dict[str, Any]:
    """The two-node dataflow of one format: sender -> receiver, with acknowledgements back."""
    env = {
        "BENCH_FORMAT": fmt,
        "BENCH_RECORDS": ",".join(records),
        "BENCH_COUNT": str(plan.e2e_count),
        "BENCH_WARMUP": str(plan.e2e_warmup),
    }
    sender: dict[str, Any] = {
        "id": "sender",
        "path": str(NODES / "sender.py"),
        "inputs": {"ack": "receiver/ack"},
        "outputs": list(records),
        "env": {**env, "BENCH_OUT": str(work / "sender.json")},
    }
    if fmt != "arrow":
        sender["output_formats"] = {r: {"data_format": fmt, "schema": fl.schema_ref(fmt, r)} for r in records}
    receiver = {
        "id": "receiver",
        "path": str(NODES / "receiver.py"),
        "inputs": {r: f"sender/{r}" for r in records},
        "outputs": ["ack"],
        "env": {**env, "BENCH_OUT": str(work / "receiver.json")},
    }
    return {"nodes": [sender, receiver]}


def percentile(samples: list[int], q: float) -> float:
    """Nearest rank, as the main suite."""
    from report import percentile as nearest_rank

    return nearest_rank(samples, q)


def measure_e2e(fmt: str, records: list[str], plan: Plan, keep: Path) -> dict[str, Any]:
    """One `doradus run` of the format's dataflow: per record p50/p99 one-way latency (µs) or a failure."""
    from frameworks import DORADUS, run_dataflow

    work = Path(tempfile.mkdtemp(prefix=f"formats-{fmt}-"))
    path = work / "dataflow.yml"
    path.write_text(json.dumps(dataflow(fmt, records, plan, work), indent=2))  # JSON is YAML
    outcome = run_dataflow(DORADUS, path, plan.e2e_timeout_s)
    result: dict[str, Any] = {"wall_s": round(outcome.wall_s, 2)}
    problem = None
    received = work / "receiver.json"
    if outcome.timed_out:
        problem = "timed out"
    elif outcome.returncode != 0:
        last = [ln for ln in outcome.log_tail.splitlines() if ln.strip()][-1:] or ["no output"]
        problem = f"exit code {outcome.returncode}: {last[0][:200]}"
    elif not received.exists():
        problem = "the receiver wrote no results"
    if problem is None:
        data = json.loads(received.read_text())
        sent = json.loads((work / "sender.json").read_text())
        result["ack_timeouts"] = sent.get("ack_timeouts", 0)
        result["data_format"] = data.get("data_format", {})
        for record in records:
            lat = data["latency_ns"].get(record, [])
            if not lat:
                result[record] = {"failed": "no messages measured"}
                continue
            result[record] = {
                "n": len(lat),
                "p50_us": percentile(lat, 50) / 1000,
                "p99_us": percentile(lat, 99) / 1000,
            }
        shutil.rmtree(work, ignore_errors=True)
    else:
        kept = keep / f"failed-formats-{fmt}"
        shutil.rmtree(kept, ignore_errors=True)
        shutil.move(str(work), kept)
        result["failed"] = f"{problem} (kept {kept})"
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
    for package in ("doradus", "pyarrow", "pycapnp", "flatbuffers", "fastavro", "numpy"):
        try:
            versions[package] = md.version(package)
        except md.PackageNotFoundError:
            versions[package] = "not installed"
    try:
        flatc = subprocess.run(
            ["flatc", "--version"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        flatc = "not found"
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "versions": versions,
        "flatc": flatc,
    }


# ------------------------------------------------------------------------------ report
def render(doc: dict[str, Any]) -> str:
    """The Markdown table (and the machine line) of a results document."""
    meta = doc["meta"]
    m = meta["machine"]
    v = m["versions"]
    lines = [
        f"Measured {m['date']} on {m['cores']} cores ({m['cpu']}), Linux {m['kernel']}, "
        f"Python {m['python']}; "
        f"pyarrow {v['pyarrow']}, pycapnp {v['pycapnp']}, flatbuffers {v['flatbuffers']} ({m['flatc']}), "
        f"fastavro {v['fastavro']}, numpy {v['numpy']}. "
        f"`{meta['command']}` ({meta['mode']}, {meta['duration_s']:.0f} s"
        + (f", git {describe(meta['git']['start'])}" if "git" in meta else "")
        + "). "
        f"Times are medians of {meta['reps_text']} calls; one-way latency over "
        f"{meta['plan']['e2e_count']} paced messages per row through `doradus run`.",
        "",
    ]
    titles = [METRICS[k][0] for k in METRICS]
    lines.append("| record | format | " + " | ".join(titles) + " |")
    lines.append("|---|---|" + "---:|" * len(titles))
    for record in doc["records"]:
        for fmt in doc["formats"]:
            row = doc["results"][fmt][record]
            cells = [row[k]["text"] for k in METRICS]
            lines.append(f"| {record} | {fmt} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(
        "Records: " + "; ".join(f"**{r}** ({fl.describe(r).split(': ', 1)[1]})" for r in doc["records"]) + "."
    )
    lines.append(
        "The field read: " + ", ".join(f"{r} `{fl.TOUCHED[r]}`" for r in doc["records"]) + ". "
        "Encode includes building the format's object from the application's data; "
        "one-way latency runs from `time.monotonic_ns()` before that build to the receiver having "
        "read the field (the main suite's method, plus the encoding and decoding that differ "
        "between formats)."
    )
    return "\n".join(lines) + "\n"


def write_outputs(doc: dict[str, Any], out: Path, docs: Path | None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "formats.json").write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    table = render(doc)
    (out / "formats.md").write_text("# Data formats benchmark\n\n" + table)
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
        "--quick", action="store_true", help="few repetitions, 20 messages, records control,sensor"
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for formats.json and formats.md")
    parser.add_argument("--records", help=f"comma-separated subset of {','.join(fl.RECORDS)}")
    parser.add_argument("--formats", help=f"comma-separated subset of {','.join(fl.FORMATS)}")
    parser.add_argument("--count", type=int, help="messages per record in the dataflows")
    parser.add_argument("--no-e2e", action="store_true", help="skip the dataflows (in-process figures only)")
    parser.add_argument(
        "--publish",
        action="store_true",
        help=f"put the table into {DOC.relative_to(REPO)} (a full run, clean tree only)",
    )
    parser.add_argument("--docs", type=Path, default=DOC, help="the document --publish writes")
    parser.add_argument(
        "--render",
        type=Path,
        help="only re-render the Markdown (and, with --publish, the docs) from a formats.json",
    )
    args = parser.parse_args(argv)
    docs = args.docs if args.publish else None
    if args.render:
        rendered = json.loads(args.render.read_text())
        meta = rendered["meta"]
        if docs is not None:
            why = None if meta["mode"] == "full" and not meta.get("subset") else "not a full run"
            why = why or (publish_refusal(meta["git"]) if "git" in meta else "the results record no commit")
            if why:
                print(f"error: refusing to publish {args.render}: {why}", file=sys.stderr)
                return 2
        write_outputs(rendered, args.out, docs)
        return 0
    git_start = git_state()
    if args.publish:
        why = start_refusal(not args.quick and not argv_has_subset(args), git_start)
        if why:
            print(f"error: refusing to publish: {why}", file=sys.stderr)
            return 2

    plan = QUICK if args.quick else FULL
    if args.count:
        plan = Plan(**{**asdict(plan), "e2e_count": args.count})
    records = (
        args.records.split(",")
        if args.records
        else (["control", "sensor"] if args.quick else list(fl.RECORDS))
    )
    formats = args.formats.split(",") if args.formats else list(fl.FORMATS)
    for name, chosen, known in (("record", records, fl.RECORDS), ("format", formats, fl.FORMATS)):
        unknown = set(chosen) - set(known)
        if unknown:
            parser.error(f"unknown {name}: {', '.join(sorted(unknown))}")
    start = time.perf_counter()
    results, reps = measure_in_process(formats, records, plan)
    e2e: dict[str, Any] = {}
    for fmt in formats:
        if args.no_e2e:
            reason = "not measured (--no-e2e)"
            outcome: dict[str, Any] = {"failed": reason}
        elif all(results[fmt][r]["encode"]["value"] is None for r in records):
            outcome = {"failed": f"not measured: the {fmt} codec is not available"}
        else:
            print(f"[formats] {fmt:<11} doradus run ({plan.e2e_count} messages per record) …", flush=True)
            outcome = measure_e2e(fmt, records, plan, args.out)
        e2e[fmt] = outcome
        for record in records:
            got = outcome.get(record) if "failed" not in outcome else None
            if got is None or "failed" in got:
                reason = outcome.get("failed") or (got or {}).get("failed", "no result")
                text = reason if reason.startswith("not measured") else f"failed: {reason}"
                results[fmt][record]["e2e_p50"] = cell("e2e_p50", None, text)
                results[fmt][record]["e2e_p99"] = cell("e2e_p99", None, text)
            else:
                results[fmt][record]["e2e_p50"] = cell("e2e_p50", got["p50_us"])
                results[fmt][record]["e2e_p99"] = cell("e2e_p99", got["p99_us"])
                results[fmt][record]["e2e_n"] = got["n"]
    duration = time.perf_counter() - start
    command = (
        "make bench-formats"
        if plan == FULL and not argv_has_subset(args)
        else "benchmarks/formats.py " + " ".join(sys.argv[1:] if argv is None else argv)
    )
    doc = {
        "meta": {
            "machine": machine(),
            "mode": "quick" if args.quick else "full",
            "command": command.strip(),
            "duration_s": round(duration, 1),
            "plan": asdict(plan),
            "reps_text": f"{min(reps):,} to {max(reps):,}" if reps else "0",
            "e2e": e2e,
            "subset": argv_has_subset(args),
            "git": {"start": git_start, "end": git_state()},
        },
        "formats": formats,
        "records": records,
        "units": {k: UNITS[kind] for k, (_, kind) in METRICS.items()},
        "results": results,
    }
    refused = publish_refusal(doc["meta"]["git"]) if docs is not None else None
    if refused:
        print(f"error: not published: {refused}", file=sys.stderr)
        docs = None
    write_outputs(doc, args.out, docs)
    print(render(doc))
    print(f"[formats] done in {duration:.0f} s: {args.out / 'formats.json'}" + (f", {docs}" if docs else ""))
    return 3 if refused else 0


def argv_has_subset(args: argparse.Namespace) -> bool:
    return bool(args.records or args.formats or args.count or args.no_e2e)


if __name__ == "__main__":
    raise SystemExit(main())
