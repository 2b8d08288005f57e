"""The table's rows: each figure per column, the ratio to the faster dora-rs and to the IPC floor.

Every target is checked against the *faster* of dora-rs's two configurations measured in the
same run (tuned with `shared_memory_pool_size: 256MB`, or as installed), and each row says
which one that was. The raw IPC anchors (iceoryx2, pyzmq) are the floor: each row with an
anchor figure gives Doradus's ratio to the better anchor too.
"""

from __future__ import annotations

from typing import Any

KiB = 1024
MiB = 1024 * KiB
FW_KEYS = ("doradus", "dora-tuned", "dora", "iceoryx2", "pyzmq")
DORA_KEYS = ("dora-tuned", "dora")
ANCHOR_KEYS = ("iceoryx2", "pyzmq")
DORA_SHORT = {"dora-tuned": "tuned", "dora": "as installed"}
HIGHER_IS_BETTER = {"per_s"}
TIMES = "\u00d7"  # the multiplication sign of ratios

# p50 targets, Doradus ÷ the faster dora-rs, by payload size. Metadata stamps (dora users'
# per-message metadata) carry the targets of issue 17; payload stamps keep the first ones.
P50_TARGET = {
    "payload": {8: 0.25, 4 * KiB: 0.25, 64 * KiB: 0.25, MiB: 0.5, 4 * MiB: 0.8, 40 * MiB: 1.0},
    "metadata": {8: 0.20, 4 * KiB: 0.20, 64 * KiB: 0.20, MiB: 0.35, 4 * MiB: 0.5, 40 * MiB: 0.8},
}
TARGETS = {
    "fanout_p50": 0.8,
    "chain_p50": 0.5,
    "zerocopy_p50": 1.0,
    "throughput": 4.0,
    "cpu-8b": 0.30,
    "cpu-64k": 0.40,
    "startup": 0.7,
}


def fmt_size(n: int) -> str:
    for unit, factor in (("MiB", MiB), ("KiB", KiB)):
        if n >= factor:
            return f"{n // factor} {unit}"
    return f"{n} B"


def _value(summary: dict[str, Any], scenario: str, fw: str, path: tuple[str, ...]) -> tuple[Any, str | None]:
    """(figure, remark): (None, "failed: …") when every run failed, (value, "1 of 3 runs
    failed") when some did, (None, None) when it was not measured."""
    entry = summary.get(scenario, {}).get(fw)
    if entry is None:
        return None, None
    node: Any = entry.get("metrics")
    if node is None:
        return None, "failed: " + "; ".join(entry["errors"])[:160]
    for p in path:
        node = node.get(p) if isinstance(node, dict) else None
    note = f"{entry['failed']} of {entry['runs']} runs failed" if entry["failed"] else None
    lost = entry["metrics"].get("lost") if path != ("lost",) else None
    if lost and path[0].startswith("cpu_"):  # a CPU figure of a run that lost messages
        note = "; ".join(x for x in (note, f"{lost:,.0f} messages lost") if x)
    return (float(node), note) if isinstance(node, int | float) else (None, None)


def _best(values: dict[str, float | None], keys: tuple[str, ...], higher: bool) -> str | None:
    have = {k: v for k in keys if (v := values.get(k)) is not None}
    if not have:
        return None
    best = max(have.values()) if higher else min(have.values())
    return next(k for k, v in have.items() if v == best)


def row(
    summary: dict[str, Any],
    scenario: str,
    metric: str,
    unit: str,
    path: tuple[str, ...],
    target: tuple[str, float] | None = None,
    *,
    anchors_from: str | None = None,
    note: str = "",
    ratios: bool = True,
) -> dict[str, Any]:
    """One table row. `target` is ("max"|"min", ratio to the faster dora-rs) or ("zero", 0).

    `anchors_from` reads the anchor columns from another scenario (the metadata rows show the
    anchors' payload-stamped figures: a raw IPC link has no metadata).
    """
    values: dict[str, float | None] = {}
    remarks: dict[str, str | None] = {}
    measured: dict[str, bool] = {}
    for fw in FW_KEYS:
        where = anchors_from if fw in ANCHOR_KEYS and anchors_from else scenario
        values[fw], remarks[fw] = _value(summary, where, fw, path)
        measured[fw] = fw in summary.get(where, {})
    higher = unit in HIGHER_IS_BETTER
    mine = values["doradus"]

    def ratio(other: float | None) -> float | None:
        if not ratios or mine is None or other is None or other == 0:
            return None
        return mine / other

    faster = _best(values, DORA_KEYS, higher) if ratios else None
    floor = _best(values, ANCHOR_KEYS, higher) if ratios else None
    r_faster = ratio(values[faster]) if faster else None
    passed: bool | None = None
    target_text = "—"
    if target:
        kind, limit = target
        if kind == "max":
            target_text = f"≤ {limit:g}{TIMES}"
            passed = None if r_faster is None else r_faster <= limit
        elif kind == "min":
            target_text = f"≥ {limit:g}{TIMES}"
            passed = None if r_faster is None else r_faster >= limit
        elif kind == "zero":
            target_text = "0"
            passed = None if mine is None else mine == 0
    return {
        "scenario": scenario,
        "metric": metric,
        "unit": unit,
        "values": values,
        "remarks": remarks,
        "measured": measured,
        "faster_dora": faster,
        "ratio_vs_faster_dora": r_faster,
        "ratio_vs_tuned": ratio(values["dora-tuned"]),
        "ratio_vs_default": ratio(values["dora"]),
        "floor": floor,
        "ratio_vs_floor": ratio(values[floor]) if floor else None,
        "target": target_text,
        "pass": passed,
        "note": note,
    }


def _latency_rows(summary: dict[str, Any], plan: Any, names: list[str]) -> list[dict[str, Any]]:
    rows = []
    for stamp in ("payload", "metadata"):
        sc = f"latency-{stamp}"
        if sc not in names:
            continue
        anchors = "latency-payload" if "latency-payload" in names else None
        note = "iceoryx2, pyzmq: their payload-stamped figures (a raw IPC link carries no metadata)"
        for size in plan.sizes:
            s = str(size)
            label = f"latency {fmt_size(size)} (stamp in {stamp})"
            target = ("max", P50_TARGET[stamp].get(size, 1.0))
            first = stamp == "metadata" and size == plan.sizes[0]
            p50 = (s, "p50_us")
            rows.append(
                row(
                    summary,
                    sc,
                    f"{label} p50",
                    "us",
                    p50,
                    target,
                    anchors_from=anchors,
                    note=note if first else "",
                )
            )
            rows.append(
                row(summary, sc, f"{label} p99", "us", (s, "p99_us"), ("max", 1.0), anchors_from=anchors)
            )
    return rows


def _topology_rows(summary: dict[str, Any], names: list[str]) -> list[dict[str, Any]]:
    rows = []
    if "fanout" in names:
        s = str(4 * MiB)
        rows.append(
            row(
                summary,
                "fanout",
                "fan-out 1→4, 4 MiB p50",
                "us",
                (s, "p50_us"),
                ("max", TARGETS["fanout_p50"]),
            )
        )
        rows.append(row(summary, "fanout", "fan-out 1→4, 4 MiB p99", "us", (s, "p99_us"), ("max", 1.0)))
    if "chain" in names:
        s = str(MiB)
        rows.append(
            row(summary, "chain", "chain of 3, 1 MiB p50", "us", (s, "p50_us"), ("max", TARGETS["chain_p50"]))
        )
        rows.append(row(summary, "chain", "chain of 3, 1 MiB p99", "us", (s, "p99_us"), ("max", 1.0)))
    if "zerocopy" in names:
        s = str(40 * MiB)
        note = (
            "like for like: `send_output_raw` under every framework; iceoryx2: a loaned sample "
            "filled in place (pyzmq has no zero-copy path between processes)"
        )
        rows.append(
            row(
                summary,
                "zerocopy",
                "40 MiB zero-copy send p50",
                "us",
                (s, "p50_us"),
                ("max", TARGETS["zerocopy_p50"]),
                note=note,
            )
        )
        rows.append(row(summary, "zerocopy", "40 MiB zero-copy send p99", "us", (s, "p99_us"), ("max", 1.0)))
    return rows


def _stream_rows(summary: dict[str, Any], names: list[str]) -> list[dict[str, Any]]:
    rows = []
    if "throughput" in names:
        tp = "throughput"
        rows.append(
            row(
                summary,
                tp,
                "8 B throughput received",
                "per_s",
                ("received_per_s",),
                ("min", TARGETS["throughput"]),
            )
        )
        rows.append(
            row(
                summary,
                tp,
                "8 B throughput lost (worst round)",
                "count",
                ("lost",),
                ("zero", 0),
                ratios=False,
                note="counted from the first send after the receiver said `ready`: no start-up race",
            )
        )
        rows.append(
            row(
                summary,
                tp,
                "CPU of the `run` process alone while streaming",
                "percent",
                ("cli_cpu_percent",),
                ratios=False,
                note="the supervising process only (Doradus: its daemon, off the data path; dora-rs: "
                "`dora run`, its daemon in-process); the whole-tree rows below count the nodes too",
            )
        )
    if "throughput_backpressure" in names:
        bp = "throughput_backpressure"
        rows.append(
            row(summary, bp, "8 B throughput received, backpressure input", "per_s", ("received_per_s",))
        )
        rows.append(
            row(
                summary,
                bp,
                "8 B backpressure lost (worst round)",
                "count",
                ("lost",),
                ("zero", 0),
                ratios=False,
            )
        )
    cpu_rows = (("cpu-8b", f"50,000 {TIMES} 8 B back to back"), ("cpu-64k", f"5,000 {TIMES} 64 KiB at 1 kHz"))
    for sc, label in cpu_rows:
        if sc not in names:
            continue
        note = (
            "user + system time of the whole `run` (every node a reaped descendant; start-up and idle "
            "included), both frameworks with `shared_memory_pool_size: 256MB`; anchors: their two processes"
        )
        rows.append(
            row(summary, sc, f"whole-tree CPU, {label}", "cpu_s", ("cpu_s",), ("max", TARGETS[sc]), note=note)
        )
        rows.append(row(summary, sc, f"whole-tree CPU per message, {label}", "us", ("cpu_us_per_message",)))
    return rows


def build_rows(summary: dict[str, Any], plan: Any, names: list[str]) -> list[dict[str, Any]]:
    """Every row of the table, in the order of the published page."""
    rows = _latency_rows(summary, plan, names) + _topology_rows(summary, names) + _stream_rows(summary, names)
    if "startup" in names:
        rows.append(
            row(
                summary,
                "startup",
                "start-up: whole-run wall time (median)",
                "s",
                ("median_s",),
                ("max", TARGETS["startup"]),
            )
        )
        rows.append(
            row(
                summary,
                "startup",
                "start-up: fastest run",
                "s",
                ("min_s",),
                note="dora-rs's run time is bimodal (some runs take ~0.5 s longer), hence this row",
            )
        )
    return rows
