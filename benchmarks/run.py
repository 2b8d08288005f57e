"""Doradus against dora-rs 1.1.0: the same dataflows and node scripts under both CLIs.

Usage: python benchmarks/run.py [--quick] [--rounds N] [--only SCENARIO[,SCENARIO…]] [--keep]
                                [--publish] [--no-dora] [--no-anchors]
       python benchmarks/run.py --render benchmarks/results/latest.json [--publish]

Runs every scenario under `doradus run` and `dora run` (tuned with a 256 MB shared-memory
pool, and as installed), and the raw IPC anchors (iceoryx2, pyzmq) where a scenario has
them, alternating columns run by run over several rounds, then writes
benchmarks/results/full.{md,json} (quick.* with --quick, partial.* with --only).

`--publish` (what `make bench` passes) writes latest.{md,json}, a dated copy and the table
in docs/performance.md instead, and only from a clean work tree at one commit: it refuses
to start on a dirty tree, and refuses to publish if the tree changed while it ran.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import yaml
from frameworks import (
    ANCHORS,
    BENCH,
    DORA,
    DORA_TUNED,
    DORA_VENV,
    DORADUS,
    DORADUS_VENV,
    IPC_VENV,
    Framework,
    dora_available,
    ipc_available,
    package_version,
    run_dataflow,
)
from provenance import describe, git_state, publish_refusal, start_refusal
from report import build_rows, machine_info, markdown, percentile, src_digest, summary_block
from scenarios import FULL, QUICK, SCENARIOS, Plan, RunFailed, Scenario

RESULTS = BENCH / "results"
DOC = BENCH.parent / "docs" / "performance.md"
DOC_START, DOC_END = "<!-- bench:start -->", "<!-- bench:end -->"


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="the reduced suite (results/quick.*)")
    p.add_argument("--rounds", type=int, help="rounds of A B A B (default 3, quick 1)")
    p.add_argument("--only", help=f"comma-separated scenarios: {', '.join(SCENARIOS)}")
    p.add_argument("--no-dora", action="store_true", help="no dora-rs columns")
    p.add_argument("--no-anchors", action="store_true", help="no raw IPC columns (iceoryx2, pyzmq)")
    p.add_argument(
        "--publish",
        action="store_true",
        help="write latest.*, a dated copy and docs/performance.md (a clean tree only)",
    )
    p.add_argument("--keep", action="store_true", help="keep the generated dataflows and logs")
    p.add_argument(
        "--render", metavar="JSON", help="only rewrite the Markdown (and docs) from a results JSON"
    )
    return p.parse_args(argv)


def frameworks_for(
    plan: Plan, no_dora: bool, no_anchors: bool = False
) -> tuple[list[Framework], dict[str, Any]]:
    status: dict[str, Any] = {
        "doradus": {
            "label": DORADUS.label,
            "available": True,
            "version": package_version(DORADUS_VENV, "doradus"),
        }
    }
    ok, why = (False, "--no-dora") if no_dora else dora_available()
    dora_version = package_version(DORA_VENV, "dora-rs") if ok else None
    chosen = [DORADUS]
    for fw in (DORA_TUNED, DORA):
        enabled = ok and (fw is DORA_TUNED or plan.dora_default)
        status[fw.key] = {
            "label": fw.label,
            "available": enabled,
            "version": dora_version,
            "cli": why if ok else None,
            "pool": fw.pool,
            "reason": None if enabled else (why if not ok else "not measured in this plan"),
        }
        if enabled:
            chosen.append(fw)
    ok, why = (False, "--no-anchors") if no_anchors else ipc_available()
    for fw in ANCHORS:
        package = "iceoryx2" if fw.key == "iceoryx2" else "pyzmq"
        status[fw.key] = {
            "label": fw.label,
            "available": ok,
            "version": package_version(IPC_VENV, package) if ok else None,
            "reason": None if ok else why,
            "anchor": True,
        }
        if ok:
            chosen.append(fw)
    return chosen, status


def one_run(
    scenario: Scenario, plan: Plan, fw: Framework, run_dir: Path, stats: dict[str, Any]
) -> dict[str, Any]:
    run_dir.mkdir(parents=True)
    dataflow = run_dir / "dataflow.yml"
    dataflow.write_text(yaml.safe_dump(scenario.build(plan, fw, run_dir), sort_keys=False))
    timeout = scenario.timeout(plan)
    outcome = run_dataflow(fw, dataflow, timeout, scenario.sample_cpu)
    record: dict[str, Any] = {"wall_s": round(outcome.wall_s, 4), "dataflow": str(dataflow)}
    if outcome.tree_cpu is not None:
        record["tree_cpu"] = outcome.tree_cpu.as_dict()
    if outcome.leftovers:
        record["killed_leftovers"] = outcome.leftovers
    try:
        record["raw"] = scenario.collect(plan, run_dir, outcome)
        record["ok"] = True
    except (RunFailed, ValueError, KeyError) as exc:
        record["ok"] = False
        record["error"] = f"timed out after {timeout:.0f} s" if outcome.timed_out else str(exc)
        record["log_tail"] = outcome.log_tail[-1500:]
        stats["failed"] += 1
    return record


def brief(record: dict[str, Any]) -> str:
    if not record["ok"]:
        return f"FAILED: {record['error'][:200]}"
    raw = record["raw"]
    if "latency_ns" in raw:
        parts = []
        for size, xs in raw["latency_ns"].items():
            if xs:
                parts.append(f"{_size(int(size))} p50 {percentile(xs, 50) / 1e3:.0f}µs")
        return ", ".join(parts)
    if "received_per_s" in raw:
        cpu = raw["cli_cpu_percent"]
        cpu_s = "n/a" if cpu is None else f"{cpu:.1f}%"
        return f"{raw['received_per_s']:,.0f} msg/s, lost {raw['lost']}, run-process CPU {cpu_s}"
    if "cpu_us_per_message" in raw:
        return f"tree CPU {raw['cpu_s']:.2f} s, {raw['cpu_us_per_message']:.0f} µs/msg"
    return f"{raw['wall_s']:.3f} s"


def _size(n: int) -> str:
    for unit, factor in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= factor:
            return f"{n // factor} {unit}"
    return f"{n} B"


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.render:
        return render(Path(args.render), args.publish)
    plan = QUICK if args.quick else FULL
    if args.rounds:
        plan = replace(plan, rounds=args.rounds)
    names = list(SCENARIOS) if not args.only else [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        print(f"unknown scenario(s) {unknown}; choose from {', '.join(SCENARIOS)}", file=sys.stderr)
        return 2
    git_start = git_state()
    if args.publish:
        problem = publish_blocker(args, git_start)
        if problem:
            print(f"error: refusing to publish: {problem}", file=sys.stderr)
            return 2
    frameworks, fw_status = frameworks_for(plan, args.no_dora, args.no_anchors)
    for key, st in fw_status.items():
        state = f"v{st['version']}" if st["available"] else f"unavailable: {st['reason']}"
        print(f"· {st['label']} ({key}): {state}")
    print(f"· code: {describe(git_start)}")
    started = datetime.now(UTC)
    digest = src_digest()
    machine = machine_info()
    tmp = Path(tempfile.mkdtemp(prefix="doradus-bench-"))
    print(f"· plan: {'quick' if args.quick else 'full'}, {plan.rounds} round(s); work folder {tmp}")
    stats = {"failed": 0}
    t_start = time.monotonic()
    runs = run_rounds(plan, names, frameworks, tmp, stats)
    finished = datetime.now(UTC)
    summary = summarize(runs, names, frameworks)
    meta = {
        "suite": "quick" if args.quick else "full",
        "subset": bool(args.only),
        "started": started.isoformat(timespec="seconds"),
        "finished": finished.isoformat(timespec="seconds"),
        "duration_s": round(time.monotonic() - t_start, 1),
        "plan": asdict(plan),
        "scenarios": {n: SCENARIOS[n].title for n in names},
        "machine": machine,
        "frameworks": fw_status,
        "command": "python benchmarks/run.py " + " ".join(argv),
        "git": {"start": git_start, "end": git_state()},
        "src_digest": digest,
        "src_changed_during_run": src_digest() != digest,
    }
    if meta["src_changed_during_run"]:
        print("· warning: the Doradus sources (src/) changed while the suite ran; figures mix versions")
    rows = build_rows(summary, plan, names)
    doc = {"meta": meta, "rows": rows, "summary": summary, "runs": runs}
    status = 0
    if args.publish:
        refused = publish_refusal(meta["git"])
        if refused:
            print(
                f"error: not published: {refused}; the figures are in benchmarks/results/full.*",
                file=sys.stderr,
            )
            write_outputs(doc, ["full"])
            status = 3
        else:
            write_outputs(doc, ["latest", started.astimezone().strftime("%Y-%m-%d-%H%M")])
            update_docs(doc)
    else:
        write_outputs(doc, ["quick" if args.quick else "partial" if args.only else "full"])
    if stats["failed"] and not args.keep:
        args.keep = True
        print(f"· {stats['failed']} run(s) failed; keeping {tmp} (dataflow.yml and run.log of each run)")
    if not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)
    return status


def publish_blocker(args: argparse.Namespace, state: dict[str, Any]) -> str | None:
    """Why a `--publish` run must not even start (before anything is measured)."""
    fewer_rounds = args.rounds is not None and args.rounds < FULL.rounds
    subset = args.quick or args.only or fewer_rounds or args.no_dora or args.no_anchors
    return start_refusal(not subset, state)


def run_rounds(
    plan: Plan, names: list[str], frameworks: list[Framework], tmp: Path, stats: dict[str, int]
) -> list[dict[str, Any]]:
    """Every scenario on every column that runs it, round by round, in a rotating order."""
    runs: list[dict[str, Any]] = []
    t_start = time.monotonic()
    for rnd in range(plan.rounds):
        # A B A B: the framework order rotates every round and every scenario.
        for si, name in enumerate(names):
            scenario = SCENARIOS[name]
            mine = [fw for fw in frameworks if scenario.runs_on(fw)]
            shift = (rnd + si) % len(mine)
            order = mine[shift:] + mine[:shift]
            repeats = plan.startup_runs if name == "startup" else 1
            for rep in range(repeats):
                for fw in order:
                    run_dir = tmp / f"r{rnd}" / name / f"{fw.key}-{rep}"
                    t0 = time.monotonic()
                    record = one_run(scenario, plan, fw, run_dir, stats)
                    record.update(round=rnd, scenario=name, framework=fw.key, repeat=rep)
                    runs.append(record)
                    print(
                        f"[round {rnd + 1}/{plan.rounds} {time.monotonic() - t_start:6.0f}s] {name:<16} "
                        f"{fw.key:<10} {time.monotonic() - t0:5.1f}s  {brief(record)}",
                        flush=True,
                    )
    return runs


def summarize(runs: list[dict[str, Any]], names: list[str], frameworks: list[Framework]) -> dict[str, Any]:
    """Pool the rounds: latency samples together, throughput and start-up as medians."""
    out: dict[str, Any] = {}
    for name in names:
        out[name] = {}
        for fw in frameworks:
            if not SCENARIOS[name].runs_on(fw):
                continue
            mine = [r for r in runs if r["scenario"] == name and r["framework"] == fw.key]
            good = [r["raw"] for r in mine if r["ok"]]
            errors = sorted({r["error"] for r in mine if not r["ok"]})
            entry: dict[str, Any] = {"runs": len(mine), "failed": len(mine) - len(good), "errors": errors}
            if good:
                entry["metrics"] = _metrics(name, good)
            out[name][fw.key] = entry
    return out


def _metrics(name: str, good: list[dict[str, Any]]) -> dict[str, Any]:
    if name == "startup":
        walls = [g["wall_s"] for g in good]
        return {
            "median_s": statistics.median(walls),
            "min_s": min(walls),
            "max_s": max(walls),
            "n": len(walls),
        }
    if name.startswith("cpu-"):
        trees = [g["tree_cpu"] for g in good]
        return {
            "cpu_s": statistics.median(g["cpu_s"] for g in good),
            "cpu_us_per_message": statistics.median(g["cpu_us_per_message"] for g in good),
            "user_s": statistics.median(t["user_s"] for t in trees),
            "system_s": statistics.median(t["system_s"] for t in trees),
            "messages": good[0]["messages"],
            "lost": max(g["lost"] for g in good),
            "wall_s": statistics.median(g["wall_s"] for g in good),
            "cpu_s_per_round": [g["cpu_s"] for g in good],
        }
    if name in ("throughput", "throughput_backpressure"):
        med = statistics.median

        def col(key: str) -> list[float]:
            return [g[key] for g in good if g[key] is not None]

        cpu = col("cli_cpu_percent")
        helpers = col("helper_cpu_percent")
        return {
            "received_per_s": med(col("received_per_s")),
            "sent_per_s": med(col("sent_per_s")),
            "lost": max(col("lost")),
            "lost_per_round": col("lost"),
            "cli_cpu_percent": med(cpu) if cpu else None,
            "helper_cpu_percent": med(helpers) if helpers else None,
            "helper_processes": sorted({h for g in good for h in g["helper_processes"]}),
        }
    per_size: dict[str, Any] = {}
    for size in good[0]["latency_ns"]:
        pooled = [x for g in good for x in g["latency_ns"].get(size, [])]
        rounds = [g["latency_ns"].get(size, []) for g in good]
        per_size[size] = {
            "p50_us": percentile(pooled, 50) / 1e3,
            "p99_us": percentile(pooled, 99) / 1e3,
            "n": len(pooled),
            "p50_us_per_round": [percentile(r, 50) / 1e3 for r in rounds if r],
        }
    return per_size


def write_outputs(doc: dict[str, Any], stems: list[str]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    md = markdown(doc)
    for stem in stems:
        (RESULTS / f"{stem}.md").write_text(md)
        (RESULTS / f"{stem}.json").write_text(json.dumps(doc, indent=1) + "\n")
    print()
    print(md)
    print("· wrote " + ", ".join(f"benchmarks/results/{n}.{{md,json}}" for n in stems))


def render(path: Path, publish: bool) -> int:
    """Rewrite `<stem>.md` next to a results JSON; with `publish`, the docs table too, if the
    figures are of a full run on a clean tree whose measured code is still the same."""
    doc = json.loads(path.read_text())
    if publish:
        meta = doc["meta"]
        refused = (
            "not a full run of every scenario"
            if meta.get("suite") != "full" or meta.get("subset")
            else publish_refusal(meta["git"])
            if "git" in meta
            else "the results file records no commit"
        )
        if refused:
            print(f"error: refusing to publish {path}: {refused}", file=sys.stderr)
            return 2
    # The rows are rebuilt from the pooled figures, so the current rules (the faster dora-rs,
    # the IPC floor, the targets) apply to any results file.
    meta = doc["meta"]
    doc["rows"] = build_rows(doc["summary"], SimpleNamespace(**meta["plan"]), list(meta["scenarios"]))
    path.with_suffix(".md").write_text(markdown(doc))
    print(f"· wrote {path.with_suffix('.md')}")
    if publish:
        update_docs(doc)
    return 0


def update_docs(doc: dict[str, Any]) -> None:
    """Replace the table between the markers in docs/performance.md (the prose stays)."""
    text = DOC.read_text() if DOC.exists() else ""
    if DOC_START not in text or DOC_END not in text:
        print(f"· {DOC.relative_to(BENCH.parent)} has no {DOC_START} … {DOC_END} markers; not updated")
        return
    head, rest = text.split(DOC_START, 1)
    _, tail = rest.split(DOC_END, 1)
    DOC.write_text(f"{head}{DOC_START}\n{summary_block(doc)}\n{DOC_END}{tail}")
    print(f"· updated the results table in {DOC.relative_to(BENCH.parent)}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
