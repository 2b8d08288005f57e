"""Searching a run's log records: filters, grouping and CSV formatting.

Pure functions over record dicts (see ``doradus._observability.records``), shared by the
coordinator's log endpoints and ``doradus logs``. Terminal lines are
``doradus._observability.terminal``'s.

Example:
    >>> from doradus._observability.records import make_record
    >>> records = [
    ...     make_record("INFO", "frame 1", node="camera", timestamp=60),
    ...     make_record("ERROR", "no frame", node="camera", timestamp=120),
    ...     make_record("WARN", "slow", node="planner", timestamp=180),
    ... ]
    >>> query = build_query(level="warn", grep="frame|slow")
    >>> [r["message"] for r in query.apply(records)]
    ['no frame', 'slow']
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from doradus._observability.records import (
    LEVEL_RANK,
    LEVELS,
    NO_NODE,
    RECORD_KEYS,
    iso_timestamp,
    normalize_level,
    parse_timestamp,
    record_level,
    record_time,
)
from doradus._quantities import parse_duration

GROUP_BY = ("node", "level", "minute")
"""What `group_records` can group by."""
GROUP_COLUMNS = ("key", "count", "first", "last", "sample")
"""The keys of each row `group_records` returns, in order."""

_DAYS = re.compile(r"\s*([0-9]{1,12}(?:\.[0-9]{0,12})?|\.[0-9]{1,12})\s*(?:d|day|days)\s*", re.I)
_HAS_UNIT = re.compile(r".*[a-zA-Zµ]\s*")


class QueryError(ValueError):
    """A log query parameter that cannot be used: which one, why, and how to fix it.

    Example:
        >>> try:
        ...     build_query(level="loud")
        ... except QueryError as exc:
        ...     print(exc.param, "|", exc.fix)
        level | use one of TRACE, DEBUG, INFO, WARN, ERROR, FATAL (any case)
    """

    def __init__(self, param: str, message: str, fix: str) -> None:
        super().__init__(f"{param}: {message}")
        self.param = param
        self.message = message
        self.fix = fix


@dataclass(frozen=True)
class LogQuery:
    """Which records to keep; every set criterion must hold (None: not filtered on).

    ``node``: node ids (a record with any of them); ``min_level``: that level
    or more severe; ``levels``: exactly these levels; ``grep``: a regex
    searched in the message and in ``str(fields)``; ``since``/``until``: epoch
    seconds, both included; ``tail``: only the last N matching records
    (applied last, by `apply`).

    Example:
        >>> query = LogQuery(node=["camera"], min_level="WARN")
        >>> query.matches({"node": "camera", "level": "ERROR", "message": "x"})
        True
        >>> query.matches({"node": "camera", "level": "INFO", "message": "x"})
        False
    """

    node: list[str] | None = None
    min_level: str | None = None
    levels: frozenset[str] | None = None
    grep: re.Pattern[str] | None = None
    since: float | None = None
    until: float | None = None
    tail: int | None = None

    def matches(self, record: dict[str, Any]) -> bool:
        """Whether ``record`` passes every filter (``tail`` aside).

        A record whose timestamp cannot be read fails a ``since``/``until`` bound.

        Example:
            >>> LogQuery(grep=re.compile("disk")).matches({"message": "ok", "fields": {"disk": 1}})
            True
        """
        if self.node is not None and record.get("node") not in self.node:
            return False
        if self.min_level is not None or self.levels is not None:
            level = record_level(record)
            if self.min_level is not None and LEVEL_RANK[level] < LEVEL_RANK[self.min_level]:
                return False
            if self.levels is not None and level not in self.levels:
                return False
        if self.grep is not None:
            fields = record.get("fields")
            if self.grep.search(str(record.get("message") or "")) is None and (
                not fields or self.grep.search(str(fields)) is None
            ):
                return False
        if self.since is not None or self.until is not None:
            stamp = record_time(record)
            if stamp is None:
                return False
            if self.since is not None and stamp < self.since:
                return False
            if self.until is not None and stamp > self.until:
                return False
        return True

    def apply(self, records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """The matching records, in order; then only the last ``tail`` of them.

        Example:
            >>> rows = [{"level": "INFO", "message": str(k)} for k in range(5)]
            >>> [r["message"] for r in LogQuery(tail=2).apply(rows)]
            ['3', '4']
        """
        kept = [r for r in records if self.matches(r)]
        if self.tail is not None:
            return kept[-self.tail :] if self.tail else []
        return kept

    @property
    def filters(self) -> bool:
        """Whether any filter is set (``tail`` aside): False means every record matches.

        Example:
            >>> LogQuery(tail=3).filters, LogQuery(min_level="WARN").filters
            (False, True)
        """
        return any(
            v is not None for v in (self.node, self.min_level, self.levels, self.grep, self.since, self.until)
        )


def parse_level(text: str, param: str = "level") -> str:
    """The canonical level of ``text``, or `QueryError` naming ``param``.

    Raises:
        QueryError: not a level.

    Example:
        >>> parse_level("Warning")
        'WARN'
    """
    level = normalize_level(text)
    if level is None:
        raise QueryError(param, f"{text!r} is not a level", f"use one of {', '.join(LEVELS)} (any case)")
    return level


def parse_levels(text: str, param: str = "filter") -> frozenset[str]:
    """The levels of a comma-separated list (``"warn,error"``), or `QueryError` naming ``param``.

    Raises:
        QueryError: an item is not a level, or the list is empty.

    Example:
        >>> sorted(parse_levels("error, warn"))
        ['ERROR', 'WARN']
    """
    items = [item for item in (part.strip() for part in text.split(",")) if item]
    if not items:
        raise QueryError(param, "no level given", f"list levels separated by commas, e.g. {param}=WARN,ERROR")
    return frozenset(parse_level(item, param) for item in items)


def parse_grep(text: str, param: str = "grep") -> re.Pattern[str]:
    """``text`` compiled as a regular expression, or `QueryError` naming ``param``.

    Raises:
        QueryError: not a valid regular expression.

    Example:
        >>> parse_grep("fr(a|o)me").search("no frame") is not None
        True
    """
    try:
        return re.compile(text)
    except re.error as exc:
        raise QueryError(
            param,
            f"{text!r} is not a valid regular expression ({exc})",
            r"fix the expression (Python `re` syntax); escape special characters like ( [ * with \\",
        ) from exc


def parse_time_bound(text: str, now: float) -> float:
    """Epoch seconds of a time bound: a duration ago (``30s``, ``10m``, ``2h``, ``1d``) or an ISO 8601 time.

    A duration needs a unit (``ms``, ``s``, ``m``/``min``, ``h``, ``d``) and
    means that long before ``now``; an ISO time without an offset is UTC.

    Raises:
        ValueError: neither a duration nor an ISO 8601 time.

    Example:
        >>> parse_time_bound("10m", now=1000.0), parse_time_bound("1d", now=100_000.0)
        (400.0, 13600.0)
        >>> parse_time_bound("1970-01-01T00:01:00Z", now=0.0)
        60.0
    """
    days = _DAYS.fullmatch(text)
    if days is not None:
        return now - float(days.group(1)) * 86400.0
    if _HAS_UNIT.fullmatch(text) and not any(c in text for c in "-:"):
        seconds = parse_duration(text)
        if seconds is not None:
            return now - seconds
    else:
        try:
            return parse_timestamp(text)
        except ValueError:
            pass
    raise ValueError(
        f"{text!r} is neither a duration nor an ISO 8601 time; "
        "write e.g. 30s, 10m, 2h, 1d or 2026-11-25T22:09:00Z"
    )


def build_query(
    *,
    node: Sequence[str] | None = None,
    level: str | None = None,
    levels: str | None = None,
    grep: str | None = None,
    since: float | str | None = None,
    until: float | str | None = None,
    tail: int | None = None,
    now: float | None = None,
) -> LogQuery:
    """A `LogQuery` from raw parameter values, checking each (strings as users type them).

    ``levels`` is the comma-separated ``filter``; ``since``/``until`` are epoch
    seconds, or text for `parse_time_bound` (relative to ``now``, default the
    current time). Empty ``node`` means no node filter.

    Raises:
        QueryError: a value cannot be used; names the parameter (``level``,
            ``filter``, ``grep``, ``since``, ``until``, ``tail``).

    Example:
        >>> q = build_query(node=["a"], level="warning", levels="error,fatal", since="1m", now=600.0)
        >>> q.node, q.min_level, sorted(q.levels or ()), q.since
        (['a'], 'WARN', ['ERROR', 'FATAL'], 540.0)
    """
    import time

    clock = time.time() if now is None else now
    bounds: dict[str, float | None] = {}
    for name, value in (("since", since), ("until", until)):
        if isinstance(value, str):
            try:
                bounds[name] = parse_time_bound(value, clock)
            except ValueError as exc:
                raise QueryError(
                    name, str(exc).split(";", 1)[0], "write e.g. 30s, 10m, 2h, 1d or 2026-11-25T22:09:00Z"
                ) from exc
        else:
            bounds[name] = None if value is None else float(value)
    if tail is not None and tail < 0:
        raise QueryError("tail", f"{tail} is negative", "give a count of 0 or more")
    return LogQuery(
        node=list(node) if node else None,
        min_level=None if level is None else parse_level(level, "level"),
        levels=None if levels is None else parse_levels(levels, "filter"),
        grep=None if grep is None else parse_grep(grep, "grep"),
        since=bounds["since"],
        until=bounds["until"],
        tail=tail,
    )


def _group_key(record: dict[str, Any], by: str) -> str:
    if by == "node":
        return str(record.get("node") or NO_NODE)
    if by == "level":
        return record_level(record)
    stamp = record_time(record)
    return "?" if stamp is None else iso_timestamp(stamp)[:16] + "Z"


def group_records(records: Iterable[dict[str, Any]], by: str) -> list[dict[str, Any]]:
    """Count records per node, level or minute: rows ``{key, count, first, last, sample}``.

    ``first``/``last`` are the timestamps of the group's first and last record
    (in the order given) and ``sample`` the last one's message. Rows are
    sorted: nodes by name, levels least severe first, minutes in time order
    (``2026-11-25T22:09Z``).

    Raises:
        ValueError: ``by`` is not one of `GROUP_BY`.

    Example:
        >>> rows = group_records(
        ...     [
        ...         {"node": "a", "message": "x", "timestamp": "t1"},
        ...         {"node": "a", "message": "y", "timestamp": "t2"},
        ...     ],
        ...     "node",
        ... )
        >>> rows
        [{'key': 'a', 'count': 2, 'first': 't1', 'last': 't2', 'sample': 'y'}]
    """
    if by not in GROUP_BY:
        raise ValueError(f"cannot group by {by!r}; use one of {', '.join(GROUP_BY)}")
    groups: dict[str, dict[str, Any]] = {}
    for record in records:
        key = _group_key(record, by)
        row = groups.get(key)
        stamp = record.get("timestamp")
        if row is None:
            row = groups[key] = {"key": key, "count": 0, "first": stamp, "last": stamp, "sample": ""}
        row["count"] += 1
        row["last"] = stamp
        row["sample"] = str(record.get("message") or "")
    order = (
        sorted(groups, key=lambda k: LEVEL_RANK.get(k, LEVEL_RANK["INFO"]))
        if by == "level"
        else sorted(groups)
    )
    return [groups[k] for k in order]


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    return str(value)


def csv_line(values: Sequence[Any]) -> str:
    r"""One CSV line (ending in CRLF, as RFC 4180 says): None empty, dicts and lists as JSON, others as text.

    Example:
        >>> csv_line(["a,b", None, {"k": 1}])
        '"a,b",,"{""k"": 1}"\r\n'
    """
    out = io.StringIO()
    csv.writer(out).writerow([_csv_cell(v) for v in values])
    return out.getvalue()


def csv_header(columns: Sequence[str] = RECORD_KEYS) -> str:
    r"""The CSV header line for records (the record keys) or for other ``columns``.

    Example:
        >>> csv_header(["key", "count"])
        'key,count\r\n'
    """
    return csv_line(list(columns))


def csv_row(row: dict[str, Any], columns: Sequence[str] = RECORD_KEYS) -> str:
    r"""One record (or group row) as a CSV line, its values in ``columns`` order; ``fields`` as JSON.

    Example:
        >>> csv_row({"level": "INFO", "message": "hi", "fields": {"a": 1}}, ["level", "message", "fields"])
        'INFO,hi,"{""a"": 1}"\r\n'
    """
    return csv_line([row.get(column) for column in columns])


def to_csv(rows: Iterable[dict[str, Any]], columns: Sequence[str] = RECORD_KEYS) -> str:
    """Header plus one line per record (or group row).

    Example:
        >>> to_csv([{"key": "a", "count": 2}], ["key", "count"]).splitlines()
        ['key,count', 'a,2']
    """
    return csv_header(columns) + "".join(csv_row(row, columns) for row in rows)


def local_log_source(text: str, base: Path) -> Path | None:
    """The run folder or log file ``text`` names on disk, or None (then it names a dataflow).

    ``text`` may be a run folder holding log files (``out/<run-id>``), a
    ``.jsonl`` log file, or a run id whose folder ``base/out/<run-id>`` holds
    log files. A folder without log files does not count, so a dataflow
    named like a folder is still found on the coordinator.

    Example::

        local_log_source("out/01J9...", Path.cwd())   # PosixPath('out/01J9...')
        local_log_source("01J9...", Path.cwd())       # PosixPath('/project/out/01J9...')
        local_log_source("demo", Path.cwd())          # None
    """
    from doradus._observability.store import log_files

    path = Path(text)
    if not path.is_absolute():
        path = base / path
    if path.is_file() and path.suffix == ".jsonl":
        return path
    for folder in (path, base / "out" / text):
        if folder.is_dir() and log_files(folder):
            return folder
    return None


def read_log_source(source: Path) -> Iterator[dict[str, Any]]:
    """The records of a run folder (every rotated file, oldest first) or of one ``.jsonl`` file.

    A ``logs.jsonl`` file means its whole folder, rotated files included;
    lines that are not JSON objects are skipped.

    Example::

        errors = [r for r in read_log_source(Path("out/01J9...")) if r["level"] == "ERROR"]
    """
    from doradus._observability.store import LOG_FILE, read_records

    if source.is_dir():
        yield from read_records(source)
        return
    if source.name == LOG_FILE:
        yield from read_records(source.parent)
        return
    with open(source, "rb") as file:
        for raw in file:
            try:
                record = json.loads(raw)
            except ValueError:
                continue
            if isinstance(record, dict):
                yield record
