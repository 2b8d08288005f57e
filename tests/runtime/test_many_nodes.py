"""Large dataflows: the runtime's descriptor limit, and checks made before anything starts."""

from __future__ import annotations

import json
import resource
import subprocess
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
from tests.conftest import DORADUS, assert_nothing_left, run_ids, shm_entries, write_files

NODES = 2000
SOFT = 1024


LIMITED = (
    "import os, resource, sys; "
    "resource.setrlimit(resource.RLIMIT_NOFILE, (int(sys.argv[1]), int(sys.argv[2]))); "
    "os.execv(sys.argv[3], sys.argv[3:])"
)
"""Runs its arguments with the descriptor limits given (as ``ulimit -n``), by ``exec``.

Not a ``preexec_fn``: that makes ``subprocess`` fork the whole test worker, whose libraries
(gRPC from earlier tests) run their fork handlers in the child, which gRPC may abort.
"""


def _run(
    folder: Path, files: dict[str, str], limits: tuple[int, int], timeout: float
) -> subprocess.CompletedProcess[str]:
    write_files(folder, files)
    before = shm_entries()
    limited = [DORADUS[0], "-c", LIMITED, *(str(limit) for limit in limits)]
    ran = subprocess.run(
        [*limited, *DORADUS, "run", str(folder / "dataflow.yml"), "--no-color"],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=folder,
    )
    assert_nothing_left(before, folder)
    return ran


def _records(folder: Path) -> list[dict[str, Any]]:
    (run_id,) = run_ids(folder)
    lines = (folder / "out" / run_id / "logs.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


@pytest.mark.slow  # 5-11 s on two busy cores: spawning 2000 processes
def test_2000_shell_nodes_run_under_a_soft_limit_of_1024(tmp_path: Path) -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 4 * NODES + 1000:
        pytest.skip(f"the hard descriptor limit ({hard}) is too low for {NODES} nodes on this machine")
    # Every node lives for a second, so hundreds run at once: far more than 1024 descriptors
    # (each node's stdout, stderr and log file) in the runtime at the same time.
    nodes = "".join(f"  - id: n{i}\n    path: shell\n    args: sleep 1\n" for i in range(NODES))
    probe = "  - id: probe\n    path: shell\n    args: echo limits $(ulimit -Sn) $(ulimit -Hn)\n"
    started = time.monotonic()
    ran = _run(tmp_path, {"dataflow.yml": "nodes:\n" + nodes + probe}, (SOFT, hard), timeout=240)
    elapsed = time.monotonic() - started
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert "Too many open files" not in ran.stdout + ran.stderr
    exited = {
        r["node"]
        for r in _records(tmp_path)
        if r.get("source") == "runtime" and (r.get("fields") or {}).get("event") == "exited"
    }
    assert exited == {f"n{i}" for i in range(NODES)} | {"probe"}
    # Nodes keep the limit they were given (select() breaks past 1024), with the same hard limit.
    limit = "unlimited" if hard == resource.RLIM_INFINITY else str(hard)
    assert f"probe | limits {SOFT} {limit}" in ran.stdout.splitlines()
    assert elapsed < 60, f"{NODES} nodes took {elapsed:.1f}s"


def test_needing_more_descriptors_than_the_hard_limit_fails_before_spawning(tmp_path: Path) -> None:
    nodes = "".join(f"  - id: n{i}\n    path: shell\n    args: touch spawned-{i}\n" for i in range(100))
    ran = _run(tmp_path, {"dataflow.yml": "nodes:\n" + nodes}, (64, 64), timeout=60)
    assert ran.returncode == 1, ran.stdout + ran.stderr
    assert "ulimit -n" in ran.stderr
    assert "hard limit of 64" in ran.stderr
    assert "100 nodes" in ran.stderr
    assert "Too many open files" not in ran.stdout + ran.stderr
    assert list(tmp_path.glob("spawned-*")) == []


def test_needing_more_memory_than_available_fails_before_spawning(tmp_path: Path) -> None:
    # Python nodes each take tens of MiB: twice what fits in the available memory.
    count = 2 * psutil.virtual_memory().available // (25 * 2**20) + 1
    nodes = "".join(f"  - id: n{i}\n    path: node.py\n" for i in range(count))
    ran = _run(
        tmp_path,
        {"dataflow.yml": "nodes:\n" + nodes, "node.py": "open('spawned', 'w').close()\n"},
        resource.getrlimit(resource.RLIMIT_NOFILE),
        timeout=120,
    )
    assert ran.returncode == 1, ran.stdout + ran.stderr
    assert f"{count} nodes" in ran.stderr
    assert "MiB of memory available" in ran.stderr
    assert not (tmp_path / "spawned").exists()
