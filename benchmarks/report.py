"""Turns the summarized figures into table rows (ratios, targets) and Markdown."""

from __future__ import annotations

import hashlib
import math
import os
import platform
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from frameworks import REPO

KiB = 1024
MiB = 1024 * KiB
FW_KEYS = ("doradus", "dora-tuned", "dora")
TIMES = "\u00d7"  # the multiplication sign of ratios

# p50 targets, as a ratio of Doradus to tuned dora-rs, by payload size.
P50_TARGET = {8: 0.25, 4 * KiB: 0.25, 64 * KiB: 0.25, MiB: 0.5, 4 * MiB: 0.8, 40 * MiB: 1.0}


def percentile(xs: list[int] | list[float], q: float) -> float:
    """Nearest-rank percentile (p99 of 200 samples is the 2nd largest)."""
    if not xs:
        return math.nan
    s = sorted(xs)
    k = max(0, math.ceil(q / 100 * len(s)) - 1)
    return float(s[k])


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def _git(*args: str) -> str:
    try:
        out = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout.strip()


def src_digest() -> str:
    """A hash of the Doradus sources, to tell whether they changed while the suite ran."""
    h = hashlib.sha256()
    for path in sorted((REPO / "src").rglob("*.py")):
        h.update(str(path.relative_to(REPO)).encode())
        try:
            h.update(path.read_bytes())
        except OSError:
            continue
    return h.hexdigest()[:16]


def machine_info() -> dict[str, Any]:
    cpu = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in _read("/proc/cpuinfo").splitlines()
            if ln.startswith("model name")
        ),
        platform.processor(),
    )
    mem_kb = next(
        (int(ln.split()[1]) for ln in _read("/proc/meminfo").splitlines() if ln.startswith("MemTotal")), 0
    )
    dirty = _git("status", "--porcelain", "--untracked-files=no", "--", "src")
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "kernel": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "python_impl": sys.implementation.name,
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        "git_commit": _git("rev-parse", "--short", "HEAD") or "unknown",
        "src_modified": bool(dirty),
    }


# ---------------------------------------------------------------- formatting
def fmt_size(n: int) -> str:
    for unit, factor in (("MiB", MiB), ("KiB", KiB)):
        if n >= factor:
            return f"{n // factor} {unit}"
    return f"{n} B"


def fmt_us(us: float) -> str:
    if us < 1000:
        return f"{us:.0f} µs"
    if us < 10_000:
        return f"{us / 1000:.2f} ms"
    return f"{us / 1000:.1f} ms"


FORMATS: dict[str, Callable[[float], str]] = {
    "us": fmt_us,
    "per_s": lambda v: f"{v:,.0f} msg/s",
    "count": lambda v: f"{v:.0f}",
    "percent": lambda v: f"{v:.1f} %",
    "s": lambda v: f"{v:.3f} s",
}


# ---------------------------------------------------------------- rows
Getter = Callable[[dict[str, Any], str], tuple[float | None, str | None]]


def _from(scenario: str, *path: str) -> Getter:
    """A figure of one framework and a note: (None, "failed: …") when every run failed,
    (value, "1 of 3 runs failed") when some did, (None, None) when it was not measured.
    """

    def get(summary: dict[str, Any], fw: str) -> tuple[float | None, str | None]:
        entry = summary.get(scenario, {}).get(fw)
        if entry is None:
            return None, None
        node: Any = entry.get("metrics")
        if node is None:
            return None, "failed: " + "; ".join(entry["errors"])[:160]
        for p in path:
            node = node.get(p) if isinstance(node, dict) else None
        note = f"{entry['failed']} of {entry['runs']} runs failed" if entry["failed"] else None
        return (float(node), note) if isinstance(node, int | float) else (None, None)

    return get


def _row(
    summary: dict[str, Any],
    scenario: str,
    metric: str,
    unit: str,
    get: Getter,
    target: tuple[str, float] | None,
    ref: Getter | None = None,
    note: str = "",
    ratios: bool = True,
) -> dict[str, Any]:
    """One table row. `target` is ("max"|"min", ratio vs tuned dora-rs) or ("abs_max"|"zero", value).

    `ref`, if given, reads the dora-rs columns from elsewhere (e.g. its normal 40 MiB send).
    """
    values: dict[str, float | None] = {}
    cells: dict[str, str] = {}
    for fw in FW_KEYS:
        value, remark = (ref if ref and fw != "doradus" else get)(summary, fw)
        values[fw] = value
        if value is not None:
            cells[fw] = FORMATS[unit](value) + (f" ({remark})" if remark else "")
        elif remark:
            cells[fw] = remark
        elif summary.get(scenario, {}).get(fw) is None and fw != "doradus":
            cells[fw] = "n/a"
        else:
            cells[fw] = "—"
    mine = values["doradus"]

    def ratio(other: float | None) -> float | None:
        if not ratios or mine is None or other is None or other == 0:
            return None
        return mine / other

    r_tuned, r_default = ratio(values["dora-tuned"]), ratio(values["dora"])
    passed: bool | None = None
    target_text = "—"
    if target:
        kind, limit = target
        if kind == "max":
            target_text = f"≤ {limit:g}{TIMES}"
            passed = None if r_tuned is None else r_tuned <= limit
        elif kind == "min":
            target_text = f"≥ {limit:g}{TIMES}"
            passed = None if r_tuned is None else r_tuned >= limit
        elif kind == "abs_max":
            target_text = f"< {limit:g} %"
            passed = None if mine is None else mine < limit
        elif kind == "zero":
            target_text = "0"
            passed = None if mine is None else mine == 0
    return {
        "scenario": scenario,
        "metric": metric,
        "unit": unit,
        "values": values,
        "cells": cells,
        "ratio_vs_tuned": r_tuned,
        "ratio_vs_default": r_default,
        "target": target_text,
        "pass": passed,
        "note": note,
    }


def build_rows(summary: dict[str, Any], plan: Any, names: list[str]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for stamp in ("payload", "metadata"):
        sc = f"latency-{stamp}"
        if sc not in names:
            continue
        for size in plan.sizes:
            s = str(size)
            label = f"latency {fmt_size(size)} (stamp in {stamp})"
            p50_target = ("max", P50_TARGET.get(size, 1.0))
            rows.append(_row(summary, sc, f"{label} p50", "us", _from(sc, s, "p50_us"), p50_target))
            rows.append(_row(summary, sc, f"{label} p99", "us", _from(sc, s, "p99_us"), ("max", 1.0)))
    if "fanout" in names:
        s = str(4 * MiB)
        rows.append(
            _row(
                summary, "fanout", "fan-out 1→4, 4 MiB p50", "us", _from("fanout", s, "p50_us"), ("max", 0.8)
            )
        )
        rows.append(
            _row(
                summary, "fanout", "fan-out 1→4, 4 MiB p99", "us", _from("fanout", s, "p99_us"), ("max", 1.0)
            )
        )
    if "chain" in names:
        s = str(MiB)
        rows.append(
            _row(summary, "chain", "chain of 3, 1 MiB p50", "us", _from("chain", s, "p50_us"), ("max", 0.5))
        )
        rows.append(
            _row(summary, "chain", "chain of 3, 1 MiB p99", "us", _from("chain", s, "p99_us"), ("max", 1.0))
        )
    if "zerocopy" in names:
        s = str(40 * MiB)
        zc50, zc99 = _from("zerocopy", s, "p50_us"), _from("zerocopy", s, "p99_us")
        rows.append(
            _row(summary, "zerocopy", "40 MiB zero-copy p50 (both send_output_raw)", "us", zc50, None)
        )
        if "latency-payload" in names and 40 * MiB in plan.sizes:
            normal = _from("latency-payload", s, "p50_us")
            rows.append(
                _row(
                    summary,
                    "zerocopy",
                    "40 MiB zero-copy p50 vs dora-rs normal 40 MiB send",
                    "us",
                    zc50,
                    ("max", 0.1),
                    ref=normal,
                    note="dora-rs columns: its normal 40 MiB send (stamp in payload)",
                )
            )
        rows.append(
            _row(summary, "zerocopy", "40 MiB zero-copy p99 (both send_output_raw)", "us", zc99, ("max", 1.0))
        )
    if "throughput" in names:
        tp = "throughput"
        rows.append(
            _row(summary, tp, "8 B throughput received", "per_s", _from(tp, "received_per_s"), ("min", 2.0))
        )
        rows.append(
            _row(
                summary,
                tp,
                "8 B throughput lost (worst round)",
                "count",
                _from(tp, "lost"),
                ("zero", 0),
                ratios=False,
            )
        )
        rows.append(
            _row(
                summary,
                tp,
                "CPU of the `run` process while streaming",
                "percent",
                _from(tp, "cli_cpu_percent"),
                ("abs_max", 2.0),
                note="Doradus: the `doradus run` daemon; dora-rs: `dora run` (its daemon runs in-process)",
            )
        )
    if "startup" in names:
        rows.append(
            _row(
                summary,
                "startup",
                "start-up: whole-run wall time (median)",
                "s",
                _from("startup", "median_s"),
                ("max", 0.7),
            )
        )
        rows.append(
            _row(
                summary,
                "startup",
                "start-up: fastest run",
                "s",
                _from("startup", "min_s"),
                None,
                note="dora-rs's run time is bimodal (some runs take ~0.5 s longer), hence this row",
            )
        )
    return rows


# ---------------------------------------------------------------- markdown
def _ratio(r: float | None) -> str:
    if r is None:
        return "—"
    return f"{r:.2f}{TIMES}" if r >= 0.1 else f"{r:.2g}{TIMES}"


def _mark(p: bool | None) -> str:
    return "—" if p is None else ("✓" if p else "✗")


def table(doc: dict[str, Any]) -> str:
    fws = doc["meta"]["frameworks"]
    head = [
        "Scenario",
        fws["doradus"]["label"],
        fws["dora-tuned"]["label"],
        "Doradus ÷ tuned",
        fws["dora"]["label"],
        "Doradus ÷ as installed",
        "Target (vs tuned)",
        "✓/✗",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in doc["rows"]:
        c = r["cells"]
        cells = [
            r["metric"],
            c["doradus"],
            c["dora-tuned"],
            _ratio(r["ratio_vs_tuned"]),
            c["dora"],
            _ratio(r["ratio_vs_default"]),
            r["target"],
            _mark(r["pass"]),
        ]
        lines.append("| " + " | ".join(x.replace("|", "\\|").replace("\n", " ") for x in cells) + " |")
    return "\n".join(lines)


def header(doc: dict[str, Any]) -> list[str]:
    """Date, machine, versions and plan, as Markdown list items."""
    meta = doc["meta"]
    m = meta["machine"]
    fws = meta["frameworks"]
    plan = meta["plan"]
    dora = fws["dora-tuned"]
    dora_v = (
        f"dora-rs {dora['version']} (`dora run`, CLI: {dora['cli']})"
        if dora["available"]
        else f"dora-rs unavailable: {dora['reason']}"
    )
    passed = [r["pass"] for r in doc["rows"] if r["pass"] is not None]
    failed_runs = [r for r in doc["runs"] if not r["ok"]]
    return [
        f"- **Date**: {meta['started']} → {meta['finished']} ({meta['duration_s']:.0f} s)",
        f"- **Machine**: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB RAM, {m['kernel']}, "
        f"Python {m['python']} (load average at start {', '.join(map(str, m['loadavg_at_start']))})",
        f"- **Versions**: Doradus {fws['doradus']['version']} (git {m['git_commit']}"
        f"{', src/ modified' if m['src_modified'] else ''}"
        f"{'; **src/ changed while the suite ran**' if meta.get('src_changed_during_run') else ''}); "
        f"{dora_v}",
        f"- **Plan**: {plan['rounds']} round(s), frameworks alternating run by run; "
        f"latency: {plan['count']} messages per size after {plan['warmup']} warm-up; "
        f"throughput {plan['throughput_s']:g} s; start-up {plan['startup_runs']} runs per round",
        f"- **Targets met**: {sum(passed)} of {len(passed)}"
        + (f"; **{len(failed_runs)} run(s) failed**" if failed_runs else ""),
    ]


LEGEND = (
    "Lower is better for latency, CPU and start-up; higher for throughput. Ratios are "
    "Doradus ÷ dora-rs; targets are checked against dora-rs with "
    "`shared_memory_pool_size: 256MB` (the CPU target and loss are absolute). "
    "Fan-out and chain rows use the p50 target of their payload size."
)


def row_notes(doc: dict[str, Any]) -> list[str]:
    notes = [f"- *{r['metric']}*: {r['note']}" for r in doc["rows"] if r["note"]]
    return ["", *notes] if notes else []


def summary_block(doc: dict[str, Any]) -> str:
    """The header and the table, for docs/performance.md."""
    return "\n".join([*header(doc), "", table(doc), "", LEGEND, *row_notes(doc)])


def markdown(doc: dict[str, Any]) -> str:
    meta = doc["meta"]
    fws = meta["frameworks"]
    failed_runs = [r for r in doc["runs"] if not r["ok"]]
    out = [f"# Doradus vs dora-rs: {meta['suite']} benchmark", "", *header(doc), "", table(doc), "", LEGEND]
    out += row_notes(doc)
    tp = doc["summary"].get("throughput", {})
    helpers = {k: v.get("metrics", {}).get("helper_processes") for k, v in tp.items() if v.get("metrics")}
    if any(helpers.values()):
        out.append(f"- other non-node processes seen under the `run` process: {helpers}")
    out += [
        "",
        "## Method",
        "",
        "The same generated dataflow YAML and the same node scripts (`benchmarks/nodes/`, written "
        "against dora-rs's Python API) run under `doradus run` and under `dora run` from "
        "`benchmarks/.venv-dora`. One-way latency: the sender writes `time.monotonic_ns()` into "
        "its preallocated payload (a `UInt8Array` over a numpy buffer, one per size) or into the "
        "metadata, the receiver subtracts on arrival; the sender waits for the receiver's "
        "acknowledgement and then pauses (5 ms up to 64 KiB, 10 ms up to 4 MiB, 20 ms above), so "
        "nothing queues. Latency percentiles pool the samples of every round. Throughput: 8 B "
        "messages back to back, receiver `queue_size: 1000000` (never full); messages/s received is counted "
        "from the sender's first send to the last arrival (median of rounds). CPU: user+system "
        "time of the `run` process itself (not its children), sampled every 50 ms over the "
        "sender's streaming window. Start-up: wall time of the whole CLI run, median.",
    ]
    if failed_runs:
        out += ["", "## Failed runs", ""]
        for r in failed_runs:
            cli = ".venv/bin/doradus" if r["framework"] == "doradus" else "benchmarks/.venv-dora/bin/dora"
            label = fws[r["framework"]]["label"]
            again = f".venv/bin/python benchmarks/run.py --only {r['scenario']} --rounds 1 --keep"
            out.append(
                f"- round {r['round'] + 1}, `{r['scenario']}`, {label}: {r['error']}  \n"
                f"  reproduce: `{again}`, or `{cli} run {r['dataflow']}` while the work folder is kept"
            )
    return "\n".join(out) + "\n"
