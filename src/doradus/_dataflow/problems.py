"""Problems found in a dataflow file: where, what, and how to fix it.

A `Problem` is what `doradus validate` prints and what a `DescriptorError`
carries: one record per mistake, so that every mistake in a file is reported
at once rather than one per run.

Example:
    >>> from pathlib import Path
    >>> from doradus._dataflow.model import Location
    >>> problem = Problem(Location(Path("df.yml"), 4, 11), "unknown node `camra`",
    ...                   fix="did you mean `camera`?")
    >>> print(problem)
    df.yml:4:11: error: unknown node `camra`
      fix: did you mean `camera`?
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from doradus._dataflow.model import Location

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Problem:
    """One mistake (or one deprecated form) in a dataflow file.

    Attributes:
        location: The file, 1-based line and 1-based column of the offending
            key or value.
        message: What is wrong, naming the key or value.
        fix: What to change to make it right, or None when nothing useful
            can be suggested.
        severity: ``"error"`` stops the dataflow from loading; ``"warning"``
            is reported but the dataflow still loads.

    Example:
        >>> from pathlib import Path
        >>> from doradus._dataflow.model import Location
        >>> str(Problem(Location(Path("a.yml"), 1, 1), "old key", None, "warning"))
        'a.yml:1:1: warning: old key'
    """

    location: Location
    message: str
    fix: str | None = None
    severity: Severity = "error"

    @property
    def is_error(self) -> bool:
        """Whether this problem stops the dataflow from loading."""
        return self.severity == "error"

    def __str__(self) -> str:
        head = f"{self.location}: {self.severity}: {self.message}"
        return head if self.fix is None else f"{head}\n  fix: {self.fix}"


def sort_problems(problems: Iterable[Problem]) -> list[Problem]:
    """Return problems in file order (line, then column), keeping ties stable.

    Example:
        >>> from pathlib import Path
        >>> from doradus._dataflow.model import Location
        >>> late = Problem(Location(Path("a.yml"), 9, 1), "late")
        >>> early = Problem(Location(Path("a.yml"), 2, 5), "early")
        >>> [p.message for p in sort_problems([late, early])]
        ['early', 'late']
    """
    return sorted(problems, key=lambda p: (p.location.line, p.location.column))


def closest(word: str, choices: Iterable[str]) -> str | None:
    """Return the choice closest to a misspelt ``word``, or None if none is close.

    Example:
        >>> closest("inptus", ["inputs", "outputs", "env"])
        'inputs'
        >>> closest("zzz", ["inputs"]) is None
        True
    """
    found = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return found[0] if found else None


def shorten(text: str, limit: int = 60) -> str:
    """Cut ``text`` to ``limit`` characters for a message.

    Example:
        >>> shorten("abcdef", 4)
        'abc…'
    """
    return text if len(text) <= limit else text[: limit - 1] + "…"
