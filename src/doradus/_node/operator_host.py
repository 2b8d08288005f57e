"""The runtime node that hosts Python operators (``operator:`` / ``operators:``).

Each operator is a ``class Operator`` with ``on_event(dora_event,
send_output)`` returning ``DoraStatus`` (0 continue, 1 stop this operator,
2 stop the node). Run as ``python -m doradus._node.operator_host`` by the daemon.

As in dora-rs, an operator has finished once it returns ``STOP`` or once all its
inputs are closed; an operator of the same node that reads its outputs
(``text/upper/word`` read inside ``text``) then sees that input close, after the
messages it sent, and the node ends when all its operators have finished. Such an
input closes here, in the node: its link, from the node to itself, closes only when
the node ends.

Example::

    class Operator:
        def on_event(self, dora_event, send_output):
            if dora_event["type"] == "INPUT":
                send_output("out", dora_event["value"], dora_event["metadata"])
            return DoraStatus.CONTINUE
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from doradus._dataflow.loader import load_dataflow_text
from doradus._dataflow.model import NodeSource, OperatorSpec
from doradus._node.config import descriptor_text
from doradus._node.dora import DoraStatus, to_dora_event
from doradus._node.events import Event, Input, InputClosed, Stop
from doradus._node.node import Node


class _Hosted:
    def __init__(self, spec: OperatorSpec, prefix: str, node: Node) -> None:
        self.spec = spec
        self.prefix = prefix
        self.node = node
        self.instance = _load_operator(spec.python)
        self.running = True
        self.open = set(spec.inputs)
        """Its inputs (its own ids) not closed yet: once none is left it has finished."""

    @property
    def outputs(self) -> list[str]:
        """Its outputs as the node names them (``op/out``)."""
        return [self.prefix + output for output in self.spec.outputs]

    def send_output(self, output_id: str, data: Any, metadata: dict[str, Any] | None = None) -> None:
        self.node.send_output(self.prefix + output_id, data, metadata)

    def dispatch(self, event: dict[str, Any]) -> int:
        status = self.instance.on_event(event, self.send_output)
        if status is None:
            return int(DoraStatus.CONTINUE)
        return int(getattr(status, "value", status))


class _Host:
    """Hands the node's events to its operators, and closes the inputs fed by a finished one.

    Example::

        host = _Host(node, hosted)
        for event in node:
            if not host.handle(event):
                break
    """

    def __init__(self, node: Node, hosted: Sequence[_Hosted]) -> None:
        self.node = node
        self.hosted = hosted
        self.readers: dict[str, list[str]] = {}
        """Output of an operator (``op/out``) → the node's inputs that read it (``other/in``)."""
        for op in hosted:
            for input_id, spec in op.spec.inputs.items():
                if isinstance(spec.source, NodeSource) and spec.source.node == node.id:
                    self.readers.setdefault(spec.source.output, []).append(op.prefix + input_id)
        self.closing: dict[str, int] = {}
        """Input of the node → the messages its finished sibling sent: it closes once all have come."""

    def target(self, input_id: str) -> tuple[_Hosted | None, str]:
        for op in self.hosted:
            if op.prefix and input_id.startswith(op.prefix):
                return op, input_id[len(op.prefix) :]
            if not op.prefix:
                return op, input_id
        return None, input_id

    def handle(self, event: Event) -> bool:
        """Hand ``event`` to its operator; False once the node is done."""
        if isinstance(event, Stop):
            return False  # as with dora-rs, operators see their inputs close but not the stop
        if isinstance(event, Input | InputClosed) and not self._deliver(event):
            return False
        if self.closing:
            self._close_arrived()
        return any(op.running for op in self.hosted)

    def _deliver(self, event: Input | InputClosed) -> bool:
        """Hand ``event`` to its operator if it still runs and the input is open; False: stop all."""
        op, local = self.target(event.id)
        if op is None or not op.running or (isinstance(event, InputClosed) and local not in op.open):
            return True
        return self._dispatch(op, local, event)

    def _dispatch(self, op: _Hosted, local: str, event: Input | InputClosed) -> bool:
        payload = to_dora_event(event)
        payload["id"] = local
        status = op.dispatch(payload)
        if status == DoraStatus.STOP_ALL:
            return False
        if isinstance(event, InputClosed):
            op.open.discard(local)
        if status == DoraStatus.STOP or not op.open:
            self._finished(op)
        return True

    def _finished(self, op: _Hosted) -> None:
        """``op`` will send nothing more: its readers in this node get their input closed."""
        op.running = False
        for output in op.outputs:
            for input_id in self.readers.get(output, ()):
                self.closing[input_id] = self.node.sent[output]

    def _close_arrived(self) -> None:
        """Close the inputs whose finished sibling's messages have all arrived.

        The inbox counts each message as it arrives (those its queue drops too), and
        keeps arrival order: the `InputClosed` comes after the last of them, and the
        node's own end-of-inputs reckoning (``ALL_INPUTS_CLOSED``) counts it.
        """
        inbox = self.node._inbox  # the node's own process: no link closes for these inputs
        for input_id, sent in list(self.closing.items()):
            if inbox.received[input_id] >= sent:
                del self.closing[input_id]
                inbox.push(None, InputClosed(input_id))


def _load_operator(path: Path) -> Any:
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    spec = importlib.util.spec_from_file_location(f"doradus_operator_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load operator file {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    operator_class: Callable[[], Any] | None = getattr(module, "Operator", None)
    if operator_class is None:
        raise ImportError(f"{path} defines no `class Operator`")
    return operator_class()


def main() -> None:
    """Host the operators of this node until they have finished or it is stopped.

    Example::

        python -m doradus._node.operator_host   # as the daemon starts an ``operators:`` node
    """
    node = Node()
    config = node._config
    flow = load_dataflow_text(descriptor_text(config), Path(config["dataflow"]))
    spec = flow.node(node.id)
    host = _Host(node, [_Hosted(op, f"{op.id}/" if op.id else "", node) for op in spec.operators])
    for event in node:
        if not host.handle(event):
            break


if __name__ == "__main__":
    main()
