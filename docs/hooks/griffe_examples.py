"""A griffe extension: the project's `Example:` and `Example::` sections read as examples.

Docstrings are Google style with a singular `Example:` section (doctests, run by
tests/test_doctests.py) or an `Example::` literal block (examples that need live processes).
The Google parser knows only `Examples:`; without this, `>>>` lines render as Markdown quotes
and literal blocks as plain text. This rewrites, before parsing:

- `Example:` → `Examples:` (the `>>>` lines become highlighted Python, the rest Markdown);
- `Example::` and its indented block → `Examples:` holding the block as a fenced code block
  (`console` when it starts with `$`, else `python`).
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_HEADER = re.compile(r"^(?P<indent>[ \t]*)Example(?P<literal>::|:)[ \t]*$")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _literal_block(lines: list[str], start: int, indent: int) -> tuple[list[str], int]:
    """The indented block after an `Example::` line, dedented, and the index after it."""
    block: list[str] = []
    index = start
    while index < len(lines) and (not lines[index].strip() or _indent(lines[index]) > indent):
        block.append(lines[index])
        index += 1
    while block and not block[-1].strip():
        block.pop()
        index -= 1
    body = [line for line in block if line.strip()]
    margin = min((_indent(line) for line in body), default=0)
    return [line[margin:] for line in block], index


def rewrite(text: str) -> str:
    r"""Docstring text with `Example:`/`Example::` turned into a Google `Examples:` section.

    Example:
        >>> print(rewrite("Run it.\n\nExample::\n\n    $ doradus run x.yml\n"))
        Run it.
        <BLANKLINE>
        Examples:
            ```console
            $ doradus run x.yml
            ```
    """
    lines = text.splitlines()
    out: list[str] = []
    index = 0
    while index < len(lines):
        match = _HEADER.match(lines[index])
        if match is None:
            out.append(lines[index])
            index += 1
            continue
        indent = match["indent"]
        out.append(f"{indent}Examples:")
        if match["literal"] == ":":
            index += 1
            continue
        block, index = _literal_block(lines, index + 1, len(indent))
        while block and not block[0].strip():
            block.pop(0)
        body = block
        language = "console" if body and body[0].startswith("$") else "python"
        inner = indent + "    "
        out += [f"{inner}```{language}", *(f"{inner}{line}" if line else "" for line in body), f"{inner}```"]
    return "\n".join(out)


class ExampleSections(griffe.Extension):
    """Rewrites every object's docstring as `rewrite` says, before it is parsed."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        """Called by griffe for every object it loads.

        Example::

            extensions: [docs/hooks/griffe_examples.py]
        """
        if obj.docstring is not None and "Example:" in obj.docstring.value:
            obj.docstring.value = rewrite(obj.docstring.value)
