"""Prometheus metrics of the coordinator: ``GET /metrics`` in the text exposition format.

Every scrape builds the metric families afresh from `CoordinatorState`
(nothing is cached between scrapes), through a custom collector registered
on a private ``CollectorRegistry`` (never prometheus_client's global one,
so the coordinator's own process metrics do not leak in and several
coordinators in one process do not clash).

Every dataflow still in the coordinator's memory is exported: running ones,
and ended ones (finished, failed, stopped) with their final counters, so a
scrape after a dataflow ended still shows its totals. ``doradus clean``
forgets ended dataflows, and their series disappear with them.

Series (common labels ``dataflow`` (its name), ``run_id`` and ``node``)::

    doradus_messages_sent_total{dataflow,run_id,node,output}          counter
    doradus_bytes_sent_total{dataflow,run_id,node,output}             counter
    doradus_messages_received_total{dataflow,run_id,node,input,source} counter
    doradus_messages_dropped_total{dataflow,run_id,node,input,source}  counter
    doradus_backpressure_timeouts_total{dataflow,run_id,node,input,source} counter
    doradus_queue_depth{dataflow,run_id,node,input,source}             gauge
    doradus_message_latency_seconds{dataflow,run_id,node,source,target} histogram
    doradus_node_cpu_percent{dataflow,run_id,node}                     gauge (once measured)
    doradus_node_memory_bytes{dataflow,run_id,node}                    gauge (once measured)
    doradus_node_restarts_total{dataflow,run_id,node}                  counter
    doradus_node_errors_total{dataflow,run_id,node}                    counter (once measured)
    doradus_node_up{dataflow,run_id,node}                              gauge: 1 running or paused, else 0
    doradus_dataflow_running{dataflow,run_id}                          gauge: 1 running, else 0
    doradus_daemons_connected                                          gauge

The latency histogram exists per edge only: inputs whose source is another
node's output (``source="node/output"``, ``target="node/input"``, ``node``
is the receiving node); timer and log inputs have none. Daemons report
per-bucket (non-cumulative) counts with bounds in microseconds;
`cumulative_buckets` turns them into Prometheus's cumulative buckets with
``le`` bounds in seconds. The histogram's count is its ``+Inf`` bucket.

``/metrics`` needs the coordinator's token (on by default, see
docs/security.md) like every other route: ``Authorization: Bearer <token>``,
which Prometheus sends with ``authorization: {credentials_file: <token file>}``
(or ``bearer_token_file``) in the scrape config.

prometheus-client is optional (``pip install 'doradus[telemetry]'``): it is
imported on the first scrape, and without it ``/metrics`` answers 503.

Example::

    app = create_app()  # calls mount_metrics(app, app.state.coordinator)
    # curl http://127.0.0.1:6300/metrics
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, HTTPException
from fastapi.responses import Response

from doradus._dataflow.model import NodeSource
from doradus._dataflow.sources import parse_source

if TYPE_CHECKING:
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

    from doradus._control.models import InputStats, NodeStatus
    from doradus._control.state import CoordinatorState

MISSING_ERROR = "prometheus-client is not installed"
MISSING_FIX = "pip install 'doradus[telemetry]'"
_US_PER_SECOND = 1_000_000.0
_NODE_LABELS = ("dataflow", "run_id", "node")


def _go_float(value: float) -> str:
    """A bound as Prometheus writes it (``0.0005``, ``1e+06``, ``+Inf``)."""
    from prometheus_client.utils import floatToGoString

    go_format: Callable[[float], str] = floatToGoString  # untyped upstream
    return go_format(value)


def cumulative_buckets(bounds_us: Sequence[float], counts: Sequence[int]) -> list[tuple[str, float]]:
    """Prometheus histogram buckets from a daemon's per-bucket latency counts.

    Args:
        bounds_us: Upper bounds of the buckets in microseconds, ascending.
        counts: Messages per bucket, not cumulative, one more than ``bounds_us``
            (the last one is the ``+Inf`` bucket). Empty means no bucket was
            measured: only ``+Inf`` with 0 is returned.

    Returns:
        ``(le, cumulative count)`` pairs, ``le`` in seconds as Prometheus
        formats it, ending with ``+Inf`` (the total).

    Raises:
        ValueError: When ``counts`` does not have one entry more than ``bounds_us``.

    Example:
        >>> cumulative_buckets([100, 1000], [2, 3, 1])
        [('0.0001', 2.0), ('0.001', 5.0), ('+Inf', 6.0)]
    """
    if not counts:
        return [("+Inf", 0.0)]
    if len(counts) != len(bounds_us) + 1:
        raise ValueError(f"{len(counts)} bucket counts for {len(bounds_us)} bounds: expected one more")
    buckets: list[tuple[str, float]] = []
    total = 0.0
    for bound, count in zip([*bounds_us, float("inf")], counts, strict=True):
        total += count
        buckets.append((_go_float(bound / _US_PER_SECOND), total))
    return buckets


def is_edge(source: str | None) -> bool:
    """Whether an input's source is another node's output (not a timer, not logs).

    Args:
        source: The input's source string, as in `doradus._control.models.InputStats`.

    Returns:
        True for ``node/output``.

    Example:
        >>> is_edge("camera/image"), is_edge("dora/timer/millis/20"), is_edge(None)
        (True, False, False)
    """
    return source is not None and isinstance(parse_source(source), NodeSource)


class DoradusCollector:
    """A prometheus_client collector reading `CoordinatorState` on each scrape.

    Args:
        state: The coordinator's state; read only, from its event loop.

    Example:
        >>> from prometheus_client import CollectorRegistry
        >>> from doradus._control.state import CoordinatorState
        >>> CollectorRegistry().register(DoradusCollector(CoordinatorState()))
    """

    def __init__(self, state: CoordinatorState) -> None:
        self.state = state

    def describe(self) -> list[Any]:
        """No names up front: registering must not read the state.

        Returns:
            An empty list.

        Example:
            >>> from doradus._control.state import CoordinatorState
            >>> DoradusCollector(CoordinatorState()).describe()
            []
        """
        return []

    def collect(self) -> Iterator[Metric]:
        """The metric families, built from the state as it is now.

        Yields:
            prometheus_client ``Metric`` families (see the module docstring).

        Example:
            >>> from doradus._control.state import CoordinatorState
            >>> [m.name for m in DoradusCollector(CoordinatorState()).collect()][-1]
            'doradus_daemons_connected'
        """
        from prometheus_client.core import GaugeMetricFamily

        families = _Families.new()
        for flow in list(self.state.dataflows.values()):
            families.running.add_metric([flow.name, flow.id], 1.0 if flow.status == "running" else 0.0)
            for node_id, node in list(flow.nodes.items()):
                families.add_node([flow.name, flow.id, node_id], node)
        daemons = GaugeMetricFamily("doradus_daemons_connected", "Daemons connected to the coordinator.")
        daemons.add_metric([], float(sum(d.status == "connected" for d in self.state.daemons.values())))
        yield from families.in_order()
        yield daemons


@dataclass(frozen=True)
class _Families:
    """The per-node and per-edge metric families of one scrape, filled node by node."""

    sent: CounterMetricFamily
    sent_bytes: CounterMetricFamily
    received: CounterMetricFamily
    dropped: CounterMetricFamily
    timeouts: CounterMetricFamily
    queued: GaugeMetricFamily
    latency: HistogramMetricFamily
    cpu: GaugeMetricFamily
    memory: GaugeMetricFamily
    restarts: CounterMetricFamily
    errors: CounterMetricFamily
    up: GaugeMetricFamily
    running: GaugeMetricFamily

    @classmethod
    def new(cls) -> _Families:
        """Every family, empty."""
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

        out_labels = [*_NODE_LABELS, "output"]
        in_labels = [*_NODE_LABELS, "input", "source"]
        return cls(
            sent=CounterMetricFamily("doradus_messages_sent", "Messages sent per output.", labels=out_labels),
            sent_bytes=CounterMetricFamily(
                "doradus_bytes_sent", "Payload bytes sent per output.", labels=out_labels
            ),
            received=CounterMetricFamily(
                "doradus_messages_received", "Messages that arrived per input.", labels=in_labels
            ),
            dropped=CounterMetricFamily(
                "doradus_messages_dropped", "Messages dropped per input (queue full).", labels=in_labels
            ),
            timeouts=CounterMetricFamily(
                "doradus_backpressure_timeouts",
                "Messages not sent to a backpressure input: the sender's wait for room timed out.",
                labels=in_labels,
            ),
            queued=GaugeMetricFamily("doradus_queue_depth", "Messages waiting per input.", labels=in_labels),
            latency=HistogramMetricFamily(
                "doradus_message_latency_seconds",
                "One-way latency per edge: receive time minus the sender's timestamp.",
                labels=[*_NODE_LABELS, "source", "target"],
            ),
            cpu=GaugeMetricFamily(
                "doradus_node_cpu_percent", "CPU use of the node's process.", labels=_NODE_LABELS
            ),
            memory=GaugeMetricFamily(
                "doradus_node_memory_bytes", "Resident memory of the node's process.", labels=_NODE_LABELS
            ),
            restarts=CounterMetricFamily(
                "doradus_node_restarts", "Restarts of the node.", labels=_NODE_LABELS
            ),
            errors=CounterMetricFamily("doradus_node_errors", "Errors the node logged.", labels=_NODE_LABELS),
            up=GaugeMetricFamily(
                "doradus_node_up", "1 while the node is running (or paused), else 0.", labels=_NODE_LABELS
            ),
            running=GaugeMetricFamily(
                "doradus_dataflow_running",
                "1 while the dataflow is running, else 0.",
                labels=["dataflow", "run_id"],
            ),
        )

    def in_order(self) -> tuple[Metric, ...]:
        """The families in the order a scrape lists them (the module docstring's)."""
        return (
            *(self.sent, self.sent_bytes, self.received, self.dropped, self.timeouts, self.queued),
            self.latency,
            *(self.cpu, self.memory, self.restarts, self.errors, self.up, self.running),
        )

    def add_node(self, key: list[str], node: NodeStatus) -> None:
        """One node's series: its process, its outputs and its inputs (``key``: dataflow, run, node)."""
        self.up.add_metric(key, 1.0 if node.state in ("running", "paused") else 0.0)  # paused is up
        self.restarts.add_metric(key, float(node.restarts))
        if node.errors is not None:
            self.errors.add_metric(key, float(node.errors))
        if node.cpu_percent is not None:
            self.cpu.add_metric(key, float(node.cpu_percent))
        if node.memory_bytes is not None:
            self.memory.add_metric(key, float(node.memory_bytes))
        for output_id, output in node.outputs.items():
            self.sent.add_metric([*key, output_id], float(output.sent))
            self.sent_bytes.add_metric([*key, output_id], float(output.bytes))
        for input_id, stats in node.inputs.items():
            labels = [*key, input_id, stats.source or ""]
            self.received.add_metric(labels, float(stats.received))
            self.dropped.add_metric(labels, float(stats.dropped))
            self.timeouts.add_metric(labels, float(stats.backpressure_timeouts))
            self.queued.add_metric(labels, float(stats.queued))
            if is_edge(stats.source):
                self._add_latency(key, input_id, stats)

    def _add_latency(self, key: list[str], input_id: str, stats: InputStats) -> None:
        """The latency histogram of one edge into input ``input_id`` of the node ``key`` names."""
        try:
            buckets = cumulative_buckets(stats.latency_bounds_us, stats.latency_buckets)
        except ValueError:
            return  # a malformed report: better no histogram than a wrong one
        if not stats.latency_buckets and stats.latency_count:
            buckets = [("+Inf", float(stats.latency_count))]
        self.latency.add_metric(
            [*key, str(stats.source), f"{key[-1]}/{input_id}"],
            buckets,
            stats.latency_sum_us / _US_PER_SECOND,
        )


def mount_metrics(app: FastAPI, state: CoordinatorState) -> None:
    """Add ``GET /metrics`` (Prometheus text format) to the coordinator's app.

    The route is left out of the OpenAPI schema. prometheus-client is
    imported on the first scrape; when it is missing, the route answers 503
    with ``{"detail": {"error": ..., "fix": ...}}`` like every other error.

    Args:
        app: The coordinator's FastAPI application.
        state: The state the metrics are read from.

    Example:
        >>> from doradus._control.state import CoordinatorState
        >>> app = FastAPI()
        >>> mount_metrics(app, CoordinatorState())
        >>> any(getattr(r, "path", None) == "/metrics" for r in app.routes)
        True
    """
    registry: list[Any] = []  # the private CollectorRegistry, made on the first scrape

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        """Every series of the module docstring, built from the state now."""
        try:
            from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
        except ImportError as exc:
            raise HTTPException(503, detail={"error": MISSING_ERROR, "fix": MISSING_FIX}) from exc
        if not registry:
            private = CollectorRegistry(auto_describe=False)
            private.register(DoradusCollector(state))
            registry.append(private)
        # Runs on the event loop on purpose: the state is only touched from there.
        return Response(generate_latest(registry[0]), media_type=CONTENT_TYPE_LATEST)
