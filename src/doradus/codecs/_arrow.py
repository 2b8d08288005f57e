"""Arrow, the default format: values are pyarrow arrays, read in place.

On the node-to-node data plane Arrow values travel in Doradus's own layout
(buffers straight into shared memory, see ``doradus._wire.values``); this codec is
the same format as self-contained bytes (the Arrow IPC stream format), for
the registry, the conformance suite and backends that carry plain bytes.

A message is exactly one stream: the schema, one record batch of one column
and the end-of-stream marker, nothing after it. Arrow's own reader stops at
the end of its input as if the marker were there, and ignores what follows
the marker; `ArrowCodec.decode` checks both ends itself, so a cut message or
one with bytes appended raises `DecodeError` (see `ArrowCodec.detects`).

Example:
    >>> codec = ArrowCodec(FormatSpec())
    >>> codec.to_python(codec.decode(codec.encode([1, 2])))
    [1, 2]
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from doradus._exceptions import DecodeError, EncodeError
from doradus._wire.format_spec import FormatSpec
from doradus.codecs._base import Buffer, Codec, Detects

_FIELD = "value"
_END_OF_STREAM = b"\xff\xff\xff\xff\x00\x00\x00\x00"
"""The IPC stream's end marker: a continuation token and a zero metadata length."""


class ArrowCodec(Codec):
    """Arrow arrays (or record batches, or anything ``pa.array`` accepts) as Arrow IPC bytes.

    Example:
        >>> ArrowCodec(FormatSpec()).decode(ArrowCodec(FormatSpec()).encode(b"ab")).type
        DataType(uint8)
    """

    name = "arrow"
    tag = 0
    needs_schema = False
    # The stream starts with a continuation token and flatbuffer metadata Arrow
    # verifies, and decode() checks that exactly one end marker ends it.
    detects = Detects.TRUNCATION | Detects.TRAILING_BYTES | Detects.FOREIGN_FORMAT | Detects.GARBAGE

    def __init__(self, spec: FormatSpec | None = None) -> None:
        super().__init__(spec or FormatSpec())

    def encode(self, value: Any) -> Buffer:
        """Arrow IPC stream bytes of ``value`` as one column.

        Example:
            >>> len(ArrowCodec().encode([1.0])) > 0
            True
        """
        from doradus._wire.values import to_arrow

        try:
            array = to_arrow(value)
            batch = pa.record_batch([array], names=[_FIELD])
            sink = pa.BufferOutputStream()
            with pa.ipc.new_stream(sink, batch.schema) as writer:
                writer.write_batch(batch)
            return sink.getvalue()
        except (pa.ArrowException, TypeError, ValueError) as exc:
            raise EncodeError(f"cannot encode {type(value).__name__} as Arrow: {exc}") from exc

    def decode(self, data: Buffer) -> pa.Array:
        """The array, reading the buffer in place (validated: bad offsets raise `DecodeError`).

        Raises:
            DecodeError: ``data`` is not exactly one Arrow IPC stream of one
                batch of one column: cut short, followed by other bytes, or
                not Arrow at all.

        Example:
            >>> ArrowCodec().decode(ArrowCodec().encode([3])).to_pylist()
            [3]
        """
        try:
            buffer = data if isinstance(data, pa.Buffer) else pa.py_buffer(data)
            source = pa.BufferReader(buffer)  # slices the buffer: the batch still reads in place
            batch = pa.ipc.open_stream(source).read_next_batch()
            _check_stream_end(buffer, source.tell())
            if batch.num_columns != 1:
                raise DecodeError("an Arrow message holds exactly one batch of one column")
            batch.validate(full=True)
            column: pa.Array = batch.column(0)
            return column
        except DecodeError:
            raise
        except StopIteration:
            raise DecodeError("not a valid Arrow message: the stream holds no batch (truncated?)") from None
        except (pa.ArrowException, OSError, ValueError, TypeError, IndexError) as exc:
            raise DecodeError(f"not a valid Arrow message: {exc}") from exc

    def to_python(self, value: Any) -> Any:
        """The array's values as a list.

        Example:
            >>> ArrowCodec().to_python(pa.array([1]))
            [1]
        """
        return value.to_pylist()

    def to_arrow(self, value: Any) -> pa.Array:
        """The array itself.

        Example:
            >>> ArrowCodec().to_arrow(pa.array([1])).type
            DataType(int64)
        """
        array: pa.Array = value
        return array


def _check_stream_end(buffer: pa.Buffer, end: int) -> None:
    """Require exactly the end-of-stream marker after the batch that ends at ``end``."""
    rest = buffer.size - end
    if rest < len(_END_OF_STREAM):
        raise DecodeError(
            f"truncated Arrow message: {rest} of the {len(_END_OF_STREAM)} bytes of its end marker"
        )
    if rest > len(_END_OF_STREAM):
        raise DecodeError(
            f"not one Arrow message: {rest - len(_END_OF_STREAM)} more bytes follow its batch "
            f"(a second batch or bytes after the stream)"
        )
    if buffer.slice(end).to_pybytes() != _END_OF_STREAM:  # 8 bytes: the only copy decode makes
        raise DecodeError("truncated Arrow message: its batch is not followed by the end-of-stream marker")
