"""Rendering helpers shared by the commands: colours, problems, outcomes."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import Any

import click

from doradus import _quantities as quantities


def parse_duration(text: str, option: str) -> float:
    """Seconds from ``10s``, ``500ms``, ``2m`` or a bare number of seconds.

    Example:
        >>> parse_duration("500ms", "--stop-after")
        0.5
    """
    seconds = quantities.parse_duration(text)
    if seconds is None or seconds < 0:
        hint = f"{text!r} is not a duration; write e.g. 10s, 500ms or 2m"
        raise click.BadParameter(hint, param_hint=option)
    return seconds


def parse_env(pairs: Iterable[str]) -> dict[str, str]:
    """``K=V`` strings into a mapping.

    Example:
        >>> parse_env(["A=1", "B=x=y"])
        {'A': '1', 'B': 'x=y'}
    """
    env: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not K=V", param_hint="--env")
        env[key] = value
    return env


class Reporter:
    """Coloured messages on stderr: blue info, green success, yellow warning, red error."""

    def __init__(self, color: bool | None = None) -> None:
        if color is None:
            color = sys.stderr.isatty() and "NO_COLOR" not in os.environ
        self.color = color

    def _say(self, text: str, fg: str, *, err: bool = True) -> None:
        click.secho(text, fg=fg if self.color else None, err=err)

    def info(self, text: str) -> None:
        """An informational line."""
        self._say(text, "blue")

    def success(self, text: str) -> None:
        """A success line with a check mark."""
        self._say(f"✓ {text}", "green")

    def warning(self, text: str) -> None:
        """A warning line."""
        self._say(text, "yellow")

    def error(self, text: str) -> None:
        """An error line with a cross."""
        self._say(f"✗ {text}", "red")

    def problems(self, problems: Iterable[Any]) -> None:
        """Each dataflow problem as ``FILE:LINE:COL: severity: message`` plus its fix."""
        for problem in problems:
            colour = "red" if problem.severity == "error" else "yellow"
            self._say(str(problem), colour)

    def outcome(self, outcome: Any) -> None:
        """The end of a run: success, or each failed node with its last lines."""
        if not outcome.failed:
            self.success(f"dataflow finished in {outcome.duration:.2f}s (logs: {outcome.out_dir})")
            return
        for result in outcome.failed:
            how = "was killed" if result.killed else f"exited with code {result.returncode}"
            self.error(f"node {result.node_id!r} failed: it {how}")
            for line in result.tail[-10:]:
                self._say(f"    {line}", "red")
        self.info(f"full logs: {outcome.out_dir}")
