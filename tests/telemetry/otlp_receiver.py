"""Real OTLP receivers for tests: OTLP/HTTP (protobuf) and OTLP/gRPC on 127.0.0.1, a free port each.

Both decode what exporters send with ``opentelemetry-proto`` and keep every request in a
thread-safe `Collected`, whose helpers flatten the protobuf into plain Python::

    with OtlpHttpReceiver() as receiver:
        env = receiver.env()                    # OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:PORT ...
        ...                                     # run something that exports to receiver.endpoint
        assert receiver.collected.wait_for(lambda c: any(s["name"] == "x" for s in c.spans()), 10)

Two receivers may share one `Collected` (``OtlpGrpcReceiver(collected=http_receiver.collected)``).
"""

from __future__ import annotations

import gzip
import http.server
import threading
import time
import zlib
from collections.abc import Callable, Iterable
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

__all__ = [
    "Collected",
    "OtlpGrpcReceiver",
    "OtlpHttpReceiver",
    "Received",
    "decode_any_value",
    "decode_attributes",
]

HOST = "127.0.0.1"

# Signal name -> (request class, response class); the HTTP paths are /v1/<signal>.
_SIGNALS: dict[str, tuple[type[Message], type[Message]]] = {
    "traces": (
        trace_service_pb2.ExportTraceServiceRequest,
        trace_service_pb2.ExportTraceServiceResponse,
    ),
    "metrics": (
        metrics_service_pb2.ExportMetricsServiceRequest,
        metrics_service_pb2.ExportMetricsServiceResponse,
    ),
    "logs": (
        logs_service_pb2.ExportLogsServiceRequest,
        logs_service_pb2.ExportLogsServiceResponse,
    ),
}

# Span.SpanKind numbers -> the names of opentelemetry.trace.SpanKind.
_SPAN_KINDS = {0: "UNSPECIFIED", 1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}


def decode_any_value(value: common_pb2.AnyValue) -> Any:
    """An OTLP ``AnyValue`` as plain Python (str/int/float/bool/bytes/list/dict, or None when empty)."""
    which = value.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [decode_any_value(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return decode_attributes(value.kvlist_value.values)
    return getattr(value, which)


def decode_attributes(attributes: Iterable[common_pb2.KeyValue]) -> dict[str, Any]:
    """Repeated OTLP ``KeyValue`` as a ``dict``."""
    return {kv.key: decode_any_value(kv.value) for kv in attributes}


def _hex_or_none(raw: bytes) -> str | None:
    """Trace/span ids as lowercase hex; None when absent or all zeros (the invalid id)."""
    return raw.hex() if raw and any(raw) else None


@dataclass(frozen=True)
class Received:
    """One export request as it arrived.

    Attributes:
        signal: ``traces``, ``metrics`` or ``logs``.
        transport: ``http`` or ``grpc``.
        headers: Request headers (HTTP) or metadata (gRPC), keys lowercased.
        request: The decoded ``Export*ServiceRequest``.
    """

    signal: str
    transport: str
    headers: dict[str, str]
    request: Any


@dataclass
class Collected:
    """Every export request the receivers got; safe to read while they write."""

    received: list[Received] = field(default_factory=list)
    _cond: threading.Condition = field(default_factory=lambda: threading.Condition(threading.RLock()))

    def add(self, item: Received) -> None:
        """Record one request and wake `wait_for` callers."""
        with self._cond:
            self.received.append(item)
            self._cond.notify_all()

    def requests(self, signal: str | None = None) -> list[Received]:
        """A snapshot of the requests received, optionally of one signal only."""
        with self._cond:
            return [r for r in self.received if signal is None or r.signal == signal]

    def clear(self) -> None:
        """Forget everything received so far."""
        with self._cond:
            self.received.clear()

    def wait_for(
        self, predicate: Callable[[Collected], object], timeout: float = 10.0, interval: float = 0.05
    ) -> bool:
        """Poll until ``predicate(self)`` is true; False if ``timeout`` seconds pass first."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                if predicate(self):
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(min(interval, remaining))

    def spans(self) -> list[dict[str, Any]]:
        """Every span received, flattened, in arrival order.

        Keys: ``trace_id``, ``span_id`` (hex), ``parent_span_id`` (hex or None), ``name``, ``kind``
        (``INTERNAL``/``SERVER``/``CLIENT``/``PRODUCER``/``CONSUMER``/``UNSPECIFIED``, the names of
        ``opentelemetry.trace.SpanKind``), ``attributes``, ``resource`` (resource attributes), ``scope``
        (instrumentation scope name), ``start_time_unix_nano``, ``end_time_unix_nano``, ``status_code``
        (``STATUS_CODE_UNSET``/``_OK``/``_ERROR``), ``status_message``, ``events`` (list of
        ``{name, attributes, time_unix_nano}``), ``links`` (list of ``{trace_id, span_id, attributes}``).
        """
        out: list[dict[str, Any]] = []
        for item in self.requests("traces"):
            for resource_spans in item.request.resource_spans:
                resource = decode_attributes(resource_spans.resource.attributes)
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        out.append(
                            {
                                "trace_id": span.trace_id.hex(),
                                "span_id": span.span_id.hex(),
                                "parent_span_id": _hex_or_none(span.parent_span_id),
                                "name": span.name,
                                "kind": _SPAN_KINDS.get(span.kind, str(span.kind)),
                                "attributes": decode_attributes(span.attributes),
                                "resource": resource,
                                "scope": scope_spans.scope.name,
                                "start_time_unix_nano": span.start_time_unix_nano,
                                "end_time_unix_nano": span.end_time_unix_nano,
                                "status_code": trace_pb2.Status.StatusCode.Name(span.status.code),
                                "status_message": span.status.message,
                                "events": [
                                    {
                                        "name": e.name,
                                        "attributes": decode_attributes(e.attributes),
                                        "time_unix_nano": e.time_unix_nano,
                                    }
                                    for e in span.events
                                ],
                                "links": [
                                    {
                                        "trace_id": link.trace_id.hex(),
                                        "span_id": link.span_id.hex(),
                                        "attributes": decode_attributes(link.attributes),
                                    }
                                    for link in span.links
                                ],
                            }
                        )
        return out

    def metric_points(self) -> list[dict[str, Any]]:
        """Every metric data point received, flattened, in arrival order.

        Common keys: ``name``, ``kind`` (``sum``, ``gauge``, ``histogram``, ``exponential_histogram``
        or ``summary``), ``unit``, ``description``, ``attributes``, ``resource``, ``scope``,
        ``start_time_unix_nano``, ``time_unix_nano``. Sums and gauges add ``value`` (int or float);
        sums also ``is_monotonic`` and ``temporality`` (``delta``/``cumulative``). Histograms add
        ``count``, ``sum`` (None when absent), ``bucket_counts``, ``explicit_bounds``, ``min``, ``max``
        and ``temporality``; exponential histograms and summaries add ``count`` and ``sum``.
        """
        out: list[dict[str, Any]] = []
        for item in self.requests("metrics"):
            for resource_metrics in item.request.resource_metrics:
                resource = decode_attributes(resource_metrics.resource.attributes)
                for scope_metrics in resource_metrics.scope_metrics:
                    for metric in scope_metrics.metrics:
                        base = {
                            "name": metric.name,
                            "unit": metric.unit,
                            "description": metric.description,
                            "resource": resource,
                            "scope": scope_metrics.scope.name,
                        }
                        out.extend(_points(metric, base))
        return out

    def log_records(self) -> list[dict[str, Any]]:
        """Every log record received, flattened, in arrival order.

        Keys: ``body`` (str; non-string bodies are ``str()``-ed, the decoded value is in ``body_value``),
        ``severity_text``, ``severity_number`` (int), ``trace_id``/``span_id`` (hex or None),
        ``attributes``, ``resource``, ``scope``, ``time_unix_nano``, ``observed_time_unix_nano``,
        ``event_name``.
        """
        out: list[dict[str, Any]] = []
        for item in self.requests("logs"):
            for resource_logs in item.request.resource_logs:
                resource = decode_attributes(resource_logs.resource.attributes)
                for scope_logs in resource_logs.scope_logs:
                    for record in scope_logs.log_records:
                        body = decode_any_value(record.body)
                        out.append(
                            {
                                "body": body
                                if isinstance(body, str)
                                else ("" if body is None else str(body)),
                                "body_value": body,
                                "severity_text": record.severity_text,
                                "severity_number": int(record.severity_number),
                                "trace_id": _hex_or_none(record.trace_id),
                                "span_id": _hex_or_none(record.span_id),
                                "attributes": decode_attributes(record.attributes),
                                "resource": resource,
                                "scope": scope_logs.scope.name,
                                "time_unix_nano": record.time_unix_nano,
                                "observed_time_unix_nano": record.observed_time_unix_nano,
                                "event_name": record.event_name,
                            }
                        )
        return out


_TEMPORALITY = {0: "unspecified", 1: "delta", 2: "cumulative"}


def _number(point: Any) -> int | float | None:
    which = point.WhichOneof("value")
    return None if which is None else getattr(point, which)


def _points(metric: Any, base: dict[str, Any]) -> list[dict[str, Any]]:
    kind = metric.WhichOneof("data")
    if kind is None:
        return []
    data = getattr(metric, kind)
    out = []
    for point in data.data_points:
        row = {
            **base,
            "kind": kind,
            "attributes": decode_attributes(point.attributes),
            "start_time_unix_nano": point.start_time_unix_nano,
            "time_unix_nano": point.time_unix_nano,
        }
        if kind in ("sum", "gauge"):
            row["value"] = _number(point)
            if kind == "sum":
                row["is_monotonic"] = data.is_monotonic
                row["temporality"] = _TEMPORALITY.get(data.aggregation_temporality, "unspecified")
        elif kind == "histogram":
            row.update(
                count=point.count,
                sum=point.sum if point.HasField("sum") else None,
                bucket_counts=list(point.bucket_counts),
                explicit_bounds=list(point.explicit_bounds),
                min=point.min if point.HasField("min") else None,
                max=point.max if point.HasField("max") else None,
                temporality=_TEMPORALITY.get(data.aggregation_temporality, "unspecified"),
            )
        elif kind == "exponential_histogram":
            row.update(
                count=point.count,
                sum=point.sum if point.HasField("sum") else None,
                temporality=_TEMPORALITY.get(data.aggregation_temporality, "unspecified"),
            )
        else:  # summary
            row.update(count=point.count, sum=point.sum)
        out.append(row)
    return out


class _Receiver:
    """What both receivers share: the `Collected`, ``endpoint``, context manager, ``env()``."""

    protocol = ""
    port = 0
    collected: Collected

    @property
    def endpoint(self) -> str:
        """``http://127.0.0.1:PORT`` (the base endpoint; HTTP exporters append ``/v1/<signal>``)."""
        return f"http://{HOST}:{self.port}"

    def env(self, **extra: str) -> dict[str, str]:
        """Environment variables pointing an OTel SDK (or Doradus) at this receiver, plus ``extra``.

        Sets ``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_EXPORTER_OTLP_PROTOCOL`` and a short
        ``OTEL_METRIC_EXPORT_INTERVAL`` (200 ms) and ``OTEL_BSP_SCHEDULE_DELAY``/``OTEL_BLRP_SCHEDULE_DELAY``
        (100 ms) so tests need not wait long.
        """
        values = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": self.endpoint,
            "OTEL_EXPORTER_OTLP_PROTOCOL": self.protocol,
            "OTEL_METRIC_EXPORT_INTERVAL": "200",
            "OTEL_BSP_SCHEDULE_DELAY": "100",
            "OTEL_BLRP_SCHEDULE_DELAY": "100",
        }
        values.update(extra)
        return values

    def close(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def __enter__(self) -> _Receiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _HttpHandler(http.server.BaseHTTPRequestHandler):
    server: _HttpServer
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        signal = self.path.split("?", 1)[0].rstrip("/").removeprefix("/v1/")
        if signal not in _SIGNALS or not self.path.startswith("/v1/"):
            self._reply(404, b"unknown path", "text/plain")
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        content_type = (self.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
        if content_type != "application/x-protobuf":
            self._reply(415, b"only application/x-protobuf is supported", "text/plain")
            return
        encoding = (self.headers.get("Content-Encoding") or "identity").strip().lower()
        try:
            if encoding == "gzip":
                body = gzip.decompress(body)
            elif encoding == "deflate":
                body = zlib.decompress(body)
            elif encoding != "identity":
                self._reply(415, b"unsupported Content-Encoding", "text/plain")
                return
            request_type, response_type = _SIGNALS[signal]
            request = request_type.FromString(body)
        except (OSError, EOFError, zlib.error, DecodeError) as exc:
            self._reply(400, f"cannot decode: {exc}".encode(), "text/plain")
            return
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.server.collected.add(Received(signal, "http", headers, request))
        self._reply(200, response_type().SerializeToString(), "application/x-protobuf")

    def _reply(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: test output is for failures."""


class _HttpServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    collected: Collected


class OtlpHttpReceiver(_Receiver):
    """OTLP/HTTP with protobuf bodies: POST ``/v1/traces``, ``/v1/metrics``, ``/v1/logs``.

    Accepts ``Content-Type: application/x-protobuf`` (415 otherwise) with ``Content-Encoding`` gzip,
    deflate or none; answers 200 with the serialized ``Export*ServiceResponse``, 400 for an undecodable
    body, 404 for another path. Started on construction; `close` stops it.

    Args:
        collected: Where requests go; a new `Collected` when None.
    """

    protocol = "http/protobuf"

    def __init__(self, collected: Collected | None = None) -> None:
        self.collected = collected if collected is not None else Collected()
        self._server = _HttpServer((HOST, 0), _HttpHandler)
        self._server.collected = self.collected
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        self._closed = False

    def close(self) -> None:
        """Stop serving and free the port (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> OtlpHttpReceiver:
        return self


class _Service(
    trace_service_pb2_grpc.TraceServiceServicer,
    metrics_service_pb2_grpc.MetricsServiceServicer,
    logs_service_pb2_grpc.LogsServiceServicer,
):
    def __init__(self, collected: Collected) -> None:
        self.collected = collected

    def _take(self, signal: str, request: Any, context: grpc.ServicerContext) -> Any:
        headers = {k.lower(): v if isinstance(v, str) else repr(v) for k, v in context.invocation_metadata()}
        self.collected.add(Received(signal, "grpc", headers, request))
        return _SIGNALS[signal][1]()

    def Export(self, request: Any, context: grpc.ServicerContext) -> Any:
        # The three services share the method name; tell them apart by the request type.
        for signal, (request_type, _) in _SIGNALS.items():
            if isinstance(request, request_type):
                return self._take(signal, request, context)
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, "unknown request type")  # pragma: no cover


class OtlpGrpcReceiver(_Receiver):
    """OTLP/gRPC: TraceService, MetricsService and LogsService ``Export``, insecure, on 127.0.0.1.

    Point exporters at `endpoint` with ``insecure=True`` (or ``OTEL_EXPORTER_OTLP_INSECURE=true``;
    an ``http://`` endpoint already means insecure). Started on construction; `close` stops it.

    Args:
        collected: Where requests go; a new `Collected` when None.
    """

    protocol = "grpc"

    def __init__(self, collected: Collected | None = None) -> None:
        self.collected = collected if collected is not None else Collected()
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        service = _Service(self.collected)
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(service, self._server)
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(service, self._server)
        logs_service_pb2_grpc.add_LogsServiceServicer_to_server(service, self._server)
        self.port = self._server.add_insecure_port(f"{HOST}:0")
        if not self.port:  # pragma: no cover
            raise OSError(f"grpc could not bind {HOST}")
        self._server.start()
        self._closed = False

    def close(self) -> None:
        """Stop serving and free the port (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._server.stop(grace=None).wait(5)

    def __enter__(self) -> OtlpGrpcReceiver:
        return self
