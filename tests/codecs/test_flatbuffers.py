"""The FlatBuffers codec: conformance (truncation included), accessors, every encode input, schema errors."""

from __future__ import annotations

import importlib
import json
import mmap
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from doradus._exceptions import DecodeError, EncodeError, SchemaError
from doradus.codecs import Detects, FormatSpec, get_codec
from doradus.testing import check_codec, check_foreign

flatbuffers = pytest.importorskip("flatbuffers")

from doradus.codecs import _flatbuffers_schema as fbschema  # noqa: E402
from doradus.codecs._flatbuffers import FlatBuffersCodec  # noqa: E402

SCHEMAS = Path(__file__).parent / "schemas"
READING = SCHEMAS / "reading.fbs"

pytestmark = pytest.mark.skipif(fbschema.shutil.which("flatc") is None, reason="flatc is not installed")

INT64 = st.integers(-(2**63), 2**63 - 1)
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
F64 = st.floats(allow_nan=False)
POSE = st.fixed_dictionaries({}, optional={"x": F64, "y": F64, "z": F64})
READINGS = st.fixed_dictionaries(
    {},
    optional={
        "label": TEXT,
        "seq": INT64,
        "values": st.lists(F64, max_size=50),
        "ok": st.booleans(),
        "blob": st.binary(max_size=200),
        "small": st.integers(-128, 127),
        "big": st.integers(0, 2**64 - 1),
        "ratio": st.floats(width=32, allow_nan=False),
        "tags": st.lists(TEXT, max_size=8),
        "pose": POSE,
    },
)
DEFAULTS: dict[str, Any] = {
    "label": None,
    "seq": 0,
    "values": None,
    "ok": False,
    "blob": None,
    "small": 0,
    "big": 0,
    "ratio": 0.0,
    "tags": None,
    "pose": None,
}
BIG = {
    "label": "größe 😀 " * 100,
    "seq": -(2**63),
    "values": [float(i) / 7 for i in range(100_000)],
    "ok": True,
    "blob": os.urandom(1 << 20),
    "small": -128,
    "big": 2**64 - 1,
    "ratio": 3.5,
    "tags": ["", "a", "ü" * 1000],
    "pose": {"x": 1e300, "y": -0.0, "z": 5e-324},
}


def expected(value: dict[str, Any]) -> dict[str, Any]:
    """What to_python gives back: every field, absent ones as defaults (None for offsets)."""
    out = {**DEFAULTS, **value}
    if "pose" in value:
        out["pose"] = {"x": 0.0, "y": 0.0, "z": 0.0, **value["pose"]}
    return out


@pytest.fixture(scope="module", autouse=True)
def cache_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("xdg-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(home))
        yield home


@pytest.fixture(scope="module")
def codec(cache_home: Path) -> FlatBuffersCodec:
    made = get_codec(FormatSpec("flatbuffers", READING, "Reading"))
    assert isinstance(made, FlatBuffersCodec)
    return made


@pytest.fixture(scope="module")
def generated(codec: FlatBuffersCodec) -> Any:
    return importlib.import_module("doradus_test.Reading")


def test_registry_gives_the_flatbuffers_codec(codec: FlatBuffersCodec) -> None:
    assert (codec.name, codec.tag) == ("flatbuffers", 2)
    assert codec.table_name == "doradus_test.Reading"


def test_generated_code_is_cached_privately(codec: FlatBuffersCodec) -> None:
    folder = codec._loaded.folder
    assert (folder / "schema.bfbs").is_file()
    assert (folder / "doradus_test" / "Reading.py").is_file()
    for path in (folder.parent.parent, folder.parent, folder):
        assert path.parent.name in ("doradus", "flatc") or path.name == "doradus"
        assert stat.S_IMODE(path.stat().st_mode) == 0o700, path
    # the same schema again reuses the generated code
    again = FlatBuffersCodec(FormatSpec("flatbuffers", READING, "doradus_test.Reading"))
    assert again._loaded is codec._loaded


@settings(max_examples=25, deadline=None)
@given(value=READINGS)
@example(value={"label": "", "values": [], "blob": b"", "tags": [], "pose": {}})
@example(value={"label": "ñ日本語😀\x00", "tags": ["", "😀"], "big": 2**64 - 1, "seq": -(2**63)})
def test_conformance(codec: FlatBuffersCodec, value: dict[str, Any]) -> None:
    check_codec(codec, [value], expected=expected)


def test_conformance_with_large_values(codec: FlatBuffersCodec) -> None:
    check_codec(codec, [BIG], expected=expected)


def test_every_prefix_is_rejected(codec: FlatBuffersCodec) -> None:
    # strings ending the buffer leave alignment padding a walk cannot see
    for value in ({"label": "ab"}, {"tags": ["x"]}, {"blob": b"abcde"}, {"pose": {"x": 1.0}}, {}):
        data = bytes(codec.encode(value))
        for cut in range(len(data)):
            with pytest.raises(DecodeError):
                codec.to_python(codec.decode(data[:cut]))


def test_detects_truncation_and_garbage_but_not_trailing_bytes(codec: FlatBuffersCodec) -> None:
    assert codec.detects == Detects.TRUNCATION | Detects.GARBAGE
    data = bytes(codec.encode({"label": "ab", "seq": 3}))
    # a FlatBuffer records no length: bytes after it are never read
    assert codec.to_python(codec.decode(data + bytes(8))) == codec.to_python(codec.decode(data))


# Twelve small ints as Avro writes them (zigzag varints: 4 is 0x08, 2 is 0x04) ...
AVRO_INTS = {
    "type": "record",
    "name": "Ints",
    "fields": [{"name": f"i{k}", "type": "int"} for k in range(12)],
}
AVRO_VALUES = dict(zip((f"i{k}" for k in range(12)), (4, 0, 0, 0, 2, 0, 2, 0, 2, 0, 0, 0), strict=True))
# ... are a FlatBuffer: root offset 8, a 4-byte vtable at 4, an empty table at 8.
EMPTY_TABLE = b"\x08\x00\x00\x00\x04\x00\x04\x00\x04\x00\x00\x00"


def test_without_a_file_identifier_another_formats_bytes_can_be_a_table(
    codec: FlatBuffersCodec, tmp_path: Path
) -> None:
    # why FOREIGN_FORMAT is not declared: nothing but the verifier checks the bytes
    path = tmp_path / "ints.avsc"
    path.write_text(json.dumps(AVRO_INTS))
    avro_bytes = bytes(get_codec(FormatSpec("avro", path)).encode(AVRO_VALUES))
    assert avro_bytes == EMPTY_TABLE
    assert codec.to_python(codec.decode(avro_bytes)) == DEFAULTS
    check_foreign(codec, avro_bytes, writer="avro")  # allowed: not declared


def test_to_arrow_is_a_typed_one_row_struct_array(codec: FlatBuffersCodec) -> None:
    array = codec.to_arrow(codec.decode(codec.encode({"label": "a", "big": 2**64 - 1, "blob": b"x"})))
    assert isinstance(array, pa.StructArray)
    assert array.type.field("big").type == pa.uint64()
    assert array.type.field("blob").type == pa.binary()
    assert array.to_pylist()[0]["big"] == 2**64 - 1


def test_decode_gives_the_generated_accessor_reading_in_place(
    codec: FlatBuffersCodec, generated: Any
) -> None:
    data = bytes(codec.encode(BIG))
    shared = mmap.mmap(-1, len(data))
    shared[:] = data
    accessor = codec.decode(memoryview(shared).toreadonly())
    assert isinstance(accessor, generated.Reading)
    assert accessor.Seq() == BIG["seq"]
    values = accessor.ValuesAsNumpy()
    assert values.shape == (100_000,)
    assert not values.flags.writeable  # a view of the read-only buffer, not a copy
    assert accessor.BlobAsNumpy().tobytes() == BIG["blob"]
    assert codec.to_python(accessor) == expected(BIG)
    # Change the mapping's bytes after decode(): an accessor over them sees the change, one
    # over a copy would not.
    blob_at, label_at = data.index(BIG["blob"][:64]), data.index("größe".encode())
    shared[blob_at] ^= 0xFF
    shared[label_at] = ord("G")
    assert accessor.BlobAsNumpy()[0] == BIG["blob"][0] ^ 0xFF
    assert accessor.Label().decode().startswith("Größe")
    del accessor, values


def test_decode_accepts_every_buffer_kind(codec: FlatBuffersCodec) -> None:
    value = {"label": "x", "values": [1.0, 2.0]}
    data = bytes(codec.encode(value))
    for buffer in (data, bytearray(data), memoryview(data), pa.py_buffer(data)):
        assert codec.to_python(codec.decode(buffer)) == expected(value)


def test_encode_accepts_every_input_kind(codec: FlatBuffersCodec, generated: Any) -> None:
    value = {"label": "b", "seq": 7, "values": [1.5], "tags": ["t"], "pose": {"x": 2.0}, "blob": b"\x00\xff"}
    from_dict = bytes(codec.encode(value))
    # an object-API T
    unpacked = generated.ReadingT.InitFromObj(codec.decode(from_dict))
    from_t = codec.encode(unpacked)
    # a finished Builder
    builder = flatbuffers.Builder(64)
    builder.Finish(unpacked.Pack(builder))
    from_builder = codec.encode(builder)
    # an accessor
    from_accessor = codec.encode(codec.decode(from_dict))
    # an already-built buffer
    from_bytes = codec.encode(from_dict)
    from_bytearray = codec.encode(bytearray(from_dict))
    # numpy arrays for numeric vectors, any dtype that converts
    from_numpy = codec.encode(
        {**value, "values": np.array([1.5], dtype=np.float32), "blob": np.array([0, 255])}
    )
    for data in (from_dict, from_t, from_builder, from_accessor, from_bytes, from_bytearray, from_numpy):
        assert codec.to_python(codec.decode(data)) == expected(value)


def test_encode_rejects_an_unfinished_builder(codec: FlatBuffersCodec) -> None:
    with pytest.raises(EncodeError, match="Finish"):
        codec.encode(flatbuffers.Builder(64))


@pytest.mark.parametrize(
    "value",
    [
        {"nope": 1},
        {"seq": "not a number"},
        {"big": -1},
        {"small": 1000},
        {"label": 5},
        {"values": "abc"},
        {"values": [[1.0]]},
        {"pose": {"w": 1.0}},
        42,
        b"\x00\x00",
        b"garbage!",
    ],
)
def test_encode_rejects_what_does_not_fit(codec: FlatBuffersCodec, value: Any) -> None:
    with pytest.raises(EncodeError):
        codec.encode(value)


def test_invalid_utf8_is_a_decode_error(codec: FlatBuffersCodec) -> None:
    data = bytearray(codec.encode({"label": "abc"}))
    data[data.index(b"abc")] = 0xFF
    with pytest.raises(DecodeError):
        codec.to_python(codec.decode(bytes(data)))


@pytest.mark.parametrize(
    ("name", "type_", "match"),
    [
        ("syntax_error.fbs", "Reading", "expecting"),
        ("missing_include.fbs", "Reading", "does_not_exist.fbs"),
        ("not_there.fbs", "Reading", "does not exist"),
        ("reading.fbs", "Nope", r"no table 'Nope'.*doradus_test\.Pose, doradus_test\.Reading"),
        ("reading.capnp", "Reading", r"not a \.fbs file"),
    ],
)
def test_bad_schemas_raise_schema_error(name: str, type_: str, match: str) -> None:
    with pytest.raises(SchemaError, match=match):
        get_codec(FormatSpec("flatbuffers", SCHEMAS / name, type_))


def test_missing_flatc_names_the_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "fresh.fbs"
    path.write_text("namespace doradus_fresh; table T { a: int; } root_type T;\n")
    monkeypatch.setattr(fbschema.shutil, "which", lambda name: None)
    with pytest.raises(SchemaError, match="apt install flatbuffers-compiler"):
        FlatBuffersCodec(FormatSpec("flatbuffers", path, "T"))


def test_the_root_type_is_the_default(tmp_path: Path) -> None:
    path = tmp_path / "rooted.fbs"
    path.write_text("namespace doradus_rooted; table Other { b: int; } table T { a: int; } root_type T;\n")
    codec = FlatBuffersCodec(FormatSpec("flatbuffers", path))
    assert codec.table_name == "doradus_rooted.T"
    assert codec.to_python(codec.decode(codec.encode({"a": 5}))) == {"a": 5}


EXTRA = """
namespace doradus_extra.deep;
struct Vec3 { x: float; y: double; flag: byte; }
table Item { item_name: string (required); weight: int = 7; }
table Other { n: long; }
union Payload { Item, Other }
table Root {
  my_field: short;
  origin: Vec3;
  items: [Item];
  points: [Vec3];
  payload: Payload;
}
root_type Root;
file_identifier "EXTR";
"""


def test_structs_unions_vectors_of_tables_and_identifiers(tmp_path: Path) -> None:
    path = tmp_path / "extra.fbs"
    path.write_text(EXTRA)
    codec = FlatBuffersCodec(FormatSpec("flatbuffers", path, "Root"))
    value = {
        "my_field": -3,
        "origin": {"x": 1.5, "y": 2.0, "flag": 1},
        "items": [{"item_name": "a"}, {"item_name": "bb", "weight": 0}],
        "points": [{"x": 1.0, "y": 2.0, "flag": -1}],
    }
    got = codec.to_python(codec.decode(codec.encode(value)))
    assert got["items"] == [{"item_name": "a", "weight": 7}, {"item_name": "bb", "weight": 0}]
    assert got["points"] == value["points"]
    assert got["payload"] is None

    item_module = importlib.import_module("doradus_extra.deep.Item")
    payload_module = importlib.import_module("doradus_extra.deep.Payload")
    root = codec._object_class.InitFromObj(codec.decode(codec.encode(value)))
    item = item_module.ItemT()
    item.itemName, item.weight = "hi", 3
    root.payload, root.payloadType = item, payload_module.Payload.Item
    with_union = codec.to_python(codec.decode(codec.encode(root)))
    assert with_union["payload"] == {"item_name": "hi", "weight": 3}

    def roundtrip(v: Any) -> Any:
        return codec.to_python(codec.decode(codec.encode(v)))

    check_codec(codec, [value, {}, root], expected=roundtrip)
    # a missing required field is refused when encoding
    with pytest.raises(EncodeError, match="required"):
        codec.encode({"items": [{}]})
    # a buffer of another schema (wrong file identifier) is refused
    data = bytearray(codec.encode(value))
    data[4:8] = b"XXXX"
    with pytest.raises(DecodeError, match="identifier"):
        codec.decode(bytes(data))
    # the identifier is a magic number: this codec detects other formats too
    assert codec.detects == Detects.TRUNCATION | Detects.GARBAGE | Detects.FOREIGN_FORMAT
    assert FlatBuffersCodec.detects == Detects.TRUNCATION | Detects.GARBAGE
    check_foreign(codec, EMPTY_TABLE, writer="avro")
    check_foreign(codec, get_codec(FormatSpec("arrow")).encode([1, 2]), writer="arrow")


def test_a_cache_others_can_write_to_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    (cache / "doradus" / "flatc").mkdir(parents=True)
    (cache / "doradus" / "flatc").chmod(0o777)
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    path = tmp_path / "shared.fbs"
    path.write_text("namespace doradus_shared; table T { a: int; } root_type T;\n")
    with pytest.raises(SchemaError, match="not private"):
        FlatBuffersCodec(FormatSpec("flatbuffers", path, "T"))
