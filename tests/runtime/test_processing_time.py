"""A node's processing time: how long its code takes with each input message, as reported."""

from __future__ import annotations

import time
from pathlib import Path

from tests.conftest import write_files

from doradus._dataflow.loader import load_dataflow
from doradus._ids import new_run_id
from doradus._runtime.supervisor import LocalDaemon

REPORT = 1.0
"""Seconds between two ``stats`` reports of a node."""
WORK = 0.02
"""Seconds the slow node sleeps with each message: its processing time cannot be less."""

FLOW = """
    nodes:
      - id: source
        path: source.py
        inputs:
          tick: dora/timer/millis/50
        outputs: [out]
      - id: slow
        path: slow.py
        inputs:
          x: source/out
"""
SOURCE_PY = """
    import pyarrow as pa
    from doradus import Input, Node

    node = Node()
    for event in node:
        if isinstance(event, Input):
            node.send_output("out", pa.array([1]))
"""
SLOW_PY = f"""
    import time
    from doradus import Input, Node

    for event in Node():
        if isinstance(event, Input):
            time.sleep({WORK})
"""


def test_the_processing_time_reported_is_the_time_the_node_spent_per_message(tmp_path: Path) -> None:
    write_files(tmp_path, {"dataflow.yml": FLOW, "source.py": SOURCE_PY, "slow.py": SLOW_PY})
    run_id = new_run_id()
    daemon = LocalDaemon(load_dataflow(tmp_path / "dataflow.yml"), run_id=run_id, out_dir=tmp_path / run_id)
    daemon.start()
    try:
        deadline = time.monotonic() + 10 * REPORT
        slow = daemon.node_metrics()["slow"]
        while slow["processing_p50_us"] is None and time.monotonic() < deadline:
            time.sleep(0.1)
            slow = daemon.node_metrics()["slow"]
        assert slow["processing_p50_us"] is not None
        # At least the sleep; far less than the time between two messages plus a wide margin.
        assert WORK * 1e6 <= slow["processing_p50_us"] < 50 * WORK * 1e6
        # The source's timer input: its code only sends, far less than the slow node's sleep.
        source = daemon.node_metrics()["source"]
        assert source["processing_p50_us"] is not None
        assert source["processing_p50_us"] < WORK * 1e6
    finally:
        daemon.request_stop()
        if not daemon.wait(10.0):
            daemon.kill()
        daemon.close()
