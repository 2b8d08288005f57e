"""examples/large-pipeline: fan-out to four workers, fan-in to a reducer, exact totals."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from tests.conftest import Ran
from tests.examples.conftest import full_size


def test_every_point_is_counted_once(run_example: Callable[..., Ran], tmp_path: Path) -> None:
    points, batch = (200_000_000, 100_000) if full_size() else (1_000_003, 10_000)  # a short last batch
    result_file = tmp_path / "result.json"
    ran = run_example(
        "large-pipeline",
        *("--env", f"POINTS={points}", "--env", f"BATCH={batch}", "--env", f"RESULT={result_file}"),
        timeout=600 if full_size() else 90,
    )
    assert ran.returncode == 0, ran.output
    batches = -(-points // batch)
    result = json.loads(result_file.read_text())
    assert result["batches"] == batches
    assert result["count"] == points
    assert result["sum"] == points * (points - 1) // 2
    assert (result["min"], result["max"]) == (0, points - 1)
    # Round-robin windows with credits: every worker took part, none was starved.
    assert sorted(result["per_worker"]) == ["p0", "p1", "p2", "p3"]
    assert sum(result["per_worker"].values()) == batches
    assert "dropped" not in ran.output, ran.output
    (summary,) = ran.lines_of("source")
    print(f"\nlarge-pipeline: {summary}")
