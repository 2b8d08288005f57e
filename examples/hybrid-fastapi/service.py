"""The FastAPI service: POST /score calls into the dataflow as its `api` node and returns the score.

Start the dataflow first (`doradus run dataflow.yml`); the service attaches to it as the
dynamic node `api` (retrying for ATTACH_TIMEOUT seconds), serves on HOST:PORT
(127.0.0.1:8000), and leaves the dataflow when it stops — the other nodes then see their
inputs close and the run ends.

With OTEL_EXPORTER_OTLP_ENDPOINT set, FastAPI's own telemetry records the request's SERVER
span (continuing the caller's `traceparent` header, if any); sending into the dataflow from
inside it makes the node's `send request` span its child, and the trace follows the message
through every node and back.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pyarrow as pa
import uvicorn
from fastapi import FastAPI, HTTPException, Request
from pydantic import BaseModel, Field

from doradus import Input, Node, NodeError

ATTACH_TIMEOUT = float(os.environ.get("ATTACH_TIMEOUT", "30"))
REPLY_TIMEOUT = float(os.environ.get("REPLY_TIMEOUT", "10"))


class ScoreRequest(BaseModel):
    values: list[float] = Field(min_length=1)


class Bridge:
    """The service's `api` node: sends requests, matches replies by request id."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.node = attach("api")
        self.pending: dict[str, asyncio.Future[float]] = {}
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.receive, name="dataflow-replies", daemon=True)
        self.thread.start()

    def receive(self) -> None:
        while not self.stopping.is_set():
            event = self.node.next(timeout=0.2)
            if isinstance(event, Input) and event.id == "score":
                future = self.pending.pop(event.metadata["request_id"], None)
                if future is not None:
                    self.loop.call_soon_threadsafe(future.set_result, event.value[0].as_py())

    async def score(self, values: list[float]) -> float:
        request_id = uuid.uuid4().hex
        future: asyncio.Future[float] = self.loop.create_future()
        self.pending[request_id] = future
        self.node.send_output("request", pa.array(values, pa.float64()), {"request_id": request_id})
        try:
            return await asyncio.wait_for(future, REPLY_TIMEOUT)
        finally:
            self.pending.pop(request_id, None)

    def close(self) -> None:
        self.stopping.set()
        self.thread.join()
        self.node.close()


def attach(node_id: str) -> Node:
    """Node(node_id), retried while the dataflow is not running yet."""
    deadline = time.monotonic() + ATTACH_TIMEOUT
    while True:
        try:
            return Node(node_id)
        except NodeError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def configure_tracing() -> bool:
    """Export this process's spans over OTLP when an endpoint is set; whether tracing is on.

    FastAPI records the request's SERVER span on the global tracer provider set here (and
    continues the caller's `traceparent`); the `api` node's spans export on their own.
    """
    if not (
        os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    ):
        return False
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    name = os.environ.get("OTEL_SERVICE_NAME", "score-api")
    provider = TracerProvider(resource=Resource.create({"service.name": name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    return True


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.tracing = configure_tracing()
    app.state.bridge = await asyncio.to_thread(Bridge, asyncio.get_running_loop())
    yield
    await asyncio.to_thread(app.state.bridge.close)
    if app.state.tracing:
        from opentelemetry import trace

        trace.get_tracer_provider().shutdown()  # type: ignore[attr-defined]  # flush the last spans


app = FastAPI(title="score-api", lifespan=lifespan)


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/score")
async def score(body: ScoreRequest, request: Request) -> dict[str, Any]:
    try:
        # Sent from inside FastAPI's request span: the node's `send request` span is its child.
        result = await request.app.state.bridge.score(body.values)
    except TimeoutError as exc:
        raise HTTPException(504, f"the dataflow did not answer within {REPLY_TIMEOUT} s") from exc
    if not request.app.state.tracing:
        return {"score": result}
    from opentelemetry import trace

    return {"score": result, "trace_id": f"{trace.get_current_span().get_span_context().trace_id:032x}"}


if __name__ == "__main__":
    uvicorn.run(app, host=os.environ.get("HOST", "127.0.0.1"), port=int(os.environ.get("PORT", "8000")))
