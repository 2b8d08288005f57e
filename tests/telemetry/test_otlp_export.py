"""A real dataflow exporting traces, metrics and logs over OTLP to a real receiver on 127.0.0.1."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import DORADUS, write_files
from tests.telemetry.otlp_receiver import OtlpGrpcReceiver, OtlpHttpReceiver

from doradus._observability.otel_env import enabled_signals, format_context, parse_context

CHAIN = {
    "dataflow.yml": """
        nodes:
          - id: source
            path: source.py
            outputs: [out]
          - id: relay
            path: relay.py
            inputs:
              in: source/out
            outputs: [out]
          - id: sink
            path: sink.py
            inputs:
              in: relay/out
          - id: silent
            path: silent.sh
    """,
    "source.py": """
        import time
        from doradus import Node
        node = Node()
        for i in range(3):
            node.send_output("out", [i], {"seq": i})
            time.sleep(0.05)
    """,
    "relay.py": """
        import logging
        from doradus import Input, Node
        node = Node()
        for event in node:
            if isinstance(event, Input):
                seq = event.metadata["seq"]
                logging.getLogger("relay").warning("relaying %d", seq, extra={"seq": seq})
                node.send_output("out", event.value, {"seq": seq})
    """,
    "sink.py": """
        from doradus import Input, Node
        node = Node()
        for event in node:
            if isinstance(event, Input):
                node.log("info", f"sink got {event.metadata['seq']}")
    """,
    "silent.sh": """
        #!/bin/sh
        exit 0
    """,
}


def _run(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    write_files(tmp_path, CHAIN)
    full = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    full.update(env)
    return subprocess.run(
        [*DORADUS, "run", str(tmp_path / "dataflow.yml"), "--no-color"],
        capture_output=True,
        text=True,
        timeout=90,
        env=full,
        cwd=tmp_path,
    )


def _by_name(spans: list[dict[str, Any]], name: str, node: str) -> list[dict[str, Any]]:
    return [s for s in spans if s["name"] == name and s["attributes"].get("doradus.node.id") == node]


def test_traces_metrics_and_logs_arrive_over_http(tmp_path: Path, otlp_http: OtlpHttpReceiver) -> None:
    ran = _run(tmp_path, otlp_http.env(OTEL_SERVICE_NAME="factory"))
    assert ran.returncode == 0, ran.stdout + ran.stderr
    collected = otlp_http.collected
    # `doradus run` returns only after every process flushed: everything is here already.
    spans = collected.spans()

    # One message's path: source send -> relay receive -> relay send -> sink receive, one trace.
    (first_send,) = [
        s
        for s in _by_name(spans, "send out", "source")
        if s["parent_span_id"] is None and s["kind"] == "PRODUCER"
    ][:1]
    trace_id = first_send["trace_id"]
    receive = [s for s in _by_name(spans, "receive in", "relay") if s["trace_id"] == trace_id]
    assert len(receive) == 1
    assert receive[0]["parent_span_id"] == first_send["span_id"]
    assert receive[0]["kind"] == "CONSUMER"
    forward = [s for s in _by_name(spans, "send out", "relay") if s["trace_id"] == trace_id]
    assert len(forward) == 1
    assert forward[0]["parent_span_id"] == receive[0]["span_id"]
    arrive = [s for s in _by_name(spans, "receive in", "sink") if s["trace_id"] == trace_id]
    assert len(arrive) == 1
    assert arrive[0]["parent_span_id"] == forward[0]["span_id"]
    assert len({s["trace_id"] for s in _by_name(spans, "send out", "source")}) == 3  # a trace per message
    for span in (first_send, receive[0], forward[0], arrive[0]):
        assert span["resource"]["service.name"] == "factory"
        assert span["attributes"]["doradus.dataflow"] == tmp_path.name
    # Node lifetimes, from the runtime, for every node (the silent shell node too).
    lifetimes = {s["attributes"]["doradus.node.id"] for s in spans if s["name"].startswith("node ")}
    assert lifetimes == {"source", "relay", "sink", "silent"}

    points = collected.metric_points()
    sent = [
        p
        for p in points
        if p["name"] == "doradus.messages.sent" and p["attributes"].get("doradus.node.id") == "source"
    ]
    assert sent
    assert max(p["value"] for p in sent) == 3
    latency = [
        p
        for p in points
        if p["name"] == "doradus.message.latency" and p["attributes"].get("target") == "sink/in"
    ]
    assert latency, sorted({p["name"] for p in points})
    assert max(p["count"] for p in latency) == 3
    assert latency[-1]["attributes"]["source"] == "relay/out"
    assert latency[-1]["unit"] == "s"
    assert 0 < latency[-1]["sum"] < 3.0
    received = [
        p
        for p in points
        if p["name"] == "doradus.messages.received" and p["attributes"].get("doradus.node.id") == "sink"
    ]
    assert max(p["value"] for p in received) == 3

    logs = collected.log_records()
    relayed = [r for r in logs if r["body"] == "relaying 0"]
    assert len(relayed) == 1
    assert relayed[0]["severity_text"] == "WARN"
    assert relayed[0]["attributes"]["doradus.node.id"] == "relay"
    assert relayed[0]["attributes"]["doradus.field.seq"] == 0
    traced = {r["body"]: r["trace_id"] for r in logs if r["body"].startswith(("relaying", "sink got"))}
    assert traced["relaying 0"] == trace_id
    assert traced["sink got 0"] == trace_id
    runtime = {(r["attributes"].get("doradus.node.id"), r["body"]) for r in logs}
    assert ("silent", "exited (status 0)") in runtime


def test_grpc_protocol_exports_too(tmp_path: Path, otlp_grpc: OtlpGrpcReceiver) -> None:
    ran = _run(tmp_path, otlp_grpc.env())
    assert ran.returncode == 0, ran.stdout + ran.stderr
    collected = otlp_grpc.collected
    assert len(_by_name(collected.spans(), "receive in", "sink")) == 3
    assert len([r for r in collected.log_records() if r["body"] == "sink got 2"]) == 1
    received = [
        p["value"]
        for p in collected.metric_points()
        if p["name"] == "doradus.messages.received" and p["attributes"].get("doradus.node.id") == "sink"
    ]
    assert max(received) == 3


def test_a_signal_can_be_turned_off(tmp_path: Path, otlp_http: OtlpHttpReceiver) -> None:
    ran = _run(tmp_path, otlp_http.env(OTEL_TRACES_EXPORTER="none", OTEL_METRICS_EXPORTER="none"))
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert otlp_http.collected.requests("traces") == []
    assert otlp_http.collected.requests("metrics") == []
    logs = otlp_http.collected.log_records()
    assert [r for r in logs if r["body"] == "relaying 1"]
    assert all(r["trace_id"] is None for r in logs)  # no tracing, so no trace ids


def test_signal_selection_from_the_environment() -> None:
    base = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"}
    assert enabled_signals(base) == {"traces", "metrics", "logs"}
    assert enabled_signals({**base, "OTEL_SDK_DISABLED": "true"}) == frozenset()
    assert enabled_signals({"OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": "http://127.0.0.1:1/v1/logs"}) == {"logs"}
    assert enabled_signals({}) == frozenset()


@pytest.mark.parametrize(
    "value",
    [
        "traceparent:00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01;",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "tracestate:x=1;traceparent:00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01;",
    ],
)
def test_trace_context_round_trip(value: str) -> None:
    parsed = parse_context(value)
    assert parsed == (0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331, True)
    assert parse_context(format_context(*parsed)) == parsed


@pytest.mark.parametrize(
    "value", ["", "traceparent:00-0-0-01;", "00-00000000000000000000000000000000-b7ad6b7169203331-01", 7]
)
def test_bad_trace_contexts_are_ignored(value: object) -> None:
    assert parse_context(value) is None
