"""OpenTelemetry export (OTLP traces, metrics and logs) for nodes and for the runtime.

Loaded only when `doradus._observability.otel_env.enabled_signals` says a signal is on;
uses the OpenTelemetry SDK and its OTLP exporters (``http/protobuf`` or
``grpc``, from ``OTEL_EXPORTER_OTLP_PROTOCOL``), which read the endpoint,
headers and timeouts from the standard variables themselves. Providers are
private to Doradus (the global ones are left to the user's own code).

Every span, metric point and log record carries ``doradus.node.id``,
``doradus.dataflow`` and ``doradus.run_id`` as attributes, because
``OTEL_SERVICE_NAME`` (default ``doradus``) may name a whole deployment.

- `NodeTelemetry` lives in a node process: a ``send <output>`` span per
  message sent (its context travels in the message metadata under
  ``open_telemetry_context``), a ``receive <input>`` span per message
  received whose parent is the sender's span and which stays current while
  the node processes the message (so what it sends and logs then joins the
  trace), message/byte counters, drops and queue depth per input, and the
  latency histogram per edge.
- `RuntimeTelemetry` lives in the process that runs the nodes (``doradus run``
  or ``doradus daemon``): a ``node <id>`` span per node lifetime, every log
  record of the run (nodes' and the runtime's own), and CPU and memory per
  node.

Both flush everything on `shutdown`.

Example::

    telemetry = NodeTelemetry.create(node_id="camera", dataflow="demo", run_id="01J...")
    metadata = telemetry.on_send("image", {}, 4096)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry._logs import SeverityNumber
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags

from doradus._observability.latency import LATENCY_BOUNDS_US
from doradus._observability.otel_env import (
    CONTEXT_KEY,
    enabled_signals,
    format_context,
    parse_context,
)
from doradus._observability.otel_providers import Providers, resource_of
from doradus._observability.records import LEVELS

INSTRUMENTATION = "doradus"
LATENCY_BOUNDS_S = tuple(b / 1e6 for b in LATENCY_BOUNDS_US)
_SEVERITY = {name: SeverityNumber[name] for name in LEVELS}
"""Each level's OpenTelemetry severity: Doradus levels carry OpenTelemetry's names."""


def _latency_view() -> View:
    return View(
        instrument_name="doradus.message.latency",
        aggregation=ExplicitBucketHistogramAggregation(boundaries=LATENCY_BOUNDS_S),
    )


def _span_context(trace_id: int, span_id: int, sampled: bool) -> Any:
    parent = SpanContext(
        trace_id, span_id, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED if sampled else 0)
    )
    return trace.set_span_in_context(NonRecordingSpan(parent))


class NodeTelemetry:
    """A node's spans and metrics (see the module documentation).

    Example::

        telemetry = NodeTelemetry.create(node_id="planner", dataflow="demo", run_id="01J...")
        if telemetry is not None:
            telemetry.shutdown()
    """

    def __init__(
        self, providers: Providers, node_id: str, dataflow: str, run_id: str, sources: Mapping[str, str]
    ) -> None:
        self._providers = providers
        self.node_id = node_id
        self._base = {"doradus.node.id": node_id, "doradus.dataflow": dataflow, "doradus.run_id": run_id}
        self._sources = dict(sources)
        self._local = threading.local()
        self.tracer = (
            providers.tracer_provider.get_tracer(INSTRUMENTATION) if providers.tracer_provider else None
        )
        self._sent: Any = None
        self._bytes: Any = None
        self._received: Any = None
        self._latency: Any = None
        self._out_attrs: dict[str, dict[str, str]] = {}
        self._in_attrs: dict[str, dict[str, str]] = {}
        self._edge_attrs: dict[str, dict[str, str]] = {}
        if providers.meter_provider is not None:
            meter = providers.meter_provider.get_meter(INSTRUMENTATION)
            self._sent = meter.create_counter(
                "doradus.messages.sent", "{message}", "Messages sent per output"
            )
            self._bytes = meter.create_counter("doradus.bytes.sent", "By", "Payload bytes sent per output")
            self._received = meter.create_counter(
                "doradus.messages.received", "{message}", "Messages received per input"
            )
            self._latency = meter.create_histogram(
                "doradus.message.latency", "s", "One-way latency per edge (receive time - send time)"
            )

    @classmethod
    def create(
        cls,
        *,
        node_id: str,
        dataflow: str,
        run_id: str,
        sources: Mapping[str, str] | None = None,
        signals: frozenset[str] | None = None,
    ) -> NodeTelemetry | None:
        """Telemetry for a node, or None when no trace or metric export is configured.

        ``sources`` maps each input id to its source (``node/output``), for
        the per-edge attributes.

        Example::

            NodeTelemetry.create(node_id="a", dataflow="demo", run_id="r", signals=frozenset())  # None
        """
        signals = (enabled_signals() if signals is None else signals) & {"traces", "metrics"}
        if not signals:
            return None
        attrs = {"doradus.node.id": node_id, "doradus.dataflow": dataflow, "doradus.run_id": run_id}
        providers = Providers(signals, resource_of(attrs), [_latency_view()])
        return cls(providers, node_id, dataflow, run_id, sources or {})

    def observe_inputs(
        self, dropped: Callable[[], Mapping[str, int]], depth: Callable[[], Mapping[str, int]]
    ) -> None:
        """Report drops and queue depth per input from these readers at each metric export.

        Example::

            telemetry.observe_inputs(lambda: inbox.dropped, lambda: {"image": 0})
        """
        if self._providers.meter_provider is None:
            return
        meter = self._providers.meter_provider.get_meter(INSTRUMENTATION)

        def drops(_options: CallbackOptions) -> list[Observation]:
            return [Observation(n, self._input_attrs(k)) for k, n in dict(dropped()).items()]

        def queued(_options: CallbackOptions) -> list[Observation]:
            return [Observation(n, self._input_attrs(k)) for k, n in dict(depth()).items()]

        meter.create_observable_counter(
            "doradus.messages.dropped", [drops], "{message}", "Messages dropped per input (queue policy)"
        )
        meter.create_observable_gauge(
            "doradus.queue.depth", [queued], "{message}", "Messages queued per input"
        )

    def _input_attrs(self, input_id: str) -> dict[str, str]:
        attrs = self._in_attrs.get(input_id)
        if attrs is None:
            attrs = self._in_attrs[input_id] = {
                **self._base,
                "doradus.input": input_id,
                "source": self._sources.get(input_id, ""),
                "target": f"{self.node_id}/{input_id}",
            }
        return attrs

    # ------------------------------------------------------------ messages
    def current_ids(self) -> tuple[str | None, str | None]:
        """(trace id, span id) in hex of the message this thread is processing, else (None, None).

        Example::

            trace_id, span_id = telemetry.current_ids()
        """
        span = getattr(self._local, "span", None)
        if span is None:
            return None, None
        ctx = span.get_span_context()
        return f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}"

    def on_send(self, output_id: str, metadata: dict[str, Any] | None, size: int) -> dict[str, Any] | None:
        """Count a message and record its ``send`` span; returns metadata with the trace context.

        Example::

            metadata = telemetry.on_send("image", {"seq": 1}, 4096)
        """
        attrs = self._out_attrs.get(output_id)
        if attrs is None:
            attrs = self._out_attrs[output_id] = {**self._base, "doradus.output": output_id}
        if self._sent is not None:
            self._sent.add(1, attrs)
            self._bytes.add(size, attrs)
        if self.tracer is None:
            return metadata
        current = getattr(self._local, "span", None)
        parent = trace.set_span_in_context(current) if current is not None else None
        span = self.tracer.start_span(f"send {output_id}", parent, SpanKind.PRODUCER, attrs)
        ctx = span.get_span_context()
        span.end()
        out = dict(metadata) if metadata else {}
        out[CONTEXT_KEY] = format_context(ctx.trace_id, ctx.span_id, ctx.trace_flags.sampled)
        return out

    def on_receive(self, input_id: str, metadata: Mapping[str, Any], latency_ns: int) -> None:
        """Count a message, record its latency and start its ``receive`` span (current until the next).

        Example::

            telemetry.on_receive("image", event.metadata, 120_000)
        """
        attrs = self._edge_attrs.get(input_id)
        if attrs is None:
            attrs = self._edge_attrs[input_id] = self._input_attrs(input_id)
        if self._received is not None:
            self._received.add(1, attrs)
            self._latency.record(max(0, latency_ns) / 1e9, attrs)
        if self.tracer is None:
            return
        self.end_processing()
        remote = parse_context(metadata.get(CONTEXT_KEY))
        parent = _span_context(*remote) if remote is not None else None
        self._local.span = self.tracer.start_span(f"receive {input_id}", parent, SpanKind.CONSUMER, attrs)

    def end_processing(self) -> None:
        """End this thread's ``receive`` span: the node asked for its next event.

        Example::

            telemetry.end_processing()
        """
        span = getattr(self._local, "span", None)
        if span is not None:
            self._local.span = None
            span.end()

    def shutdown(self) -> None:
        """End the current span and flush every signal.

        Example::

            telemetry.shutdown()
        """
        self.end_processing()
        self._providers.shutdown()


class RuntimeTelemetry:
    """The runtime's telemetry: node lifetime spans, log records, CPU and memory per node.

    Example::

        telemetry = RuntimeTelemetry.create(dataflow="demo", run_id="01J...", machine="robot")
        if telemetry is not None:
            telemetry.node_started("camera", pid=1234)
            telemetry.node_ended("camera", 0)
            telemetry.shutdown()
    """

    def __init__(self, providers: Providers, dataflow: str, run_id: str, machine: str) -> None:
        self._providers = providers
        self.dataflow = dataflow
        self.run_id = run_id
        self.machine = machine
        self._spans: dict[str, Any] = {}
        self._lock = threading.Lock()
        self.tracer = (
            providers.tracer_provider.get_tracer(INSTRUMENTATION) if providers.tracer_provider else None
        )
        self.logger = (
            providers.logger_provider.get_logger(INSTRUMENTATION) if providers.logger_provider else None
        )

    @classmethod
    def create(
        cls, *, dataflow: str, run_id: str, machine: str, signals: frozenset[str] | None = None
    ) -> RuntimeTelemetry | None:
        """The runtime's telemetry, or None when no export is configured.

        Example::

            RuntimeTelemetry.create(dataflow="d", run_id="r", machine="m", signals=frozenset())  # None
        """
        signals = enabled_signals() if signals is None else signals
        if not signals:
            return None
        attrs = {"doradus.dataflow": dataflow, "doradus.run_id": run_id, "doradus.machine": machine}
        return cls(Providers(signals, resource_of(attrs)), dataflow, run_id, machine)

    def _attrs(self, node_id: str | None) -> dict[str, str]:
        attrs = {
            "doradus.dataflow": self.dataflow,
            "doradus.run_id": self.run_id,
            "doradus.machine": self.machine,
        }
        if node_id is not None:
            attrs["doradus.node.id"] = node_id
        return attrs

    def observe_nodes(self, sample: Callable[[], Mapping[str, Mapping[str, Any]]]) -> None:
        """Report CPU % and resident memory per node from ``sample()`` at each metric export.

        ``sample`` returns node id → ``{"cpu_percent": ..., "memory_bytes": ...}``.

        Example::

            telemetry.observe_nodes(daemon.node_metrics)
        """
        if self._providers.meter_provider is None:
            return
        meter = self._providers.meter_provider.get_meter(INSTRUMENTATION)
        cache: dict[str, Any] = {"at": 0.0, "value": {}}

        def snapshot() -> Mapping[str, Mapping[str, Any]]:
            if time.monotonic() - cache["at"] > 0.2:  # both callbacks of one export share a sample
                cache["value"] = sample()
                cache["at"] = time.monotonic()
            value: Mapping[str, Mapping[str, Any]] = cache["value"]
            return value

        def cpu(_options: CallbackOptions) -> list[Observation]:
            return [
                Observation(float(m["cpu_percent"]), self._attrs(node_id))
                for node_id, m in snapshot().items()
                if m.get("cpu_percent") is not None
            ]

        def memory(_options: CallbackOptions) -> list[Observation]:
            return [
                Observation(int(m["memory_bytes"]), self._attrs(node_id))
                for node_id, m in snapshot().items()
                if m.get("memory_bytes") is not None
            ]

        meter.create_observable_gauge("doradus.node.cpu", [cpu], "%", "CPU use of the node's processes")
        meter.create_observable_gauge("doradus.node.memory", [memory], "By", "Resident memory of the node")

    def node_started(self, node_id: str, pid: int | None) -> None:
        """Open the node's lifetime span.

        Example::

            telemetry.node_started("camera", 1234)
        """
        if self.tracer is None:
            return
        attrs: dict[str, Any] = self._attrs(node_id)
        if pid is not None:
            attrs["process.pid"] = pid
        span = self.tracer.start_span(f"node {node_id}", kind=SpanKind.INTERNAL, attributes=attrs)
        with self._lock:
            self._spans[node_id] = span

    def node_ended(self, node_id: str, returncode: int | None, reason: str | None = None) -> None:
        """Close the node's lifetime span, with an error status when it failed.

        Example::

            telemetry.node_ended("camera", 1, "exit status 1")
        """
        with self._lock:
            span = self._spans.pop(node_id, None)
        if span is None:
            return
        span.set_attribute("process.exit.code", -1 if returncode is None else returncode)
        if returncode not in (0, None):
            span.set_status(Status(StatusCode.ERROR, reason or f"exit status {returncode}"))
        span.end()

    def emit(self, record: Mapping[str, Any]) -> None:
        """Export one log record (see ``doradus._observability.records``), in its trace when it has one.

        Example::

            telemetry.emit(make_record("ERROR", "no camera", node="camera"))
        """
        if self.logger is None:
            return
        attrs: dict[str, Any] = self._attrs(record.get("node"))
        attrs["doradus.source"] = record.get("source") or "log"
        for key, value in (record.get("fields") or {}).items():
            attrs[f"doradus.field.{key}"] = (
                value if isinstance(value, str | int | float | bool) else str(value)
            )
        context = None
        trace_id, span_id = record.get("trace_id"), record.get("span_id")
        if trace_id and span_id:
            try:
                context = _span_context(int(trace_id, 16), int(span_id, 16), True)
            except ValueError:
                context = None
        level = str(record.get("level") or "INFO")
        self.logger.emit(
            timestamp=_record_ns(record),
            observed_timestamp=time.time_ns(),
            context=context,
            severity_number=_SEVERITY.get(level, SeverityNumber.INFO),
            severity_text=level,
            body=str(record.get("message", "")),
            attributes=attrs,
        )

    def shutdown(self) -> None:
        """Close open lifetime spans and flush every signal.

        Example::

            telemetry.shutdown()
        """
        with self._lock:
            spans, self._spans = list(self._spans.values()), {}
        for span in spans:
            span.end()
        self._providers.shutdown()


def _record_ns(record: Mapping[str, Any]) -> int:
    from doradus._observability.records import parse_timestamp

    try:
        return int(parse_timestamp(str(record["timestamp"])) * 1e9)
    except (KeyError, ValueError):
        return time.time_ns()
