"""Typed reading of dataflow fields, recording a `Problem` for every mistake.

A `FieldReader` never raises on bad input: each typed getter returns the value
when it has the right type and range, and otherwise records an error that
points at the value (or, for unknown keys, at the key) and returns None, so
that validation goes on and every mistake is reported at once.

Example:
    >>> from pathlib import Path
    >>> from doradus._dataflow.yaml_positions import parse_yaml
    >>> doc, _ = parse_yaml("queue_size: ten", Path("d.yml"))
    >>> reader = FieldReader(doc.positions)
    >>> reader.integer(("queue_size",), doc.value["queue_size"], minimum=1) is None
    True
    >>> print(reader.problems[0])
    d.yml:1:13: error: `queue_size` must be a whole number ≥ 1, got the text `ten`
      fix: write a whole number, e.g. `queue_size: 1`
"""

from __future__ import annotations

import math
from collections.abc import Collection
from datetime import date
from typing import Any

from doradus._dataflow.problems import Problem, closest, shorten
from doradus._dataflow.yaml_positions import KeyPath, Positions
from doradus._quantities import parse_byte_size, parse_duration

UNSTABLE_PREFIX = "_unstable_"


def describe(value: object) -> str:
    """Name a parsed YAML value for an error message.

    Example:
        >>> describe([1]), describe(True), describe("x"), describe(None)
        ('a list', '`true`', 'the text `x`', 'nothing (null)')
    """
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, (int, float)):
        return f"the number `{value}`"
    if isinstance(value, str):
        return f"the text `{shorten(value)}`"
    if isinstance(value, date):
        return f"the date `{value}` (YAML reads it as a date)"
    names = {type(None): "nothing (null)", list: "a list", dict: "a mapping", bytes: "binary data"}
    return names.get(type(value), type(value).__name__)


def name_of(path: KeyPath) -> str:
    """Name the field at ``path`` for a message: its key, or ``key[i]`` for a list item.

    Example:
        >>> name_of(("nodes", 0, "outputs", 2))
        'outputs[2]'
    """
    if not path:
        return "the file"
    last = path[-1]
    if isinstance(last, int) and len(path) > 1:
        return f"{name_of(path[:-1])}[{last}]"
    return str(last)


def _finite(value: object) -> float | None:
    """Return a YAML number as a finite float, else None (bools are not numbers)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except OverflowError:  # an int beyond float range
        return None
    return number if math.isfinite(number) else None


class FieldReader:
    """Typed getters over one document; each mistake becomes a `Problem`.

    Getters take the *path* of a value (for its location) and the value
    itself; a None value (absent or null) is returned as None without a
    problem, since every optional field may be left out. ``settled`` are
    problems found while parsing the YAML: they are kept, and no further
    error is recorded at their places.

    Example:
        >>> from pathlib import Path
        >>> from doradus._dataflow.yaml_positions import Positions
        >>> reader = FieldReader(Positions(Path("d.yml"), {}, {}))
        >>> reader.boolean(("strict_types",), True), reader.problems
        (True, [])
    """

    def __init__(self, positions: Positions, *, settled: Collection[Problem] = ()) -> None:
        self.positions = positions
        self.problems: list[Problem] = list(settled)
        # Values that YAML itself could not read are None now; complaints
        # about them being None would only repeat the first problem.
        self._settled = {(p.location.line, p.location.column) for p in settled if p.is_error}

    @property
    def has_errors(self) -> bool:
        """Whether any error (not warning) was recorded."""
        return any(problem.is_error for problem in self.problems)

    def error(self, path: KeyPath, message: str, fix: str | None, *, at_key: bool = False) -> None:
        """Record an error at the value at ``path`` (or its key)."""
        where = self.positions.key_at(path) if at_key else self.positions.value_at(path)
        if (where.line, where.column) not in self._settled:
            self.problems.append(Problem(where, message, fix, "error"))

    def warn(self, path: KeyPath, message: str, fix: str | None, *, at_key: bool = False) -> None:
        """Record a warning at the value at ``path`` (or its key)."""
        where = self.positions.key_at(path) if at_key else self.positions.value_at(path)
        self.problems.append(Problem(where, message, fix, "warning"))

    def keys(self, path: KeyPath, mapping: dict[Any, Any], allowed: Collection[str], *, what: str) -> None:
        """Report keys of ``mapping`` that are not in ``allowed``.

        Keys starting with ``_unstable_`` give a warning (dora's marker for
        experimental keys); any other unknown key is an error with a
        did-you-mean hint.
        """
        for key in mapping:
            if isinstance(key, str) and key in allowed:
                continue
            key_path = (*path, key)
            if not isinstance(key, str):
                self.error(key_path, f"{what} key `{key}` must be text", "quote the key", at_key=True)
            elif key.startswith(UNSTABLE_PREFIX):
                self.warn(
                    key_path, f"`{key}` is not supported by Doradus and is ignored", "remove it", at_key=True
                )
            else:
                self.unknown_key(key_path, key, allowed, what=what)

    def unknown_key(self, path: KeyPath, key: str, allowed: Collection[str], *, what: str) -> None:
        """Record an unknown key, suggesting the closest known one."""
        guess = closest(key, allowed)
        listed = ", ".join(f"`{name}`" for name in sorted(allowed))
        fix = f"did you mean `{guess}`?" if guess else f"remove it; known keys are {listed}"
        self.error(path, f"unknown {what} key `{shorten(key)}`", fix, at_key=True)

    def type_error(self, path: KeyPath, value: object, expected: str, fix: str) -> None:
        """Record that the value at ``path`` is not of the ``expected`` type."""
        self.error(path, f"`{name_of(path)}` must be {expected}, got {describe(value)}", fix)

    def text(self, path: KeyPath, value: object) -> str | None:
        """Return ``value`` if it is a string."""
        if value is None or isinstance(value, str):
            return value
        self.type_error(
            path, value, "text", f"write `{name_of(path)}` as text; quote it if it looks like a number"
        )
        return None

    def boolean(self, path: KeyPath, value: object) -> bool | None:
        """Return ``value`` if it is a boolean."""
        if value is None or isinstance(value, bool):
            return value
        self.type_error(
            path, value, "`true` or `false`", f"write `{name_of(path)}: true` or `{name_of(path)}: false`"
        )
        return None

    def integer(self, path: KeyPath, value: object, *, minimum: int = 0) -> int | None:
        """Return ``value`` if it is a whole number ≥ ``minimum``."""
        if value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= minimum):
            return value
        self.type_error(
            path,
            value,
            f"a whole number ≥ {minimum}",
            f"write a whole number, e.g. `{name_of(path)}: {max(minimum, 1)}`",
        )
        return None

    def duration(self, path: KeyPath, value: object, *, positive: bool = False) -> float | None:
        """Return seconds from a number or a duration text like ``"500ms"``."""
        if value is None:
            return None
        seconds = parse_duration(value) if isinstance(value, str) else _finite(value)
        if seconds is not None and (seconds > 0 or (seconds == 0 and not positive)):
            return seconds
        bound = "greater than 0" if positive else "0 or more"
        fix = f'write seconds (`{name_of(path)}: 2.5`) or a duration with a unit: "500ms", "2s", "1m"'
        self.type_error(path, value, f"a duration {bound}", fix)
        return None

    def byte_size(self, path: KeyPath, value: object) -> int | None:
        """Return bytes from a whole number or a size text like ``"256MB"``."""
        size: int | None = None
        if isinstance(value, str):
            size = parse_byte_size(value)
        elif isinstance(value, int) and not isinstance(value, bool):
            size = value
        elif value is None:
            return None
        if size is not None and size > 0:
            return size
        fix = f"write a number of bytes or a size with a unit, e.g. `{name_of(path)}: 256MB` or `1GiB`"
        self.type_error(path, value, "a size greater than 0", fix)
        return None

    def choice(self, path: KeyPath, value: object, choices: Collection[str]) -> str | None:
        """Return ``value`` if it is one of ``choices``."""
        if value is None or (isinstance(value, str) and value in choices):
            return value
        listed = ", ".join(f"`{choice}`" for choice in choices)
        guess = closest(value, choices) if isinstance(value, str) else None
        fix = f"did you mean `{guess}`?" if guess else f"use one of {listed}"
        self.type_error(path, value, f"one of {listed}", fix)
        return None

    def mapping(self, path: KeyPath, value: object) -> dict[Any, Any] | None:
        """Return ``value`` if it is a mapping."""
        if value is None or isinstance(value, dict):
            return value
        self.type_error(
            path, value, "a mapping", f"write `{name_of(path)}` as `key: value` lines indented under it"
        )
        return None

    def sequence(self, path: KeyPath, value: object) -> list[Any] | None:
        """Return ``value`` if it is a list."""
        if value is None or isinstance(value, list):
            return value
        self.type_error(
            path, value, "a list", f"write `{name_of(path)}` as a list: `[a, b]` or one `- item` per line"
        )
        return None

    def texts(self, path: KeyPath, value: object) -> list[str] | None:
        """Return ``value`` if it is a list of strings (reporting each bad item)."""
        items = self.sequence(path, value)
        if items is None:
            return None
        for index, item in enumerate(items):
            if not isinstance(item, str):
                self.type_error((*path, index), item, "text", "write each item as text; quote it if needed")
        return items if all(isinstance(item, str) for item in items) else None
