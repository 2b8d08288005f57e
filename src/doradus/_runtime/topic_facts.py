"""What a run knows of each output (a *topic*): format, publisher, subscribers, backend, counters.

`topic_facts` answers ``doradus topic list`` and ``topic info``; `tap_refusal` says why an
output cannot be tapped here, if it cannot (`doradus._runtime.taps`); `node_backends` which
backends a node's links use, as its configuration named them.

Taps ride the ``shm`` backend (`doradus.backends._shm_taps`): a node whose links all use it
(or that has none) can take one. A node with links on other backends runs several backends at
once, and handing it a new link would open those again: it is refused, with the reason.

Example:
    >>> from pathlib import Path
    >>> from doradus._dataflow.model import Dataflow, InputSpec, NodeSource, NodeSpec
    >>> cam = NodeSpec(id="cam", kind="python", outputs=("image",))
    >>> frames = InputSpec("frames", NodeSource("cam", "image"))
    >>> det = NodeSpec(id="det", kind="python", inputs={"frames": frames})
    >>> state = RunState.create(Dataflow(path=Path("/tmp/df.yml"), nodes=(cam, det)),
    ...                         run_id="r1", machine="m1", out_dir=Path("/tmp/r1"))
    >>> facts = topic_facts(state, {})
    >>> facts[0]["topic"], facts[0]["subscribers"], facts[0]["backend"], facts[0]["state"]
    ('cam/image', ['det/frames'], 'shm', 'starting')
"""

from __future__ import annotations

from collections.abc import Mapping

from doradus._dataflow.model import NodeSource, NodeSpec
from doradus._runtime.links import _links_of, link_backend
from doradus._runtime.processes import NodeProcess
from doradus._runtime.state import RunState
from doradus._runtime.topic_messages import OutputCounters, TopicError, TopicFacts

TAP_BACKEND = "shm"
"""The backend taps ride (`doradus.backends._shm_taps`)."""
FIX_LIST = "see the outputs with `doradus topic list`"


def topic_facts(state: RunState, placement: Mapping[str, str]) -> list[TopicFacts]:
    """Every output of the dataflow, in dataflow order (caller does not hold the run's lock).

    Example::

        topic_facts(state, {})[0]["counters"]   # {'sent': 120, 'bytes': 960, 'at': 5123.4}
    """
    with state.lock:
        return [
            _facts(state, spec, output, placement) for spec in state.specs.values() for output in spec.outputs
        ]


def _facts(state: RunState, spec: NodeSpec, output: str, placement: Mapping[str, str]) -> TopicFacts:
    proc = state.nodes.get(spec.id)
    fmt = spec.output_formats.get(output)
    schema = None
    if fmt is not None and getattr(fmt, "schema", None) is not None:
        schema = fmt.schema.name + (f":{fmt.type}" if fmt.type else "")
    counters: OutputCounters | None = None
    if proc is not None and proc.stats is not None and output in proc.stats.outputs:
        sent = proc.stats.outputs[output]
        counters = {
            "sent": int(sent.get("sent", 0)),
            "bytes": int(sent.get("bytes", 0)),
            "at": proc.stats.counted.at,
        }
    return {
        "topic": f"{spec.id}/{output}",
        "node": spec.id,
        "output": output,
        "format": getattr(fmt, "name", "arrow"),
        "schema": schema,
        "machine": state.machine if proc is not None else placement.get(spec.id, "?"),
        "state": _state_of(proc),
        "subscribers": subscribers(state, spec.id, output),
        "backend": state.edge_backends.get((spec.id, output)) or link_backend(state.dataflow, spec),
        "tappable": _reason(_why_not(state, spec.id, output, placement)),
        "counters": counters,
    }


def _reason(refusal: TopicError | None) -> str | None:
    return None if refusal is None else str(refusal)


def _state_of(proc: NodeProcess | None) -> str:
    if proc is None:
        return "elsewhere"
    if proc.restarting:
        return "restarting"
    if proc.exited:
        return "exited"
    return "running" if proc.registered else "starting"


def subscribers(state: RunState, node_id: str, output: str) -> list[str]:
    """The ``NODE/INPUT`` reading ``node_id``'s ``output``, in dataflow order.

    Example::

        subscribers(state, "cam", "image")   # ['det/frames']
    """
    return [
        f"{spec.id}/{input_id}"
        for spec in state.specs.values()
        for input_id, inp in spec.inputs.items()
        if isinstance(inp.source, NodeSource) and inp.source.node == node_id and inp.source.output == output
    ]


def node_backends(state: RunState, node_id: str) -> set[str]:
    """The backends of ``node_id``'s links, as its configuration named them (empty: it has none).

    Example::

        node_backends(state, "cam")   # {'shm'}
    """
    found = set()
    for (sender, receiver), link in _links_of(state.dataflow).items():
        if node_id not in (sender, receiver) or not link.routes:
            continue
        crossing = not (sender in state.nodes and receiver in state.nodes)
        found.add(link_backend(state.dataflow, state.specs[sender], remote=crossing))
    return found


def check_output(state: RunState, node_id: str, output: str) -> NodeSpec:
    """The spec of ``node_id`` if it has ``output`` (caller holds the run's lock).

    Raises:
        TopicError: no such node or output.

    Example::

        check_output(state, "cam", "image").id   # 'cam'
    """
    spec = state.specs.get(node_id)
    if spec is None:
        raise TopicError(f"dataflow {state.dataflow_name!r} has no node {node_id!r}", FIX_LIST)
    if output not in spec.outputs:
        have = ", ".join(spec.outputs) or "none"
        raise TopicError(f"node {node_id!r} has no output {output!r} (its outputs: {have})", FIX_LIST)
    return spec


def tap_refusal(
    state: RunState, node_id: str, output: str, placement: Mapping[str, str]
) -> TopicError | None:
    """Why ``node_id``'s ``output`` cannot be tapped here now; None if it can (caller holds the lock).

    Example::

        tap_refusal(state, "cam", "image", {})   # None
    """
    try:
        check_output(state, node_id, output)
    except TopicError as exc:
        return exc
    refusal = _why_not(state, node_id, output, placement)
    if refusal is not None:
        return refusal
    proc = state.nodes[node_id]
    if not state.started:  # a node takes new links once it has its start
        return TopicError(f"dataflow {state.dataflow_name!r} is starting", "try again in a moment")
    if proc.exited or proc.conn is None or proc.restarting:
        return TopicError(
            f"node {node_id!r} is {_state_of(proc)}, not running",
            "try again once it runs (`doradus list`, `doradus logs`)",
        )
    return None


def _why_not(state: RunState, node_id: str, output: str, placement: Mapping[str, str]) -> TopicError | None:
    """Why the output cannot be tapped on this machine, whatever the node's state; None if it can."""
    if node_id not in state.nodes:
        return TopicError(
            f"node {node_id!r} runs on machine {placement.get(node_id, '?')!r}, not on {state.machine!r}",
            "run the command on that machine",
        )
    spec = state.specs[node_id]
    if state.relays_stdout(node_id) and spec.send_stdout_as == output:
        return TopicError(
            f"output {output!r} carries the stdout lines of node {node_id!r}, which the daemon sends",
            "read the lines with `doradus logs`",
        )
    others = node_backends(state, node_id) - {TAP_BACKEND}
    if others:
        return TopicError(
            f"node {node_id!r} has links on {', '.join(sorted(others))}; taps ride the "
            f"{TAP_BACKEND} backend and need every link of the node on it",
            "record the output instead (`doradus record --topics`)",
        )
    return None
