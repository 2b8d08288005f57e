"""What a node learns from its daemon when it registers: its `NodeConfig`.

The configuration names the run, the node's inputs (their kind, source, queue and, for a
node-fed input not in Arrow, its data format), its outputs and their formats, and the links
the daemon wired for it (`doradus._runtime.links`); socket-pair ends ride along with the
``config`` message (`doradus._runtime.control_socket`).

Example:
    >>> from pathlib import Path
    >>> from doradus._dataflow.model import Dataflow
    >>> flow = Dataflow(path=Path("/tmp/df.yml"), nodes=(NodeSpec(id="a", kind="python", outputs=("out",)),))
    >>> state = RunState.create(flow, run_id="r1", machine="m1", out_dir=Path("/tmp/out/r1"))
    >>> config = node_config(state, state.nodes["a"])
    >>> config["outputs"], config["links"], config["descriptor"]
    (['out'], [], '/tmp/out/r1/dataflow.yml')
"""

from __future__ import annotations

from doradus._dataflow.model import InputSpec, LogSource, NodeSpec, TimerSource
from doradus._runtime.processes import NodeProcess
from doradus._runtime.state import RunState
from doradus._wire.node_config import InputConfig, NodeConfig

DESCRIPTOR_FILE = "dataflow.yml"
"""The copy of the dataflow's text in each run folder."""


def node_config(state: RunState, proc: NodeProcess) -> NodeConfig:
    """What a node learns when it registers: its inputs, outputs, formats and links.

    Example::

        node_config(state, state.nodes["camera"])["links"]   # [{'peer': 'detector', 'dir': 'out', ...}]
    """
    spec = proc.spec
    return {
        "node_id": spec.id,
        "run_id": state.run_id,
        "dataflow": str(state.dataflow.path),
        "descriptor": str(state.out_dir / DESCRIPTOR_FILE),
        "dataflow_name": state.dataflow_name,
        "machine": state.machine,
        "inputs": {input_id: input_config(spec, input_id, inp) for input_id, inp in spec.inputs.items()},
        "outputs": list(spec.outputs),
        "output_formats": {o: f.to_json() for o, f in spec.output_formats.items() if f.name != "arrow"},
        "links": [link for link, _sock in proc.links],
        "backends": sorted({str(link["backend"]) for link, _sock in proc.links}),
        "restart_count": proc.restarts,
        # the daemon sends on it: the node itself may not (see `Node.send_output`)
        "stdout_output": spec.send_stdout_as if state.relays_stdout(spec.id) else None,
    }


def backpressure_windows(
    receiver: NodeSpec, routes: dict[str, list[str]], backend: str
) -> dict[str, dict[str, list[float]]]:
    """Per output of a link, the receiver's backpressure inputs it feeds: ``[queue_size, timeout]``.

    Empty when the link's backend does not apply backpressure (its inputs drop their oldest).

    Example:
        >>> from doradus._dataflow.model import NodeSource
        >>> x = InputSpec("x", NodeSource("a", "out"), 2, "backpressure", backpressure_timeout=1.5)
        >>> viewer = NodeSpec(id="b", kind="python", inputs={"x": x})
        >>> backpressure_windows(viewer, {"out": ["x"]}, "shm")
        {'out': {'x': [2, 1.5]}}
        >>> backpressure_windows(viewer, {"out": ["x"]}, "zenoh")
        {}
    """
    from doradus.backends import backend_class

    if not backend_class(backend).applies_backpressure:
        return {}
    windows: dict[str, dict[str, list[float]]] = {}
    for output, inputs in routes.items():
        for input_id in inputs:
            inp = receiver.inputs.get(input_id)
            if inp is not None and inp.queue_policy == "backpressure":
                windows.setdefault(output, {})[input_id] = [inp.queue_size, inp.backpressure_timeout]
    return windows


def input_config(spec: NodeSpec, input_id: str, inp: InputSpec) -> InputConfig:
    """One input of a node's `NodeConfig`: its kind, source and queue.

    Example:
        >>> tick = InputSpec("tick", TimerSource("dora/timer/millis/100", 100_000_000))
        >>> config = input_config(NodeSpec(id="a", kind="python", inputs={"tick": tick}), "tick", tick)
        >>> config["kind"], config["interval_ns"]
        ('timer', 100000000)
    """
    entry = _input_entry(spec, input_id, inp)
    if inp.input_timeout is not None and spec.kind != "operator":  # operators: not applied yet
        entry["timeout"] = inp.input_timeout
    return entry


def _input_entry(spec: NodeSpec, input_id: str, inp: InputSpec) -> InputConfig:
    source = inp.source
    if isinstance(source, TimerSource):
        return {
            "queue_size": inp.queue_size,
            "policy": inp.queue_policy,
            "kind": "timer",
            "interval_ns": source.interval_ns,
            "source": source.source,
        }
    if isinstance(source, LogSource):
        return {
            "queue_size": inp.queue_size,
            "policy": inp.queue_policy,
            "kind": "logs",
            "source": source.source,
        }
    entry: InputConfig = {
        "queue_size": inp.queue_size,
        "policy": inp.queue_policy,
        "kind": "node",
        "source": str(source),
    }
    fmt = spec.input_formats.get(input_id)
    if fmt is not None and fmt.name != "arrow":
        entry["format"] = fmt.to_json()
    return entry
