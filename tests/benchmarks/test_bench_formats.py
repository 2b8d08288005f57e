"""`benchmarks/formats.py --quick` measures every format and record and writes well-formed results.

No timing assertions: only the shape (every format x record has every metric, each with its
unit), that the dataflows ran, and that a run into another folder leaves the docs alone.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FORMATS = ("arrow", "capnp", "flatbuffers", "avro")
RECORDS = ("control", "sensor")  # --quick leaves the 1 MiB image out
METRICS = {
    "encode": "µs",
    "decode": "µs",
    "decode_touch": "µs",
    "size": "B",
    "peak_memory": "B",
    "e2e_p50": "µs",
    "e2e_p99": "µs",
}
TEXT_UNIT = {"µs": re.compile(r"^[\d,.]+ (µs|ms)$"), "B": re.compile(r"^[\d,.]+ (B|KiB|MiB)$")}


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_bench_formats_quick(tmp_path: Path) -> None:
    doc_file = REPO / "docs" / "data-formats.md"
    doc_before = doc_file.read_text() if doc_file.exists() else None
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "formats.py"), "--quick", "--out", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    doc = json.loads((tmp_path / "formats.json").read_text())
    assert doc["formats"] == list(FORMATS)
    assert doc["records"] == list(RECORDS)
    assert doc["units"] == METRICS
    meta = doc["meta"]
    assert meta["mode"] == "quick"
    for key in ("date", "cpu", "cores", "python", "versions"):
        assert meta["machine"][key], key
    for package in ("pyarrow", "pycapnp", "flatbuffers", "fastavro"):
        assert meta["machine"]["versions"][package] != "not installed", package

    for fmt in FORMATS:
        assert "failed" not in meta["e2e"][fmt], meta["e2e"][fmt]
        for record in RECORDS:
            row = doc["results"][fmt][record]
            for metric, unit in METRICS.items():
                figure = row[metric]
                where = f"{fmt}/{record}/{metric}: {figure}"
                assert figure["unit"] == unit, where
                value = figure["value"]
                assert isinstance(value, int | float), where
                assert math.isfinite(value), where
                assert value > 0, where
                assert TEXT_UNIT[unit].match(figure["text"]), where
            assert row["e2e_p50"]["value"] <= row["e2e_p99"]["value"]
            assert row["e2e_n"] >= 1

    table = (tmp_path / "formats.md").read_text()
    assert table.startswith("# Data formats benchmark")
    rows = [line for line in table.splitlines() if line.startswith(("| control |", "| sensor |"))]
    assert len(rows) == len(FORMATS) * len(RECORDS)
    for line in rows:
        cells = [c.strip() for c in line.strip("|").split("|")][2:]
        assert len(cells) == len(METRICS)
        assert all(re.search(r"(µs|ms|B|KiB|MiB)$", c) for c in cells), line
    # A run into another folder never rewrites the committed table.
    assert (doc_file.read_text() if doc_file.exists() else None) == doc_before
