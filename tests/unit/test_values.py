"""Values on the data plane: to_arrow, plan_value, write_into and decode_value.

A flat array travels as its raw buffers plus a layout record; nested,
dictionary and extension arrays travel as an Arrow IPC stream. Either way the
receiver's array lies over the received payload (no copy) and cannot be
written to.
"""

from __future__ import annotations

import array as pyarray
import decimal
import struct
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from doradus import DecodeError, EncodeError
from doradus._wire.values import (
    KIND_BUFFERS,
    KIND_IPC,
    ValuePlan,
    decode_value,
    plan_value,
    to_arrow,
    type_blob,
    type_from_blob,
)

PROPERTY = settings(max_examples=100, deadline=None)
JUNK = 0xA5  # fills the payload before writing, so padding is never mistaken for data


def send(array: pa.Array, *, align: int = 8, base: int = 0, spare: int = 0) -> tuple[ValuePlan, pa.Buffer]:
    """Plan ``array`` and write it at ``base`` of a junk-filled region, as a sender does.

    Returns the plan and the payload the receiver sees (``spare`` bytes longer
    than the plan, as when the payload is the rest of a segment).
    """
    plan = plan_value(array, align)
    region = bytearray([JUNK]) * (base + plan.size + spare)
    plan.write_into(memoryview(region), base)
    return plan, pa.py_buffer(bytes(region)).slice(base, plan.size + spare)


def roundtrip(array: pa.Array, **how: int) -> pa.Array:
    plan, payload = send(array, **how)
    return decode_value(plan.kind, plan.type_blob, plan.layout, payload)


def assert_same_array(got: pa.Array, want: pa.Array) -> None:
    got.validate(full=True)
    assert got.type == want.type
    assert len(got) == len(want)
    assert got.null_count == want.null_count
    assert got.to_pylist() == want.to_pylist()
    assert got.equals(want)


def assert_lies_inside(array: pa.Array, payload: pa.Buffer) -> None:
    """Every non-empty buffer of ``array`` (children included) is a view of ``payload``."""
    start, end = payload.address, payload.address + payload.size
    views = [buf for buf in array.buffers() if buf is not None and buf.size > 0]
    for buf in views:
        assert start <= buf.address
        assert buf.address + buf.size <= end


# --- flat types: raw buffers ---------------------------------------------------------------------

FLAT: dict[str, Callable[[], pa.Array]] = {
    "int8": lambda: pa.array([-128, 0, None, 127], pa.int8()),
    "int16": lambda: pa.array([-(2**15), None, 2**15 - 1], pa.int16()),
    "int32": lambda: pa.array([-(2**31), 0, 2**31 - 1, None], pa.int32()),
    "int64": lambda: pa.array([-(2**63), None, 2**63 - 1], pa.int64()),
    "uint8": lambda: pa.array([0, 255, None], pa.uint8()),
    "uint16": lambda: pa.array([0, 2**16 - 1], pa.uint16()),
    "uint32": lambda: pa.array([0, None, 2**32 - 1], pa.uint32()),
    "uint64": lambda: pa.array([0, 2**64 - 1, None], pa.uint64()),
    "float16": lambda: pa.array(np.array([1.5, -0.0, 65504], np.float16)),
    "float32": lambda: pa.array([1.5, None, -3.25, float("inf")], pa.float32()),
    "float64": lambda: pa.array([0.1, None, -1e308, float("-inf")], pa.float64()),
    "bool": lambda: pa.array([True, None, False, True, None, False, False, True, True], pa.bool_()),
    "string": lambda: pa.array(["a", None, "", "日本語 🤖"], pa.string()),
    "large_string": lambda: pa.array(["x" * 100, None, "y"], pa.large_string()),
    "string_view": lambda: pa.array(["short", None, "a string longer than twelve bytes"], pa.string_view()),
    "binary": lambda: pa.array([b"\x00\xff", None, b""], pa.binary()),
    "large_binary": lambda: pa.array([b"abc", None], pa.large_binary()),
    "binary_view": lambda: pa.array([b"b" * 40, None, b"c"], pa.binary_view()),
    "fixed_size_binary": lambda: pa.array([b"abc", None, b"xyz"], pa.binary(3)),
    "timestamp_utc": lambda: pa.array([datetime(2024, 1, 2, 3, 4, 5), None], pa.timestamp("us", tz="UTC")),
    "timestamp_offset": lambda: pa.array([0, 1_700_000_000_000_000_000], pa.timestamp("ns", tz="+05:30")),
    "timestamp_naive": lambda: pa.array([0, None, 86_400], pa.timestamp("s")),
    "date32": lambda: pa.array([date(1970, 1, 1), None, date(2024, 2, 29)], pa.date32()),
    "date64": lambda: pa.array([date(2000, 1, 1), None], pa.date64()),
    "time32": lambda: pa.array([time(1, 2, 3), None], pa.time32("ms")),
    "time64": lambda: pa.array([time(23, 59, 59, 999_999)], pa.time64("us")),
    "duration": lambda: pa.array([timedelta(seconds=5), None], pa.duration("ms")),
    "interval": lambda: pa.array([pa.MonthDayNano([1, 2, 3]), None], pa.month_day_nano_interval()),
    "decimal128": lambda: pa.array([decimal.Decimal("-12345678.90"), None], pa.decimal128(10, 2)),
    "decimal256": lambda: pa.array([decimal.Decimal("1" * 35 + ".5")], pa.decimal256(40, 1)),
    "null": lambda: pa.nulls(4),
}


@pytest.mark.parametrize("name", FLAT)
def test_flat_arrays_travel_as_raw_buffers_and_round_trip(name: str) -> None:
    original = FLAT[name]()

    plan, payload = send(original)
    got = decode_value(plan.kind, plan.type_blob, plan.layout, payload)

    assert plan.kind == KIND_BUFFERS
    assert_same_array(got, original)


@pytest.mark.parametrize("name", FLAT)
def test_flat_arrays_round_trip_at_any_base_with_spare_payload(name: str) -> None:
    original = FLAT[name]()

    assert_same_array(roundtrip(original, align=64, base=24, spare=100), original)


@pytest.mark.parametrize("name", FLAT)
def test_empty_flat_arrays_round_trip(name: str) -> None:
    original = FLAT[name]().slice(0, 0)

    assert_same_array(roundtrip(original), original)


@pytest.mark.parametrize("name", FLAT)
@pytest.mark.parametrize(("start", "length"), [(1, 2), (2, 0), (3, 1)])
def test_sliced_flat_arrays_keep_their_offset(name: str, start: int, length: int) -> None:
    original = FLAT[name]().slice(start, length)

    got = roundtrip(original)

    assert_same_array(got, original)
    assert got.offset == original.offset


def test_bool_slice_with_nulls_at_a_non_byte_offset() -> None:
    values = [i % 3 == 0 if i % 5 else None for i in range(40)]
    original = pa.array(values, pa.bool_()).slice(11, 19)

    got = roundtrip(original)

    assert got.to_pylist() == values[11:30]
    assert got.null_count == sum(v is None for v in values[11:30])


def test_null_array_keeps_its_length() -> None:
    got = roundtrip(pa.nulls(7).slice(2, 3))

    assert got.type == pa.null()
    assert len(got) == 3
    assert got.null_count == 3


def test_nan_travels_bit_for_bit() -> None:
    original = pa.array(np.array([np.nan, -np.nan, 1.0, -0.0]))

    got = roundtrip(original)

    assert got.to_numpy().tobytes() == original.to_numpy().tobytes()


def test_timestamp_keeps_unit_and_time_zone() -> None:
    original = pa.array([1, 2], pa.timestamp("ms", tz="-03:00"))

    got = roundtrip(original)

    assert got.type.unit == "ms"
    assert got.type.tz == "-03:00"
    assert got.to_pylist()[0] == datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=1)


@st.composite
def flat_arrays(draw: st.DrawFn) -> pa.Array:
    type_, elements = draw(
        st.sampled_from(
            [
                (pa.int8(), st.integers(-(2**7), 2**7 - 1)),
                (pa.int16(), st.integers(-(2**15), 2**15 - 1)),
                (pa.int32(), st.integers(-(2**31), 2**31 - 1)),
                (pa.int64(), st.integers(-(2**63), 2**63 - 1)),
                (pa.uint8(), st.integers(0, 2**8 - 1)),
                (pa.uint16(), st.integers(0, 2**16 - 1)),
                (pa.uint32(), st.integers(0, 2**32 - 1)),
                (pa.uint64(), st.integers(0, 2**64 - 1)),
                (pa.float32(), st.floats(allow_nan=False, width=32)),
                (pa.float64(), st.floats(allow_nan=False)),
                (pa.bool_(), st.booleans()),
                (pa.string(), st.text()),
                (pa.large_string(), st.text()),
                (pa.binary(), st.binary()),
                (pa.binary(2), st.binary(min_size=2, max_size=2)),
                (pa.date32(), st.dates()),
                (pa.timestamp("us", tz="UTC"), st.integers(-(2**50), 2**50)),
            ]
        )
    )
    values = draw(st.lists(st.one_of(st.none(), elements), max_size=50))
    array = pa.array(values, type_)
    start = draw(st.integers(0, len(array)))
    return array.slice(start, draw(st.integers(0, len(array) - start)))


@PROPERTY
@given(flat_arrays(), st.sampled_from([8, 64]), st.integers(0, 16), st.integers(0, 32))
def test_any_flat_array_round_trips_over_its_payload(
    array: pa.Array, align: int, base: int, spare: int
) -> None:
    plan, payload = send(array, align=align, base=base, spare=spare)
    got = decode_value(plan.kind, plan.type_blob, plan.layout, payload)

    assert plan.kind == KIND_BUFFERS
    assert_same_array(got, array)
    assert_lies_inside(got, payload)


@PROPERTY
@given(flat_arrays(), st.sampled_from([1, 8, 64]))
def test_plan_places_buffers_aligned_in_order_without_overlap(array: pa.Array, align: int) -> None:
    plan = plan_value(array, align)

    cursor = 0
    for part, offset in zip(plan.parts, plan.offsets, strict=True):
        if part is None:
            assert offset == -1
            continue
        assert offset % align == 0
        assert offset >= cursor
        cursor = offset + part.size
    assert plan.size == cursor


# --- nested, dictionary and other IPC types ------------------------------------------------------

NESTED: dict[str, Callable[[], pa.Array]] = {
    "list": lambda: pa.array([[1, 2], None, [], [3]], pa.list_(pa.int32())),
    "large_list": lambda: pa.array([["a"], None, ["b", None]], pa.large_list(pa.string())),
    "fixed_size_list": lambda: pa.array([[1.0, 2.0], None, [3.0, 4.0]], pa.list_(pa.float64(), 2)),
    "struct": lambda: pa.array(
        [{"x": 1, "y": "a"}, None, {"x": None, "y": "b"}], pa.struct([("x", pa.int64()), ("y", pa.string())])
    ),
    "map": lambda: pa.array([[("k", 1)], None, []], pa.map_(pa.string(), pa.int32())),
    "dictionary": lambda: pa.array(["red", "green", None, "red"]).dictionary_encode(),
    "dense_union": lambda: pa.UnionArray.from_dense(
        pa.array([0, 1, 0], pa.int8()),
        pa.array([0, 0, 1], pa.int32()),
        [pa.array([1, 2]), pa.array(["a"])],
    ),
    "run_end_encoded": lambda: pa.RunEndEncodedArray.from_arrays([2, 5], [10, 20]),
    "sliced_list": lambda: pa.array([[1], [2, 3], None, [4, 5, 6]], pa.list_(pa.int64())).slice(1, 3),
}


@pytest.mark.parametrize("name", NESTED)
def test_nested_and_dictionary_arrays_travel_as_ipc_and_round_trip(name: str) -> None:
    original = NESTED[name]()

    plan, payload = send(original, spare=40)
    got = decode_value(plan.kind, plan.type_blob, plan.layout, payload)

    assert plan.kind == KIND_IPC
    assert_same_array(got, original)


@pytest.mark.parametrize("name", NESTED)
def test_ipc_values_are_read_without_a_copy(name: str) -> None:
    plan, payload = send(NESTED[name]())

    assert_lies_inside(decode_value(plan.kind, plan.type_blob, plan.layout, payload), payload)


nested_values = st.recursive(
    st.one_of(st.none(), st.integers(-(2**40), 2**40)),
    lambda inner: st.lists(inner, max_size=4),
    max_leaves=20,
)


@PROPERTY
@given(st.lists(st.one_of(st.none(), st.lists(nested_values, max_size=5)), min_size=1, max_size=10))
def test_any_list_of_lists_round_trips(values: list[Any]) -> None:
    try:
        original = pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return  # mixed depths have no Arrow type; nothing to send
    assert_same_array(roundtrip(original), original)


@PROPERTY
@given(st.lists(st.fixed_dictionaries({"n": st.integers(-5, 5), "s": st.text(max_size=5)}), max_size=10))
def test_any_struct_array_round_trips(rows: list[dict[str, Any]]) -> None:
    original = pa.array(rows, pa.struct([("n", pa.int64()), ("s", pa.string())]))

    assert_same_array(roundtrip(original), original)


# --- zero copy and immutability ------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["int64", "bool", "string", "large_binary", "fixed_size_binary", "decimal128"]
)
def test_decode_builds_the_array_over_the_payload_without_copying(name: str) -> None:
    plan, payload = send(FLAT[name](), base=8, spare=64)

    got = decode_value(plan.kind, plan.type_blob, plan.layout, payload)

    assert_lies_inside(got, payload)
    data = got.buffers()[-1]
    assert data.address == payload.address + plan.offsets[-1]


@pytest.mark.parametrize("name", ["int64", "string", "bool"])
def test_received_arrays_cannot_be_written(name: str) -> None:
    got = roundtrip(FLAT[name]())

    assert all(not buf.is_mutable for buf in got.buffers() if buf is not None)


def test_received_numbers_view_as_a_read_only_numpy_array() -> None:
    got = roundtrip(pa.array(np.arange(10, dtype=np.int32)))

    view = got.to_numpy(zero_copy_only=True)
    assert not view.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        view[0] = 99
    assert got[0].as_py() == 0


def test_write_into_copies_only_the_parts_and_leaves_gaps_untouched() -> None:
    original = pa.array([1, None, 3], pa.int16())
    plan = plan_value(original, 64)
    region = bytearray([JUNK]) * (plan.size + 10)

    plan.write_into(memoryview(region), 5)

    assert region[:5] == bytes([JUNK]) * 5
    assert region[5 + plan.size :] == bytes([JUNK]) * 5
    validity, data = original.buffers()
    assert region[5 : 5 + validity.size] == validity.to_pybytes()
    assert region[5 + 64 : 5 + 64 + data.size] == data.to_pybytes()


# --- what to_arrow accepts -----------------------------------------------------------------------


def test_numpy_2d_array_is_flattened_in_row_major_order_without_a_copy() -> None:
    image = np.arange(12, dtype=np.uint16).reshape(3, 4)

    got = to_arrow(image)

    assert got.type == pa.uint16()
    assert got.to_pylist() == list(range(12))
    assert got.buffers()[1].address == image.ctypes.data


def test_fortran_ordered_numpy_array_is_flattened_in_row_major_order() -> None:
    image = np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3))

    assert to_arrow(image).to_pylist() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]


@pytest.mark.parametrize(
    ("data", "type_", "values"),
    [
        (np.array(5), pa.int64(), [5]),
        (np.arange(10, dtype=np.int8)[::3], pa.int8(), [0, 3, 6, 9]),
        (np.array([True, False]), pa.bool_(), [True, False]),
        (np.array(["a", "bc"]), pa.string(), ["a", "bc"]),
        (np.zeros((2, 0, 3), np.float64), pa.float64(), []),
    ],
    ids=["0-d", "strided", "bool", "unicode", "empty-3d"],
)
def test_numpy_arrays_of_other_shapes_and_dtypes(
    data: np.ndarray, type_: pa.DataType, values: list[Any]
) -> None:
    got = to_arrow(data)

    assert got.type == type_
    assert got.to_pylist() == values


def test_numpy_value_round_trips_end_to_end() -> None:
    image = np.arange(24, dtype=np.float32).reshape(2, 3, 4)

    got = roundtrip(to_arrow(image))

    np.testing.assert_array_equal(got.to_numpy(), image.reshape(-1))


@pytest.mark.parametrize("make", [bytes, bytearray, memoryview], ids=["bytes", "bytearray", "memoryview"])
def test_bytes_like_values_become_uint8_over_the_same_memory(make: Callable[[bytes], Any]) -> None:
    source = make(b"\x00\x01\xfe\xff")

    got = to_arrow(source)

    assert got.type == pa.uint8()
    assert got.to_pylist() == [0, 1, 254, 255]
    assert got.buffers()[1].address == np.frombuffer(source, np.uint8).ctypes.data


def test_memoryview_of_wider_items_becomes_its_bytes() -> None:
    source = pyarray.array("i", [1, -1])

    got = to_arrow(memoryview(source))

    assert got.type == pa.uint8()
    assert bytes(got.to_pylist()) == source.tobytes()


def test_empty_bytes_become_an_empty_uint8_array() -> None:
    got = to_arrow(b"")

    assert got.type == pa.uint8()
    assert len(got) == 0


def test_record_batch_is_sent_as_a_struct_array() -> None:
    batch = pa.record_batch({"a": [1, 2], "b": ["x", None]})

    got = to_arrow(batch)

    assert got.type == pa.struct([("a", pa.int64()), ("b", pa.string())])
    assert got.to_pylist() == [{"a": 1, "b": "x"}, {"a": 2, "b": None}]
    assert_same_array(roundtrip(got), got)


def test_record_batch_without_columns_keeps_its_row_count() -> None:
    batch = pa.record_batch({"a": [1, 2, 3]}).select([])

    assert len(to_arrow(batch)) == 3


def test_chunked_array_is_combined() -> None:
    chunked = pa.chunked_array([[1, 2], [], [3]], pa.int32())

    got = to_arrow(chunked)

    assert got.type == pa.int32()
    assert got.to_pylist() == [1, 2, 3]
    assert to_arrow(pa.chunked_array([], pa.int8())).to_pylist() == []


def test_arrow_arrays_pass_through_unchanged() -> None:
    original = pa.array([1.5])

    assert to_arrow(original) is original


def test_lists_and_tuples_are_converted_and_none_is_an_empty_null_array() -> None:
    assert to_arrow([1, 2]).to_pylist() == [1, 2]
    assert to_arrow(("a", None)).to_pylist() == ["a", None]
    empty = to_arrow(None)
    assert empty.type == pa.null()
    assert len(empty) == 0


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("text", r"type str; send a pyarrow array, a numpy array, bytes, or a list \(for text: pa\.array"),
        (42, r"type int; send a pyarrow array"),
        ({"a": 1}, r"type dict; send a pyarrow array"),
        ({1, 2}, r"type set; send a pyarrow array"),
        (pa.table({"a": [1]}), r"type Table; send a pyarrow array"),
        ([1, "a"], r"cannot convert list to an Arrow array"),
        ([object()], r"cannot convert list to an Arrow array"),
        (np.array([1j]), r"cannot send numpy array of dtype complex128"),
        (np.array([1, 2], dtype=">i4"), r"cannot send numpy array of dtype >i4"),
    ],
    ids=["str", "int", "dict", "set", "table", "mixed-list", "object-list", "complex", "big-endian"],
)
def test_unsupported_values_raise_encode_error_saying_what_to_send(value: Any, message: str) -> None:
    with pytest.raises(EncodeError, match=message):
        to_arrow(value)


def test_non_contiguous_memoryview_raises_encode_error() -> None:
    with pytest.raises(EncodeError):
        to_arrow(memoryview(b"abcdef")[::2])


# --- type descriptors ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", FLAT)
def test_type_blob_round_trips_and_is_cached(name: str) -> None:
    type_ = FLAT[name]().type

    blob = type_blob(type_)

    assert type_blob(type_) is blob
    assert type_from_blob(blob) == type_
    assert type_from_blob(bytes(blob)) == type_


def test_distinct_types_get_distinct_blobs() -> None:
    types = [
        pa.timestamp("us", "UTC"),
        pa.timestamp("us", "+01:00"),
        pa.timestamp("ns", "UTC"),
        pa.timestamp("us"),
    ]

    assert len({type_blob(t) for t in types}) == len(types)


# --- corrupt input -------------------------------------------------------------------------------


def _layout(length: int, nulls: int, offset: int, *spans: tuple[int, int]) -> bytes:
    flat = [x for pair in spans for x in pair]
    return struct.pack(f"<qqqB{len(flat)}q", length, nulls, offset, len(spans), *flat)


INT64 = type_blob(pa.int64())
PAYLOAD = pa.py_buffer(bytes(range(24)))  # three int64 values


def test_hand_built_layout_decodes() -> None:
    got = decode_value(KIND_BUFFERS, INT64, _layout(3, 0, 0, (-1, 0), (0, 24)), PAYLOAD)

    assert got.to_pylist() == list(np.frombuffer(bytes(range(24)), np.int64))


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        (_layout(3, 0, 0, (-1, 0), (8, 24)), "lies outside the 24 B payload"),
        (_layout(3, 0, 0, (-1, 0), (25, 0)), "lies outside"),
        (_layout(3, 0, 0, (-1, 0), (0, -8)), "lies outside"),
        (_layout(3, 0, 0, (0, 1), (2**62, 2**62)), "lies outside"),
        (_layout(3, 0, 0, (-1, 0), (2**63 - 1, 2**63 - 1)), "lies outside"),
        (_layout(4, 0, 0, (-1, 0), (0, 24)), "cannot rebuild array"),
        (_layout(-1, 0, 0, (-1, 0), (0, 24)), "bad value layout"),
        (_layout(3, 0, 2**62, (-1, 0), (0, 24)), "cannot rebuild array"),
        (_layout(3, 0, 1, (-1, 0), (0, 24)), "cannot rebuild array"),
        (_layout(3, 2, 0, (-1, 0), (0, 24)), "cannot rebuild array"),
        (_layout(3, 0, 0, (-1, 0), (-1, 0)), "cannot rebuild array"),
        (_layout(3, 0, 0, (-1, 0)), "cannot rebuild array"),
        (_layout(3, 0, 0, (-1, 0), (0, 24), (0, 8)), "cannot rebuild array"),
        (_layout(3, 0, 0, (-1, 0), (0, 24))[:-1], "bad value layout"),
        (_layout(3, 0, 0, (-1, 0), (0, 24)) + b"\x00", "bad value layout"),
        (b"", "bad value layout"),
    ],
    ids=[
        "data past end",
        "start past end",
        "negative span",
        "huge start",
        "overflowing start",
        "length beyond data",
        "negative length",
        "huge offset",
        "offset beyond data",
        "nulls without bitmap",
        "missing data buffer",
        "too few buffers",
        "too many buffers",
        "layout cut short",
        "layout too long",
        "empty layout",
    ],
)
def test_corrupt_layout_raises_decode_error(layout: bytes, message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        decode_value(KIND_BUFFERS, INT64, layout, PAYLOAD)


def test_string_offsets_beyond_the_data_raise_decode_error() -> None:
    plan, payload = send(pa.array(["ab", "c"]))
    region = bytearray(payload.to_pybytes())
    struct.pack_into("<i", region, plan.offsets[1] + 8, 1000)  # the last offset points far past the data

    with pytest.raises(DecodeError, match="cannot rebuild array"):
        decode_value(plan.kind, plan.type_blob, plan.layout, pa.py_buffer(bytes(region)))


def test_negative_array_offset_raises_decode_error() -> None:
    with pytest.raises(DecodeError):
        decode_value(KIND_BUFFERS, INT64, _layout(3, 0, -1, (-1, 0), (0, 24)), PAYLOAD)


@pytest.mark.parametrize(
    "blob",
    [b"", b"garbage!" * 3, pa.schema([]).serialize().to_pybytes()],
    ids=["empty", "garbage", "no fields"],
)
def test_bad_type_descriptor_raises_decode_error(blob: bytes) -> None:
    with pytest.raises(DecodeError, match="bad type descriptor"):
        decode_value(KIND_BUFFERS, blob, _layout(3, 0, 0, (-1, 0), (0, 24)), PAYLOAD)


def _corruptions(blob: bytes) -> list[bytes]:
    """Every truncation of ``blob`` and every single byte set to a few telling values."""
    out = [blob[:end] for end in range(len(blob))]
    for i in range(len(blob)):
        for byte in (0x00, 0x01, 0x7F, 0x80, 0xFF, blob[i] ^ 0x01):
            out.append(blob[:i] + bytes([byte]) + blob[i + 1 :])
    return out


def _leaks(decode: Callable[[bytes], Any], inputs: list[bytes]) -> set[str]:
    """The exceptions other than DecodeError that ``decode`` raises for any of ``inputs``."""
    found = set()
    for data in inputs:
        try:
            decode(data)
        except DecodeError:
            pass
        except Exception as exc:
            found.add(f"{type(exc).__name__}: {exc}")
    return found


def test_every_corruption_of_a_type_descriptor_raises_only_decode_error() -> None:
    layout = _layout(3, 0, 0, (-1, 0), (0, 24))
    blobs = _corruptions(type_blob(pa.timestamp("us", "UTC")))

    assert _leaks(lambda blob: decode_value(KIND_BUFFERS, blob, layout, PAYLOAD), blobs) == set()


def _ipc_bytes(array: pa.Array) -> bytes:
    plan, payload = send(array)
    assert plan.kind == KIND_IPC
    return payload.to_pybytes()


@pytest.mark.parametrize(
    "payload",
    [b"", b"garbage garbage garbage", _ipc_bytes(NESTED["list"]())[:40]],
    ids=["empty", "garbage", "cut short"],
)
def test_bad_ipc_payload_raises_decode_error(payload: bytes) -> None:
    with pytest.raises(DecodeError, match="bad IPC payload"):
        decode_value(KIND_IPC, b"", b"", pa.py_buffer(payload))


def test_every_truncation_of_an_ipc_payload_before_its_batch_ends_raises_decode_error() -> None:
    stream = _ipc_bytes(NESTED["struct"]())
    end_of_stream = 8  # the closing continuation marker and zero length; the batch is whole without it

    for end in range(len(stream) - end_of_stream):
        with pytest.raises(DecodeError):
            decode_value(KIND_IPC, b"", b"", pa.py_buffer(stream[:end]))


def test_every_corruption_of_an_ipc_payload_raises_only_decode_error() -> None:
    payloads = _corruptions(_ipc_bytes(NESTED["list"]()))

    assert _leaks(lambda data: decode_value(KIND_IPC, b"", b"", pa.py_buffer(data)), payloads) == set()


def test_ipc_payload_without_columns_raises_decode_error() -> None:
    batch = pa.record_batch({"a": [1]}).select([])
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)

    with pytest.raises(DecodeError):
        decode_value(KIND_IPC, b"", b"", sink.getvalue())


def test_unknown_value_kind_raises_decode_error() -> None:
    with pytest.raises(DecodeError, match="unknown value kind 7"):
        decode_value(7, INT64, b"", PAYLOAD)
