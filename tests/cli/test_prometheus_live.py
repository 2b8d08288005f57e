"""``/metrics`` fed by real dataflows: one started on the daemon, one run by ``doradus run``."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
from prometheus_client.parser import text_string_to_metric_families
from tests.cli.conftest import Control

FLOW = """
nodes:
  - id: source
    path: source.py
    inputs:
      tick: dora/timer/millis/20
    outputs: [out]
  - id: sink
    path: sink.py
    inputs:
      in: source/out
"""
SENT = 60
"""Messages the source sends (one per 20 ms tick) before it falls silent."""
SOURCE = f"""
from doradus import Input, Node
node = Node()
sent = 0
for event in node:
    if isinstance(event, Input) and sent < {SENT}:
        node.send_output("out", [1, 2, 3])
        sent += 1
"""
SINK = """
from doradus import Node
for event in Node():
    pass
"""


def _samples(control: Control) -> list[tuple[str, dict[str, str], float]]:
    url = "http://" + control.env["DORADUS_COORDINATOR"] + "/metrics"
    text = httpx.get(url, headers=control.headers, timeout=10).text
    return [(s.name, s.labels, s.value) for f in text_string_to_metric_families(text) for s in f.samples]


def _value(samples: list[tuple[str, dict[str, str], float]], name: str, **labels: str) -> float | None:
    for sample_name, sample_labels, value in samples:
        if sample_name == name and all(sample_labels.get(k) == v for k, v in labels.items()):
            return value
    return None


def _eventually(check: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return False


def test_metrics_of_a_daemon_run_dataflow(control: Control) -> None:
    control.write("flow.yml", FLOW)
    control.write("source.py", SOURCE)
    control.write("sink.py", SINK)
    assert control("up").returncode == 0
    started = control("start", "flow.yml", "--name", "live", "--detach")
    assert started.returncode == 0, started.stderr

    def all_arrived() -> bool:
        count = _value(_samples(control), "doradus_message_latency_seconds_count", target="sink/in")
        return count == SENT

    # Nodes report every second: the last of the 60 messages (1.2 s at 50 per second) is counted
    # within a few reports.
    assert _eventually(all_arrived, SENT / 50 + 10)
    samples = _samples(control)
    _assert_edge_counts(samples, dataflow="live")
    sent = _value(samples, "doradus_messages_sent_total", dataflow="live", node="source", output="out")
    assert sent == SENT
    assert _value(samples, "doradus_node_up", node="source") == 1.0
    assert _value(samples, "doradus_dataflow_running", dataflow="live") == 1.0
    assert (_value(samples, "doradus_node_memory_bytes", node="sink") or 0) > 1_000_000
    assert control("stop", "live").returncode == 0
    ended = lambda: _value(_samples(control), "doradus_dataflow_running", dataflow="live") == 0.0  # noqa: E731
    assert _eventually(ended, 15)
    assert control("destroy").returncode == 0


def _assert_edge_counts(samples: list[tuple[str, dict[str, str], float]], **labels: str) -> None:
    """The fast sink drops nothing: what the source sent arrived, each with a plausible latency."""
    sent = _value(samples, "doradus_messages_sent_total", node="source", output="out", **labels)
    received = _value(samples, "doradus_messages_received_total", node="sink", input="in", **labels)
    dropped = _value(samples, "doradus_messages_dropped_total", node="sink", input="in", **labels)
    count = _value(samples, "doradus_message_latency_seconds_count", target="sink/in", **labels)
    total = _value(samples, "doradus_message_latency_seconds_sum", target="sink/in", **labels)
    assert sent is not None
    assert sent >= 5
    assert (received, dropped, count) == (sent, 0, sent)
    inf = _value(samples, "doradus_message_latency_seconds_bucket", target="sink/in", le="+Inf", **labels)
    assert inf == sent
    assert total is not None
    assert 0 < total / count < 1.0  # mean one-way latency on one machine: positive, under a second
    assert _value(samples, "doradus_messages_sent_total", node="source", output="out", **labels) == sent


def test_metrics_of_a_registered_doradus_run(control: Control) -> None:
    control.write("flow.yml", FLOW)
    # Its 60 messages (1.2 s) are all sent and taken well before the run is stopped after 3 s.
    control.write("source.py", SOURCE)
    control.write("sink.py", SINK)
    assert control("up").returncode == 0
    ran = control("run", "flow.yml", "--stop-after", "3s")
    assert ran.returncode == 0, ran.stderr
    samples = _samples(control)
    sent = _value(samples, "doradus_messages_sent_total", node="source", output="out")
    assert sent is not None
    assert sent == SENT
    _assert_edge_counts(samples, dataflow="flow")
    listed = control("status", "flow", "--output", "json")
    assert listed.returncode == 0, listed.stderr
    assert control("destroy").returncode == 0
