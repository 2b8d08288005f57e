"""The Avro codec: conformance kit, schema evolution, schema errors, hostile buffers, Arrow."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from doradus._exceptions import DecodeError, EncodeError, SchemaError
from doradus.codecs import Detects, FormatSpec, get_codec
from doradus.codecs._avro import MAX_DEPTH, AvroCodec
from doradus.codecs._avro_compat import check_resolvable, load_schema
from doradus.testing import check_codec

SCHEMAS = Path(__file__).parent / "schemas"
READING = SCHEMAS / "reading.avsc"
V2 = SCHEMAS / "reading_v2.avsc"
BAD_READER = SCHEMAS / "reading_bad_reader.avsc"

INT32 = st.integers(-(2**31), 2**31 - 1)
INT64 = st.integers(-(2**63), 2**63 - 1)
DOUBLES = st.floats(allow_nan=False)
FLOAT32 = st.floats(allow_nan=False, width=32)

POSES = st.fixed_dictionaries({"x": DOUBLES, "y": DOUBLES, "z": DOUBLES})
RECORDS = st.fixed_dictionaries(
    {
        "label": st.text(),
        "seq": INT64,
        "values": st.lists(DOUBLES, max_size=50),
        "ok": st.booleans(),
        "blob": st.binary(max_size=200),
        "small": INT32,
        "ratio": FLOAT32,
        "tags": st.lists(st.text(max_size=10), max_size=10),
        "pose": POSES,
        "kind": st.sampled_from(["RAW", "FILTERED", "FUSED"]),
        "note": st.none() | st.text(),
        "attrs": st.dictionaries(st.text(max_size=10), st.text(max_size=10), max_size=10),
    }
)


def record(**changes: Any) -> dict[str, Any]:
    value: dict[str, Any] = {
        "label": "lidar-ø",
        "seq": 7,
        "values": [1.5, -2.0],
        "ok": True,
        "blob": b"\x00\xff",
        "small": -3,
        "ratio": 0.25,
        "tags": ["a", ""],
        "pose": {"x": 1.0, "y": 2.0, "z": 3.0},
        "kind": "FUSED",
        "note": None,
        "attrs": {"frame": "base_link"},
    }
    value.update(changes)
    return value


def zigzag(n: int) -> bytes:
    """Avro's varint encoding of a long."""
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


@pytest.fixture(scope="module")
def codec() -> AvroCodec:
    made = get_codec(FormatSpec("avro", READING))
    assert isinstance(made, AvroCodec)
    return made


def write_schema(folder: Path, schema: Any, name: str = "s.avsc") -> Path:
    path = folder / name
    path.write_text(json.dumps(schema), encoding="utf-8")
    return path


# -- conformance -----------------------------------------------------------------------------------


def test_registry_gives_the_avro_codec(codec: AvroCodec) -> None:
    assert codec.name == "avro"
    assert codec.tag == 3
    assert codec.detects == Detects.TRUNCATION | Detects.TRAILING_BYTES


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=st.lists(RECORDS, min_size=1, max_size=3))
def test_conformance_on_generated_records(codec: AvroCodec, values: list[dict[str, Any]]) -> None:
    check_codec(codec, values)


def test_conformance_on_edge_records(codec: AvroCodec) -> None:
    check_codec(
        codec,
        [
            record(),
            record(label="", values=[], tags=[], attrs={}, blob=b"", note=""),
            record(label="日本語 🚀 \u0000", note="ünïcødé", attrs={"ключ": "значение", "": ""}),
            record(seq=2**63 - 1, small=-(2**31), values=[math.inf, -math.inf, -0.0, 5e-324]),
        ],
    )


def test_conformance_on_large_fields(codec: AvroCodec) -> None:
    big_blob = bytes(range(256)) * 4096  # 1 MiB
    many = [float(i) for i in range(100_000)]
    check_codec(codec, [record(blob=big_blob), record(values=many, tags=["t"] * 100_000)])


# -- schema evolution ------------------------------------------------------------------------------


def test_v1_data_reads_with_the_v2_reader_schema() -> None:
    writer = get_codec(FormatSpec("avro", READING))
    reader = get_codec(FormatSpec("avro", READING, reader_schema=V2))
    got = reader.decode(writer.encode(record(small=-(2**31))))
    assert got["unit"] == "m"  # new field: its default
    assert "ratio" not in got  # removed field: skipped
    assert got["small"] == -(2**31)  # int read as long
    assert got["label"] == "lidar-ø"
    assert reader.to_arrow(got).type.field("small").type == pa.int64()
    assert reader.to_arrow(got).type.field("unit").type == pa.string()


def test_conformance_with_the_v2_reader_schema() -> None:
    reader = get_codec(FormatSpec("avro", READING, reader_schema=V2))

    def as_v2(value: dict[str, Any]) -> dict[str, Any]:
        return {**{k: v for k, v in value.items() if k != "ratio"}, "unit": "m"}

    check_codec(reader, [record(), record(label="", tags=[], attrs={})], expected=as_v2)


DROPPED_LAST = [
    {"name": "a", "type": "int"},
    {"name": "b", "type": "bytes"},
    {"name": "f", "type": {"type": "fixed", "name": "F", "size": 8}},
    {"name": "s", "type": "string"},
]


@pytest.mark.parametrize("kept", [["a"], ["a", "b"], ["a", "b", "f"], ["s"]])
def test_a_message_cut_inside_fields_the_reader_drops_is_truncated(tmp_path: Path, kept: list[str]) -> None:
    # fastavro's C reader skips a dropped field without checking that the bytes were there
    writer = write_schema(tmp_path, {"type": "record", "name": "R", "fields": DROPPED_LAST}, "w.avsc")
    fields = [f for f in DROPPED_LAST if f["name"] in kept]
    reader = write_schema(tmp_path, {"type": "record", "name": "R", "fields": fields}, "r.avsc")
    codec = get_codec(FormatSpec("avro", writer, reader_schema=reader))
    value = {"a": 1, "b": b"xyz", "f": b"12345678", "s": "hello"}
    check_codec(codec, [value], expected=lambda v: {k: v[k] for k in kept})
    data = codec.encode(value)
    with pytest.raises(DecodeError, match="truncated"):
        codec.decode(data[:-1])


def test_incompatible_reader_schema_is_a_schema_error_with_every_reason() -> None:
    with pytest.raises(SchemaError) as raised:
        get_codec(FormatSpec("avro", READING, reader_schema=BAD_READER))
    text = str(raised.value)
    assert "Reading.label: the writer writes string, which the reader cannot read as int" in text
    assert "Reading.unit: the reader field has no default" in text
    assert "fix:" in text


def test_check_resolvable_reasons_for_the_bad_reader() -> None:
    writer, _ = load_schema(READING)
    reader, _ = load_schema(BAD_READER)
    assert check_resolvable(writer, reader) == [
        "Reading.label: the writer writes string, which the reader cannot read as int",
        "Reading.unit: the reader field has no default and the writer has no such field",
    ]
    v2, _ = load_schema(V2)
    assert check_resolvable(writer, v2) == []


# -- schema errors ---------------------------------------------------------------------------------


def test_missing_schema_file() -> None:
    with pytest.raises(SchemaError, match=r"does not exist; fix the `schema:`"):
        get_codec(FormatSpec("avro", SCHEMAS / "no_such.avsc"))


def test_no_schema_at_all() -> None:
    with pytest.raises(SchemaError, match="needs a schema"):
        get_codec(FormatSpec("avro"))


def test_invalid_json_names_line_and_column() -> None:
    with pytest.raises(SchemaError, match=r"bad\.avsc:5:\d+: not valid JSON"):
        get_codec(FormatSpec("avro", SCHEMAS / "bad.avsc"))


def test_invalid_avro_gives_fastavros_reason() -> None:
    with pytest.raises(SchemaError, match=r"not a valid Avro schema: unknown type 'Nowhere'"):
        get_codec(FormatSpec("avro", SCHEMAS / "bad_schema.avsc"))


def test_record_without_fields_is_invalid(tmp_path: Path) -> None:
    path = write_schema(tmp_path, {"type": "record", "name": "R"})
    with pytest.raises(SchemaError, match="no 'fields' list"):
        get_codec(FormatSpec("avro", path))


def test_unknown_type_lists_the_named_types() -> None:
    with pytest.raises(SchemaError, match=r"no named type 'Nope'; named types: doradus\.test\.Kind"):
        get_codec(FormatSpec("avro", READING, "Nope"))


def test_invalid_reader_schema_file() -> None:
    with pytest.raises(SchemaError, match="not valid JSON"):
        get_codec(FormatSpec("avro", READING, reader_schema=SCHEMAS / "bad.avsc"))


# -- named types -----------------------------------------------------------------------------------


def test_type_picks_a_nested_named_record() -> None:
    pose = get_codec(FormatSpec("avro", READING, "Pose"))
    value = {"x": 1.0, "y": -1.0, "z": 0.5}
    assert pose.decode(pose.encode(value)) == value
    full = get_codec(FormatSpec("avro", READING, "doradus.test.Pose"))
    assert full.encode(value) == pose.encode(value)


def test_type_picks_a_record_from_a_list_of_schemas(tmp_path: Path) -> None:
    path = write_schema(
        tmp_path,
        [
            {"type": "record", "name": "Point", "fields": [{"name": "x", "type": "float"}]},
            {
                "type": "record",
                "name": "Path",
                "fields": [{"name": "points", "type": {"type": "array", "items": "Point"}}],
            },
        ],
    )
    codec = get_codec(FormatSpec("avro", path, "Path"))
    value = {"points": [{"x": 1.0}, {"x": 2.5}]}
    check_codec(codec, [value, {"points": []}])
    assert codec.to_arrow(codec.decode(codec.encode(value))).to_pylist() == [value]


# -- encode errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"small": "three"}, "small"),
        ({"values": [1.0, "x"]}, "values"),
        ({"kind": "UNKNOWN"}, "kind"),
        ({"extra": 1}, "extra"),
    ],
)
def test_encode_errors_name_the_field(codec: AvroCodec, change: dict[str, Any], field: str) -> None:
    with pytest.raises(EncodeError, match=field):
        codec.encode(record(**change))


def test_encode_fills_fields_with_defaults(codec: AvroCodec) -> None:
    value = record()
    del value["note"]
    assert codec.decode(codec.encode(value))["note"] is None


def test_missing_field_without_default_is_an_encode_error(codec: AvroCodec) -> None:
    value = record()
    del value["label"]
    with pytest.raises(EncodeError, match="label"):
        codec.encode(value)


# -- hostile buffers -------------------------------------------------------------------------------


def test_trailing_bytes_are_rejected(codec: AvroCodec) -> None:
    data = codec.encode(record())
    with pytest.raises(DecodeError, match="1 trailing bytes"):
        codec.decode(data + b"\x00")


def test_decode_accepts_every_buffer_kind_without_changing_it(codec: AvroCodec) -> None:
    data = codec.encode(record())
    shared = bytearray(data)
    for buffer in (data, shared, memoryview(shared), pa.py_buffer(data)):
        assert codec.decode(buffer) == record()
    assert shared == data


@pytest.mark.parametrize("length", [2**60, 2**62, -(2**40), 2**31])
def test_absurd_string_length_is_a_decode_error_without_allocating(codec: AvroCodec, length: int) -> None:
    crafted = zigzag(length) + b"abc" + bytes(64)
    with pytest.raises(DecodeError):
        codec.decode(crafted)


def test_absurd_array_count_is_a_decode_error(codec: AvroCodec) -> None:
    crafted = zigzag(1) + b"a" + zigzag(5) + zigzag(2**60) + bytes(32)
    with pytest.raises(DecodeError):
        codec.decode(crafted)


def test_absurd_count_of_empty_items_is_a_decode_error(tmp_path: Path) -> None:
    path = write_schema(tmp_path, {"type": "array", "items": "null"})
    codec = get_codec(FormatSpec("avro", path))
    assert codec.decode(codec.encode([None] * 1000)) == [None] * 1000
    with pytest.raises(DecodeError, match="empty array items"):
        codec.decode(zigzag(2**60) + zigzag(0))
    with pytest.raises(DecodeError):
        codec.decode(zigzag(-(2**60)) + zigzag(0) + zigzag(0))


def test_deep_recursive_message_is_a_decode_error_not_a_crash(tmp_path: Path) -> None:
    schema = {"type": "record", "name": "Node", "fields": [{"name": "next", "type": ["null", "Node"]}]}
    codec = get_codec(FormatSpec("avro", write_schema(tmp_path, schema)))
    shallow: dict[str, Any] = {"next": None}
    for _ in range(50):
        shallow = {"next": shallow}
    check_codec(codec, [shallow, {"next": None}])
    with pytest.raises(DecodeError, match="nesting deeper"):
        codec.decode(b"\x02" * 100_000 + b"\x00")
    deep: dict[str, Any] = {"next": None}
    for _ in range(MAX_DEPTH + 10):
        deep = {"next": deep}
    with pytest.raises(EncodeError, match="deeper"):
        codec.encode(deep)
    with pytest.raises(DecodeError, match="recursive"):
        codec.to_arrow(codec.decode(codec.encode(shallow)))


def test_bad_union_and_enum_indexes_are_decode_errors(codec: AvroCodec) -> None:
    good = codec.encode(record(note=None, attrs={}))
    # The last three bytes: `kind` (enum index 2), `note` (union branch 0), `attrs` (empty map).
    assert good[-3:] == b"\x04\x00\x00"
    for position in (-3, -2):
        bad = bytearray(good)
        bad[position] = 0x08  # index 4
        with pytest.raises(DecodeError):
            codec.decode(bytes(bad))


# -- Arrow -----------------------------------------------------------------------------------------


def test_to_arrow_gives_a_struct_array_with_the_mapped_types(codec: AvroCodec) -> None:
    value = record(note="n", attrs={"a": "b"})
    array = codec.to_arrow(codec.decode(codec.encode(value)))
    assert isinstance(array, pa.StructArray)
    assert len(array) == 1
    expected = {
        "label": pa.string(),
        "seq": pa.int64(),
        "values": pa.list_(pa.float64()),
        "ok": pa.bool_(),
        "blob": pa.binary(),
        "small": pa.int32(),
        "ratio": pa.float32(),
        "tags": pa.list_(pa.string()),
        "pose": pa.struct([pa.field(n, pa.float64(), nullable=False) for n in "xyz"]),
        "kind": pa.string(),
        "note": pa.string(),
        "attrs": pa.map_(pa.string(), pa.string()),
    }
    assert {f.name: f.type for f in array.type} == expected
    assert array.type.field("note").nullable
    assert not array.type.field("label").nullable
    row = array.to_pylist()[0]
    assert dict(row.pop("attrs")) == {"a": "b"}
    assert row == {k: v for k, v in value.items() if k != "attrs"}


def test_to_arrow_of_other_types(tmp_path: Path) -> None:
    schema = {
        "type": "record",
        "name": "Misc",
        "fields": [
            {"name": "id", "type": {"type": "fixed", "name": "Id", "size": 4}},
            {"name": "maybe", "type": ["long", "null"]},
            {"name": "nothing", "type": "null"},
            {"name": "when", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        ],
    }
    codec = get_codec(FormatSpec("avro", write_schema(tmp_path, schema)))
    array = codec.to_arrow(
        codec.decode(codec.encode({"id": b"abcd", "maybe": None, "nothing": None, "when": 0}))
    )
    assert array.type.field("id").type == pa.binary(4)
    assert array.type.field("maybe").type == pa.int64()
    assert array.type.field("nothing").type == pa.null()
    assert array.type.field("when").type == pa.timestamp("ms", tz="UTC")


def test_union_of_several_types_does_not_map_to_arrow(tmp_path: Path) -> None:
    schema = {"type": "record", "name": "U", "fields": [{"name": "u", "type": ["int", "string"]}]}
    codec = get_codec(FormatSpec("avro", write_schema(tmp_path, schema)))
    check_codec(codec, [{"u": 1}, {"u": "one"}])
    with pytest.raises(DecodeError, match="does not map to Arrow"):
        codec.to_arrow(codec.decode(codec.encode({"u": 1})))
