r"""YAML text to plain Python values, remembering where each key and value was written.

PyYAML's ``safe_load`` forgets positions and silently keeps the last of two
equal keys. This module composes the node graph instead (with libyaml's C
parser when available), converts it to plain values itself, and records the
1-based line and column of every mapping key and every value under its *key
path*: ``("nodes", 0, "inputs", "tick")`` is the value of input ``tick`` of
the first node. Duplicate keys, unknown tags, recursive aliases and absurd
nesting become `Problem` records instead of exceptions.

Example:
    >>> from pathlib import Path
    >>> doc, problems = parse_yaml("nodes:\n  - id: a\n", Path("df.yml"))
    >>> doc.value
    {'nodes': [{'id': 'a'}]}
    >>> str(doc.positions.value_at(("nodes", 0, "id")))
    'df.yml:2:9'
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from doradus._dataflow.model import Location
from doradus._dataflow.problems import Problem, shorten

try:  # libyaml is ~10x faster; fall back to the pure-Python parser without it
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    # The stubs type the two loaders as distinct classes; both take the same stream argument.
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

KeyPath = tuple[object, ...]
"""Keys and list indexes from the document root down to one value."""

MAX_DEPTH = 200
"""Deeper nesting is reported rather than walked (no dataflow needs it)."""

_STR_TAG = "tag:yaml.org,2002:str"
_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_MERGED = object()  # path element under which merge (`<<`) sources are recorded

_QUOTE_FIX = "quote the value (`'...'`) to keep it as text"
_SYNTAX_FIX = (
    "check the indentation (spaces only, children indented under their key), "
    "that every `key:` is followed by a space, and that brackets and quotes are closed"
)
_SYNTAX_FIXES = (
    ("'\\t'", "replace the tab characters with spaces; YAML indentation must use spaces"),
    ("mapping values are not allowed", "put values containing `: ` in quotes, or fix the indentation"),
    ("expected a single document", "keep one document per dataflow file: remove the `---` separator"),
    ("found undefined alias", "define the anchor (`&name`) before using `*name`"),
    ("found duplicate anchor", "give each anchor (`&name`) a different name"),
)


@dataclass(frozen=True)
class Positions:
    """Where each key and value of a document was written.

    Example:
        >>> pos = Positions(Path("d.yml"), keys={("a",): (1, 1)}, values={("a",): (1, 4)})
        >>> str(pos.key_at(("a",))), str(pos.value_at(("a", "missing")))
        ('d.yml:1:1', 'd.yml:1:4')
    """

    file: Path
    keys: dict[KeyPath, tuple[int, int]]
    values: dict[KeyPath, tuple[int, int]]

    def value_at(self, path: KeyPath) -> Location:
        """Return where the value at ``path`` (or its nearest known parent) starts."""
        for end in range(len(path), -1, -1):
            found = self.values.get(path[:end])
            if found is not None:
                return Location(self.file, *found)
        return Location(self.file, 1, 1)

    def key_at(self, path: KeyPath) -> Location:
        """Return where the key naming ``path`` starts (its value's place if none)."""
        found = self.keys.get(path)
        return Location(self.file, *found) if found is not None else self.value_at(path)


@dataclass(frozen=True)
class Document:
    """A parsed YAML document: plain values plus their positions.

    Example:
        >>> doc, _ = parse_yaml("a: 1", Path("d.yml"))
        >>> doc.value, str(doc.positions.key_at(("a",)))
        ({'a': 1}, 'd.yml:1:1')
    """

    value: Any
    positions: Positions


def parse_yaml(text: str, file: Path) -> tuple[Document | None, list[Problem]]:
    r"""Parse one YAML document, returning its values, positions and problems.

    Args:
        text: The YAML text.
        file: The file name used in every `Location`.

    Returns:
        ``(document, problems)``; the document is None when the text is not
        valid YAML (then ``problems`` says why and where) or is empty.

    Example:
        >>> doc, problems = parse_yaml("a: 1\na: 2\n", Path("d.yml"))
        >>> doc.value, [str(p.location) for p in problems]
        ({'a': 2}, ['d.yml:2:1'])
    """
    try:
        root = yaml.compose(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        return None, [_syntax_problem(exc, text, file)]
    if root is None:
        return None, []
    walker = _Walker(file)
    value = walker.convert(root, (), 0)
    positions = Positions(file, walker.keys, walker.values)
    return Document(value, positions), walker.problems


def location_of_offset(text: str, offset: int, file: Path) -> Location:
    r"""Return the 1-based line and column of character ``offset`` in ``text``.

    Example:
        >>> str(location_of_offset("ab\ncd", 4, Path("f")))
        'f:2:2'
    """
    offset = max(0, min(offset, len(text)))
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return Location(file, line, column)


def _syntax_problem(exc: yaml.YAMLError, text: str, file: Path) -> Problem:
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        location = Location(file, mark.line + 1, mark.column + 1) if mark else Location(file, 1, 1)
        detail = " ".join(part for part in (exc.context, exc.problem) if part)
    else:
        position = getattr(exc, "position", 0)
        location = location_of_offset(text, position if isinstance(position, int) else 0, file)
        detail = str(getattr(exc, "reason", "")) or str(exc).splitlines()[0]
    detail = re.sub(r"\s+", " ", detail).strip() or "unreadable YAML"
    fix = next((fix for needle, fix in _SYNTAX_FIXES if needle in detail), _SYNTAX_FIX)
    return Problem(location, f"invalid YAML: {detail}", fix)


def _mark(node: Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


class _Walker:
    """Converts a composed node graph to plain values, recording positions."""

    def __init__(self, file: Path) -> None:
        self.file = file
        self.keys: dict[KeyPath, tuple[int, int]] = {}
        self.values: dict[KeyPath, tuple[int, int]] = {}
        self.problems: list[Problem] = []
        self._done: dict[int, Any] = {}  # id(node) -> value; aliases reuse it
        self._active: set[int] = set()  # collections being converted (cycle check)
        self._constructor = SafeConstructor()

    def problem(self, node: Node, message: str, fix: str) -> None:
        self.problems.append(Problem(Location(self.file, *_mark(node)), message, fix))

    def convert(self, node: Node, path: KeyPath, depth: int) -> Any:
        self.values[path] = _mark(node)
        if isinstance(node, ScalarNode):
            return self.scalar(node)
        key = id(node)
        if key in self._done:  # an alias of a collection converted earlier
            return self._done[key]
        if key in self._active:
            self.problem(
                node, "recursive alias: a value contains itself", "remove the `*alias` inside its own anchor"
            )
            return None
        if depth >= MAX_DEPTH:
            self.problem(
                node, f"the document nests more than {MAX_DEPTH} levels deep", "flatten the structure"
            )
            return None
        self._active.add(key)
        try:
            value = (
                self.mapping(node, path, depth)
                if isinstance(node, MappingNode)
                else self.sequence(node, path, depth)
            )
        finally:
            self._active.discard(key)
        self._done[key] = value
        return value

    def scalar(self, node: ScalarNode) -> Any:
        if node.tag == _STR_TAG:
            return node.value
        construct = SafeConstructor.yaml_constructors.get(node.tag)
        if construct is None:
            self.problem(
                node, f"unsupported YAML tag `{node.tag}`", "remove the tag; dataflow files use plain values"
            )
            return None
        try:
            return construct(self._constructor, node)
        except (yaml.YAMLError, ValueError, OverflowError, TypeError) as exc:
            reason = re.sub(r"\s+", " ", str(exc)).strip()
            self.problem(node, f"cannot read the value `{shorten(node.value)}`: {reason}", _QUOTE_FIX)
            return None

    def sequence(self, node: Node, path: KeyPath, depth: int) -> list[Any] | None:
        if node.tag != _SEQ_TAG:
            self.problem(
                node, f"unsupported YAML tag `{node.tag}`", "remove the tag; dataflow files use plain lists"
            )
            return None
        return [self.convert(item, (*path, index), depth + 1) for index, item in enumerate(node.value)]

    def mapping(self, node: Node, path: KeyPath, depth: int) -> dict[Any, Any] | None:
        if node.tag != _MAP_TAG:
            self.problem(
                node,
                f"unsupported YAML tag `{node.tag}`",
                "remove the tag; dataflow files use plain mappings",
            )
            return None
        result: dict[Any, Any] = {}
        merged: list[tuple[Node, Node]] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                merged.append((key_node, value_node))
                continue
            key = self.key(key_node)
            if key is _UNUSABLE:
                continue
            if key in result:
                self.duplicate(key_node, key, (*path, key))
            self.keys[(*path, key)] = _mark(key_node)
            result[key] = self.convert(value_node, (*path, key), depth + 1)
        for key_node, value_node in merged:
            self.merge(key_node, value_node, path, depth, result)
        return result

    def key(self, node: Node) -> object:
        if not isinstance(node, ScalarNode):
            self.problem(
                node,
                "a mapping key must be a plain value, not a list or mapping",
                "use a plain name as the key",
            )
            return _UNUSABLE
        key = self.scalar(node)
        try:
            hash(key)
        except TypeError:
            self.problem(node, f"unusable mapping key `{node.value}`", "quote the key")
            return _UNUSABLE
        return key

    def duplicate(self, key_node: Node, key: object, path: KeyPath) -> None:
        line, column = self.keys[path]
        self.problem(
            key_node,
            f"duplicate key `{key}` (first at line {line}, column {column})",
            "keep only one of the two; YAML would silently use the last one",
        )

    def merge(
        self, key_node: Node, value_node: Node, path: KeyPath, depth: int, result: dict[Any, Any]
    ) -> None:
        """Apply a ``<<: *base`` merge: explicit keys win, then earlier sources."""
        sources = value_node.value if isinstance(value_node, SequenceNode) else [value_node]
        for index, source in enumerate(sources):
            if not isinstance(source, MappingNode):
                self.problem(
                    source,
                    "`<<` (merge) needs a mapping or a list of mappings",
                    "merge an anchored mapping: `<<: *name`",
                )
                continue
            source_path = (*path, _MERGED, index)
            value = self.convert(source, source_path, depth + 1)
            for key, item in (value or {}).items():
                if key in result:
                    continue
                result[key] = item
                self.keys[(*path, key)] = self.keys.get((*source_path, key), _mark(key_node))
                self.values[(*path, key)] = self.values.get((*source_path, key), _mark(source))


_UNUSABLE = object()
