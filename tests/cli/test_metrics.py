"""Node metrics end to end: nodes report, the daemon relays, `status` and `top` show them."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from tests.cli.conftest import Control

REPORT_INTERVAL = 1.0
"""Nodes report their statistics every second."""
SENT = 400
"""Messages the sender sends, one per tick of its 50 Hz timer (8 s), before it falls silent."""
SENDER_HZ = 50
RECEIVER_HZ = 10
"""What the receiver takes: one message per 0.1 s sleep."""
TICKER_HZ = 10

DATAFLOW = f"""
    nodes:
      - id: sender
        path: sender.py
        inputs:
          tick: dora/timer/millis/{1000 // SENDER_HZ}
        outputs: [n]
      - id: receiver
        path: receiver.py
        inputs:
          n:
            source: sender/n
            queue_size: 1
      - id: ticker
        path: ticker.py
        inputs:
          tick: dora/timer/millis/{1000 // TICKER_HZ}
"""
SENDER_PY = f"""
    from doradus import Input, Node

    node = Node()
    sent = 0
    for event in node:
        if isinstance(event, Input) and sent < {SENT}:
            node.send_output("n", [1, 2, 3])
            sent += 1
"""
RECEIVER_PY = """
    import time
    from pathlib import Path

    from doradus import Input, Node

    node = Node()
    taken = 0
    for event in node:
        if isinstance(event, Input):
            taken += 1
            Path("taken.txt").write_text(str(taken))
            time.sleep(0.1)  # slower than the 50 Hz sender: the queue of 1 drops
"""
TICKER_PY = """
    from doradus import Node

    for event in Node():
        pass
"""


def _status(control: Control) -> dict[str, Any]:
    ran = control("status", "metrics", "--output", "json")
    assert ran.returncode == 0, ran.stderr
    result: dict[str, Any] = json.loads(ran.stdout)
    return result


def _measured(flow: dict[str, Any]) -> bool:
    """Every figure is in, from a report taken while the sender still streams."""
    sender, receiver = flow["nodes"]["sender"], flow["nodes"]["receiver"]
    streaming = sender["outputs"].get("n", {}).get("sent", 0) <= SENT - 2 * SENDER_HZ
    return (
        streaming
        and (receiver["input_rate"] or 0) > 0
        and (receiver["dropped"] or 0) > 0
        and (sender["output_rate"] or 0) > 0
        and (flow["nodes"]["ticker"]["input_rate"] or 0) > 0
        and receiver["p50_latency_us"] is not None
        and all(n["cpu_percent"] is not None and n["memory_bytes"] for n in (sender, receiver))
    )


def _near(rate: float, hz: float) -> bool:
    """A rate measured over one report interval, within half the configured rate of it."""
    return 0.5 * hz <= rate <= 1.5 * hz


def test_status_and_top_show_node_metrics(control: Control) -> None:
    control.write("dataflow.yml", DATAFLOW)
    control.write("sender.py", SENDER_PY)
    control.write("receiver.py", RECEIVER_PY)
    control.write("ticker.py", TICKER_PY)
    up = control("up")
    assert up.returncode == 0, up.stderr
    try:
        started = control("start", "dataflow.yml", "--detach", "--name", "metrics")
        assert started.returncode == 0, started.stderr
        time.sleep(3 * REPORT_INTERVAL)
        deadline = time.monotonic() + 5 * REPORT_INTERVAL
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
        # The input rate counts the messages handed to the node: the receiver takes one per 0.1 s
        # sleep while 50/s arrive, its queue of 1 dropping the rest (arrivals stay counted).
        assert _near(sender["output_rate"], SENDER_HZ), sender
        assert _near(receiver["input_rate"], RECEIVER_HZ), receiver
        arrived = receiver["inputs"]["n"]
        assert arrived["received"] > arrived["delivered"] > 0, arrived
        assert _near(flow["nodes"]["ticker"]["input_rate"], TICKER_HZ), flow["nodes"]["ticker"]
        assert sender["input_rate"] == pytest.approx(sender["output_rate"], abs=0.3 * SENDER_HZ)
        # A message waits at most one 0.1 s sleep in the queue of one: one-way latency is positive
        # and well under a second.
        assert 0 < receiver["p50_latency_us"] < 1_000_000, receiver
        assert receiver["latency_p50_ms"] == round(receiver["p50_latency_us"] / 1000, 3)
        assert receiver["queued"] in (0, 1)
        assert receiver["inputs"]["n"]["source"] == "sender/n"

        table = control("status", "metrics")
        assert table.returncode == 0, table.stderr
        for column in ("Input rate", "Output rate", "p50 latency", "Dropped", "Errors", "receiver"):
            assert column in table.stdout

        top = control("top", "--once", "--output", "json")
        assert top.returncode == 0, top.stderr
        rows = json.loads(top.stdout)
        assert {(r["dataflow"], r["node"]) for r in rows} == {
            ("metrics", "sender"),
            ("metrics", "receiver"),
            ("metrics", "ticker"),
        }
        assert all(isinstance(r["pid"], int) and r["memory_bytes"] for r in rows)

        top_table = control("top", "metrics", "--once")
        assert top_table.returncode == 0, top_table.stderr
        assert "sender" in top_table.stdout
        assert "receiver" in top_table.stdout

        # Once the sender has sent its last message and the receiver has taken what it could,
        # every message was either taken by the node or dropped from its full queue: exactly.
        taken = control.folder / "taken.txt"

        def drained() -> dict[str, Any] | None:
            flow = _status(control)
            n = flow["nodes"]["receiver"]["inputs"]["n"]
            # Counters come with each node's report (every REPORT_INTERVAL): the sender's may
            # still predate its last send when the receiver's already counts it.
            sent = flow["nodes"]["sender"]["outputs"].get("n", {}).get("sent")
            done = n["received"] == SENT and n["queued"] == 0 and taken.exists() and sent == SENT
            return flow if done and int(taken.read_text()) + n["dropped"] == SENT else None

        deadline = time.monotonic() + SENT / SENDER_HZ + SENT * 0.1 + 10 * REPORT_INTERVAL
        settled = drained()
        while settled is None and time.monotonic() < deadline:
            time.sleep(0.5)
            settled = drained()
        assert settled is not None, json.dumps(_status(control)["nodes"]["receiver"], indent=2)
        n = settled["nodes"]["receiver"]["inputs"]["n"]
        assert n["dropped"] == SENT - int(taken.read_text())
        assert settled["nodes"]["receiver"]["dropped"] == n["dropped"]
        assert settled["nodes"]["sender"]["outputs"]["n"]["sent"] == SENT
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
