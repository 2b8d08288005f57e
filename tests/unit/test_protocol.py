"""The data header is packed in one place (`pack_data`) and read in one (`unpack_data`)."""

from __future__ import annotations

import pyarrow as pa
import pytest

from doradus._wire.protocol import (
    CODEC_SHIFT,
    DATA,
    FLAG_FD,
    FLAG_IPC,
    FLAG_SHM,
    KIND_DATA,
    PLAN_FLAGS,
    pack_data,
    unpack_data,
)
from doradus._wire.values import KIND_BUFFERS, KIND_IPC, plan_value
from doradus.backends import Outgoing
from doradus.backends._frames import decode_frame, encode_frame

VALUES = {
    "buffers": pa.array([1, 2, 3], pa.int32()),
    "ipc": pa.array([[1], [2, 3]]),  # nested: an Arrow IPC stream
}


def _message(array: pa.Array, codec: int = 0) -> Outgoing:
    return Outgoing(b"image", array, plan_value(array), b"meta", 41, 123_456_789, codec)


def test_plan_flags_follow_the_plan_kinds() -> None:
    assert PLAN_FLAGS[KIND_BUFFERS] == 0
    assert PLAN_FLAGS[KIND_IPC] == FLAG_IPC


@pytest.mark.parametrize("kind", sorted(VALUES))
@pytest.mark.parametrize("codec", [0, 3])
def test_the_header_is_the_wire_format_it_always_was(kind: str, codec: int) -> None:
    message = _message(VALUES[kind], codec)
    plan = message.plan
    assert plan.kind == (KIND_IPC if kind == "ipc" else KIND_BUFFERS)
    # The DATA layout, written out field by field: the bytes on the wire did not change.
    expected = DATA.pack(
        KIND_DATA,
        FLAG_SHM | FLAG_FD | (FLAG_IPC if plan.kind == KIND_IPC else 0) | codec << CODEC_SHIFT,
        len(b"image"),
        len(plan.type_blob),
        len(b"lay"),
        len(b"meta"),
        41,
        123_456_789,
        7,
        65536,
        128,
    )
    assert pack_data(message, b"lay", FLAG_SHM | FLAG_FD, 7, 65536, 128) == expected
    assert unpack_data(expected) == DATA.unpack(expected)


def test_a_frame_carries_the_same_header() -> None:
    message = _message(VALUES["buffers"], codec=2)
    frame = b"".join(encode_frame(message))
    assert frame[: DATA.size] == pack_data(message, message.plan.layout, 0, 0, message.plan.size)
    output, entry = decode_frame(frame)
    assert (output, entry[5], entry[8] >> CODEC_SHIFT) == ("image", 123_456_789, 2)
