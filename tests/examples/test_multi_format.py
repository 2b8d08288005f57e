"""examples/multi-format: Cap'n Proto → Avro (read with a newer schema) → Arrow, every row checked."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

from tests.conftest import Ran
from tests.examples.conftest import full_size

AMPLITUDE = {"press-1": 1.0, "lathe-2": 2.0, "mill-3": 4.0}


def expected_row(seq: int) -> dict[str, object]:
    machine = list(AMPLITUDE)[seq % 3]
    amplitude = AMPLITUDE[machine] * (1 + seq % 10 / 10)
    samples = [amplitude * ((seq + k) % 7 - 3) / 3 for k in range(64)]
    return {
        "machine": machine,
        "seq": seq,
        "rms": math.sqrt(sum(s * s for s in samples) / 64),
        "peak": max(abs(s) for s in samples),
        "unit": "g",  # not in what the analyzer wrote: the tabler's v2 reader schema's default
    }


def test_three_formats_carry_every_burst(run_example: Callable[..., Ran], tmp_path: Path) -> None:
    bursts = 10_000 if full_size() else 250  # 250: two full windows of 100 and a partial one
    result_file = tmp_path / "rows.json"
    ran = run_example("multi-format", "--env", f"BURSTS={bursts}", "--env", f"RESULT={result_file}")
    assert ran.returncode == 0, ran.output
    rows = json.loads(result_file.read_text())
    assert len(rows) == bursts
    for row, seq in zip(rows, range(bursts), strict=True):
        want = expected_row(seq)
        assert {k: row[k] for k in ("machine", "seq", "unit")} == {
            k: want[k] for k in ("machine", "seq", "unit")
        }
        assert math.isclose(row["rms"], want["rms"]), (row, want)
        assert row["peak"] == want["peak"], (row, want)
    summary = ran.lines_of("sink")
    assert [line.split(":")[0] for line in summary] == ["lathe-2", "mill-3", "press-1"]
    print("\nmulti-format: " + "; ".join(summary))
