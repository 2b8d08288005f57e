"""`benchmarks/backends.py --quick` measures shm, tcp and redis and writes well-formed results.

No timing assertions: only the shape (every backend has every metric, each with its unit),
that each run's edges.json named the backend, and that a run into another folder leaves the
docs alone.
"""

from __future__ import annotations

import json
import math
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BACKENDS = ("shm", "tcp", "redis")
SIZES = (8, 65536)  # --quick leaves 1 MiB out
METRICS = {
    **{f"p{q}_{size}": "µs" for size in SIZES for q in (50, 99)},
    "throughput": "msg/s",
    "dropped": "msg",
}
TEXT_UNIT = {
    "µs": re.compile(r"^[\d,.]+ (µs|ms)$"),
    "msg/s": re.compile(r"^[\d,]+ msg/s$"),
    "msg": re.compile(r"^[\d,]+ msg$"),
}


def _redis_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1):
            return True
    except OSError:
        return False


@pytest.mark.slow
@pytest.mark.timeout(90)
@pytest.mark.skipif(not _redis_up(), reason="needs a Redis server at 127.0.0.1:6379")
def test_bench_backends_quick(tmp_path: Path) -> None:
    doc_file = REPO / "docs" / "backends.md"
    doc_before = doc_file.read_text() if doc_file.exists() else None
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "backends.py"),
            "--quick",
            "--out",
            str(tmp_path),
            "--backends",
            ",".join(BACKENDS),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=80,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    doc = json.loads((tmp_path / "backends.json").read_text())
    assert doc["backends"] == list(BACKENDS)
    assert doc["meta"]["mode"] == "quick"
    assert doc["units"] == METRICS
    for backend in BACKENDS:
        row = doc["results"][backend]
        assert "failed" not in row, row.get("failed")
        assert row["edges_check"]["passed"], row["edges_check"]
        assert row["edges_check"]["detail"] == f"3 edges, all {backend}"
        assert set(row["metrics"]) == set(METRICS)
        for key, unit in METRICS.items():
            figure = row["metrics"][key]
            assert figure["unit"] == unit, (backend, key)
            value = figure["value"]
            assert isinstance(value, int | float), (backend, key)
            assert math.isfinite(value), (backend, key)
            assert value >= 0, (backend, key)
            if unit != "msg":
                assert value > 0, (backend, key)
            assert TEXT_UNIT[unit].match(figure["text"]), (backend, key, figure["text"])
        # Every paced message of every size arrived: these backends lose nothing below the queue bound.
        assert all(n == doc["meta"]["plan"]["count"] for n in row["n"].values()), row["n"]
        assert row["paced_lost"] == 0
        assert row["metrics"]["dropped"]["value"] == 0

    table = (tmp_path / "backends.md").read_text()
    for backend in BACKENDS:
        assert f"| {backend} |" in table
        assert f"✓ {backend}" in table
    assert "msg/s" in table
    assert "µs" in table or " ms" in table
    # A run into another folder never touches the docs.
    assert (doc_file.read_text() if doc_file.exists() else None) == doc_before
