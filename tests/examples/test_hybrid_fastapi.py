"""examples/hybrid-fastapi: HTTP → dataflow → HTTP, one OTLP trace across the request and every node."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from tests.backends.conftest import free_port
from tests.conftest import DORADUS, assert_nothing_left, shm_entries
from tests.examples.conftest import copy_example, full_size
from tests.telemetry.otlp_receiver import OtlpHttpReceiver

NODES = {"api", "features", "scorer"}


def wait_until_serving(url: str, service: subprocess.Popen[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if service.poll() is not None:
            raise AssertionError(f"the service exited ({service.returncode}): {service.communicate()}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"the service did not serve {url}/health within {timeout} s")


def test_one_trace_from_http_through_every_node(tmp_path: Path) -> None:
    folder = copy_example("hybrid-fastapi", tmp_path)
    requests = 200 if full_size() else 3
    before = shm_entries()
    with OtlpHttpReceiver() as otlp:
        env = {**os.environ, **otlp.env(OTEL_METRICS_EXPORTER="none", OTEL_LOGS_EXPORTER="none")}
        run = subprocess.Popen(
            [*DORADUS, "run", str(folder / "dataflow.yml"), "--no-color"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=tmp_path,
        )
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        service = subprocess.Popen(
            [sys.executable, str(folder / "service.py")],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**env, "PORT": str(port)},
            cwd=folder,
        )
        try:
            # ATTACH_TIMEOUT (30 s) bounds the wait for the dataflow; then the service serves.
            wait_until_serving(url, service, timeout=60)
            traces = {}
            for i in range(requests):
                trace_id, parent = secrets.token_hex(16), secrets.token_hex(8)  # the caller's own trace
                reply = httpx.post(
                    f"{url}/score",
                    json={"values": [1.0, 2.0, 3.0, 10.0 + i]},
                    headers={"traceparent": f"00-{trace_id}-{parent}-01"},
                    timeout=30,
                )
                assert reply.status_code == 200, reply.text
                assert reply.json()["trace_id"] == trace_id
                assert 0 < reply.json()["score"] < 1
                traces[trace_id] = parent
            bad = httpx.post(f"{url}/score", json={"values": []}, timeout=30)
            assert bad.status_code == 422, bad.text  # validated before it reaches the dataflow
        finally:
            service.send_signal(signal.SIGTERM)  # the service leaves the dataflow; the run ends
            service_out = service.communicate(timeout=60)[0]
            run_out, run_err = run.communicate(timeout=60)
        # uvicorn shuts down cleanly on SIGTERM, then re-raises it: -SIGTERM is its normal end.
        assert service.returncode in (0, -signal.SIGTERM), service_out
        assert "Application shutdown complete." in service_out, service_out
        assert run.returncode == 0, run_out + run_err

        def complete(collected: object) -> bool:
            spans = otlp.collected.spans()  # the HTTP span and the six node spans of each request
            return all(len([s for s in spans if s["trace_id"] == t]) >= 7 for t in traces)

        assert otlp.collected.wait_for(complete, timeout=10), otlp.collected.spans()
    assert_nothing_left(before, folder)

    for trace_id, caller_span in traces.items():
        spans = [s for s in otlp.collected.spans() if s["trace_id"] == trace_id]
        by_id = {s["span_id"]: s for s in spans}
        # FastAPI's own request span, continuing the caller's trace, exported by the service.
        (http,) = [s for s in spans if s["kind"] == "SERVER"]
        assert http["name"] == "POST /score"
        assert http["parent_span_id"] == caller_span
        assert http["resource"]["service.name"] == "score-api"
        hops = sorted(
            (s["attributes"]["doradus.node.id"], s["name"])
            for s in spans
            if "doradus.node.id" in s["attributes"]
        )
        assert hops == [
            ("api", "receive score"),
            ("api", "send request"),
            ("features", "receive request"),
            ("features", "send features"),
            ("scorer", "receive features"),
            ("scorer", "send score"),
        ]
        # One tree: from the reply back to the service, each span's parent is in this trace,
        # through every node, up to the HTTP request's span.
        (reply,) = [s for s in spans if s["name"] == "receive score"]
        chain, span = [], reply
        while span is not http:
            chain.append(span["name"])
            span = by_id[span["parent_span_id"]]
        assert chain[:6] == [
            "receive score",
            "send score",
            "receive features",
            "send features",
            "receive request",
            "send request",
        ], chain
    print(
        f"\nhybrid-fastapi: {len(traces)} requests, each one trace across its HTTP span and {sorted(NODES)}"
    )
