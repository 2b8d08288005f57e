"""A node restarting with a new data format: the change checked up front, then applied to the run.

`plan_format_change` applies a `FormatChange` to the run's dataflow text and checks it as
``doradus check`` does (`doradus._dataflow.format_change`); a refused change raises
`NodeActionError` (``status`` 422) with the checker's message and fix, before anything is
stopped. The restart (`doradus._runtime.restart`) then, once the old process has ended and
before the new one starts:

1. `apply_format_plan`: the run's record follows the change: its dataflow (what ``edges.json``
   and the run folder's ``dataflow.yml`` say), every node's spec (the restarted node's
   ``output_formats``, its receivers' ``input_formats``: what a node gets in its
   `NodeConfig` when it starts or restarts);
2. `tell_receivers`: each receiver running here gets ``input_format`` for each of its inputs
   reading the node, on its control socket, before the ``peer_links`` that bring it the new
   process's messages: it switches its decoder first.

Example::

    plan = plan_format_change(state, "middle", FormatChange("avro", "reading.avsc"), extra_env={})
    # ... the old process stopped ...
    with state.lock:
        apply_format_plan(state, plan)
        tell_receivers(state, plan)
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from doradus._dataflow.format_change import FormatChange, apply_format_change, first_problem
from doradus._dataflow.model import Dataflow, NodeSource, NodeSpec
from doradus._exceptions import DescriptorError
from doradus._runtime.actions import NodeActionError
from doradus._runtime.config import DESCRIPTOR_FILE
from doradus._runtime.state import RunState
from doradus._wire.control import InputFormatMessage, send_control
from doradus._wire.format_spec import FormatSpec


@dataclass(frozen=True)
class FormatPlan:
    """A checked change of node ``node_id``'s data format, and what it changes in the run.

    Example:
        >>> flow = Dataflow(Path("/f.yml"), ())
        >>> plan = FormatPlan("a", "nodes: []", flow, {}, {"b": {"x": FormatSpec()}})
        >>> plan.receivers["b"]["x"].name
        'arrow'
    """

    node_id: str
    text: str
    """The dataflow's text with the change applied."""
    flow: Dataflow
    """What that text loads to (every node's formats checked)."""
    outputs: dict[str, FormatSpec]
    """The node's outputs and their new formats."""
    receivers: dict[str, dict[str, FormatSpec]]
    """Each node reading the node's outputs → its inputs reading them → the format each reads now."""

    def describe(self) -> str:
        """The outputs' new formats, for the run's records.

        Example:
            >>> FormatPlan("a", "", Dataflow(Path("/f.yml"), ()), {"out": FormatSpec("avro")}, {}).describe()
            'out: avro'
        """
        return ", ".join(f"{output}: {spec}" for output, spec in self.outputs.items()) or "no outputs"


def plan_format_change(
    state: RunState, node_id: str, change: FormatChange, *, extra_env: Mapping[str, str] | None = None
) -> FormatPlan:
    """Check ``change`` of node ``node_id`` against the run's dataflow; what it would change.

    Args:
        state: the run.
        node_id: the node restarting with new formats.
        change: its new ``data_format`` and ``schema`` (as a dataflow file writes them).
        extra_env: the variables the run loaded its dataflow with (``run --env``).

    Raises:
        NodeActionError: ``status`` 422: the change is refused (the checker's message; the fix
            after ``;``), or the run has no dataflow text to apply it to.

    Example::

        plan_format_change(state, "middle", FormatChange("avro"))
        # NodeActionError: the new data format of node 'middle' is refused:
        #   data format `avro` needs a schema; add `schema: schemas/<file>.avsc`
    """
    with state.lock:
        text, path = state.dataflow.text, state.dataflow.path
    if not text:
        raise NodeActionError(
            f"the data format of node {node_id!r} cannot be changed: the run has no dataflow text "
            "(it was not loaded from a file); restart the dataflow with the new format instead",
            node_id=node_id,
            status=422,
        )
    try:
        new_text, flow = apply_format_change(text, path, node_id, change, extra_env=extra_env)
    except DescriptorError as exc:
        message, fix = first_problem(exc)
        raise NodeActionError(
            f"the new data format of node {node_id!r} is refused: {message}" + (f"; {fix}" if fix else ""),
            node_id=node_id,
            status=422,
        ) from exc
    spec = flow.node(node_id)
    receivers: dict[str, dict[str, FormatSpec]] = {}
    for other in flow.nodes:
        for input_id, inp in other.inputs.items():
            if isinstance(inp.source, NodeSource) and inp.source.node == node_id:
                receivers.setdefault(other.id, {})[input_id] = other.input_formats.get(input_id, FormatSpec())
    return FormatPlan(node_id, new_text, flow, dict(spec.output_formats), receivers)


def apply_format_plan(state: RunState, plan: FormatPlan) -> None:
    """Make the run's dataflow and every node's spec say the new formats (caller holds the lock).

    Only the formats are taken from the changed dataflow: what a restart changed in a spec
    (its ``env``, its ``args``) stays.

    Example::

        with state.lock:
            apply_format_plan(state, plan)
    """
    changed = {spec.id: spec for spec in plan.flow.nodes}

    def with_formats(spec: NodeSpec) -> NodeSpec:
        new = changed.get(spec.id)
        if new is None:
            return spec
        return dataclasses.replace(
            spec,
            data_format=new.data_format,
            output_formats=new.output_formats,
            input_formats=new.input_formats,
            raw=new.raw,
        )

    flow = state.dataflow
    state.dataflow = dataclasses.replace(
        flow, nodes=tuple(with_formats(s) for s in flow.nodes), raw=plan.flow.raw, text=plan.text
    )
    for node_id, spec in list(state.specs.items()):
        state.specs[node_id] = with_formats(spec)
    for proc in state.nodes.values():
        proc.spec = with_formats(proc.spec)


def tell_receivers(state: RunState, plan: FormatPlan) -> list[str]:
    """Send ``input_format`` to each running receiver here of the node's outputs; the nodes told.

    The caller holds the run's lock. A receiver not running yet learns its inputs' formats from
    its configuration when it registers; one whose connection is gone is skipped.

    Example::

        with state.lock:
            tell_receivers(state, plan)   # ['sink']
    """
    told = []
    for receiver, inputs in plan.receivers.items():
        proc = state.nodes.get(receiver)
        if receiver == plan.node_id or proc is None or proc.conn is None or proc.exited:
            continue
        try:
            for input_id, spec in inputs.items():
                message: InputFormatMessage = {
                    "op": "input_format",
                    "input": input_id,
                    "format": spec.to_json(),
                }
                send_control(proc.conn, message)
        except OSError:
            continue  # it has ended: its end is seen by the output thread
        told.append(receiver)
    return told


def write_descriptor(out_dir: Path, text: str) -> None:
    """Write or replace the run folder's copy of the dataflow text, atomically, mode 0600.

    Atomically: nodes may be reading it. Mode 0600: it may hold secrets (a broker's password).

    Example::

        write_descriptor(state.out_dir, plan.text)
    """
    target = out_dir / DESCRIPTOR_FILE
    if not target.parent.is_dir():
        return
    fd, temporary = tempfile.mkstemp(dir=out_dir, prefix=".dataflow-", suffix=".yml")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(temporary, target)
    except OSError:
        Path(temporary).unlink(missing_ok=True)
