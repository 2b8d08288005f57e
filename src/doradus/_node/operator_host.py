"""The runtime node that hosts Python operators (``operator:`` / ``operators:``).

Each operator is a ``class Operator`` with ``on_event(dora_event,
send_output)`` returning ``DoraStatus`` (0 continue, 1 stop this operator,
2 stop the node). Run as ``python -m doradus._node.operator_host`` by the daemon.

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
from collections.abc import Callable
from pathlib import Path
from typing import Any

from doradus._dataflow.loader import load_dataflow_text
from doradus._dataflow.model import OperatorSpec
from doradus._node.config import descriptor_text
from doradus._node.dora import DoraStatus, to_dora_event
from doradus._node.events import Input, InputClosed, Stop
from doradus._node.node import Node


class _Hosted:
    def __init__(self, spec: OperatorSpec, prefix: str, node: Node) -> None:
        self.spec = spec
        self.prefix = prefix
        self.node = node
        self.instance = _load_operator(spec.python)
        self.running = True

    def send_output(self, output_id: str, data: Any, metadata: dict[str, Any] | None = None) -> None:
        self.node.send_output(self.prefix + output_id, data, metadata)

    def dispatch(self, event: dict[str, Any]) -> int:
        status = self.instance.on_event(event, self.send_output)
        if status is None:
            return int(DoraStatus.CONTINUE)
        return int(getattr(status, "value", status))


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
    """Host the operators of this node until its inputs close or it is stopped."""
    node = Node()
    config = node._config
    flow = load_dataflow_text(descriptor_text(config), Path(config["dataflow"]))
    spec = flow.node(node.id)
    hosted = [_Hosted(op, f"{op.id}/" if op.id else "", node) for op in spec.operators]

    def target(input_id: str) -> tuple[_Hosted | None, str]:
        for op in hosted:
            if op.prefix and input_id.startswith(op.prefix):
                return op, input_id[len(op.prefix) :]
            if not op.prefix:
                return op, input_id
        return None, input_id

    for event in node:
        if isinstance(event, Input | InputClosed):
            op, local = target(event.id)
            if op is None or not op.running:
                continue
            payload = to_dora_event(event)
            payload["id"] = local
            status = op.dispatch(payload)
            if status == DoraStatus.STOP:
                op.running = False
            elif status == DoraStatus.STOP_ALL:
                break
            if not any(o.running for o in hosted):
                break
        elif isinstance(event, Stop):
            break  # as with dora-rs, operators see their inputs close but not the stop


if __name__ == "__main__":
    main()
