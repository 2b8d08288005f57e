"""Arrow, the default format: values are pyarrow arrays, read in place.

On the node-to-node data plane Arrow values travel in Doradus's own layout
(buffers straight into shared memory, see ``doradus._values``); this codec is
the same format as self-contained bytes (the Arrow IPC stream format), for
the registry, the conformance suite and backends that carry plain bytes.

Example:
    >>> codec = ArrowCodec(FormatSpec())
    >>> codec.to_python(codec.decode(codec.encode([1, 2])))
    [1, 2]
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from doradus._exceptions import DecodeError, EncodeError
from doradus._format_spec import FormatSpec
from doradus.codecs._base import Buffer, Codec

_FIELD = "value"


class ArrowCodec(Codec):
    """Arrow arrays (or record batches, or anything ``pa.array`` accepts) as Arrow IPC bytes.

    Example:
        >>> ArrowCodec(FormatSpec()).decode(ArrowCodec(FormatSpec()).encode(b"ab")).type
        DataType(uint8)
    """

    name = "arrow"
    tag = 0
    needs_schema = False

    def __init__(self, spec: FormatSpec | None = None) -> None:
        super().__init__(spec or FormatSpec())

    def encode(self, value: Any) -> Buffer:
        """Arrow IPC stream bytes of ``value`` as one column.

        Example:
            >>> len(ArrowCodec().encode([1.0])) > 0
            True
        """
        from doradus._values import to_arrow

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

        Example:
            >>> ArrowCodec().decode(ArrowCodec().encode([3])).to_pylist()
            [3]
        """
        try:
            buffer = data if isinstance(data, pa.Buffer) else pa.py_buffer(data)
            reader = pa.ipc.open_stream(buffer)
            batches = list(reader)
            if len(batches) != 1 or batches[0].num_columns != 1:
                raise DecodeError("an Arrow message holds exactly one batch of one column")
            batches[0].validate(full=True)
            column: pa.Array = batches[0].column(0)
            return column
        except DecodeError:
            raise
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
