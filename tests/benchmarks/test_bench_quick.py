"""`make bench-quick` runs end to end and writes well-formed results (no timing assertions).

Every column must be there: Doradus, dora-rs (tuned and as installed) and the two raw IPC
anchors (iceoryx2, pyzmq); a side that could not be installed or measured fails the test
rather than leaving a quieter table.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "benchmarks" / "results"
LATENCY = ("latency-payload", "latency-metadata", "fanout", "chain", "zerocopy")
CPU = ("cpu-8b", "cpu-64k")
SCENARIOS = (*LATENCY, "throughput", *CPU, "startup")
DORA = ("dora-tuned", "dora")
ANCHORS = ("iceoryx2", "pyzmq")
# The columns each scenario must have figures for.
COLUMNS = {
    **dict.fromkeys(("latency-metadata", "fanout", "chain", "startup"), ("doradus", *DORA)),
    "latency-payload": ("doradus", *DORA, *ANCHORS),
    "zerocopy": ("doradus", *DORA, "iceoryx2"),
    "throughput": ("doradus", *DORA, *ANCHORS),
    **dict.fromkeys(CPU, ("doradus", "dora-tuned", *ANCHORS)),
}


def _positive(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value > 0


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_bench_quick_writes_results() -> None:
    for name in ("quick.json", "quick.md"):
        (RESULTS / name).unlink(missing_ok=True)
    # Creates benchmarks/.venv-dora on first use (idempotent), then runs the quick suite.
    done = subprocess.run(
        ["make", "--no-print-directory", "bench-quick"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=580,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    doc = json.loads((RESULTS / "quick.json").read_text())
    assert (RESULTS / "quick.md").read_text().startswith("# Doradus vs dora-rs")
    meta = doc["meta"]
    assert meta["suite"] == "quick"
    for key in ("cpu", "cores", "memory_gib", "kernel", "python"):
        assert meta["machine"][key]
    frameworks = meta["frameworks"]
    assert frameworks["doradus"]["available"]
    # The point of the suite is the side-by-side: a missing dora-rs side is a failure, not a
    # quieter Doradus-only run (`make bench-dora-venv` installs it from requirements/dora-bench.txt).
    assert (REPO / "benchmarks" / ".venv-dora" / ".installed").exists(), (
        "dora-rs was not installed for the benchmark (make bench-dora-venv failed):\n" + done.stderr[-2000:]
    )
    for key in DORA:
        assert frameworks[key]["available"], frameworks[key]
        assert frameworks[key]["version"] == "1.1.0"
    assert (REPO / "benchmarks" / ".venv-ipc" / ".installed").exists(), (
        "the raw IPC anchors were not installed (make bench-ipc-venv failed):\n" + done.stderr[-2000:]
    )
    assert frameworks["iceoryx2"]["version"] == "0.10.0", frameworks["iceoryx2"]
    assert frameworks["pyzmq"]["available"], frameworks["pyzmq"]
    # Every results file says which code it measured.
    git = meta["git"]
    assert len(git["start"]["commit"]) == 40
    assert isinstance(git["start"]["clean"], bool)

    summary = doc["summary"]
    assert set(SCENARIOS) <= set(summary)
    for scenario in SCENARIOS:
        assert set(summary[scenario]) == set(COLUMNS[scenario]), scenario
        for fw in COLUMNS[scenario]:
            entry = summary[scenario][fw]
            assert entry["runs"] > 0
            metrics = entry.get("metrics")
            assert metrics, f"{scenario}/{fw} has no figures: {entry['errors']}"
            if scenario in LATENCY:
                for size, figures in metrics.items():
                    assert int(size) > 0
                    assert figures["n"] > 0
                    assert _positive(figures["p50_us"]), figures
                    assert _positive(figures["p99_us"]), figures
                    assert figures["p99_us"] >= figures["p50_us"]
            elif scenario == "throughput":
                assert _positive(metrics["received_per_s"])
                assert _positive(metrics["sent_per_s"])
                assert isinstance(metrics["lost"], int | float)
                assert metrics["lost"] >= 0
                assert metrics["cli_cpu_percent"] is None or metrics["cli_cpu_percent"] >= 0
            elif scenario in CPU:
                assert _positive(metrics["cpu_s"])
                assert _positive(metrics["cpu_us_per_message"])
                assert metrics["user_s"] + metrics["system_s"] == pytest.approx(metrics["cpu_s"], abs=1e-3)
                assert metrics["messages"] == (50_000 if scenario == "cpu-8b" else 5_000)
            else:
                assert _positive(metrics["median_s"])

    assert doc["rows"]
    keys = {
        "metric",
        "values",
        "faster_dora",
        "ratio_vs_faster_dora",
        "floor",
        "ratio_vs_floor",
        "target",
        "pass",
    }
    for row in doc["rows"]:
        assert keys <= set(row)
        if row["unit"] != "percent":  # the CPU figure needs enough samples; the rest must be there
            assert row["values"]["doradus"] is not None, row
        if row["ratio_vs_faster_dora"] is not None:  # against the faster of the two configurations
            measured = [row["values"][k] for k in DORA if row["values"][k] is not None]
            best = max(measured) if row["unit"] == "per_s" else min(measured)
            assert row["values"][row["faster_dora"]] == best
    md = (RESULTS / "quick.md").read_text()
    for label in (
        "dora-rs (as installed)",
        "iceoryx2",
        "pyzmq",
        "Doradus ÷ faster dora-rs",
        "whole-tree CPU",
    ):
        assert label in md
    assert all("raw" in run for run in doc["runs"] if run["ok"])
