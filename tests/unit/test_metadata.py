"""Metadata encoding: every allowed type round-trips, everything else is refused.

Decoding must be safe on bytes from an untrusted peer: whatever the bytes, the
only exception is ``DecodeError``.
"""

from __future__ import annotations

import math
import struct
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from doradus import DecodeError, DoradusError, MetadataError
from doradus._wire.metadata import datetime_from_ns, decode_metadata, encode_metadata

INT_MIN, INT_MAX = -(2**63), 2**63 - 1
PROPERTY = settings(max_examples=150, deadline=None)

# At most 4 UTF-8 bytes a character: always within 255 bytes. `timestamp` is reserved (own tests).
keys = st.text(max_size=63).filter(lambda k: k != "timestamp")
ints = st.integers(INT_MIN, INT_MAX)
floats = st.floats(allow_nan=True, allow_infinity=True)
fixed_offsets = st.builds(
    timezone,
    st.timedeltas(min_value=timedelta(hours=-23, minutes=-59), max_value=timedelta(hours=23, minutes=59)),
)
# Years 2..9998: the UTC instant of any offset stays inside datetime's range (the
# edges are covered by test_datetime_whose_utc_instant_leaves_datetime_range_*).
naive_times = st.datetimes(min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 31))
aware_times = st.datetimes(
    min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 31), timezones=fixed_offsets
)
scalars = st.one_of(st.booleans(), ints, floats, st.text(), naive_times, aware_times)
lists = st.one_of(
    st.lists(ints, max_size=20), st.lists(floats, max_size=20), st.lists(st.text(), max_size=20)
)
values = st.one_of(scalars, lists, lists.map(tuple))
metadata_maps = st.dictionaries(keys, values, max_size=8)


def canonical(value: Any) -> Any:
    """What ``value`` must decode to, in a form where equal means identical.

    Floats compare by bit pattern (NaN equals itself, -0.0 differs from 0.0),
    types are kept (True is not 1), tuples travel as lists and naive datetimes as UTC.
    """
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int):
        return ("int", value)
    if isinstance(value, float):
        return ("float", struct.pack("<d", value))
    if isinstance(value, str):
        return ("str", value)
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return ("datetime", aware.astimezone(UTC))
    if isinstance(value, list | tuple):
        return ("list", [canonical(v) for v in value])
    raise AssertionError(f"not a metadata value: {value!r}")


def roundtrip(metadata: dict[str, Any]) -> dict[str, Any]:
    return decode_metadata(encode_metadata(metadata))


# --- round trips ---------------------------------------------------------------------------------


@PROPERTY
@given(metadata_maps)
def test_every_allowed_value_round_trips_with_its_type(metadata: dict[str, Any]) -> None:
    decoded = roundtrip(metadata)

    assert list(decoded) == list(metadata)
    assert {k: canonical(v) for k, v in decoded.items()} == {k: canonical(v) for k, v in metadata.items()}


@PROPERTY
@given(ints)
def test_ints_round_trip_as_int(value: int) -> None:
    (decoded,) = roundtrip({"i": value}).values()

    assert type(decoded) is int
    assert decoded == value


@pytest.mark.parametrize("value", [INT_MIN, INT_MIN + 1, -1, 0, 1, INT_MAX - 1, INT_MAX])
def test_ints_at_the_64_bit_bounds_round_trip(value: int) -> None:
    assert roundtrip({"i": value, "l": [value, value]}) == {"i": value, "l": [value, value]}


@pytest.mark.parametrize("value", [True, False])
def test_bools_stay_bools(value: bool) -> None:
    (decoded,) = roundtrip({"b": value}).values()

    assert decoded is value


@pytest.mark.parametrize("value", [math.inf, -math.inf, -0.0, 5e-324, 1.7976931348623157e308])
def test_special_floats_round_trip_exactly(value: float) -> None:
    (decoded,) = roundtrip({"f": value}).values()

    assert struct.pack("<d", decoded) == struct.pack("<d", value)


def test_nan_round_trips_as_nan() -> None:
    decoded = roundtrip({"f": math.nan, "l": [1.0, math.nan]})

    assert math.isnan(decoded["f"])
    assert decoded["l"][0] == 1.0
    assert math.isnan(decoded["l"][1])


@pytest.mark.parametrize("text", ["", "ascii", "é", "日本語", "emoji 🤖🦾", "nul\x00inside", "\U0010ffff"])
def test_unicode_strings_round_trip(text: str) -> None:
    assert roundtrip({text or "empty": text, "l": [text, text]}) == {text or "empty": text, "l": [text, text]}


@PROPERTY
@given(naive_times)
def test_naive_datetimes_are_taken_as_utc(value: datetime) -> None:
    (decoded,) = roundtrip({"t": value}).values()

    assert decoded == value.replace(tzinfo=UTC)
    assert decoded.utcoffset() == timedelta(0)


@PROPERTY
@given(aware_times)
def test_aware_datetimes_keep_their_instant_and_come_back_in_utc(value: datetime) -> None:
    (decoded,) = roundtrip({"t": value}).values()

    assert decoded == value  # aware datetimes compare by instant
    assert decoded.utcoffset() == timedelta(0)


def test_datetime_keeps_microseconds() -> None:
    value = datetime(2024, 2, 29, 23, 59, 59, 999_999, tzinfo=UTC)

    assert roundtrip({"t": value}) == {"t": value}


@pytest.mark.parametrize(
    "value", [datetime(1, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)]
)
def test_datetime_range_limits_round_trip(value: datetime) -> None:
    assert roundtrip({"t": value}) == {"t": value}


@pytest.mark.parametrize(
    "value",
    [
        datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5))),
        datetime(9999, 12, 31, 23, 0, tzinfo=timezone(timedelta(hours=-5))),
    ],
)
def test_datetime_whose_utc_instant_leaves_datetime_range_is_refused_or_round_trips(value: datetime) -> None:
    try:
        blob = encode_metadata({"t": value})
    except MetadataError:
        return  # refusing at the sender is a fine answer
    assert decode_metadata(blob) == {"t": value}


@pytest.mark.parametrize(
    ("sent", "received"),
    [
        ([1, 2, 3], [1, 2, 3]),
        ([1.5, -2.5], [1.5, -2.5]),
        (["a", "", "ü"], ["a", "", "ü"]),
        ((1, 2), [1, 2]),
        (("x",), ["x"]),
        ((), []),
        ([], []),
    ],
)
def test_lists_and_tuples_travel_as_lists(sent: Any, received: list[Any]) -> None:
    (decoded,) = roundtrip({"l": sent}).values()

    assert decoded == received
    assert type(decoded) is list


def test_list_of_ints_stays_ints_and_mixed_numbers_become_floats() -> None:
    decoded = roundtrip({"ints": [1, 2], "mixed": [1, 2.5]})

    assert [type(v) for v in decoded["ints"]] == [int, int]
    assert decoded["mixed"] == [1.0, 2.5]
    assert [type(v) for v in decoded["mixed"]] == [float, float]


def test_empty_or_none_metadata_encodes_to_nothing_and_decodes_to_empty() -> None:
    assert encode_metadata(None) == b""
    assert encode_metadata({}) == b""
    assert decode_metadata(b"") == {}


def test_decode_accepts_bytearray_and_memoryview() -> None:
    blob = encode_metadata({"seq": 3, "label": "cam"})

    assert decode_metadata(bytearray(blob)) == {"seq": 3, "label": "cam"}
    assert decode_metadata(memoryview(blob)) == {"seq": 3, "label": "cam"}


@pytest.mark.parametrize("key", ["k" * 255, "€" * 85])
def test_key_of_exactly_255_utf8_bytes_is_allowed(key: str) -> None:
    assert roundtrip({key: 1}) == {key: 1}


def test_datetime_from_ns_truncates_to_microseconds_in_utc() -> None:
    value = datetime_from_ns(1_700_000_000_123_456_789)

    assert value == datetime(2023, 11, 14, 22, 13, 20, 123_456, tzinfo=UTC)
    assert value.utcoffset() == timedelta(0)


# --- refusals ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        {"nested": 1},
        None,
        b"bytes",
        bytearray(b"x"),
        {1, 2},
        1j,
        datetime(2020, 1, 1).date(),
        timedelta(seconds=1),
        2**63,
        INT_MIN - 1,
        [2**63],
        [INT_MIN - 1],
        ["a", 1],
        [1, "a"],
        [1.5, "a"],
        [True, False],
        [1, None],
        [[1]],
        [b"x"],
    ],
    ids=repr,
)
def test_values_that_cannot_travel_are_refused(value: Any) -> None:
    with pytest.raises(MetadataError, match="'bad'"):
        encode_metadata({"ok": 1, "bad": value})


def test_refused_value_message_lists_the_allowed_types() -> None:
    with pytest.raises(MetadataError, match=r"has type dict; allowed: bool, int, float, str, datetime"):
        encode_metadata({"bad": {}})


@pytest.mark.parametrize("key", [1, b"k", None, ("a",)], ids=repr)
def test_non_str_keys_are_refused(key: Any) -> None:
    with pytest.raises(MetadataError, match="keys must be str"):
        encode_metadata({key: 1})


@pytest.mark.parametrize("key", ["k" * 256, "é" * 128])
def test_keys_longer_than_255_utf8_bytes_are_refused(key: str) -> None:
    with pytest.raises(MetadataError, match="longer than 255 bytes"):
        encode_metadata({key: 1})


@pytest.mark.parametrize("metadata", [[("a", 1)], "a=1", 5], ids=repr)
def test_metadata_that_is_not_a_mapping_is_refused(metadata: Any) -> None:
    with pytest.raises(MetadataError, match="must be a dict"):
        encode_metadata(metadata)


def test_metadata_error_is_a_doradus_error_and_a_type_error() -> None:
    assert issubclass(MetadataError, DoradusError)
    assert issubclass(MetadataError, TypeError)


def test_float_list_with_an_int_too_large_for_a_float_is_refused() -> None:
    with pytest.raises(MetadataError):
        encode_metadata({"l": [0.5, 10**400]})


def test_more_keys_than_the_count_field_holds_are_refused() -> None:
    with pytest.raises(MetadataError):
        encode_metadata({str(i): i for i in range(65_536)})


@pytest.mark.parametrize("metadata", [{"\ud800": 1}, {"k": "\udfff"}, {"k": ["ok", "\ud800"]}], ids=repr)
def test_strings_that_are_not_valid_unicode_are_refused(metadata: dict[str, Any]) -> None:
    with pytest.raises(MetadataError):
        encode_metadata(metadata)


# --- decoding untrusted bytes --------------------------------------------------------------------


@PROPERTY
@given(st.dictionaries(keys, values, min_size=1, max_size=6))
def test_every_truncation_of_a_valid_blob_raises_decode_error(metadata: dict[str, Any]) -> None:
    blob = encode_metadata(metadata)

    for end in range(1, len(blob)):
        with pytest.raises(DecodeError):
            decode_metadata(blob[:end])


@PROPERTY
@given(st.dictionaries(keys, values, min_size=1, max_size=6), st.binary(min_size=1, max_size=16))
def test_trailing_bytes_after_a_valid_blob_raise_decode_error(metadata: dict[str, Any], tail: bytes) -> None:
    with pytest.raises(DecodeError, match="trailing bytes"):
        decode_metadata(encode_metadata(metadata) + tail)


# A count of 1, key "k", the datetime tag (9), then microseconds far beyond year 9999.
_DATETIME_OUT_OF_RANGE = b"\x01\x00\x01k\x09" + struct.pack("<q", 2**62)


@PROPERTY
@given(st.binary(max_size=200))
@example(_DATETIME_OUT_OF_RANGE)
def test_random_bytes_decode_or_raise_only_decode_error(blob: bytes) -> None:
    try:
        decoded = decode_metadata(blob)
    except DecodeError:
        return
    assert isinstance(decoded, dict)


@pytest.mark.parametrize(
    ("blob", "why"),
    [
        (b"\x01", "count cut short"),
        (b"\x01\x00", "missing entry"),
        (b"\x01\x00\x05ab", "key cut short"),
        (b"\x01\x00\x01\xff\x01", "key not UTF-8"),
        (b"\x01\x00\x01k\x63", "unknown tag"),
        (b"\x01\x00\x01k\x00", "tag zero"),
        (b"\x01\x00\x01k\x03\x01\x02", "int cut short"),
        (b"\x01\x00\x01k\x05\xff\xff\xff\xff", "string longer than blob"),
        (b"\x01\x00\x01k\x05\x01\x00\x00\x00\xff", "string not UTF-8"),
        (b"\x01\x00\x01k\x06\xff\xff\xff\x7f", "int list longer than blob"),
        (b"\x01\x00\x01k\x08\x02\x00\x00\x00\x00\x00\x00\x00", "string list cut short"),
        (b"\x00\x00\x00", "trailing byte after empty map"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_malformed_blobs_raise_decode_error(blob: bytes, why: str) -> None:
    with pytest.raises(DecodeError, match="malformed metadata"):
        decode_metadata(blob)


def test_decode_error_keeps_the_low_level_cause() -> None:
    with pytest.raises(DecodeError) as info:
        decode_metadata(b"\x01\x00\x01k\x63")

    assert info.value.__cause__ is not None


def test_timestamp_is_reserved_for_the_send_time() -> None:
    with pytest.raises(MetadataError, match=r"'timestamp' is reserved for the send time.*got a str"):
        encode_metadata({"timestamp": "2026-01-01"})
    with pytest.raises(MetadataError, match="reserved"):
        encode_metadata({"seq": 1, "timestamp": 1_700_000_000.0})


def test_a_forwarded_timestamp_stays_behind() -> None:
    forwarded = {"seq": 7, "timestamp": datetime(2000, 1, 1, tzinfo=UTC)}
    assert decode_metadata(encode_metadata(forwarded)) == {"seq": 7}
    assert encode_metadata({"timestamp": datetime(2000, 1, 1, tzinfo=UTC)}) == b""
    assert forwarded["timestamp"] == datetime(2000, 1, 1, tzinfo=UTC)  # the caller's dict is untouched
