"""The Arrow codec: conformance, arrays read in place, exactly one stream per message."""

from __future__ import annotations

import gc
import mmap

import numpy as np
import pyarrow as pa
import pytest

from doradus._exceptions import DecodeError
from doradus.codecs import Detects, FormatSpec, get_codec
from doradus.codecs._arrow import ArrowCodec
from doradus.testing import check_codec

END_OF_STREAM = b"\xff\xff\xff\xff\x00\x00\x00\x00"


@pytest.fixture(scope="module")
def codec() -> ArrowCodec:
    made = get_codec(FormatSpec("arrow"))
    assert isinstance(made, ArrowCodec)
    return made


def test_conformance(codec: ArrowCodec) -> None:
    values = [[1, 2], [], ["a", None], [b"xyz"], np.arange(1000, dtype=np.float32), pa.array([{"a": [1]}])]
    check_codec(codec, values, expected=lambda v: pa.array(v).to_pylist())


def test_detects_everything(codec: ArrowCodec) -> None:
    assert (
        codec.detects
        == Detects.TRUNCATION | Detects.TRAILING_BYTES | Detects.FOREIGN_FORMAT | Detects.GARBAGE
    )


def test_decode_reads_the_buffer_in_place(codec: ArrowCodec) -> None:
    data = bytes(memoryview(codec.encode(pa.array([b"wxyz", b"abc"]))))
    shared = mmap.mmap(-1, len(data))
    shared[:] = data
    array = codec.decode(memoryview(shared).toreadonly())
    # Change the mapping's bytes after decode(): an array over them sees the change, an
    # array over a copy would not.
    shared[data.index(b"wxyzabc")] = ord("W")
    assert array.to_pylist() == [b"Wxyz", b"abc"]
    del array
    gc.collect()
    shared.close()  # nothing pins the mapping any more


def test_a_stream_cut_before_its_end_marker_is_truncated(codec: ArrowCodec) -> None:
    # pyarrow's reader takes the end of its input for the end of the stream
    data = bytes(memoryview(codec.encode([1, 2])))
    assert data.endswith(END_OF_STREAM)
    with pytest.raises(DecodeError, match="end"):
        codec.decode(data[: -len(END_OF_STREAM)])


def test_a_stream_with_only_its_schema_is_truncated(codec: ArrowCodec) -> None:
    data = bytes(memoryview(codec.encode([1, 2])))
    source = pa.BufferReader(pa.py_buffer(data))
    pa.ipc.open_stream(source)  # reads the schema message
    with pytest.raises(DecodeError, match="no batch"):
        codec.decode(data[: source.tell()] + END_OF_STREAM)


@pytest.mark.parametrize("tail", [b"\x00", END_OF_STREAM, b"again"], ids=["byte", "marker", "message"])
def test_bytes_after_the_stream_are_rejected(codec: ArrowCodec, tail: bytes) -> None:
    # pyarrow's reader stops at the first end marker and ignores what follows
    data = bytes(memoryview(codec.encode([1, 2])))
    with pytest.raises(DecodeError):
        codec.decode(data + (data if tail == b"again" else tail))
