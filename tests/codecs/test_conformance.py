"""One conformance suite, four codecs: round trips of every supported type, and bad bytes.

Every codec gets the same records (the fields all four schemas share, plus the Avro-only
ones for Avro) from the same hypothesis strategy, and goes through `doradus.testing.check_codec`:
round trip, `to_arrow`, truncated and corrupted messages, garbage. A message with another
codec's bytes is rejected with `DecodeError` as well.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from doradus import DecodeError
from doradus.codecs import FormatSpec, get_codec
from doradus.testing import GARBAGE, check_codec

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


@pytest.mark.parametrize("writer", list(SPECS))
@pytest.mark.parametrize("reader", list(SPECS))
def test_another_codecs_bytes_are_rejected_or_harmless(writer: str, reader: str) -> None:
    if writer == reader:
        return
    encoded = bytes(memoryview(get_codec(SPECS[writer]).encode(_value(writer, EMPTY | {"label": "x"}))))
    codec = get_codec(SPECS[reader])
    try:
        codec.to_python(codec.decode(encoded))
    except DecodeError:
        return
    # Formats without a magic number may read foreign bytes as a (different) valid message;
    # the header's format tag is what keeps them apart on an edge (tests/unit/test_format_tag.py).


@pytest.mark.parametrize("name", list(SPECS))
def test_garbage_never_escapes_as_another_exception(name: str) -> None:
    codec = get_codec(SPECS[name])
    for data in GARBAGE:
        try:
            codec.to_python(codec.decode(data))
        except DecodeError:
            pass
