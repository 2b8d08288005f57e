"""Turns the summarized figures and their rows (`rows.py`) into Markdown; machine facts."""

from __future__ import annotations

import hashlib
import math
import os
import platform
import sys
from collections.abc import Callable
from typing import Any

from frameworks import REPO
from provenance import describe
from rows import DORA_SHORT, FW_KEYS, build_rows

__all__ = ["build_rows", "machine_info", "markdown", "percentile", "src_digest", "summary_block"]
TIMES = "\u00d7"  # the multiplication sign of ratios


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
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "kernel": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "python_impl": sys.implementation.name,
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
    }


# ---------------------------------------------------------------- formatting
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
    "cpu_s": lambda v: f"{v:.2f} s",
}


# ---------------------------------------------------------------- markdown
def _ratio(r: float | None) -> str:
    if r is None:
        return "—"
    return f"{r:.2f}{TIMES}" if r >= 0.1 else f"{r:.2g}{TIMES}"


def _mark(p: bool | None) -> str:
    return "—" if p is None else ("✓" if p else "✗")


def _cell(r: dict[str, Any], fw: str) -> str:
    value, remark = r["values"][fw], r.get("remarks", {}).get(fw)
    if value is not None:
        return FORMATS[r["unit"]](value) + (f" ({remark})" if remark else "")
    if remark:
        return remark
    return "—" if r.get("measured", {}).get(fw, fw == "doradus") else "not run"


def table(doc: dict[str, Any]) -> str:
    fws = doc["meta"]["frameworks"]
    label = {k: fws[k]["label"] if k in fws else k for k in FW_KEYS}
    head = [
        "Scenario",
        label["doradus"],
        label["dora-tuned"],
        label["dora"],
        "Doradus ÷ faster dora-rs",
        label["iceoryx2"],
        label["pyzmq"],
        "Doradus ÷ IPC floor",
        "Target (vs faster dora-rs)",
        "✓/✗",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in doc["rows"]:
        faster = r.get("faster_dora")
        vs_dora = _ratio(r.get("ratio_vs_faster_dora")) + (f" ({DORA_SHORT[faster]})" if faster else "")
        floor = r.get("floor")
        vs_floor = _ratio(r.get("ratio_vs_floor")) + (f" ({floor})" if floor else "")
        cells = [
            r["metric"],
            _cell(r, "doradus"),
            _cell(r, "dora-tuned"),
            _cell(r, "dora"),
            vs_dora,
            _cell(r, "iceoryx2"),
            _cell(r, "pyzmq"),
            vs_floor,
            r["target"],
            _mark(r["pass"]),
        ]
        lines.append("| " + " | ".join(x.replace("|", "\\|").replace("\n", " ") for x in cells) + " |")
    return "\n".join(lines)


def _versions(fws: dict[str, Any], git: dict[str, Any] | None, meta: dict[str, Any]) -> str:
    dora = fws["dora-tuned"]
    dora_v = (
        f"dora-rs {dora['version']} (`dora run`, CLI: {dora['cli']})"
        if dora["available"]
        else f"dora-rs unavailable: {dora['reason']}"
    )
    anchors = [fws[k] for k in ("iceoryx2", "pyzmq") if k in fws]
    anchor_v = "; ".join(
        f"{a['label']} {a['version']}" if a["available"] else f"{a['label']} unavailable: {a['reason']}"
        for a in anchors
    )
    if git:
        code = describe(git["start"])
        if git["end"].get("commit") != git["start"].get("commit") or git["end"].get("clean") != git[
            "start"
        ].get("clean"):
            code += f"; at the end: {describe(git['end'])}"
    else:
        code = "commit not recorded"
    changed = "; **src/ changed while the suite ran**" if meta.get("src_changed_during_run") else ""
    anchor_v = anchor_v or "no IPC anchors measured"
    return f"Doradus {fws['doradus']['version']} (git {code}{changed}); {dora_v}; {anchor_v}"


def header(doc: dict[str, Any]) -> list[str]:
    """Date, machine, versions, commit and plan, as Markdown list items."""
    meta = doc["meta"]
    m = meta["machine"]
    plan = meta["plan"]
    passed = [r["pass"] for r in doc["rows"] if r["pass"] is not None]
    failed_runs = [r for r in doc["runs"] if not r["ok"]]
    return [
        f"- **Date**: {meta['started']} → {meta['finished']} ({meta['duration_s']:.0f} s)",
        f"- **Machine**: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB RAM, {m['kernel']}, "
        f"Python {m['python']} (load average at start {', '.join(map(str, m['loadavg_at_start']))})",
        f"- **Versions**: {_versions(meta['frameworks'], meta.get('git'), meta)}",
        f"- **Plan**: {plan['rounds']} round(s), columns alternating run by run; "
        f"latency: {plan['count']} messages per size after {plan['warmup']} warm-up; "
        f"throughput {plan['throughput_s']:g} s; start-up {plan['startup_runs']} runs per round",
        f"- **Targets met**: {sum(passed)} of {len(passed)}"
        + (f"; **{len(failed_runs)} run(s) failed**" if failed_runs else ""),
    ]


LEGEND = (
    "Lower is better for latency, CPU and start-up; higher for throughput. Every target is "
    "checked against the *faster* of dora-rs's two configurations in the same run (tuned with "
    "`shared_memory_pool_size: 256MB`, or as installed), named beside the ratio; loss is "
    "absolute. The IPC floor is the better of two raw links between two Python processes "
    "(iceoryx2 shared memory, pyzmq over `ipc://`) measured by the same sender and receiver "
    'method; "not run" marks a scenario a column does not have.'
)


def row_notes(doc: dict[str, Any]) -> list[str]:
    notes = [f"- *{r['metric']}*: {r['note']}" for r in doc["rows"] if r["note"]]
    return ["", *notes] if notes else []


def summary_block(doc: dict[str, Any]) -> str:
    """The header and the table, for docs/performance.md."""
    return "\n".join([*header(doc), "", table(doc), "", LEGEND, *row_notes(doc)])


METHOD = (
    "The same generated dataflow YAML and the same node scripts (`benchmarks/nodes/`, written "
    "against dora-rs's Python API) run under `doradus run` and under `dora run` from "
    "`benchmarks/.venv-dora`; the anchors run their counterparts (`benchmarks/anchor_nodes/`) "
    "with the same settings as two plain processes from `benchmarks/.venv-ipc`. One-way "
    "latency: the sender writes `time.monotonic_ns()` into its preallocated payload or into the "
    "metadata right before the send, the receiver subtracts on arrival; the sender waits for the "
    "receiver's acknowledgement and then pauses (5 ms up to 64 KiB, 10 ms up to 4 MiB, 20 ms "
    "above), so nothing queues. A run that lost a latency sample fails and says which. "
    "Percentiles pool the samples of every round (nearest rank). Throughput: 8 B messages back "
    "to back once the receiver has said `ready`, receiver `queue_size: 1000000`; messages/s "
    "received from the first send to the last arrival (median of rounds). Whole-tree CPU: user + "
    "system time of the whole `run` from `os.wait4`, which counts every descendant the run "
    "reaped (nodes, daemon, start-up and idle time); a run whose descendants were seen using "
    "more CPU than `wait4` counted fails. Start-up: wall time of the whole CLI run, median."
)


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
    out += ["", "## Method", "", METHOD]
    if failed_runs:
        out += ["", "## Failed runs", ""]
        for r in failed_runs:
            cli = {"doradus": ".venv/bin/doradus", "iceoryx2": "", "pyzmq": ""}.get(
                r["framework"], "benchmarks/.venv-dora/bin/dora"
            )
            label = fws[r["framework"]]["label"]
            again = f".venv/bin/python benchmarks/run.py --only {r['scenario']} --rounds 1 --keep"
            where = f", or `{cli} run {r['dataflow']}` while the work folder is kept" if cli else ""
            out.append(
                f"- round {r['round'] + 1}, `{r['scenario']}`, {label}: {r['error']}  \n"
                f"  reproduce: `{again}`{where}"
            )
    return "\n".join(out) + "\n"
