"""Log records as terminal lines: the one formatter of `doradus run`, `start --attach` and `logs`.

`RecordFormatter` turns a record (see ``doradus._observability.records``) into the line a
person reads, in one of `LINE_FORMATS`; `RecordPrinter` writes those lines to a stream from
any thread. Level colours come from the level table (`LEVEL_COLORS`).

Example:
    >>> from doradus._observability.records import make_record
    >>> record = make_record("WARN", "no frame", node="camera", timestamp=0)
    >>> RecordFormatter(["camera", "planner"]).format(record)
    'camera  | WARN  no frame'
    >>> RecordFormatter(["camera"], fmt="text").format(record)
    '1970-01-01T00:00:00.000Z  WARN  camera | no frame'
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
from collections.abc import Iterable, Sequence
from typing import Any, TextIO

from doradus._observability.records import (
    LEVEL_COLORS,
    LEVEL_RANK,
    NO_NODE,
    record_level,
    short_timestamp,
)

LOG_FORMATS = ("pretty", "compact", "json")
"""``--log-format`` of ``doradus run`` and ``doradus start``: how a run's records print."""
LINE_FORMATS = (*LOG_FORMATS, "text")
"""Every layout of `RecordFormatter`: the `LOG_FORMATS`, and ``text``, the line of ``doradus logs``."""
NODE_PALETTE = ("36", "35", "33", "32", "34", "96", "95", "93", "92", "94")
"""Colours of the node prefixes of ``pretty`` lines, one per node in turn."""
RUNTIME_PREFIX = "34"
"""Colour of the prefix of a record whose node was not named up front (the runtime's own)."""
FIELDS_COLOR = "2"
"""Colour of the ``key=value`` fields of ``pretty`` lines (dim)."""
_QUIET_FIELDS = ("logger", "event")
"""Fields ``pretty`` leaves out: the logger's name and the runtime's event name say nothing new."""
_PLAIN_VALUE = re.compile(r"[^\s=\"]+")


def paint(text: str, sgr: str) -> str:
    r"""``text`` in the colour of the SGR parameters ``sgr`` (plain when ``sgr`` is empty).

    Example:
        >>> paint("hot", "31"), paint("calm", "")
        ('\x1b[31mhot\x1b[0m', 'calm')
    """
    return f"\x1b[{sgr}m{text}\x1b[0m" if sgr else text


def node_column_width(records: Iterable[dict[str, Any]], known: Iterable[str] = ()) -> int:
    """The node column's width for these records and ``known`` node ids.

    Example:
        >>> node_column_width([{"node": "camera"}, {"node": None}], known=["planner"])
        7
    """
    names = [str(r.get("node") or NO_NODE) for r in records]
    return max((len(name) for name in [*names, *known]), default=len(NO_NODE))


def _value_text(value: Any) -> str:
    if isinstance(value, str):
        return value if _PLAIN_VALUE.fullmatch(value) else json.dumps(value, ensure_ascii=False)
    return json.dumps(value, ensure_ascii=False, default=str, separators=(",", ":"))


def format_text(record: dict[str, Any], color: bool = False, node_width: int = 0) -> str:
    """One aligned line: ``TIME  LEVEL NODE | message  key=value … trace=<8 hex>``.

    The time is shortened to milliseconds, the level padded to 5 and the node
    to ``node_width`` (``-`` for the runtime's own records). With ``color``
    the level and message are coloured by level with ANSI codes: TRACE/DEBUG
    dim, INFO plain, WARN yellow, ERROR red, FATAL bold red.

    Example:
        >>> record = {
        ...     "timestamp": "2026-11-25T22:09:02.123456Z", "level": "WARN", "node": "camera",
        ...     "message": "slow", "fields": {"ms": 40, "why": "no gpu"},
        ...     "trace_id": "0af7651916cd43dd8448eb211c80319c",
        ... }
        >>> format_text(record, node_width=8)
        '2026-11-25T22:09:02.123Z  WARN  camera   | slow  ms=40 why="no gpu" trace=0af76519'
    """
    level = record_level(record)
    node = str(record.get("node") or NO_NODE)
    head = f"{level:<5}"
    message = str(record.get("message") or "")
    if color:
        head, message = paint(head, LEVEL_COLORS[level]), paint(message, LEVEL_COLORS[level])
    extras = [f"{key}={_value_text(value)}" for key, value in dict(record.get("fields") or {}).items()]
    trace_id = record.get("trace_id")
    if trace_id:
        extras.append(f"trace={str(trace_id)[:8]}")
    tail = "  " + " ".join(extras) if extras else ""
    return f"{short_timestamp(record)}  {head} {node:<{node_width}} | {message}{tail}"


class RecordFormatter:
    """Turns log records into terminal lines, in one of `LINE_FORMATS`.

    - ``pretty``: ``node | message``, the level shown (and coloured) when it
      is not INFO, extra fields appended as ``key=value``; the runtime's own
      records up to INFO (node started, exited) are left out, as the progress
      display says it.
    - ``compact``: ``12:00:01.234 W node: message``, every record.
    - ``json``: each record as one JSON line, exactly as stored.
    - ``text``: `format_text`'s aligned ``TIME  LEVEL NODE | message`` line.

    ``node_ids`` are the nodes whose records are expected: the node column fits
    them (in ``pretty``, each gets its own colour). Thread-safe: it holds no
    state that changes.

    Example:
        >>> from doradus._observability.records import make_record
        >>> formatter = RecordFormatter(["camera"], fmt="compact")
        >>> formatter.format(make_record("ERROR", "no frame", node="camera", timestamp=0))
        '00:00:00.000 E camera: no frame'
    """

    def __init__(self, node_ids: Sequence[str] = (), *, fmt: str = "pretty", color: bool = False) -> None:
        if fmt not in LINE_FORMATS:
            raise ValueError(f"unknown log format {fmt!r}: use one of {', '.join(LINE_FORMATS)}")
        self.fmt = fmt
        self.color = color
        self.width = node_column_width([], node_ids)
        self._prefix = {
            node_id: self._paint(f"{node_id:<{self.width}}", NODE_PALETTE[i % len(NODE_PALETTE)])
            for i, node_id in enumerate(node_ids)
        }

    def _paint(self, text: str, sgr: str) -> str:
        return paint(text, sgr) if self.color else text

    def format(self, record: dict[str, Any]) -> str | None:
        """The line (or lines) for ``record``; None when this format leaves it out.

        Example:
            >>> from doradus._observability.records import make_record
            >>> RecordFormatter(["talker"]).format(make_record("INFO", "hi", node="talker"))
            'talker | hi'
        """
        if self.fmt == "json":
            return json.dumps(record, ensure_ascii=False, default=str)
        if self.fmt == "text":
            return format_text(record, self.color, self.width)
        level = record_level(record)
        node = record.get("node") or "doradus"
        message = str(record.get("message", ""))
        if self.fmt == "compact":
            stamp = str(record.get("timestamp", ""))[11:23]
            return f"{stamp} {self._paint(level[0], LEVEL_COLORS[level])} {node}: {message}"
        runtime = record.get("source") == "runtime"
        if runtime and LEVEL_RANK[level] <= LEVEL_RANK["INFO"]:
            return None
        prefix = self._prefix.get(node) or self._paint(f"{node:<{self.width}}", RUNTIME_PREFIX)
        text = message if level == "INFO" else f"{self._paint(f'{level:<5}', LEVEL_COLORS[level])} {message}"
        fields = {k: v for k, v in (record.get("fields") or {}).items() if k not in _QUIET_FIELDS}
        if fields and not runtime:
            text += self._paint("  " + " ".join(f"{k}={v}" for k, v in fields.items()), FIELDS_COLOR)
        return "\n".join(f"{prefix} | {part}" for part in text.split("\n"))


class RecordPrinter:
    """Prints log records on a terminal as `RecordFormatter` lays them out.

    Safe to call from several threads: each record's lines are written whole.
    ``color`` None means: when ``stream`` is a terminal and ``NO_COLOR`` is unset.

    Example::

        printer = RecordPrinter(["camera", "detector"], fmt="compact")
        printer(make_record("WARN", "no frame", node="camera"))
    """

    def __init__(
        self,
        node_ids: Sequence[str],
        stream: TextIO | None = None,
        color: bool | None = None,
        fmt: str = "pretty",
    ) -> None:
        self.stream = stream or sys.stdout
        if color is None:
            color = self.stream.isatty() and "NO_COLOR" not in os.environ
        self.formatter = RecordFormatter(node_ids, fmt=fmt, color=color)
        self._lock = threading.Lock()

    def __call__(self, record: dict[str, Any]) -> None:
        """Print one record (nothing when its format leaves it out)."""
        line = self.formatter.format(record)
        if line is None:
            return
        with self._lock:
            self.stream.write(line + "\n")
            self.stream.flush()
