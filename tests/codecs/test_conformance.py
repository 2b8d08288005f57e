"""One conformance suite, four codecs: round trips of every supported type, and bad bytes.

Every codec gets the same records (the fields all four schemas share, plus the Avro-only
ones for Avro) from the same hypothesis strategy, and goes through `doradus.testing.check_codec`:
round trip, `to_arrow`, truncated, extended and corrupted messages, garbage — each held to what
the codec declares in `Codec.detects`. Every codec meets every other codec's messages through
`doradus.testing.check_foreign`, and each codec's declaration is pinned here and in the docs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from doradus.codecs import Detects, FormatSpec, get_codec
from doradus.testing import check_codec, check_foreign

SCHEMAS = Path(__file__).parent / "schemas"
SPECS = {
    "arrow": FormatSpec("arrow"),
    "capnp": FormatSpec("capnp", SCHEMAS / "reading.capnp", "Reading"),
    "flatbuffers": FormatSpec("flatbuffers", SCHEMAS / "reading.fbs", "Reading"),
    "avro": FormatSpec("avro", SCHEMAS / "reading.avsc"),
}
AVRO_ONLY = {"kind": "RAW", "note": None, "attrs": {}}

text = st.text(st.characters(exclude_categories=("Cs",)), max_size=20)
finite = st.floats(allow_nan=False, allow_infinity=False)
records = st.fixed_dictionaries(
    {
        "label": text,
        "seq": st.integers(-(2**63), 2**63 - 1),
        "values": st.lists(finite, max_size=30),
        "ok": st.booleans(),
        "blob": st.binary(max_size=64),
        "small": st.integers(-128, 127),
        "ratio": st.floats(width=32, allow_nan=False, allow_infinity=False),
        "tags": st.lists(text, max_size=5),
        "pose": st.fixed_dictionaries({"x": finite, "y": finite, "z": finite}),
    }
)


def _value(name: str, record: dict[str, Any]) -> Any:
    if name == "arrow":
        return pa.array([record])
    if name == "avro":
        return {**record, **AVRO_ONLY}
    if name in ("capnp", "flatbuffers"):
        return {**record, "big": 0}
    return record


def _expected(name: str, record: dict[str, Any]) -> Any:
    return [record] if name == "arrow" else _value(name, record)


@pytest.mark.parametrize("name", list(SPECS))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(record=records)
def test_round_trip_and_bad_bytes(name: str, record: dict[str, Any]) -> None:
    codec = get_codec(SPECS[name])
    check_codec(codec, [_value(name, record)], expected=lambda _v: _expected(name, record))


EMPTY = {
    "label": "",
    "seq": 0,
    "values": [],
    "ok": False,
    "blob": b"",
    "small": 0,
    "ratio": 0.0,
    "tags": [],
    "pose": {"x": 0.0, "y": 0.0, "z": 0.0},
}
LARGE = {**EMPTY, "label": "é" * 10_000, "values": [float(i) for i in range(100_000)], "blob": bytes(1 << 20)}


@pytest.mark.parametrize("name", list(SPECS))
@pytest.mark.parametrize("record", [EMPTY, LARGE], ids=["empty", "large"])
def test_empty_and_large_values(name: str, record: dict[str, Any]) -> None:
    codec = get_codec(SPECS[name])
    encoded = bytes(memoryview(codec.encode(_value(name, record))))
    assert codec.to_python(codec.decode(encoded)) == _expected(name, record)
    assert codec.to_python(codec.decode(memoryview(encoded).toreadonly())) == _expected(name, record)


SAMPLE = {
    **EMPTY,
    "label": "sample",
    "seq": -5,
    "values": [1.5, -2.0],
    "ok": True,
    "blob": b"\x00\xff",
    "tags": ["a", ""],
    "pose": {"x": 1.0, "y": 2.0, "z": 3.0},
}
PAIRS = [(writer, reader) for writer in SPECS for reader in SPECS if writer != reader]


@pytest.mark.parametrize(("writer", "reader"), PAIRS, ids=[f"{w}-read-by-{r}" for w, r in PAIRS])
@pytest.mark.parametrize("record", [EMPTY | {"label": "x"}, SAMPLE], ids=["small", "sample"])
def test_another_codecs_bytes_meet_the_declaration(writer: str, reader: str, record: dict[str, Any]) -> None:
    # Rejected where the reader declares FOREIGN_FORMAT; elsewhere (formats without a magic
    # number) read as some value or rejected, never another exception. On an edge, the
    # header's format tag keeps formats apart (tests/unit/test_format_tag.py).
    encoded = get_codec(SPECS[writer]).encode(_value(writer, record))
    check_foreign(get_codec(SPECS[reader]), encoded, writer=writer)


@pytest.mark.parametrize("name", list(SPECS))
def test_garbage_meets_the_declaration(name: str) -> None:
    check_codec(get_codec(SPECS[name]), [])  # no values: only `GARBAGE`


T, R, F, G = Detects.TRUNCATION, Detects.TRAILING_BYTES, Detects.FOREIGN_FORMAT, Detects.GARBAGE
DECLARED = {
    # Established by experiment (each codec against prefixes, appended bytes, the others'
    # messages and GARBAGE) and by reading each decode; see docs/data-formats.md.
    "arrow": T | R | F | G,
    "capnp": T | R | F | G,
    "flatbuffers": T | G,  # a schema with a file_identifier adds F
    "avro": T | R,
}


@pytest.mark.parametrize("name", list(SPECS))
def test_each_codec_declares_what_it_was_found_to_detect(name: str) -> None:
    assert get_codec(SPECS[name]).detects == DECLARED[name]


DOCS = Path(__file__).parents[2] / "docs" / "data-formats.md"
COLUMNS = {"truncation": T, "trailing bytes": R, "another format": F, "garbage": G}


def test_the_docs_table_states_each_codecs_declaration() -> None:
    text = DOCS.read_text(encoding="utf-8")
    section = text.split("## What each format detects", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    header = next(line for line in section.splitlines() if line.startswith("| format"))
    titles = [cell.strip() for cell in header.strip("|").split("|")][1:]
    found = {}
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        flags = Detects(0)
        for title, cell in zip(titles, cells[1:], strict=False):
            if title in COLUMNS and cell.startswith("yes"):
                flags |= COLUMNS[title]
        found[cells[0].strip("`")] = flags
    assert set(titles) >= set(COLUMNS)
    assert found == DECLARED
