r"""A node's new data format, applied to its dataflow's text and checked as ``doradus check`` checks.

A running node's outputs change format with a restart (``doradus node set NAME --data-format
avro --schema reading.avsc``, docs/steering.md). Before anything is stopped, the change is
written into the dataflow's text — the node's ``data_format`` and ``schema`` keys, as a
dataflow file writes them — and the whole text is checked again by the loader: an unknown
format, a format that needs a schema without one, a schema file missing or invalid, a
receiver whose input asserts another ``data_format``, an Avro reader schema that cannot read
the new writer schema... each refuses the change with the checker's message and fix.

What the change sets:

- ``data_format`` given: the node's ``data_format`` becomes it and its ``schema`` becomes the
  one given (none if not given: a format that needs one is refused);
- only ``schema`` given: the node keeps its format, with that schema;
- outputs listed under the node's ``output_formats`` keep their own format, as in a file.

The text is rewritten from its parsed values (comments and anchors are not kept; the values
are the same).

Example:
    >>> text = "nodes:\n  - id: a\n    path: dynamic\n    outputs: [out]\n"
    >>> try:
    ...     apply_format_change(text, "/srv/flow.yml", "a", FormatChange("avro"))
    ... except DescriptorError as exc:
    ...     print(first_problem(exc))
    ('data format `avro` needs a schema', 'add `schema: schemas/<file>.avsc`')
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from doradus._dataflow.loader import check_dataflow_text
from doradus._dataflow.model import Dataflow, Location
from doradus._dataflow.problems import Problem
from doradus._dataflow.yaml_positions import parse_yaml
from doradus._exceptions import DescriptorError

SchemaValue = str | dict[str, str]
"""A schema as a dataflow file writes it: ``file[:Type]``, or ``{file: ..., type: ...}``."""


@dataclass(frozen=True)
class FormatChange:
    """A node's new ``data_format`` and ``schema`` (None: unchanged), as a dataflow file writes them.

    Example:
        >>> FormatChange("avro", "reading.avsc").written()
        {'data_format': 'avro', 'schema': 'reading.avsc'}
        >>> FormatChange().empty
        True
    """

    data_format: str | None = None
    schema: SchemaValue | None = None

    @property
    def empty(self) -> bool:
        """Whether it changes nothing."""
        return self.data_format is None and self.schema is None

    def written(self) -> dict[str, Any]:
        """The keys it sets on the node, as they are written in a file.

        Example:
            >>> FormatChange(schema={"file": "r.capnp", "type": "Reading"}).written()
            {'schema': {'file': 'r.capnp', 'type': 'Reading'}}
        """
        keys: dict[str, Any] = {}
        if self.data_format is not None:
            keys["data_format"] = self.data_format
        if self.schema is not None:
            keys["schema"] = copy.deepcopy(self.schema)
        return keys

    @classmethod
    def from_values(cls, data_format: object, schema: object) -> FormatChange:
        """The change JSON values ask for (a node action's message), checked for their types.

        Raises:
            ValueError: ``data_format`` is not a non-empty text, or ``schema`` neither a text
                nor ``{file, type}``.

        Example:
            >>> FormatChange.from_values("avro", {"file": "r.avsc"})
            FormatChange(data_format='avro', schema={'file': 'r.avsc'})
        """
        if data_format is not None and (not isinstance(data_format, str) or not data_format.strip()):
            raise ValueError(f"`data_format` must name a data format, not {data_format!r}")
        name = None if data_format is None else data_format.strip()
        if schema is None or isinstance(schema, str):
            return cls(name, schema)
        if isinstance(schema, dict) and all(
            isinstance(k, str) and isinstance(v, str) for k, v in schema.items()
        ):
            return cls(name, dict(schema))
        raise ValueError(f"`schema` must be `file[:Type]` or {{file, type}}, not {schema!r}")


def apply_format_change(
    text: str,
    path: str | os.PathLike[str],
    node_id: str,
    change: FormatChange,
    *,
    extra_env: Mapping[str, str] | None = None,
) -> tuple[str, Dataflow]:
    r"""The dataflow text with ``change`` applied to node ``node_id``, and the dataflow it loads to.

    Args:
        text: the dataflow's text (what the run started from, or last changed to).
        path: where the file lives (never read): schema files are relative to its folder.
        node_id: the node whose outputs change format.
        change: the new values.
        extra_env: variables for ``$VAR`` expansion, as the run loaded it with.

    Returns:
        The new text and the dataflow it loads to (every node's formats checked).

    Raises:
        DescriptorError: the text is invalid, has no node ``node_id``, or the change is refused;
            ``problems`` holds each error with its fix (`first_problem` picks the one to show).

    Example:
        >>> text = "nodes:\n  - id: a\n    path: dynamic\n    outputs: [out]\n    data_format: avro\n"
        >>> apply_format_change(text, "/srv/flow.yml", "a", FormatChange("arrow"))[1].node("a").data_format
        'arrow'
    """
    file = Path(path)
    new_text = changed_text(text, file, node_id, change)
    flow, checked = check_dataflow_text(new_text, file, extra_env=extra_env)
    if flow is None:
        raise DescriptorError([p for p in checked if p.is_error])
    return new_text, flow


def changed_text(text: str, path: str | os.PathLike[str], node_id: str, change: FormatChange) -> str:
    r"""The dataflow text with ``change`` written into node ``node_id`` (not checked: `apply_format_change`).

    Raises:
        DescriptorError: the text is not YAML, or has no node ``node_id``.

    Example:
        >>> change = FormatChange("avro", "r.avsc")
        >>> print(changed_text("nodes:\n  - id: a\n", "/srv/flow.yml", "a", change), end="")
        nodes:
        - id: a
          data_format: avro
          schema: r.avsc
    """
    file = Path(path)
    document, problems = parse_yaml(text, file)
    top = None if document is None else document.value
    if document is None or any(p.is_error for p in problems) or not isinstance(top, dict):
        errors = [p for p in problems if p.is_error]
        raise DescriptorError(errors or [_problem(file, "the dataflow is empty")])
    top = copy.deepcopy(top)
    nodes: list[Any] = top["nodes"] if isinstance(top.get("nodes"), list) else []
    found = [n for n in nodes if isinstance(n, dict) and n.get("id") == node_id]
    if not found:
        missing = _problem(file, f"the dataflow has no node `{node_id}`", "name one of its nodes")
        raise DescriptorError([missing])
    node = found[0]
    if change.data_format is not None:
        node.pop("schema", None)
    node.update(change.written())
    return yaml.safe_dump(top, sort_keys=False, allow_unicode=True, default_flow_style=False)


def first_problem(error: DescriptorError) -> tuple[str, str | None]:
    """The message and fix of the first problem of ``error`` (its text when it holds none).

    Example:
        >>> first_problem(DescriptorError([_problem(Path("f.yml"), "bad", "fix it")]))
        ('bad', 'fix it')
    """
    for problem in error.problems:
        if isinstance(problem, Problem):
            return problem.message, problem.fix
    return str(error), None


def _problem(file: Path, message: str, fix: str | None = None) -> Problem:
    return Problem(Location(file, 1, 1), message, fix)
