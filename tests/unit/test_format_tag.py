"""The header's format tag keeps formats apart: a receiver refuses bytes of another format."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from doradus import DecodeError
from doradus._node.node import _encoded_array
from doradus._node.receive import decode_input
from doradus._wire.protocol import CODEC_SHIFT
from doradus._wire.values import plan_value
from doradus.codecs import TAGS, FormatSpec, get_codec

SCHEMAS = Path(__file__).parent.parent / "codecs" / "schemas"
AVRO = FormatSpec("avro", SCHEMAS / "reading.avsc")
RECORD = {
    "label": "x",
    "seq": 1,
    "values": [1.0],
    "ok": True,
    "blob": b"\x01",
    "small": 2,
    "ratio": 0.5,
    "tags": [],
    "pose": {"x": 0.0, "y": 0.0, "z": 0.0},
    "kind": "RAW",
    "note": None,
    "attrs": {},
}


def _item(array: pa.Array, tag: int) -> tuple[object, ...]:
    """A received message as the shared-memory backend hands it to the node (inline form)."""
    plan = plan_value(array)
    payload = bytearray(plan.size)
    plan.write_into(memoryview(payload), 0)
    start = len(plan.type_blob) + len(plan.layout)
    pad = -start % 8
    data = plan.type_blob + plan.layout + bytes(pad) + bytes(payload)
    return (data, 0, len(plan.type_blob), len(plan.layout), 0, 0, None, 0, tag << CODEC_SHIFT)


def test_a_message_decodes_with_its_inputs_codec() -> None:
    codec = get_codec(AVRO)
    event = decode_input("r", _item(_encoded_array(codec, "out", RECORD), TAGS["avro"]), codec)
    assert event.data_format == "avro"
    assert event.value == RECORD
    assert event.to_python() == RECORD


@pytest.mark.parametrize(("tag", "codec_spec"), [(TAGS["avro"], None), (0, AVRO), (TAGS["capnp"], AVRO)])
def test_a_foreign_format_tag_is_a_decode_error(tag: int, codec_spec: FormatSpec | None) -> None:
    avro = get_codec(AVRO)
    codec = None if codec_spec is None else get_codec(codec_spec)
    item = _item(_encoded_array(avro, "out", RECORD), tag)
    with pytest.raises(DecodeError, match="but input 'r' reads"):
        decode_input("r", item, codec)


def test_garbage_bytes_under_the_right_tag_are_a_decode_error() -> None:
    codec = get_codec(AVRO)
    item = _item(pa.array([255, 255, 255], pa.uint8()), TAGS["avro"])
    with pytest.raises(DecodeError):
        decode_input("r", item, codec)
