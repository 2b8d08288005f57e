"""Metadata as MessagePack: what a peer's bytes may hold, and what sending takes the full check."""

from __future__ import annotations

from collections import OrderedDict
from datetime import UTC, datetime
from enum import IntEnum
from types import MappingProxyType
from typing import Any

import msgspec
import pytest

from doradus import DecodeError, MetadataError
from doradus._wire.metadata import decode_metadata, encode_metadata

_pack = msgspec.msgpack.encode


@pytest.mark.parametrize(
    "value",
    [None, b"raw", {"nested": 1}, [[1]], [None], 2**64 - 1, [2**63], msgspec.msgpack.Ext(5, b"x")],
    ids=["none", "bytes", "map", "nested-list", "list-of-none", "u64", "list-of-u64", "ext"],
)
def test_a_peer_value_of_another_type_is_a_decode_error(value: Any) -> None:
    with pytest.raises(DecodeError, match="malformed metadata"):
        decode_metadata(_pack({"k": value}))


def test_a_peer_value_of_another_type_beside_a_datetime_is_a_decode_error() -> None:
    with pytest.raises(DecodeError, match="'k' holds a NoneType"):
        decode_metadata(_pack({"t": datetime(2020, 1, 1, tzinfo=UTC), "k": None}))


def test_deeply_nested_bytes_are_a_decode_error() -> None:
    with pytest.raises(DecodeError):
        decode_metadata(b"\x81\xa1k" + b"\x91" * 100_000 + b"\x01")


def test_a_map_that_is_not_keyed_by_strings_is_a_decode_error() -> None:
    with pytest.raises(DecodeError):
        decode_metadata(_pack({1: 1}))


class _Level(IntEnum):
    HIGH = 2


@pytest.mark.parametrize(
    ("sent", "received"),
    [
        ({"level": _Level.HIGH}, {"level": 2}),
        ({"k" * 64: 1}, {"k" * 64: 1}),
        ({"shape": (480, 640)}, {"shape": [480, 640]}),
        ({"mixed": [1, 0.5]}, {"mixed": [1.0, 0.5]}),
        ({"t": datetime(2020, 1, 1)}, {"t": datetime(2020, 1, 1, tzinfo=UTC)}),
    ],
    ids=["int subclass", "long key", "tuple", "mixed numbers", "naive datetime"],
)
def test_values_outside_the_common_case_travel_normalised(
    sent: dict[str, Any], received: dict[str, Any]
) -> None:
    decoded = decode_metadata(encode_metadata(sent))

    assert decoded == received
    assert [type(v) for v in decoded.values()] == [type(v) for v in received.values()]


def test_the_common_case_is_plain_messagepack() -> None:
    metadata = {"t": 1_700_000_000_000_000_000, "seq": 7, "ok": True, "x": 0.5, "tag": "cam", "l": [1, 2]}

    assert encode_metadata(metadata) == _pack(metadata)


def test_any_mapping_travels_as_a_map() -> None:
    assert decode_metadata(encode_metadata(MappingProxyType({"seq": 1}))) == {"seq": 1}
    assert decode_metadata(encode_metadata(OrderedDict(seq=2))) == {"seq": 2}


def test_a_str_under_timestamp_is_refused_even_among_plain_values() -> None:
    with pytest.raises(MetadataError, match="reserved"):
        encode_metadata({"seq": 1, "timestamp": "now"})
