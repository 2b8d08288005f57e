"""The pure log-search functions: filters, time bounds, grouping, text and CSV formatting."""

from __future__ import annotations

import csv
import io
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from doradus._observability.query import (
    GROUP_COLUMNS,
    LogQuery,
    QueryError,
    build_query,
    csv_header,
    csv_row,
    group_records,
    local_log_source,
    parse_time_bound,
    read_log_source,
    to_csv,
)
from doradus._observability.records import (
    LEVEL_RANK,
    LEVELS,
    RECORD_KEYS,
    iso_timestamp,
    make_record,
    short_timestamp,
)
from doradus._observability.store import LogStore
from doradus._observability.terminal import format_text, node_column_width

ANSI = re.compile(r"\x1b\[[0-9;]*m")
NODES = st.sampled_from(["camera", "planner", "x", None])
RECORDS = st.lists(
    st.builds(
        lambda level, node, message, t, fields: make_record(
            level, message, node=node, timestamp=t, fields=fields
        ),
        st.sampled_from(LEVELS),
        NODES,
        st.text(max_size=20),
        st.floats(min_value=0, max_value=4_000_000_000),
        st.dictionaries(st.sampled_from(["a", "b", "seq"]), st.integers() | st.text(max_size=5), max_size=2),
    ),
    max_size=30,
)


def rec(
    level: str, message: str, node: str | None = "camera", t: float = 0.0, **extra: Any
) -> dict[str, Any]:
    return make_record(level, message, node=node, timestamp=t, **extra)


# ------------------------------------------------------------ LogQuery
def test_each_filter() -> None:
    records = [
        rec("INFO", "started", t=100),
        rec("WARN", "slow", node="planner", t=200, fields={"ms": 250}),
        rec("ERROR", "no frame", t=300, fields={"device": "/dev/video0"}),
        rec("DEBUG", "tick", node=None, t=400),
    ]

    def messages(query: LogQuery) -> list[str]:
        return [r["message"] for r in query.apply(records)]

    assert messages(LogQuery()) == ["started", "slow", "no frame", "tick"]
    assert messages(LogQuery(node=["planner"])) == ["slow"]
    assert messages(LogQuery(node=["planner", "camera"])) == ["started", "slow", "no frame"]
    assert messages(LogQuery(min_level="WARN")) == ["slow", "no frame"]
    assert messages(LogQuery(levels=frozenset({"INFO", "DEBUG"}))) == ["started", "tick"]
    assert messages(LogQuery(grep=re.compile("video"))) == ["no frame"]  # in the fields only
    assert messages(LogQuery(grep=re.compile("^s"))) == ["started", "slow"]
    assert messages(LogQuery(since=200, until=300)) == ["slow", "no frame"]  # both included
    assert messages(LogQuery(since=200.5)) == ["no frame", "tick"]
    assert messages(LogQuery(tail=1)) == ["tick"]
    assert messages(LogQuery(tail=0)) == []
    assert messages(LogQuery(min_level="DEBUG", node=["camera"], tail=1)) == ["no frame"]  # tail last


def test_unreadable_timestamp_fails_time_bounds_only() -> None:
    bad = {"timestamp": "yesterday", "level": "INFO", "message": "x"}
    assert LogQuery().matches(bad)
    assert not LogQuery(since=0).matches(bad)
    assert not LogQuery(until=1e12).matches(bad)


@given(RECORDS, st.sampled_from(LEVELS), st.integers(min_value=0, max_value=40))
def test_apply_is_filter_then_tail(records: list[dict[str, Any]], level: str, tail: int) -> None:
    kept = LogQuery(min_level=level, tail=tail).apply(records)
    expected = [r for r in records if LEVEL_RANK[r["level"]] >= LEVEL_RANK[level]]
    assert kept == (expected[-tail:] if tail else [])


@given(RECORDS, st.floats(0, 4e9), st.floats(0, 4e9))
def test_since_until_window(records: list[dict[str, Any]], a: float, b: float) -> None:
    since, until = min(a, b), max(a, b)
    kept = LogQuery(since=since, until=until).apply(records)
    from doradus._observability.records import parse_timestamp

    assert kept == [r for r in records if since <= parse_timestamp(r["timestamp"]) <= until]


# ------------------------------------------------------------ build_query
def test_build_query_parses_user_values() -> None:
    query = build_query(
        node=("a", "b"), level="warning", levels="err, fatal", grep="x+", since="10m", until="1d", now=100_000
    )
    assert query.node == ["a", "b"]
    assert query.min_level == "WARN"
    assert query.levels == frozenset({"ERROR", "FATAL"})
    assert query.grep is not None
    assert query.grep.pattern == "x+"
    assert (query.since, query.until) == (99_400.0, 13_600.0)
    assert build_query(node=()).node is None
    assert build_query(since=5, until=6.5).since == 5.0


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"level": "loud"}, "level"),
        ({"levels": "warn,nope"}, "filter"),
        ({"levels": " , "}, "filter"),
        ({"grep": "(unclosed"}, "grep"),
        ({"since": "yesterday"}, "since"),
        ({"until": "5"}, "until"),
        ({"tail": -1}, "tail"),
    ],
)
def test_build_query_errors_name_the_parameter(kwargs: dict[str, Any], param: str) -> None:
    with pytest.raises(QueryError) as caught:
        build_query(**kwargs)
    assert caught.value.param == param
    assert str(caught.value).startswith(f"{param}: ")
    assert caught.value.fix


# ------------------------------------------------------------ time bounds
@pytest.mark.parametrize(
    ("text", "seconds_ago"),
    [
        ("30s", 30),
        ("10m", 600),
        ("2h", 7200),
        ("1d", 86400),
        ("1.5d", 129600),
        ("500ms", 0.5),
        ("2 min", 120),
    ],
)
def test_durations_mean_that_long_ago(text: str, seconds_ago: float) -> None:
    assert parse_time_bound(text, now=1_000_000.0) == pytest.approx(1_000_000.0 - seconds_ago)


@pytest.mark.parametrize(
    ("text", "epoch"),
    [
        ("1970-01-01T00:01:00Z", 60.0),
        ("1970-01-01T01:01:00+01:00", 60.0),
        ("1970-01-01T00:01:00", 60.0),
        ("1970-01-02", 86400.0),
        ("2026-11-25T22:09:02.123456Z", 1795644542.123456),
    ],
)
def test_iso_times_are_absolute(text: str, epoch: float) -> None:
    assert parse_time_bound(text, now=5.0) == pytest.approx(epoch)


@pytest.mark.parametrize("text", ["", "soon", "12", "-5m", "10 parsecs", "2026-13-01", "1h30m"])
def test_bad_time_bounds_raise_a_clear_error(text: str) -> None:
    with pytest.raises(ValueError, match=r"neither a duration nor an ISO 8601 time; write e\.g\. 30s"):
        parse_time_bound(text, now=0.0)


@given(st.floats(min_value=0, max_value=4e9))
def test_iso_round_trip(seconds: float) -> None:
    assert parse_time_bound(iso_timestamp(seconds), now=0.0) == pytest.approx(seconds, abs=1e-6)


# ------------------------------------------------------------ grouping
def test_group_by_node_level_minute() -> None:
    records = [
        rec("INFO", "a", t=60),
        rec("ERROR", "b", node="planner", t=61),
        rec("INFO", "c", t=125),
        rec("TRACE", "d", node=None, t=126),
    ]
    stamps = [r["timestamp"] for r in records]
    assert group_records(records, "node") == [
        {"key": "-", "count": 1, "first": stamps[3], "last": stamps[3], "sample": "d"},
        {"key": "camera", "count": 2, "first": stamps[0], "last": stamps[2], "sample": "c"},
        {"key": "planner", "count": 1, "first": stamps[1], "last": stamps[1], "sample": "b"},
    ]
    assert [(r["key"], r["count"]) for r in group_records(records, "level")] == [
        ("TRACE", 1),
        ("INFO", 2),
        ("ERROR", 1),
    ]
    assert [(r["key"], r["count"], r["sample"]) for r in group_records(records, "minute")] == [
        ("1970-01-01T00:01Z", 2, "b"),
        ("1970-01-01T00:02Z", 2, "d"),
    ]
    with pytest.raises(ValueError, match="cannot group by 'colour'"):
        group_records(records, "colour")


@given(RECORDS, st.sampled_from(["node", "level", "minute"]))
def test_group_counts_add_up(records: list[dict[str, Any]], by: str) -> None:
    rows = group_records(records, by)
    assert sum(r["count"] for r in rows) == len(records)
    assert len({r["key"] for r in rows}) == len(rows)
    if by == "node":
        assert {r["key"]: r["count"] for r in rows} == Counter(r["node"] or "-" for r in records)
    for row in rows:
        assert list(row) == list(GROUP_COLUMNS)


# ------------------------------------------------------------ text
def test_format_text_layout() -> None:
    record = rec(
        "WARN",
        "slow plan",
        node="planner",
        t=1795644542.123456,
        fields={"ms": 250, "why": "no gpu", "ok": True, "tags": ["a"]},
        trace_id="0af7651916cd43dd8448eb211c80319c",
    )
    assert format_text(record, False, 10) == (
        '2026-11-25T22:09:02.123Z  WARN  planner    | slow plan  ms=250 why="no gpu" ok=true tags=["a"] '
        "trace=0af76519"
    )
    bare = rec("ERROR", "x", node=None, t=0)
    assert format_text(bare, False, 3) == "1970-01-01T00:00:00.000Z  ERROR -   | x"
    assert format_text(rec("INFO", "y", node="averylongnode"), False, 3).endswith("INFO  averylongnode | y")


@pytest.mark.parametrize(
    ("level", "code"),
    [
        ("TRACE", "\x1b[2m"),
        ("DEBUG", "\x1b[2m"),
        ("WARN", "\x1b[33m"),
        ("ERROR", "\x1b[31m"),
        ("FATAL", "\x1b[1;31m"),
    ],
)
def test_format_text_colours_by_level(level: str, code: str) -> None:
    line = format_text(rec(level, "msg"), True, 8)
    assert f"{code}{level:<5}\x1b[0m" in line
    assert f"{code}msg\x1b[0m" in line
    assert ANSI.sub("", line) == format_text(rec(level, "msg"), False, 8)


def test_info_is_not_coloured() -> None:
    assert not ANSI.search(format_text(rec("INFO", "msg"), True, 8))


@given(RECORDS, st.integers(min_value=0, max_value=12), st.booleans())
def test_text_columns_align(records: list[dict[str, Any]], extra: int, color: bool) -> None:
    width = node_column_width(records) + extra
    for record in records:
        line = ANSI.sub("", format_text(record, color, width))
        assert line.index(" | ") == len("2026-11-25T22:09:02.123Z  ERROR ") + width
        assert line.startswith(short_timestamp(record))


def test_short_timestamp() -> None:
    assert short_timestamp({"timestamp": "2026-11-25T23:09:02.999999+01:00"}) == "2026-11-25T22:09:02.999Z"
    assert short_timestamp({"timestamp": "garbage"}) == "garbage"


# ------------------------------------------------------------ CSV
@given(RECORDS)
def test_csv_round_trip(records: list[dict[str, Any]]) -> None:
    text = to_csv(records)
    assert text.startswith(csv_header())
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == len(records)
    for row, record in zip(rows, records, strict=True):
        assert list(row) == list(RECORD_KEYS)
        assert json.loads(row["fields"]) == record["fields"]
        assert row["message"] == record["message"]
        assert row["node"] == (record["node"] or "")


def test_csv_row_quotes() -> None:
    assert (
        csv_row({"message": 'say "hi", twice', "fields": {}}, ["message", "fields"])
        == '"say ""hi"", twice",{}\r\n'
    )


# ------------------------------------------------------------ on disk
def test_local_log_source_and_reading(tmp_path: Path) -> None:
    run = tmp_path / "out" / "01JX"
    with LogStore(run, max_bytes=1024, backups=10) as store:
        for k in range(30):
            store.write(rec("INFO", f"m{k}", t=k, fields={"pad": "x" * 30}))
    assert (run / "logs.1.jsonl").exists()
    assert local_log_source(str(run), tmp_path) == run
    assert local_log_source("out/01JX", tmp_path) == run
    assert local_log_source("01JX", tmp_path) == run
    assert local_log_source(str(run / "logs.jsonl"), tmp_path) == run / "logs.jsonl"
    assert local_log_source("demo", tmp_path) is None
    (tmp_path / "empty").mkdir()
    assert local_log_source("empty", tmp_path) is None  # a folder without logs names a dataflow
    expected = [f"m{k}" for k in range(30)]
    assert [r["message"] for r in read_log_source(run)] == expected
    assert [r["message"] for r in read_log_source(run / "logs.jsonl")] == expected
    single = tmp_path / "copy.jsonl"
    single.write_text('{"message": "a"}\nnot json\n[1]\n{"message": "b"}\n')
    assert [r["message"] for r in read_log_source(single)] == ["a", "b"]
