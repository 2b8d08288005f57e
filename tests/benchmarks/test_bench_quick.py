"""`make bench-quick` runs end to end and writes well-formed results (no timing assertions)."""

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
SCENARIOS = (*LATENCY, "throughput", "startup")


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
    assert frameworks["dora-tuned"]["available"], frameworks["dora-tuned"]
    assert frameworks["dora-tuned"]["version"] == "1.1.0"
    measured = ["doradus", "dora-tuned"]

    summary = doc["summary"]
    assert set(SCENARIOS) <= set(summary)
    for scenario in SCENARIOS:
        for fw in measured:
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
            else:
                assert _positive(metrics["median_s"])

    assert doc["rows"]
    for row in doc["rows"]:
        assert {"metric", "cells", "values", "ratio_vs_tuned", "target", "pass"} <= set(row)
        if row["unit"] != "percent":  # the CPU figure needs enough samples; the rest must be there
            assert row["values"]["doradus"] is not None, row
    assert all("raw" in run for run in doc["runs"] if run["ok"])
