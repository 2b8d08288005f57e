r"""Finding, in a read dataflow file, the settings Doradus checks but does not apply yet.

The settings themselves are listed once, in `doradus._dataflow.model.NOT_APPLIED`;
this module walks a file for them and returns one warning per use, placed at
the key, for ``doradus check`` and ``doradus run`` to print.

Example:
    >>> from pathlib import Path
    >>> from doradus._dataflow.yaml_positions import parse_yaml
    >>> doc, _ = parse_yaml("type_rules: {}\nnodes: []\n", Path("d.yml"))
    >>> print(find_not_applied(doc.positions, doc.value, [])[0])
    d.yml:1:1: warning: `type_rules` is not applied yet; message types are not checked
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from doradus._dataflow.communication import edge_backend
from doradus._dataflow.model import NOT_APPLIED, InputSpec, LogSource, NodeSource, NodeSpec
from doradus._dataflow.problems import Problem, sort_problems
from doradus._dataflow.yaml_positions import KeyPath, Positions
from doradus.backends import backend_class

_NODE_KEYS = ("cpu_affinity",)
_TOP_KEYS = ("exit_when_nodes_finish", "type_rules")
_APPLIED_ANYWAY: dict[str, str] = {}
"""Values that are what Doradus does without the feature: no warning for them."""


def find_not_applied(
    positions: Positions, top: object, drafts: Sequence[Any], communication: Mapping[str, Any] | None = None
) -> list[Problem]:
    r"""One warning per use of a `NOT_APPLIED` setting, in file order.

    Args:
        positions: where each key and value of the file is.
        top: the file's top-level mapping, as parsed.
        drafts: the nodes read (`doradus._dataflow.nodes.NodeDraft` records).
        communication: the file's ``communication`` as read (which backend carries each edge).

    Example:
        >>> from pathlib import Path
        >>> from doradus._dataflow.yaml_positions import parse_yaml
        >>> doc, _ = parse_yaml("strict_types: false\nnodes: []\n", Path("d.yml"))
        >>> find_not_applied(doc.positions, doc.value, [])
        []
    """
    found = _Found(positions, communication or {})
    if isinstance(top, dict):
        _top_level(found, top)
    for draft in drafts:
        _node(found, draft, drafts)
    return sort_problems(found.problems)


class _Found:
    """The warnings found so far, each placed at its key."""

    def __init__(self, positions: Positions, communication: Mapping[str, Any]) -> None:
        self.positions = positions
        self.communication = communication
        self.problems: list[Problem] = []

    def add(self, name: str, path: KeyPath, value: object, node: str | None = None, **more: Any) -> None:
        message = NOT_APPLIED[name].message(node, value=value, **more)
        self.problems.append(Problem(self.positions.key_at(path), message, None, "warning"))


def _top_level(found: _Found, top: dict[Any, Any]) -> None:
    for key in _TOP_KEYS:
        if top.get(key) is not None:
            found.add(key, (key,), top[key])
    if top.get("strict_types") is True:
        found.add("strict_types", ("strict_types",), True)
    debug = top.get("debug")
    if isinstance(debug, dict) and debug.get("enable_debug_inspection") is True:
        found.add("debug.enable_debug_inspection", ("debug", "enable_debug_inspection"), True)
    for key in ("deploy", "_unstable_deploy"):
        _deploy(found, top.get(key), (key,), None)


def _deploy(found: _Found, deploy: object, path: KeyPath, node: str | None) -> None:
    if not isinstance(deploy, dict):
        return
    case = "" if node is not None else " at the top level"
    for key in ("working_dir", "labels"):
        if deploy.get(key) is not None:
            found.add(f"deploy.{key}{case}", (*path, key), deploy[key], node)


def _node(found: _Found, draft: Any, drafts: Sequence[Any]) -> None:
    spec: NodeSpec = draft.spec
    path: KeyPath = draft.id_path[:-1]
    raw = spec.raw
    for key in _NODE_KEYS:
        value = raw.get(key)
        if value is not None and value != _APPLIED_ANYWAY.get(key):
            found.add(key, (*path, key), value, spec.id)
    for key in ("deploy", "_unstable_deploy"):
        _deploy(found, raw.get(key), (*path, key), spec.id)
    for input_id, inp in spec.inputs.items():
        unapplied: list[tuple[str, str, str]] = []
        if spec.kind == "operator" and inp.input_timeout is not None:
            unapplied.append(("input_timeout", "input_timeout on an operator's input", ""))
        if inp.queue_policy == "backpressure":
            unapplied += _backpressure(found, spec, inp, drafts)
        for key, name, detail in unapplied:  # only in an input's long form: its source path ends in `source`
            where = (*draft.source_paths[input_id][:-1], key)
            written = _written(raw, where[len(path) :])
            found.add(name, where, written, spec.id, input_id=input_id, detail=detail)
    if spec.send_stdout_as is not None:
        where = _stdout_path(raw, path)
        _stdout(found, spec, where, _written(raw, where[len(path) :]), drafts)


def _stdout(found: _Found, spec: NodeSpec, path: KeyPath, written: object, drafts: Sequence[Any]) -> None:
    if spec.kind == "dynamic":
        found.add("send_stdout_as on a `path: dynamic` node", path, written, spec.id)
        return
    output = (spec.id, spec.send_stdout_as)
    away = [
        f"input `{input_id}` of node `{other.id}` on {_machine(other.machine)}"
        for other in (draft.spec for draft in drafts)
        if (other.machine or "") != (spec.machine or "")
        for input_id, inp in other.inputs.items()
        if isinstance(inp.source, NodeSource) and (inp.source.node, inp.source.output) == output
    ]
    if away:
        found.add("send_stdout_as across machines", path, written, spec.id, detail="not " + ", ".join(away))


def _backpressure(
    found: _Found, spec: NodeSpec, inp: InputSpec, drafts: Sequence[Any]
) -> list[tuple[str, str, str]]:
    """``queue_policy: backpressure`` where it is not applied: a logs input, an edge's backend."""
    source = inp.source
    if isinstance(source, LogSource):
        return [("queue_policy", "queue_policy on a `dora/logs` input", "")]
    if not isinstance(source, NodeSource):
        return []  # a timer: applied (a tick finding the queue full is skipped)
    sender = next((d.spec for d in drafts if d.spec.id == source.node), None)
    if sender is None:
        return []  # an unknown source: an error of its own
    remote = (sender.machine or "") != (spec.machine or "")
    backend = edge_backend(found.communication, sender, remote=remote)
    try:
        applies = backend_class(backend).applies_backpressure
    except KeyError:
        return []  # an unknown backend: an error of its own
    if applies:
        return []
    key = "remote" if remote else "local"
    detail = (
        f"the edge from `{source}` travels on `{backend}`, which has no way back for the receiver's "
        f"credits; `shm` and `tcp` apply it: give node `{sender.id}` `communication: {{{key}: tcp}}`"
    )
    return [("queue_policy", "queue_policy on this edge's backend", detail)]


def _written(mapping: object, path: KeyPath) -> object:
    """The value as written at ``path`` below ``mapping`` (None if absent)."""
    for key in path:
        if isinstance(mapping, dict):
            mapping = mapping.get(key)
        elif isinstance(mapping, list) and isinstance(key, int) and 0 <= key < len(mapping):
            mapping = mapping[key]
        else:
            return None
    return mapping


def _machine(name: str | None) -> str:
    return f"machine `{name}`" if name else "the default machine"


def _stdout_path(raw: dict[Any, Any], path: KeyPath) -> KeyPath:
    """Where ``send_stdout_as`` is written: on the node, under ``custom``, or on an operator."""
    if "send_stdout_as" in raw:
        return (*path, "send_stdout_as")
    for key in ("custom", "operator"):
        if isinstance(raw.get(key), dict) and "send_stdout_as" in raw[key]:
            return (*path, key, "send_stdout_as")
    for index, operator in enumerate(raw.get("operators") or []):
        if isinstance(operator, dict) and "send_stdout_as" in operator:
            return (*path, "operators", index, "send_stdout_as")
    return path
