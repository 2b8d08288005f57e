"""Everything the coordinator knows of a node, over the API: what ``doradus node list|info`` show.

`register_node_info_routes` adds::

    GET /api/v1/dataflows/{name_or_id}/nodes          every node of the dataflow (list of NodeInfo)
    GET /api/v1/dataflows/{name_or_id}/nodes/{node}   one node (NodeInfo); 404 when it has none

A `NodeInfo` puts together the node's reported state and metrics (`NodeStatus`), where it runs
(``placement``, else the dataflow's machine), what the dataflow's text says of it
(`doradus._control.node_facts`: kind, path, its inputs' queues, who reads its outputs; the
outputs' backends and data formats as the live stream reads them,
`doradus._control.stream_stats.read_link_facts`), its rates and latencies per input and
output over the last reports (the stream's `RateBook`), and its parameters. The text is read
once per dataflow (off the event loop) and read again after it changed (``node set
--data-format``).

Example::

    register_node_info_routes(app, state)   # in create_app
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from fastapi import FastAPI

from doradus._control.models import ERROR_RESPONSES, NodeStatus
from doradus._control.node_facts import NodeFacts, read_node_facts, receivers_of
from doradus._control.node_models import InputInfo, NodeInfo, OutputInfo
from doradus._control.state import CoordinatorState, Run, fail
from doradus._control.stream_models import NodeRates
from doradus._control.stream_stats import REPORT_PERIOD, LinkFacts, RateBook, rate_window, read_link_facts
from doradus._dataflow.model import InputSource, NodeSource

WINDOW = rate_window(REPORT_PERIOD)
"""Seconds the rates of ``node info`` span: two of the nodes' reports."""
_SHARED = frozenset(NodeInfo.model_fields) & frozenset(NodeStatus.model_fields) - {"inputs", "outputs"}
"""The fields a `NodeInfo` takes from the node's `NodeStatus` as they are."""


@dataclass(frozen=True)
class TextFacts:
    """What one dataflow text says of its nodes and edges (`read_text_facts`)."""

    text: str
    nodes: dict[str, NodeFacts]
    links: LinkFacts | None


def read_text_facts(text: str, path: str) -> TextFacts:
    r"""The nodes' facts and the edges' backends and formats ``text`` gives (reads no file).

    Example:
        >>> facts = read_text_facts("nodes:\n  - id: a\n    path: a.py\n", "/srv/flow.yml")
        >>> facts.nodes["a"].kind, facts.links.link("a", "out", "b", {})
        ('python', ('shm', 'arrow'))
    """
    return TextFacts(text, read_node_facts(text, path), read_link_facts(text, path))


def register_node_info_routes(app: FastAPI, state: CoordinatorState) -> None:
    """Add the node list and info routes (see the module documentation) to the coordinator's ``app``.

    Example:
        >>> from doradus._control.coordinator import create_app
        >>> "/api/v1/dataflows/{name_or_id}/nodes/{node}" in create_app().openapi()["paths"]
        True
    """
    known: dict[str, TextFacts] = {}

    async def facts_of(run: Run) -> TextFacts | None:
        if run.text is None:
            return None
        cached = known.get(run.id)
        if cached is None or cached.text != run.text:
            cached = known[run.id] = await asyncio.to_thread(read_text_facts, run.text, run.path)
        for gone in [run_id for run_id in known if run_id not in state.dataflows]:
            del known[gone]
        return cached

    @app.get("/api/v1/dataflows/{name_or_id}/nodes", response_model=list[NodeInfo], responses=ERROR_RESPONSES)
    async def list_nodes(name_or_id: str) -> list[NodeInfo]:
        """Every node of the dataflow: its state, where it runs, its metrics, inputs and outputs."""
        run = state.find(name_or_id)
        facts = await facts_of(run)
        book = _rate_book(state)
        return [node_info(run, node, facts, book) for node in run.nodes]

    @app.get(
        "/api/v1/dataflows/{name_or_id}/nodes/{node}", response_model=NodeInfo, responses=ERROR_RESPONSES
    )
    async def get_node(name_or_id: str, node: str) -> NodeInfo:
        """One node: state and reason, pid, machine, kind and path, inputs and outputs, restarts, CPU."""
        run = state.find(name_or_id)
        if node not in run.nodes:
            known_nodes = ", ".join(sorted(run.nodes)) or "none"
            raise fail(
                404,
                f"dataflow {run.name!r} has no node {node!r} (its nodes: {known_nodes})",
                f"see its nodes with `doradus node list --dataflow {run.name}`",
            )
        return node_info(run, node, await facts_of(run), _rate_book(state))


def _rate_book(state: CoordinatorState) -> RateBook | None:
    """The live stream's record of the nodes' reports (None in an application without the stream)."""
    for observer in state.observers:
        book = getattr(observer, "book", None)
        if isinstance(book, RateBook):
            return book
    return None


def node_info(run: Run, node: str, facts: TextFacts | None, book: RateBook | None) -> NodeInfo:
    """The `NodeInfo` of ``node`` of ``run``, from its status, ``facts`` and the rates in ``book``.

    Example:
        >>> from doradus._control.models import OutputStats
        >>> run = Run(id="r", name="demo", path="/srv/flow.yml", machine="vm", external=True)
        >>> run.nodes["cam"] = NodeStatus(state="running", pid=42, outputs={"out": OutputStats(sent=3)})
        >>> info = node_info(run, "cam", None, None)
        >>> info.machine, info.pid, info.outputs["out"].sent, info.kind
        ('vm', 42, 3, None)
    """
    status = run.nodes[node]
    own = facts.nodes.get(node, NodeFacts()) if facts is not None else NodeFacts()
    seen = _Seen(run, node, book, time.monotonic())
    return NodeInfo(
        **status.model_dump(include=set(_SHARED)),
        node=node,
        dataflow=run.name,
        dataflow_id=run.id,
        machine=run.placement.get(node, run.machine),
        kind=own.kind,
        path=own.path,
        inputs=_inputs(status, own, seen),
        outputs=_outputs(status, own, facts, seen),
        rate_window_s=WINDOW,
        parameters=dict(run.params.get(node, {})),
    )


@dataclass(frozen=True)
class _Seen:
    """One node of a run, and its rates now (None without the stream's reports)."""

    run: Run
    node: str
    book: RateBook | None
    now: float

    @property
    def rates(self) -> NodeRates | None:
        return None if self.book is None else self.book.rates(self.run.id, self.node, WINDOW, self.now)


def _inputs(status: NodeStatus, own: NodeFacts, seen: _Seen) -> dict[str, InputInfo]:
    """Each input: as reported, with its queue as written (those not reported yet too)."""
    rates = seen.rates
    inputs = {}
    for input_id in [*status.inputs, *(i for i in own.inputs if i not in status.inputs)]:
        stats = status.inputs.get(input_id)
        spec = own.inputs.get(input_id)
        latency = None
        if seen.book is not None and stats is not None:
            latency = seen.book.p50_us(seen.run.id, seen.node, input_id, stats, WINDOW, seen.now)
        counted = stats.model_dump() if stats is not None else {}
        if stats is None and spec is not None:
            counted["source"] = _source_text(spec.source)
        inputs[input_id] = InputInfo(
            **counted,
            queue_size=spec.queue_size if spec else None,
            queue_policy=spec.queue_policy if spec else None,
            input_timeout_s=spec.input_timeout if spec else None,
            rate=rates.inputs.get(input_id) if rates else None,
            p50_latency_us=latency,
        )
    return inputs


def _outputs(
    status: NodeStatus, own: NodeFacts, facts: TextFacts | None, seen: _Seen
) -> dict[str, OutputInfo]:
    """Each output: as reported, with its format, backends and readers (those not reported yet too)."""
    rates = seen.rates
    readers = receivers_of(facts.nodes, seen.node) if facts is not None else {}
    links = facts.links if facts is not None else None
    outputs = {}
    for output in [*status.outputs, *(o for o in own.outputs if o not in status.outputs)]:
        sent = status.outputs.get(output)
        edges = (
            [
                links.link(seen.node, output, reader.partition("/")[0], seen.run.placement)
                for reader in readers.get(output, [])
            ]
            if links is not None
            else []
        )
        written = links.link(seen.node, output, "", seen.run.placement)[1] if links is not None else None
        outputs[output] = OutputInfo(
            **(sent.model_dump() if sent is not None else {}),
            rate=rates.outputs.get(output) if rates else None,
            bytes_rate=rates.bytes_out.get(output) if rates else None,
            data_format=status.data_formats.get(output) or written,
            backends=sorted({backend for backend, _format in edges if backend}),
            receivers=readers.get(output, []),
        )
    return outputs


def _source_text(source: InputSource) -> str:
    """An input's source as written: ``node/output``, a timer or the logs."""
    return f"{source.node}/{source.output}" if isinstance(source, NodeSource) else source.source
