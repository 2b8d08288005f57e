r"""What a dataflow's text says about each node, for ``node info``: its kind and path, its inputs' queues.

Read from the text alone, as the live stream reads its edges (`doradus._control.stream_stats`):
the coordinator never opens a file a client names (docs/security.md), so a node's kind comes
from how its ``path`` is written (``.py``: python; ``dynamic``, ``shell``; ``operator(s)``: operator;
anything else: executable), and its inputs' ``queue_size``, ``queue_policy`` and
``input_timeout`` as the loader reads them (`doradus._dataflow.node_fields.read_inputs`).
Inputs of operators are named as the node sees them (``op/input`` under ``operators:``).

Example:
    >>> text = "nodes:\n  - id: cam\n    path: cam.py\n    inputs: {t: {source: a/b, queue_size: 2}}"
    >>> facts = read_node_facts(text, "/srv/flow.yml")["cam"]
    >>> facts.kind, facts.inputs["t"].queue_size, facts.inputs["t"].queue_policy
    ('python', 2, 'drop_oldest')
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from doradus._dataflow.fields import FieldReader
from doradus._dataflow.model import InputSpec, NodeSource
from doradus._dataflow.node_fields import read_inputs
from doradus._dataflow.yaml_positions import KeyPath, parse_yaml


@dataclass(frozen=True)
class NodeFacts:
    """One node as its dataflow's text writes it.

    Example:
        >>> NodeFacts(kind="dynamic", path="dynamic").outputs
        ()
    """

    kind: str | None = None
    path: str | None = None
    inputs: dict[str, InputSpec] = field(default_factory=dict)
    outputs: tuple[str, ...] = ()


def kind_of(path: str) -> str:
    """A node's kind from its ``path`` as written (no file is looked at).

    Example:
        >>> [kind_of(p) for p in ("cam.py", "dynamic", "shell", "./bin/cam", "cam-driver")]
        ['python', 'dynamic', 'shell', 'executable', 'executable']
    """
    if path in ("dynamic", "shell"):
        return path
    return "python" if path.endswith(".py") else "executable"


def read_node_facts(text: str, path: str) -> dict[str, NodeFacts]:
    """Node id → what ``text`` says of it (empty when the text cannot be read as a dataflow).

    Example:
        >>> read_node_facts("not: [a, dataflow", "/srv/flow.yml")
        {}
    """
    document, problems = parse_yaml(text, Path(path))
    top = None if document is None else document.value
    if document is None or not isinstance(top, dict) or not isinstance(top.get("nodes"), list):
        return {}
    reader = FieldReader(document.positions, settled=problems)
    found: dict[str, NodeFacts] = {}
    for index, node in enumerate(top["nodes"]):
        if isinstance(node, dict) and isinstance(node.get("id"), str):
            found[node["id"]] = _facts(reader, ("nodes", index), node)
    return found


def receivers_of(facts: dict[str, NodeFacts], sender: str) -> dict[str, list[str]]:
    r"""Output of ``sender`` → the inputs reading it (``node/input``), as the text wires them.

    Example:
        >>> text = "nodes:\n  - id: a\n    path: a.py\n  - id: b\n    path: b.py\n    inputs: {x: a/out}"
        >>> receivers_of(read_node_facts(text, "/f.yml"), "a")
        {'out': ['b/x']}
    """
    found: dict[str, list[str]] = {}
    for receiver, node in facts.items():
        for input_id, spec in node.inputs.items():
            if isinstance(spec.source, NodeSource) and spec.source.node == sender:
                found.setdefault(spec.source.output, []).append(f"{receiver}/{input_id}")
    return found


def _facts(reader: FieldReader, path: KeyPath, node: dict[Any, Any]) -> NodeFacts:
    if "operators" in node or "operator" in node:
        return _operator_facts(reader, path, node)
    program: Any = node.get("path")
    if "custom" in node and isinstance(node["custom"], dict):
        program = node["custom"].get("source")
    return NodeFacts(
        kind=kind_of(program) if isinstance(program, str) else None,
        path=program if isinstance(program, str) else None,
        inputs=read_inputs(reader, (*path, "inputs"), node.get("inputs")).inputs,
        outputs=_outputs(node.get("outputs")),
    )


def _operator_facts(reader: FieldReader, path: KeyPath, node: dict[Any, Any]) -> NodeFacts:
    """An operator node: each operator's inputs and outputs (prefixed ``op/`` under ``operators:``)."""
    single = "operators" not in node
    listed = [node.get("operator")] if single else node.get("operators")
    inputs: dict[str, InputSpec] = {}
    outputs: list[str] = []
    for index, op in enumerate(listed if isinstance(listed, list) else []):
        if not isinstance(op, dict):
            continue
        prefix = "" if single else f"{op.get('id')}/"
        where = (*path, "operator") if single else (*path, "operators", index)
        for input_id, spec in read_inputs(reader, (*where, "inputs"), op.get("inputs")).inputs.items():
            inputs[prefix + input_id] = spec
        outputs.extend(prefix + output for output in _outputs(op.get("outputs")))
    return NodeFacts(kind="operator", inputs=inputs, outputs=tuple(outputs))


def _outputs(value: object) -> tuple[str, ...]:
    return tuple(o for o in value if isinstance(o, str)) if isinstance(value, list) else ()
