"""Node metrics end to end: nodes report, the daemon relays, `status` and `top` show them."""

from __future__ import annotations

import json
import time
from typing import Any

from tests.cli.conftest import Control

REPORT_INTERVAL = 1.0

DATAFLOW = """
    nodes:
      - id: sender
        path: sender.py
        inputs:
          tick: dora/timer/millis/20
        outputs: [n]
      - id: receiver
        path: receiver.py
        inputs:
          n:
            source: sender/n
            queue_size: 1
"""
SENDER_PY = """
    from doradus import Input, Node

    node = Node()
    for event in node:
        if isinstance(event, Input):
            node.send_output("n", [1, 2, 3])
"""
RECEIVER_PY = """
    import time

    from doradus import Input, Node

    node = Node()
    for event in node:
        if isinstance(event, Input):
            time.sleep(0.1)  # slower than the 50 Hz sender: the queue of 1 drops
"""


def _status(control: Control) -> dict[str, Any]:
    ran = control("status", "metrics", "--output", "json")
    assert ran.returncode == 0, ran.stderr
    result: dict[str, Any] = json.loads(ran.stdout)
    return result


def _measured(flow: dict[str, Any]) -> bool:
    sender, receiver = flow["nodes"]["sender"], flow["nodes"]["receiver"]
    return (
        (receiver["input_rate"] or 0) > 0
        and (receiver["dropped"] or 0) > 0
        and (sender["output_rate"] or 0) > 0
        and receiver["p50_latency_us"] is not None
        and all(n["cpu_percent"] is not None and n["memory_bytes"] for n in (sender, receiver))
    )


def test_status_and_top_show_node_metrics(control: Control) -> None:
    control.write("dataflow.yml", DATAFLOW)
    control.write("sender.py", SENDER_PY)
    control.write("receiver.py", RECEIVER_PY)
    up = control("up")
    assert up.returncode == 0, up.stderr
    try:
        started = control("start", "dataflow.yml", "--detach", "--name", "metrics")
        assert started.returncode == 0, started.stderr
        time.sleep(3 * REPORT_INTERVAL)
        deadline = time.monotonic() + 10 * REPORT_INTERVAL
        flow = _status(control)
        while not _measured(flow) and time.monotonic() < deadline:
            time.sleep(0.5)
            flow = _status(control)
        assert _measured(flow), json.dumps(flow, indent=2)

        sender, receiver = flow["nodes"]["sender"], flow["nodes"]["receiver"]
        for node in (sender, receiver):
            assert node["state"] == "running"
            assert isinstance(node["pid"], int)
            assert isinstance(node["cpu_percent"], float | int)
            assert node["memory_bytes"] > 1_000_000
            assert node["restarts"] == 0
            assert node["errors"] == 0
            assert node["exit_code"] is None
        assert 10 < sender["output_rate"] < 100  # 50 Hz, with room for a slow machine
        assert receiver["input_rate"] > 0
        assert receiver["p50_latency_us"] > 0
        assert receiver["latency_p50_ms"] == round(receiver["p50_latency_us"] / 1000, 3)
        assert receiver["queued"] in (0, 1)

        table = control("status", "metrics")
        assert table.returncode == 0, table.stderr
        for column in ("Input rate", "Output rate", "p50 latency", "Dropped", "Errors", "receiver"):
            assert column in table.stdout

        top = control("top", "--once", "--output", "json")
        assert top.returncode == 0, top.stderr
        rows = json.loads(top.stdout)
        assert {(r["dataflow"], r["node"]) for r in rows} == {("metrics", "sender"), ("metrics", "receiver")}
        assert all(isinstance(r["pid"], int) and r["memory_bytes"] for r in rows)

        top_table = control("top", "metrics", "--once")
        assert top_table.returncode == 0, top_table.stderr
        assert "sender" in top_table.stdout
        assert "receiver" in top_table.stdout
    finally:
        control("stop", "metrics", "--grace-duration", "2s")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if _status(control)["status"] != "running":
                break
            time.sleep(0.2)
        final = _status(control)
        control("destroy")
    assert final["status"] in ("stopped", "finished")
    receiver = final["nodes"]["receiver"]
    assert receiver["input_rate"] == 0.0
    assert receiver["dropped"] > 0
