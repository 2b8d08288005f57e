"""Rendering shared by the commands: messages, problems, outcomes, stages, tables, data output."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TextIO

import click

from doradus._observability.records import parse_timestamp


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

    def error(self, text: str, *, mark: bool = True) -> None:
        """An error line, with a cross unless ``mark`` is False (a line whose wording is a contract)."""
        self._say(f"✗ {text}" if mark else text, "red")

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
            if result.ended_because:
                how = f"was ended: {result.ended_because}"
            self.error(f"node {result.node_id!r} failed: it {how}")
            for line in result.tail[-10:]:
                self._say(f"    {line}", "red")
        self.info(f"full logs: {outcome.out_dir}")


SPINNER_FRAMES = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"


class StageDisplay:
    """Stages of long work on stderr: ``Loading dataflow… ✓ done in 0.01s``.

    On a colour terminal a spinner turns while a stage runs (a small thread,
    no rich import, so ``doradus run`` starts fast); otherwise each stage is
    one plain line printed when it ends.

    Example:
        >>> import io
        >>> out = io.StringIO()
        >>> stages = StageDisplay(color=False, stream=out)
        >>> with stages.stage("Validating"):
        ...     pass
        >>> out.getvalue().startswith("Validating… ✓ done in ")
        True
    """

    def __init__(self, color: bool, stream: TextIO | None = None) -> None:
        self.color = color
        self.stream = stream or sys.stderr
        self._label = ""
        self._started = 0.0
        self._stop: threading.Event | None = None
        self._thread: threading.Thread | None = None

    def begin(self, label: str) -> None:
        """Start a stage (ends any stage still running, as successful)."""
        if self._label:
            self.end()
        self._label = label
        self._started = time.monotonic()
        if self.color:
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._spin, args=(self._stop, label), daemon=True)
            self._thread.start()

    def end(self, ok: bool = True) -> float:
        """End the current stage with ✓ (or ✗); returns its duration in seconds."""
        seconds = time.monotonic() - self._started
        if not self._label:
            return 0.0
        if self._stop and self._thread:
            self._stop.set()
            self._thread.join()
            self._stop = self._thread = None
            self.stream.write("\r\x1b[2K")
        if ok:
            mark, tail = self._paint("✓", 32), f"done in {seconds:.2f}s"
        else:
            mark, tail = self._paint("✗", 31), f"failed after {seconds:.2f}s"
        self.stream.write(f"{self._label}… {mark} {tail}\n")
        self.stream.flush()
        self._label = ""
        return seconds

    @contextmanager
    def stage(self, label: str) -> Iterator[None]:
        """A stage around a block: ✗ if the block raises (or exits), ✓ otherwise.

        Example::

            with stages.stage("Loading dataflow"):
                text = path.read_text()
        """
        self.begin(label)
        try:
            yield
        except BaseException:
            self.end(ok=False)
            raise
        if self._label == label:
            self.end()

    def _paint(self, text: str, code: int) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.color else text

    def _spin(self, stop: threading.Event, label: str) -> None:
        frame = 0
        while True:
            self.stream.write(f"\r\x1b[2K{self._paint(SPINNER_FRAMES[frame], 34)} {label}…")
            self.stream.flush()
            frame = (frame + 1) % len(SPINNER_FRAMES)
            if stop.wait(0.08):
                return


def emit_data(data: Any, output: str) -> None:
    """Machine output on stdout: ``json`` (indented, sorted keys) or ``yaml``.

    Example:
        >>> emit_data({"b": 1, "a": 2}, "json")
        {
          "a": 2,
          "b": 1
        }
    """
    if output == "json":
        import json

        click.echo(json.dumps(data, indent=2, sort_keys=True))
    else:
        import yaml

        click.echo(yaml.safe_dump(data, sort_keys=True), nl=False)


def plain_table(columns: list[str], rows: list[list[str]]) -> str:
    """Left-aligned columns separated by two spaces, for terminals and pipes alike.

    Example:
        >>> print(plain_table(["NAME", "X"], [["a", "1"], ["long", "22"]]))
        NAME  X
        a     1
        long  22
    """
    widths = [max(len(str(cell)) for cell in column) for column in zip(columns, *rows, strict=False)]
    lines = [
        "  ".join(f"{cell:<{w}}" for cell, w in zip(row, widths, strict=False)).rstrip()
        for row in [columns, *rows]
    ]
    return "\n".join(lines)


STATUS_STYLES = {"running": "blue", "finished": "green", "stopped": "yellow", "failed": "red"}
"""The rich style of each dataflow or node status in tables."""


def styled_status(status: str) -> str:
    """``status`` with rich markup for its colour (plain when it has none).

    Example:
        >>> styled_status("failed"), styled_status("pending")
        ('[red]failed[/red]', 'pending')
    """
    style = STATUS_STYLES.get(status)
    return f"[{style}]{status}[/{style}]" if style else status


def clock(seconds: float) -> str:
    """Epoch ``seconds`` as local ``HH:MM:SS``, as tables show times.

    Example:
        >>> len(clock(0.0))
        8
    """
    return time.strftime("%H:%M:%S", time.localtime(seconds))


def when(stamp: str | None) -> str:
    """An API time (ISO 8601 UTC) as local ``HH:MM:SS`` for tables; ``-`` when there is none.

    Example:
        >>> when(None)
        '-'
    """
    return clock(parse_timestamp(stamp)) if stamp else "-"


def console() -> Any:
    """A rich console on stdout: plain with ``NO_COLOR``, 200 columns when piped (ids never cut).

    Example:
        >>> console().width > 0
        True
    """
    from rich.console import Console

    width = None if sys.stdout.isatty() else 200
    return Console(no_color="NO_COLOR" in os.environ, width=width)


def make_table(
    title: str | None, columns: Sequence[str], rows: Iterable[Sequence[str]], right: int = 99
) -> Any:
    """A rich table; columns from index ``right`` on are right-aligned (numbers).

    Example:
        >>> make_table("demo", ["Node", "PID"], [["camera", "4242"]], right=1).row_count
        1
    """
    from rich.table import Table

    table = Table(title=title, title_justify="left", header_style="bold")
    for k, column in enumerate(columns):
        table.add_column(column, justify="right" if k >= right else "left")
    for row in rows:
        table.add_row(*row)
    return table


def print_table(
    title: str | None, columns: Sequence[str], rows: Iterable[Sequence[str]], right: int = 99
) -> None:
    """Print `make_table`'s table on `console`.

    Example::

        print_table(None, ["NAME", "ID"], [["demo", "01a2..."]])   # ┃ NAME ┃ ID       ┃ ...
    """
    console().print(make_table(title, columns, rows, right))
