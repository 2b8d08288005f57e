"""Structured log records: the one shape every log line of a run takes.

A record is a plain ``dict`` (cheap to build, to send as JSON and to store as
one JSON line) with these keys:

``timestamp``
    ISO 8601 UTC with microseconds and ``Z``: ``2026-11-25T22:09:02.123456Z``
    (so records sort and compare as strings).
``level``
    One of `LEVELS`: ``TRACE DEBUG INFO WARN ERROR FATAL`` (OpenTelemetry's
    severity names).
``dataflow``, ``run_id``, ``node``, ``machine``
    Where it comes from; ``node`` is None for the runtime's own records.
``message``
    The text.
``trace_id``, ``span_id``
    32 and 16 lowercase hex digits when the record was written while a traced
    message was processed, else None.
``source``
    ``log`` (the node's ``logging`` or ``node.log``), ``stdout``, ``stderr``
    or ``runtime`` (Doradus itself: node started, exited, failed).
``fields``
    Extra key-values (a ``dict``, possibly empty).

Example::

    record = make_record("INFO", "frame sent", node="camera", fields={"seq": 3})
    record["timestamp"]   # '2026-11-25T22:09:02.123456Z'
"""

from __future__ import annotations

import functools
import json
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal


@dataclass(frozen=True)
class Level:
    """One log level: its name, its number in Python's ``logging`` and its colour on a terminal.

    Example:
        >>> LEVEL_TABLE[3]
        Level(name='WARN', python=30, ansi='33')
    """

    name: str
    python: int
    """Its number in Python's ``logging`` (TRACE, which ``logging`` lacks, is 5)."""
    ansi: str
    """The SGR parameters of its colour on a terminal (empty: plain)."""


LEVEL_TABLE = (
    Level("TRACE", 5, "2"),  # dim
    Level("DEBUG", 10, "2"),
    Level("INFO", 20, ""),
    Level("WARN", 30, "33"),  # yellow
    Level("ERROR", 40, "31"),  # red
    Level("FATAL", 50, "1;31"),  # bold red
)
"""Every level, least severe first: the one table the level names, ranks and numbers come from."""
LEVELS = tuple(level.name for level in LEVEL_TABLE)
"""Level names, least severe first (OpenTelemetry's severity names)."""
LEVEL_RANK = {name: i for i, name in enumerate(LEVELS)}
"""Each level's severity rank: 0 for TRACE up to 5 for FATAL."""
PYTHON_LEVELS = {level.name: level.python for level in LEVEL_TABLE}
"""Each level's number in Python's ``logging`` (TRACE is 5)."""
LEVEL_COLORS = {level.name: level.ansi for level in LEVEL_TABLE}
"""Each level's terminal colour as SGR parameters (empty: plain)."""
_ALIASES = {
    **{name: name for name in LEVELS},
    "DBG": "DEBUG",
    "INF": "INFO",
    "NOTICE": "INFO",
    "WARNING": "WARN",
    "WRN": "WARN",
    "ERR": "ERROR",
    "CRITICAL": "FATAL",
    "CRIT": "FATAL",
    "PANIC": "FATAL",
}
NO_NODE = "-"
"""How a record without a node (the runtime's own) shows in a node column and as a group key."""
RECORD_KEYS = (
    "timestamp",
    "level",
    "dataflow",
    "run_id",
    "node",
    "machine",
    "message",
    "trace_id",
    "span_id",
    "source",
    "fields",
)
"""Every record's keys, in the order they are written."""


def normalize_level(name: str) -> str | None:
    """The canonical level for ``name`` (any case, common aliases), or None.

    Example:
        >>> normalize_level("warning"), normalize_level("crit"), normalize_level("loud")
        ('WARN', 'FATAL', None)
    """
    return _ALIASES.get(name.strip().upper())


def level_from_python(levelno: int) -> str:
    """The level of a Python ``logging`` level number.

    Example:
        >>> level_from_python(30), level_from_python(5), level_from_python(55)
        ('WARN', 'TRACE', 'FATAL')
    """
    return next((level.name for level in reversed(LEVEL_TABLE) if levelno >= level.python), LEVELS[0])


def iso_timestamp(
    seconds: float | None = None, *, timespec: Literal["microseconds", "milliseconds"] = "microseconds"
) -> str:
    """``seconds`` since the epoch (now when None) as ISO 8601 UTC with a ``Z``.

    The one time formatter of Doradus: log records keep microseconds (the
    default); the coordinator's API gives times to the millisecond. Digits
    beyond ``timespec`` are cut, not rounded, so a time never moves forward.

    Args:
        seconds: Seconds since the epoch; None means now.
        timespec: ``microseconds`` (``.500000``) or ``milliseconds`` (``.500``).

    Returns:
        ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (or ``.fffZ``), which sorts as text.

    Example:
        >>> iso_timestamp(0.5)
        '1970-01-01T00:00:00.500000Z'
        >>> iso_timestamp(1796389664.8629, timespec="milliseconds")
        '2026-12-04T13:07:44.862Z'
    """
    stamp = time.time() if seconds is None else seconds
    return datetime.fromtimestamp(stamp, UTC).isoformat(timespec=timespec).removesuffix("+00:00") + "Z"


def parse_timestamp(text: str) -> float:
    """Seconds since the epoch of an ISO 8601 time (``Z`` or an offset; naive means UTC).

    Raises:
        ValueError: not an ISO 8601 time.

    Example:
        >>> parse_timestamp("1970-01-01T00:01:00Z")
        60.0
    """
    value = datetime.fromisoformat(text.strip().replace("z", "Z"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


def record_level(record: dict[str, Any]) -> str:
    """The record's canonical level (INFO when missing or unknown).

    Example:
        >>> record_level({"level": "warning"}), record_level({})
        ('WARN', 'INFO')
    """
    raw = record.get("level")
    return (normalize_level(raw) if isinstance(raw, str) else None) or "INFO"


def record_time(record: dict[str, Any]) -> float | None:
    """The record's time in epoch seconds, or None when its timestamp is missing or unreadable.

    Example:
        >>> record_time({"timestamp": "1970-01-01T00:01:00.000000Z"}), record_time({"timestamp": "?"})
        (60.0, None)
    """
    raw = record.get("timestamp")
    if not isinstance(raw, str):
        return None
    try:
        return parse_timestamp(raw)
    except ValueError:
        return None


def short_timestamp(record: dict[str, Any]) -> str:
    """The record's time as ISO 8601 UTC to the millisecond (the raw text when unreadable).

    Example:
        >>> short_timestamp({"timestamp": "2026-11-25T22:09:02.123456Z"})
        '2026-11-25T22:09:02.123Z'
    """
    stamp = record_time(record)
    if stamp is None:
        return str(record.get("timestamp") or "")
    return iso_timestamp(stamp, timespec="milliseconds")


def make_record(
    level: str,
    message: str,
    *,
    node: str | None = None,
    dataflow: str | None = None,
    run_id: str | None = None,
    machine: str | None = None,
    source: str = "log",
    trace_id: str | None = None,
    span_id: str | None = None,
    fields: dict[str, Any] | None = None,
    timestamp: float | str | None = None,
) -> dict[str, Any]:
    """A record with every key of `RECORD_KEYS` (see the module documentation).

    Example:
        >>> r = make_record("warning", "hot", node="cpu", timestamp=0)
        >>> r["level"], r["timestamp"], r["fields"]
        ('WARN', '1970-01-01T00:00:00.000000Z', {})
    """
    stamp = timestamp if isinstance(timestamp, str) else iso_timestamp(timestamp)
    return {
        "timestamp": stamp,
        "level": normalize_level(level) or "INFO",
        "dataflow": dataflow,
        "run_id": run_id,
        "node": node,
        "machine": machine,
        "message": message,
        "trace_id": trace_id,
        "span_id": span_id,
        "source": source,
        "fields": dict(fields or {}),
    }


def at_least(record: dict[str, Any], level: str) -> bool:
    """Whether ``record`` is at ``level`` or more severe.

    Example:
        >>> at_least({"level": "ERROR"}, "WARN"), at_least({"level": "INFO"}, "WARN")
        (True, False)
    """
    return LEVEL_RANK.get(record.get("level") or "INFO", LEVEL_RANK["INFO"]) >= LEVEL_RANK[level]


# ------------------------------------------------------------- raw lines
_JSON_MESSAGE_KEYS = ("message", "msg", "event", "text")
_JSON_LEVEL_KEYS = ("level", "levelname", "severity", "lvl", "log.level")
_LEVEL_WORD = r"(?P<level>TRACE|DEBUG|INFO|NOTICE|WARN(?:ING)?|ERR(?:OR)?|FATAL|CRIT(?:ICAL)?|PANIC)"
_PREFIX_PATTERNS = (
    # [ERROR] msg · [2026-01-01T00:00:00Z ERROR module] msg (env_logger) · <ERROR> msg
    r"^\s*[\[<](?:[^\]>]*\s)?" + _LEVEL_WORD + r"(?:\s[^\]>]*)?[\]>]:?\s*(?P<rest>.*)$",
    # ERROR: msg · WARNING:root:msg (Python's default format) · error - msg · INFO msg
    r"^\s*" + _LEVEL_WORD + r"(?:\s*[:|-]\s*|\s+)(?P<rest>.*)$",
    # 2026-01-01 12:00:00,123 ERROR msg · 12:00:00.123 WARN [x] msg (timestamped loggers)
    r"^\s*\d[\d\-:T.,/ ]*\d(?:Z|[+-]\d\d:?\d\d)?\s+[\[<]?" + _LEVEL_WORD + r"[\]>]?(?:\s*[:|-]\s*|\s+)"
    r"(?P<rest>.*)$",
    # level=error msg="..." (logfmt)
    r"^(?P<rest>.*\blevel=\"?" + _LEVEL_WORD + r"\b.*)$",
)


@functools.cache
def _prefixes() -> tuple[tuple[re.Pattern[str], ...], re.Pattern[str]]:
    """The level prefixes and the Python logger prefix, compiled on first use.

    Nodes import this module but never classify lines: their start-up does not pay for it.
    """
    prefixes = tuple(re.compile(pattern, re.I) for pattern in _PREFIX_PATTERNS)
    return prefixes, re.compile(r"^(?P<logger>[\w.]+):(?P<rest>.*)$")


def classify_line(line: str, stream: str) -> tuple[str, str, dict[str, Any]]:
    """(level, message, fields) of one raw output line of a node.

    A JSON object with a level and a message key (structlog, bunyan, zap…)
    gives those, its other keys becoming fields; a recognised level prefix
    (``ERROR:``, ``[WARN]``, ``WARNING:root:…``, ``level=error``, a
    timestamp then a level) gives the level and the rest of the line.
    Otherwise stdout lines are INFO and stderr lines WARN.

    Example:
        >>> classify_line("ERROR: disk full", "stdout")
        ('ERROR', 'disk full', {})
        >>> classify_line("WARNING:camera:no frame", "stderr")
        ('WARN', 'no frame', {'logger': 'camera'})
        >>> classify_line("plain text", "stderr")
        ('WARN', 'plain text', {})
    """
    default = "WARN" if stream == "stderr" else "INFO"
    stripped = line.strip()
    if stripped.startswith("{") and stripped.endswith("}"):
        parsed = _json_line(stripped)
        if parsed is not None:
            return parsed
    prefixes, python_logger = _prefixes()
    for pattern in prefixes:
        match = pattern.match(line)
        if match is None:
            continue
        level = normalize_level(match.group("level")) or default
        rest = match.group("rest")
        if pattern is prefixes[3]:
            return level, rest, {}
        logger = python_logger.match(rest)
        if logger is not None and pattern is prefixes[1] and not rest.startswith(" "):
            return level, logger.group("rest"), {"logger": logger.group("logger")}
        return level, rest, {}
    return default, line, {}


def _json_line(text: str) -> tuple[str, str, dict[str, Any]] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if not isinstance(value, dict):
        return None
    level_key = next((k for k in _JSON_LEVEL_KEYS if isinstance(value.get(k), str)), None)
    message_key = next((k for k in _JSON_MESSAGE_KEYS if k in value), None)
    if level_key is None or message_key is None:
        return None
    level = normalize_level(value[level_key])
    if level is None:
        return None
    fields = {k: v for k, v in value.items() if k not in (level_key, message_key)}
    return level, str(value[message_key]), fields
