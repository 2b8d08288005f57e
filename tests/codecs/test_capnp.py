"""The Cap'n Proto codec: conformance, zero-copy readers, every encode input, schema errors."""

from __future__ import annotations

import gc
import mmap
import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from doradus._exceptions import DecodeError, EncodeError, SchemaError
from doradus.codecs import Detects, FormatSpec, get_codec
from doradus.testing import check_codec

capnp = pytest.importorskip("capnp")

from doradus.codecs._capnp import CapnpCodec  # noqa: E402

SCHEMAS = Path(__file__).parent / "schemas"
READING = SCHEMAS / "reading.capnp"

INT64 = st.integers(-(2**63), 2**63 - 1)
TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40)
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
SCALARS = {"seq": 0, "ok": False, "small": 0, "big": 0, "ratio": 0.0}
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
    """What to_dict gives back: absent scalars as defaults, absent pointers left out."""
    out = {**SCALARS, **value}
    if "pose" in value:
        out["pose"] = {"x": 0.0, "y": 0.0, "z": 0.0, **value["pose"]}
    return out


@pytest.fixture(scope="module")
def codec() -> CapnpCodec:
    made = get_codec(FormatSpec("capnp", READING, "Reading"))
    assert isinstance(made, CapnpCodec)
    return made


def test_registry_gives_the_capnp_codec(codec: CapnpCodec) -> None:
    assert (codec.name, codec.tag) == ("capnp", 1)


@settings(max_examples=25, deadline=None)
@given(value=READINGS)
@example(value={"label": "", "values": [], "blob": b"", "tags": [], "pose": {}})
@example(value={"label": "ñ日本語😀", "tags": ["", "😀"], "big": 2**64 - 1, "seq": -(2**63)})
def test_conformance(codec: CapnpCodec, value: dict[str, Any]) -> None:
    check_codec(codec, [value], expected=expected)


def test_conformance_with_large_values(codec: CapnpCodec) -> None:
    check_codec(codec, [BIG], expected=expected)


def test_to_arrow_is_a_one_row_struct_array(codec: CapnpCodec) -> None:
    array = codec.to_arrow(codec.decode(codec.encode({"label": "a", "seq": 3, "values": [1.0]})))
    assert isinstance(array, pa.StructArray)
    assert array.to_pylist()[0]["label"] == "a"
    assert len(array) == 1


def test_decode_gives_a_pycapnp_reader_reading_in_place(codec: CapnpCodec) -> None:
    data = codec.encode(BIG)
    shared = mmap.mmap(-1, len(data))
    shared[:] = data
    view = memoryview(shared).toreadonly()  # as shared memory arrives: read-only
    reader = codec.decode(view)
    assert type(reader).__name__ == "_DynamicStructReader"
    assert reader.seq == BIG["seq"]
    # Change the mapping's bytes after decode(): a reader over them sees the change, a
    # reader over a copy would not.
    blob_at, label_at = data.index(BIG["blob"][:64]), data.index("größe".encode())
    shared[blob_at] ^= 0xFF
    shared[label_at] = ord("G")
    # the reader must outlive decode() and every reference the caller held
    del view
    gc.collect()
    blob = reader.blob
    assert blob[0] == BIG["blob"][0] ^ 0xFF
    assert blob[1:] == BIG["blob"][1:]
    assert reader.label.startswith("Größe")
    assert len(reader.values) == 100_000
    assert codec.to_python(reader)["tags"] == BIG["tags"]
    del reader, blob
    gc.collect()
    shared.close()  # nothing pins the mapping any more


def test_decode_accepts_every_buffer_kind(codec: CapnpCodec) -> None:
    value = {"label": "x", "values": [1.0, 2.0]}
    data = codec.encode(value)
    unaligned = bytearray(b"_" + data)
    for buffer in (data, bytearray(data), memoryview(data), pa.py_buffer(data), memoryview(unaligned)[1:]):
        assert codec.to_python(codec.decode(buffer)) == expected(value)


def test_decode_rejects_bytes_after_the_message(codec: CapnpCodec) -> None:
    with pytest.raises(DecodeError):
        codec.to_python(codec.decode(codec.encode({"label": "x"}) + b"\x00" * 8))


def test_detects_what_it_declares(codec: CapnpCodec) -> None:
    assert (
        codec.detects
        == Detects.TRUNCATION | Detects.TRAILING_BYTES | Detects.FOREIGN_FORMAT | Detects.GARBAGE
    )


def test_a_well_formed_frame_is_a_message_whoever_wrote_it(codec: CapnpCodec) -> None:
    # The limit of a frame check (docs/data-formats.md): one segment of one word holding a
    # null root pointer is a valid message, the struct with every field at its default.
    framed = b"\x00\x00\x00\x00\x01\x00\x00\x00" + bytes(8)
    assert codec.to_python(codec.decode(framed)) == SCALARS


def test_encode_accepts_a_builder_a_reader_and_a_dict(codec: CapnpCodec) -> None:
    value = {"label": "b", "seq": 7, "values": [1.5], "tags": ["t"], "pose": {"x": 2.0}, "blob": b"\x00\xff"}
    module = capnp.load(str(READING), imports=[str(SCHEMAS)])
    builder = module.Reading.new_message(**value)
    from_dict = codec.encode(value)
    from_builder = codec.encode(builder)
    reader = codec.decode(from_dict)
    from_reader = codec.encode(reader)
    for data in (from_dict, from_builder, from_reader):
        assert isinstance(data, bytes)
        assert codec.to_python(codec.decode(data)) == expected(value)


@pytest.mark.parametrize(
    "value",
    [
        {"nope": 1},
        {"seq": "not a number"},
        {"values": "abc"},
        {"pose": {"w": 1.0}},
        42,
        b"raw bytes",
    ],
)
def test_encode_rejects_what_does_not_fit(codec: CapnpCodec, value: Any) -> None:
    with pytest.raises(EncodeError):
        codec.encode(value)


def test_encode_rejects_another_struct(codec: CapnpCodec) -> None:
    module = capnp.load(str(READING), imports=[str(SCHEMAS)])
    with pytest.raises(EncodeError, match="another struct"):
        codec.encode(module.Pose.new_message(x=1.0))


@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("no_file_id.capnp", "no file id.*@0x"),
        ("syntax_error.capnp", "Parse error"),
        ("missing_import.capnp", "does_not_exist.capnp"),
        ("not_there.capnp", "does not exist"),
    ],
)
def test_bad_schemas_raise_schema_error_in_process(name: str, match: str) -> None:
    # loaded here, in the test process: pycapnp would abort it without the child-process check
    with pytest.raises(SchemaError, match=match):
        get_codec(FormatSpec("capnp", SCHEMAS / name, "Reading"))


def test_a_missing_struct_lists_the_structs() -> None:
    with pytest.raises(SchemaError, match=r"no struct 'Nope'.*Pose, Reading"):
        CapnpCodec(FormatSpec("capnp", READING, "Nope"))


def test_the_type_is_required() -> None:
    with pytest.raises(SchemaError, match="type"):
        CapnpCodec(FormatSpec("capnp", READING))


def test_an_edited_schema_is_checked_again(tmp_path: Path) -> None:
    path = tmp_path / "edited.capnp"
    path.write_text("@0xb1c2a37e8b5f2a94;\nstruct Thing { n @0 :Int32; }\n")
    assert (
        CapnpCodec(FormatSpec("capnp", path, "Thing"))
        .decode(CapnpCodec(FormatSpec("capnp", path, "Thing")).encode({"n": 3}))
        .n
        == 3
    )
    path.write_text("@0xb1c2a37e8b5f2a94;\nstruct Thing { n @0 :Int32 oops }\n")
    os.utime(path, ns=(1, 1))
    with pytest.raises(SchemaError, match="Parse error"):
        CapnpCodec(FormatSpec("capnp", path, "Thing"))
    # a valid new version: pycapnp would keep serving the old one, so it is refused
    path.write_text("@0xb1c2a37e8b5f2a94;\nstruct Thing { n @0 :Int32; s @1 :Text; }\n")
    os.utime(path, ns=(2, 2))
    with pytest.raises(SchemaError, match="restart"):
        CapnpCodec(FormatSpec("capnp", path, "Thing"))


def test_absolute_imports_find_pycapnp_schemas(tmp_path: Path) -> None:
    path = tmp_path / "cxx.capnp"
    path.write_text(
        '@0xa1c2a37e8b5f2a98;\nusing Cxx = import "/capnp/c++.capnp";\n$Cxx.namespace("x");\n'
        "struct T { a @0 :Int32; }\n"
    )
    codec = CapnpCodec(FormatSpec("capnp", path, "T"))
    assert codec.to_python(codec.decode(codec.encode({"a": 1}))) == {"a": 1}


def test_an_unknown_field_is_named(codec: CapnpCodec) -> None:
    with pytest.raises(EncodeError, match=r"no field 'nope'; its fields: label, seq"):
        codec.encode({"nope": 1})


def test_nested_structs_can_be_named(tmp_path: Path) -> None:
    path = tmp_path / "nested.capnp"
    path.write_text("@0xc1c2a37e8b5f2a95;\nstruct Outer { struct Inner { s @0 :Text; } i @0 :Inner; }\n")
    codec = CapnpCodec(FormatSpec("capnp", path, "Outer.Inner"))
    assert codec.to_python(codec.decode(codec.encode({"s": "x"}))) == {"s": "x"}
