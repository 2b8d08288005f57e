"""Drops by a full input queue are shown: in the run's summary and as WARN records in its logs."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

from tests.conftest import DORADUS, Ran, run_ids

SLOW_RECEIVER = {
    "dataflow.yml": """
    nodes:
      - id: sender
        path: sender.py
        outputs: [n]
      - id: receiver
        path: receiver.py
        inputs:
          n:
            source: sender/n
            queue_size: 1
          quiet:
            source: sender/n
            queue_size: 100
    """,
    "sender.py": """
    from doradus import Node
    node = Node()
    for i in range(50):
        node.send_output("n", [i])
    """,
    # Reads nothing until all 50 have arrived: the queue of one keeps the last, drops 49.
    "receiver.py": """
    import time
    from doradus import Input, Node
    node = Node()
    deadline = time.monotonic() + 30
    while node.statistics()["inputs"]["n"]["received"] < 50 and time.monotonic() < deadline:
        time.sleep(0.01)
    print("values", [e.value[0].as_py() for e in node if isinstance(e, Input) and e.id == "n"])
    """,
}
MESSAGE = "input receiver/n dropped 49 messages (queue_size 1, drop_oldest)"


def test_the_run_summary_names_each_input_that_dropped(dataflow: Callable[..., Ran]) -> None:
    ran = dataflow(SLOW_RECEIVER)
    assert ran.returncode == 0, ran.output
    # As it happens, the run prints the record too (the node's last report is in).
    assert sorted(ran.lines_of("receiver")) == [f"WARN  {MESSAGE}", "values [49]"]
    summary = ran.stderr.splitlines()
    assert MESSAGE in summary, ran.stderr
    assert not any("receiver/quiet" in line for line in summary), "an input without drops is named"
    assert summary[-1].startswith("✓ dataflow finished")  # the drops come just before the verdict
    assert summary[-2] == MESSAGE


def test_doradus_logs_shows_a_warn_record_per_input_that_dropped(
    dataflow: Callable[..., Ran], tmp_path: Path
) -> None:
    ran = dataflow(SLOW_RECEIVER)
    assert ran.returncode == 0, ran.output
    (run_id,) = run_ids(tmp_path)
    logs = subprocess.run(
        [*DORADUS, "logs", str(tmp_path / "out" / run_id), "--level", "WARN", "--output", "json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert logs.returncode == 0, logs.stderr
    records = [json.loads(line) for line in logs.stdout.splitlines()]
    drops = [r for r in records if "dropped" in r["message"]]
    assert [(r["level"], r["node"], r["source"], r["message"]) for r in drops] == [
        ("WARN", "receiver", "runtime", MESSAGE)
    ]
    assert drops[0]["fields"] == {
        "event": "dropped",
        "input": "n",
        "source": "sender/n",
        "dropped": 49,
        "queue_size": 1,
        "queue_policy": "drop_oldest",
        "undelivered": 0,
        "shed": 0,
    }
