"""The OpenTelemetry SDK providers of one process and their OTLP exporters.

Each exporter speaks ``http/protobuf`` or ``grpc`` as ``OTEL_EXPORTER_OTLP_PROTOCOL`` (or the
signal's own variable) says, and reads the endpoint, headers and timeouts from the standard
variables itself. `Providers` is private to Doradus: the global providers are left to the
user's own code.

Example::

    providers = Providers(enabled_signals(), resource_of({"doradus.node.id": "camera"}))
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Mapping
from typing import Any

from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.metrics.view import View
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from doradus._observability.otel_env import protocol


def resource_of(attributes: Mapping[str, str | None]) -> Resource:
    """The service (``OTEL_SERVICE_NAME``, default ``doradus``) plus ``OTEL_RESOURCE_ATTRIBUTES``.

    Example::

        resource_of({"doradus.node.id": "camera", "doradus.run_id": None})
    """
    values: dict[str, Any] = {k: v for k, v in attributes.items() if v is not None}
    if not os.environ.get("OTEL_SERVICE_NAME"):
        values["service.name"] = "doradus"
    return Resource.create(values)


def _span_exporter() -> Any:
    if protocol("traces") == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as Grpc

        return Grpc()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as Http

    return Http()


def _metric_exporter() -> Any:
    if protocol("metrics") == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as Grpc

        return Grpc()
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as Http

    return Http()


def _log_exporter() -> Any:
    if protocol("logs") == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as Grpc

        return Grpc()
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as Http

    return Http()


class Providers:
    """The tracer, meter and logger providers of one process, for the signals that are on.

    Example::

        providers = Providers(frozenset({"traces"}), resource_of({}))
        providers.shutdown()
    """

    def __init__(self, signals: frozenset[str], resource: Resource, views: list[View] | None = None) -> None:
        self.tracer_provider: TracerProvider | None = None
        self.meter_provider: MeterProvider | None = None
        self.logger_provider: LoggerProvider | None = None
        if "traces" in signals:
            self.tracer_provider = TracerProvider(resource=resource)
            self.tracer_provider.add_span_processor(BatchSpanProcessor(_span_exporter()))
        if "metrics" in signals:
            reader = PeriodicExportingMetricReader(_metric_exporter())
            self.meter_provider = MeterProvider(resource=resource, metric_readers=[reader], views=views or [])
        if "logs" in signals:
            self.logger_provider = LoggerProvider(resource=resource)
            self.logger_provider.add_log_record_processor(BatchLogRecordProcessor(_log_exporter()))
        self._done = False
        self._lock = threading.Lock()

    def shutdown(self) -> None:
        """Flush and stop every provider (idempotent)."""
        with self._lock:
            if self._done:
                return
            self._done = True
        for provider in (self.tracer_provider, self.meter_provider, self.logger_provider):
            if provider is not None:
                try:
                    provider.shutdown()
                except Exception as exc:  # an unreachable collector must not fail the node
                    print(f"doradus: telemetry flush failed: {exc}", file=sys.stderr)
