"""What the live stream computes itself: rates from counter deltas, and each edge's backend and format.

Nodes report cumulative counters once a second (received per input, sent and bytes per
output, a latency histogram per input), relayed by their daemon. `RateBook` keeps, per node,
the reports whose counters moved, stamped when the coordinator received them, and turns the
difference between two of them into rates: over the client's interval, but never less than
two reports apart (`rate_window`), so a short interval does not see one report or none.

`read_link_facts` reads from a dataflow's text what an edge's backend and data format are:
the text alone, never a file (the coordinator opens no file a client names,
docs/security.md); the backend is chosen by `doradus._runtime.links.link_backend`, the data
format follows the descriptor's rules (``output_formats``, the node's ``data_format``, the
dataflow's ``default_data_format``, else Arrow). `edges_of` puts both together.

Example:
    >>> book = RateBook()
    >>> book.record("run", "sink", _status(received=0), now=10.0)
    >>> book.record("run", "sink", _status(received=40), now=12.0)
    >>> book.rates("run", "sink", window=2.0, now=12.5).inputs
    {'in': 20.0}
"""

from __future__ import annotations

from collections import deque
from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from doradus._control.models import InputStats, NodeStatus
from doradus._control.state import Run
from doradus._control.stream_models import Edge, NodeRates
from doradus._dataflow.loader import COMMUNICATION_0X, DORA_0X_BACKENDS
from doradus._dataflow.model import Dataflow, NodeSource, NodeSpec
from doradus._dataflow.sources import parse_source
from doradus._dataflow.yaml_positions import parse_yaml
from doradus._runtime.links import link_backend

REPORT_PERIOD = 1.0
"""Seconds between two reports of a node's counters."""
GRACE = 1.5 * REPORT_PERIOD
"""Counters unchanged for longer than this are taken as flat since then (rates fall towards 0)."""
KEPT_REPORTS = 128
"""Reports kept per node: enough for the longest window (60 s)."""


def rate_window(interval: float, report_period: float = REPORT_PERIOD) -> float:
    """Seconds the rates of an update span: ``interval``, but at least two reports.

    Example:
        >>> rate_window(0.2), rate_window(5.0)
        (2.0, 5.0)
    """
    return max(interval, 2 * report_period)


@dataclass(frozen=True)
class _Report:
    """One report's cumulative counters, and when the coordinator received it."""

    at: float
    received: dict[str, int]
    buckets: dict[str, tuple[int, ...]]
    sent: dict[str, int]
    bytes: dict[str, int]

    def counts(self) -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
        return self.received, self.sent, self.bytes


def _went_down(before: _Report, after: _Report) -> bool:
    """Whether a counter is lower than before (the node restarted and counts from 0)."""
    return any(
        new.get(key, 0) < value
        for old, new in zip(before.counts(), after.counts(), strict=True)
        for key, value in old.items()
    )


def _report(status: NodeStatus, now: float) -> _Report:
    return _Report(
        at=now,
        received={k: v.received for k, v in status.inputs.items()},
        buckets={k: tuple(v.latency_buckets) for k, v in status.inputs.items()},
        sent={k: v.sent for k, v in status.outputs.items()},
        bytes={k: v.bytes for k, v in status.outputs.items()},
    )


@dataclass
class RateBook:
    """Recent reports of every node's counters, to measure rates from (on the coordinator's loop).

    A report whose counters did not move within `GRACE` of the last one kept is not kept (the
    daemon may relay one node report twice); later, it is (the node is idle). A counter that
    went down (the node restarted) starts the node's history anew.
    """

    reports: dict[str, dict[str, deque[_Report]]] = field(default_factory=dict)
    """Run id → node id → its kept reports, oldest first."""

    def record(self, run_id: str, node_id: str, status: NodeStatus, now: float) -> None:
        """Keep the counters ``status`` holds now (call when a report of them arrived).

        Example:
            >>> book = RateBook()
            >>> book.record("r", "a", _status(received=5), now=1.0)
            >>> book.record("r", "a", _status(received=5), now=1.1)  # the same report relayed again
            >>> len(book.reports["r"]["a"])
            1
        """
        report = _report(status, now)
        kept = self.reports.setdefault(run_id, {}).setdefault(node_id, deque(maxlen=KEPT_REPORTS))
        if kept:
            last = kept[-1]
            if report.counts() == last.counts() and now - last.at <= GRACE:
                return  # the same node report relayed again, or too soon to say the node is idle
            if _went_down(last, report):
                kept.clear()
        kept.append(report)

    def forget(self, keep: Container[str]) -> None:
        """Drop the reports of runs not in ``keep`` (forgotten by ``clean``).

        Example:
            >>> book = RateBook()
            >>> book.record("r", "a", _status(received=5), now=1.0)
            >>> book.forget(set()); book.reports
            {}
        """
        for run_id in [r for r in self.reports if r not in keep]:
            del self.reports[run_id]

    def _span(
        self, run_id: str, node_id: str, window: float, now: float
    ) -> tuple[_Report, _Report, float] | None:
        """(first, last, seconds) of the reports a rate over ``window`` is measured between."""
        kept = self.reports.get(run_id, {}).get(node_id)
        if not kept:
            return None
        last = kept[-1]
        end = max(last.at, now - GRACE)
        first = None
        for report in reversed(kept):
            first = report
            if end - report.at >= 0.9 * window:
                break
        assert first is not None
        seconds = end - first.at
        return None if seconds <= 0 else (first, last, seconds)

    def rates(self, run_id: str, node_id: str, window: float, now: float) -> NodeRates:
        """The node's rates per input and output over ``window`` seconds (null: fewer than two reports).

        Example:
            >>> book = RateBook()
            >>> book.record("r", "a", _status(received=0), now=0.0)
            >>> book.rates("r", "a", window=2.0, now=0.5).inputs
            {'in': None}
        """
        kept = self.reports.get(run_id, {}).get(node_id)
        if not kept:
            return NodeRates()
        span = self._span(run_id, node_id, window, now)
        names = kept[-1]

        def per_second(key: str) -> dict[str, float | None]:
            if span is None:
                return dict.fromkeys(getattr(names, key))
            first, last, seconds = span
            old: dict[str, int] = getattr(first, key)
            return {k: round(max(0, v - old.get(k, 0)) / seconds, 2) for k, v in getattr(last, key).items()}

        return NodeRates(
            inputs=per_second("received"), outputs=per_second("sent"), bytes_out=per_second("bytes")
        )

    def p50_us(
        self, run_id: str, node_id: str, input_id: str, stats: InputStats, window: float, now: float
    ) -> float | None:
        """The median latency of one input: over ``window`` when messages arrived in it, else overall.

        Example:
            >>> book = RateBook()
            >>> stats = InputStats(latency_bounds_us=[100, 200], latency_buckets=[0, 4, 0])
            >>> book.p50_us("r", "a", "in", stats, window=2.0, now=0.0)
            150.0
        """
        overall = list(stats.latency_buckets)
        span = self._span(run_id, node_id, window, now)
        if span is not None:
            first, last = span[0], span[1]
            new, old = last.buckets.get(input_id, ()), first.buckets.get(input_id, ())
            if len(new) == len(old) and sum(new) > sum(old):
                return median_us(stats.latency_bounds_us, [a - b for a, b in zip(new, old, strict=True)])
        return median_us(stats.latency_bounds_us, overall)


def median_us(bounds_us: Sequence[float], counts: Sequence[int]) -> float | None:
    """The median of a latency histogram, interpolated inside its bucket (µs); None when empty.

    ``counts`` are per bucket (not cumulative), one more than ``bounds_us``: the last
    bucket has no upper bound, and a median there is given as the highest bound.

    Example:
        >>> median_us([100, 1000], [1, 2, 1])
        550.0
        >>> median_us([100, 1000], [0, 0, 3]), median_us([100], [])
        (1000.0, None)
    """
    total = sum(counts)
    if total <= 0 or len(counts) != len(bounds_us) + 1:
        return None
    half = total / 2
    seen = 0
    for index, count in enumerate(counts):
        if count and seen + count >= half:
            if index == len(bounds_us):
                return float(bounds_us[-1]) if bounds_us else None
            low = float(bounds_us[index - 1]) if index else 0.0
            return round(low + (float(bounds_us[index]) - low) * (half - seen) / count, 1)
        seen += count
    return None


@dataclass(frozen=True)
class LinkFacts:
    r"""What a dataflow's text says about its edges: each sender's backend and each output's format.

    Example:
        >>> facts = read_link_facts("nodes:\n  - id: a\n    data_format: json\n", "/srv/flow.yml")
        >>> facts.link("a", "out", "b", {})
        ('shm', 'json')
    """

    flow: Dataflow
    formats: dict[str, tuple[str, Mapping[str, Any]]]
    """Node id → (its own data format, its ``output_formats`` as written)."""

    def link(
        self, sender: str, output: str, receiver: str, placement: Mapping[str, str]
    ) -> tuple[str | None, str | None]:
        """(backend, data format) of the edge ``sender/output`` → ``receiver`` (None: not in the text)."""
        try:
            spec = self.flow.node(sender)
        except KeyError:
            return None, None
        crossing = bool(placement) and placement.get(sender) != placement.get(receiver)
        own, declared = self.formats[sender]
        value = declared.get(output)
        if isinstance(value, str):
            data_format = value
        elif isinstance(value, dict):
            data_format = _format_name(value.get("data_format")) or own
        else:
            data_format = own
        return link_backend(self.flow, spec, remote=crossing), data_format


def _format_name(value: object) -> str | None:
    """A ``data_format`` value's name: ``json``, or ``{format: capnp, schema: ...}``."""
    if isinstance(value, dict):
        value = value.get("format")
    return value if isinstance(value, str) and value else None


def _backend_0x(value: object) -> str | None:
    """A dora 0.x backend (``Tcp``, ``{Zenoh: {...}}``) as a Doradus backend name."""
    if isinstance(value, dict) and len(value) == 1:
        (value,) = value
    if not isinstance(value, str) or not value:
        return None
    return DORA_0X_BACKENDS.get(value.lower(), value.lower())


def read_link_facts(text: str, path: str) -> LinkFacts | None:
    r"""The backends and data formats a dataflow's text gives its edges; None when it is not readable.

    Reads nothing but ``text`` (see the module's docstring): no file is opened.

    Example:
        >>> text = "communication: {local: zenoh}\nnodes:\n  - id: a\n  - id: b\n    communication: tcp\n"
        >>> facts = read_link_facts(text, "/srv/flow.yml")
        >>> facts.link("a", "o", "b", {}), facts.link("b", "o", "a", {})
        (('zenoh', 'arrow'), ('tcp', 'arrow'))
    """
    document, _problems = parse_yaml(text, Path(path))
    top = None if document is None else document.value
    if not isinstance(top, dict) or not isinstance(top.get("nodes"), list):
        return None
    communication = dict(top["communication"]) if isinstance(top.get("communication"), dict) else {}
    for old, new in COMMUNICATION_0X.items():
        if communication.get(new) is None and _backend_0x(communication.get(old)) is not None:
            communication[new] = _backend_0x(communication[old])
    default = _format_name(top.get("default_data_format")) or "arrow"
    specs: list[NodeSpec] = []
    formats: dict[str, tuple[str, Mapping[str, Any]]] = {}
    for node in top["nodes"]:
        if not isinstance(node, dict) or not isinstance(node.get("id"), str):
            continue
        specs.append(NodeSpec(id=node["id"], kind="dynamic", communication=node.get("communication")))
        declared = node.get("output_formats")
        formats[node["id"]] = (
            _format_name(node.get("data_format")) or default,
            declared if isinstance(declared, dict) else {},
        )
    flow = Dataflow(path=Path(path), nodes=tuple(specs), communication=communication)
    return LinkFacts(flow, formats)


def edges_of(
    run: Run,
    facts: LinkFacts | None,
    rates: Mapping[str, NodeRates],
    book: RateBook,
    window: float,
    now: float,
) -> list[Edge]:
    """The edges of ``run``: every input fed by another node's output, as its node reported it.

    ``rates`` are the nodes' (`RateBook.rates`); ``book`` gives each input's median latency.

    Example:
        >>> from doradus._control.state import Run
        >>> run = Run(id="r", name="demo", path="/srv/flow.yml", machine="m")
        >>> run.nodes["sink"] = NodeStatus(inputs={"in": InputStats(source="src/out", received=7)})
        >>> [(e.source, e.target, e.received) for e in edges_of(run, None, {}, RateBook(), 2.0, 0.0)]
        [('src/out', 'sink/in', 7)]
    """
    edges = []
    for target, status in run.nodes.items():
        for input_id, stats in status.inputs.items():
            source = parse_source(stats.source) if stats.source else None
            if not isinstance(source, NodeSource):
                continue  # a timer or the logs: no edge
            backend, data_format = (
                facts.link(source.node, source.output, target, run.placement) if facts else (None, None)
            )
            rate = rates[target].inputs.get(input_id) if target in rates else None
            edges.append(
                Edge(
                    source=f"{source.node}/{source.output}",
                    target=f"{target}/{input_id}",
                    backend=backend,
                    data_format=data_format,
                    received=stats.received,
                    dropped=stats.dropped,
                    queued=stats.queued,
                    rate=rate,
                    p50_latency_us=book.p50_us(run.id, target, input_id, stats, window, now),
                )
            )
    return edges


def _status(received: int) -> NodeStatus:
    """A node's status with one input that received ``received`` messages (for the examples)."""
    return NodeStatus(inputs={"in": InputStats(source="src/out", received=received)})
