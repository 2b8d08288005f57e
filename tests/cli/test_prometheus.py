"""``GET /metrics``: a real coordinator, known per-node and per-edge stats, a Prometheus scrape."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from tests.cli.conftest import DORADUS, free_port

from doradus._control.prometheus import cumulative_buckets, is_edge

FLOW = "vision"
RUN_ID = "0193f5c0-prom-test"
BOUNDS_US = [100.0, 1000.0, 10000.0]


@dataclass
class Coordinator:
    url: str
    headers: dict[str, str]

    def post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        return httpx.post(f"{self.url}{path}", json=body, headers=self.headers, timeout=10)

    def scrape(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """Every sample of ``/metrics`` by (sample name, sorted labels)."""
        response = httpx.get(f"{self.url}/metrics", headers=self.headers, timeout=10)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/plain")
        samples = {}
        for family in text_string_to_metric_families(response.text):
            for sample in family.samples:
                samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return samples


def _start(tmp_path: Path, token: str | None) -> Iterator[Coordinator]:
    port = free_port()
    args = [*DORADUS, "coordinator", "--bind", "127.0.0.1", "--port", str(port)]
    headers = {}
    if token is None:
        args.append("--no-token")  # these tests are about the metrics; test_security about tokens
    else:
        token_file = tmp_path / "token"
        token_file.write_text(token + "\n")
        args += ["--token-file", str(token_file)]
        headers["Authorization"] = f"Bearer {token}"
    runtime = tmp_path / "runtime"  # its daemon key goes there, not in the user's runtime folder
    runtime.mkdir(mode=0o700)
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime)}
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"{url}/api/v1/health", headers=headers, timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline, "the coordinator did not answer in 20 s"
            time.sleep(0.1)
        yield Coordinator(url, headers)
    finally:
        proc.kill()
        proc.wait(timeout=10)
        if proc.stderr:
            proc.stderr.close()


@pytest.fixture
def coordinator(tmp_path: Path) -> Iterator[Coordinator]:
    yield from _start(tmp_path, None)


@pytest.fixture
def guarded(tmp_path: Path) -> Iterator[Coordinator]:
    yield from _start(tmp_path, "s3cret-token")


def _register(coord: Coordinator) -> None:
    response = coord.post(
        "/api/v1/dataflows/external",
        {"name": FLOW, "id": RUN_ID, "nodes": ["camera", "detector"], "machine": "vm", "path": "/x.yml"},
    )
    assert response.status_code == 201, response.text


def _report(coord: Coordinator, sent: int, received: int, buckets: list[int], sum_us: float) -> None:
    nodes = {
        "camera": {
            "state": "running",
            "pid": 4242,
            "cpu_percent": 12.5,
            "memory_bytes": 50_000_000,
            "outputs": {"image": {"sent": sent, "bytes": sent * 6400}},
        },
        "detector": {
            "state": "running",
            "cpu_percent": 30.0,
            "memory_bytes": 80_000_000,
            "restarts": 1,
            "errors": 2,
            "inputs": {
                "image": {
                    "source": "camera/image",
                    "received": received,
                    "dropped": 2,
                    "queued": 3,
                    "latency_bounds_us": BOUNDS_US,
                    "latency_buckets": buckets,
                    "latency_sum_us": sum_us,
                    "latency_count": sum(buckets),
                },
                "tick": {"source": "dora/timer/millis/20", "received": 500, "queued": 1},
            },
            "outputs": {"boxes": {"sent": 7, "bytes": 700}},
        },
    }
    response = coord.post(f"/api/v1/dataflows/{RUN_ID}/report", {"nodes": nodes, "logs": [], "status": None})
    assert response.status_code == 200, response.text


def _node(node: str, **extra: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted({"dataflow": FLOW, "run_id": RUN_ID, "node": node, **extra}.items()))


EDGE = {"source": "camera/image", "target": "detector/image"}
IMAGE_IN = {"input": "image", "source": "camera/image"}
TICK_IN = {"input": "tick", "source": "dora/timer/millis/20"}


def _latency(samples: dict[Any, float], suffix: str, **extra: str) -> float:
    return samples[(f"doradus_message_latency_seconds_{suffix}", _node("detector", **EDGE, **extra))]


def test_scrape_shows_node_and_edge_series(coordinator: Coordinator) -> None:
    _register(coordinator)
    _report(coordinator, sent=100, received=98, buckets=[10, 50, 30, 8], sum_us=250_000.0)
    samples = coordinator.scrape()

    # Per node.
    assert samples[("doradus_node_cpu_percent", _node("camera"))] == 12.5
    assert samples[("doradus_node_cpu_percent", _node("detector"))] == 30.0
    assert samples[("doradus_node_memory_bytes", _node("camera"))] == 50_000_000
    assert samples[("doradus_node_memory_bytes", _node("detector"))] == 80_000_000
    assert samples[("doradus_node_restarts_total", _node("detector"))] == 1
    assert samples[("doradus_node_restarts_total", _node("camera"))] == 0
    assert samples[("doradus_node_errors_total", _node("detector"))] == 2
    assert ("doradus_node_errors_total", _node("camera")) not in samples  # never measured
    assert samples[("doradus_node_up", _node("camera"))] == 1
    assert samples[("doradus_messages_sent_total", _node("camera", output="image"))] == 100
    assert samples[("doradus_bytes_sent_total", _node("camera", output="image"))] == 640_000
    assert samples[("doradus_messages_sent_total", _node("detector", output="boxes"))] == 7
    assert samples[("doradus_bytes_sent_total", _node("detector", output="boxes"))] == 700
    flow_labels = (("dataflow", FLOW), ("run_id", RUN_ID))
    assert samples[("doradus_dataflow_running", flow_labels)] == 1
    assert samples[("doradus_daemons_connected", ())] == 0

    # Per input.
    assert samples[("doradus_messages_received_total", _node("detector", **IMAGE_IN))] == 98
    assert samples[("doradus_messages_dropped_total", _node("detector", **IMAGE_IN))] == 2
    assert samples[("doradus_queue_depth", _node("detector", **IMAGE_IN))] == 3
    assert samples[("doradus_messages_received_total", _node("detector", **TICK_IN))] == 500
    assert samples[("doradus_messages_dropped_total", _node("detector", **TICK_IN))] == 0
    assert samples[("doradus_queue_depth", _node("detector", **TICK_IN))] == 1

    # Per edge: cumulative buckets, bounds in seconds; none for the timer input.
    assert _latency(samples, "bucket", le="0.0001") == 10
    assert _latency(samples, "bucket", le="0.001") == 60
    assert _latency(samples, "bucket", le="0.01") == 90
    assert _latency(samples, "bucket", le="+Inf") == 98
    assert _latency(samples, "count") == 98
    assert _latency(samples, "sum") == pytest.approx(0.25)
    latency_series = {labels for name, labels in samples if name.startswith("doradus_message_latency")}
    assert {dict(labels)["source"] for labels in latency_series} == {"camera/image"}
    assert {dict(labels)["le"] for labels in latency_series if "le" in dict(labels)} == {
        "0.0001",
        "0.001",
        "0.01",
        "+Inf",
    }

    # A second report moves the counters; each scrape reads the state afresh.
    _report(coordinator, sent=150, received=140, buckets=[20, 60, 40, 20], sum_us=1_500_000.0)
    again = coordinator.scrape()
    assert again[("doradus_messages_sent_total", _node("camera", output="image"))] == 150
    assert again[("doradus_bytes_sent_total", _node("camera", output="image"))] == 960_000
    assert again[("doradus_messages_received_total", _node("detector", **IMAGE_IN))] == 140
    assert _latency(again, "bucket", le="0.0001") == 20
    assert _latency(again, "bucket", le="0.001") == 80
    assert _latency(again, "bucket", le="0.01") == 120
    assert _latency(again, "bucket", le="+Inf") == 140
    assert _latency(again, "count") == 140
    assert _latency(again, "sum") == pytest.approx(1.5)

    # Ended dataflows keep their final totals; running and up drop to 0.
    ended = coordinator.post(
        f"/api/v1/dataflows/{RUN_ID}/report",
        {"nodes": {n: {"state": "finished"} for n in ("camera", "detector")}, "status": "finished"},
    )
    assert ended.status_code == 200, ended.text
    final = coordinator.scrape()
    assert final[("doradus_dataflow_running", flow_labels)] == 0
    assert final[("doradus_node_up", _node("camera"))] == 0
    assert final[("doradus_messages_sent_total", _node("camera", output="image"))] == 150
    assert _latency(final, "count") == 140


def test_metrics_is_not_in_the_openapi_schema(coordinator: Coordinator) -> None:
    schema = httpx.get(f"{coordinator.url}/openapi.json", timeout=10).json()
    assert "/metrics" not in schema["paths"]


def test_token_protects_metrics(guarded: Coordinator) -> None:
    refused = httpx.get(f"{guarded.url}/metrics", timeout=10)
    assert refused.status_code == 401
    wrong = httpx.get(f"{guarded.url}/metrics", headers={"Authorization": "Bearer nope"}, timeout=10)
    assert wrong.status_code == 401
    _register(guarded)
    samples = guarded.scrape()  # sends the bearer token
    assert samples[("doradus_dataflow_running", (("dataflow", FLOW), ("run_id", RUN_ID)))] == 1


def test_without_prometheus_client_metrics_answers_503(monkeypatch: pytest.MonkeyPatch) -> None:
    from doradus._control.coordinator import create_app

    async def get() -> httpx.Response:
        transport = httpx.ASGITransport(app=create_app())
        async with httpx.AsyncClient(transport=transport, base_url="http://coordinator") as client:
            return await client.get("/metrics")

    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # `import prometheus_client` fails
    response = asyncio.run(get())
    assert response.status_code == 503
    assert response.json() == {
        "detail": {"error": "prometheus-client is not installed", "fix": "pip install 'doradus[telemetry]'"}
    }


def test_cumulative_buckets() -> None:
    assert cumulative_buckets([100, 1000, 10000], [10, 50, 30, 8]) == [
        ("0.0001", 10.0),
        ("0.001", 60.0),
        ("0.01", 90.0),
        ("+Inf", 98.0),
    ]
    assert cumulative_buckets([250, 2_000_000], [0, 0, 4]) == [("0.00025", 0.0), ("2.0", 0.0), ("+Inf", 4.0)]
    assert cumulative_buckets([], [5]) == [("+Inf", 5.0)]
    assert cumulative_buckets([], []) == [("+Inf", 0.0)]
    with pytest.raises(ValueError, match="one more"):
        cumulative_buckets([100, 1000], [1, 2])


def test_only_node_outputs_are_edges() -> None:
    assert is_edge("camera/image")
    assert is_edge("robot/arm/pose")  # an operator's output
    assert not is_edge("dora/timer/millis/20")
    assert not is_edge("dora/logs/info/camera")
    assert not is_edge(None)
