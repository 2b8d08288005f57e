"""An Arrow message value as a self-contained Arrow IPC stream (schema + one batch), and back.

A node sends an Arrow array; the recording stores it as a record batch:

- a ``StructArray`` without nulls at its top (what a node sending a ``RecordBatch`` sends) is
  stored as that batch: one column per field;
- any other array is stored as a batch of one column named ``value``.

The batch's schema metadata says which (`SHAPE_KEY`: ``struct`` or ``column``), so `read_value`
gives back the very array the node sent. ``pyarrow.ipc.open_stream(data).read_all()`` reads a
message alone, with no other part of the file.

Example:
    >>> import pyarrow as pa
    >>> data = ipc_stream(to_batch(pa.array([1, 2, 3])))
    >>> pa.ipc.open_stream(data).read_all().column("value").to_pylist()
    [1, 2, 3]
    >>> read_value(data).to_pylist()
    [1, 2, 3]
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from doradus._recording.errors import RecordingError

VALUE_COLUMN = "value"
"""The column holding a value that is not a struct."""
SHAPE_KEY = b"doradus.shape"
"""Schema metadata key: ``struct`` (the batch's columns are the struct's fields) or ``column``."""
_STRUCT = {SHAPE_KEY: b"struct"}
_COLUMN = {SHAPE_KEY: b"column"}
_SCHEMAS_KEPT = 1024
_column_schemas: dict[pa.DataType, pa.Schema] = {}
"""The schema of each value type seen (at most `_SCHEMAS_KEPT`): made once, not per message."""
_OPTIONS = pa.ipc.IpcWriteOptions()
"""Given once: without options, pyarrow reads two environment variables per stream."""


def is_struct_batch(value: pa.Array) -> bool:
    """Whether ``value`` is stored as a batch of its fields (else as one ``value`` column).

    Example:
        >>> is_struct_batch(pa.array([{"x": 1}])), is_struct_batch(pa.array([1]))
        (True, False)
    """
    return isinstance(value, pa.StructArray) and value.type.num_fields > 0 and value.null_count == 0


def to_batch(value: pa.Array) -> pa.RecordBatch:
    """The record batch a message value is stored as (see the module documentation).

    Example:
        >>> batch = to_batch(pa.StructArray.from_arrays([pa.array([1.5])], names=["x"]))
        >>> batch.schema.names, batch.schema.metadata
        (['x'], {b'doradus.shape': b'struct'})
    """
    if is_struct_batch(value):
        flat = pa.RecordBatch.from_struct_array(value)
        return flat.replace_schema_metadata(_STRUCT)
    schema = _column_schemas.get(value.type)
    if schema is None:
        schema = pa.schema([pa.field(VALUE_COLUMN, value.type)], metadata=_COLUMN)
        if len(_column_schemas) < _SCHEMAS_KEPT:
            _column_schemas[value.type] = schema
    return pa.RecordBatch.from_arrays([value], schema=schema)


def ipc_stream(batch: pa.RecordBatch) -> pa.Buffer:
    """``batch`` as an Arrow IPC stream: its schema, the batch, the end-of-stream marker.

    Example:
        >>> ipc_stream(to_batch(pa.array([1]))).size > 0
        True
    """
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema, options=_OPTIONS) as writer:
        writer.write_batch(batch)
    return sink.getvalue()


@dataclass(frozen=True)
class StoredArrow:
    """An Arrow value ready to be written: its IPC stream (its own memory) and what names its channel.

    Made where the value is received (`stored_arrow`), so the received memory can be let go at
    once; the writer needs nothing else of the value.

    Example:
        >>> stored = stored_arrow(pa.array([1, 2]))
        >>> stored.value_type, stored.struct, read_value(stored.data).to_pylist()
        (DataType(int64), False, [1, 2])
    """

    value_type: pa.DataType
    struct: bool
    schema: pa.Schema
    """The stored batch's schema (the channel's schema record is made from it)."""
    data: pa.Buffer
    """The message: a self-contained IPC stream."""


def stored_arrow(value: pa.Array) -> StoredArrow:
    """``value`` as it is stored (see the module documentation), its bytes copied out of ``value``.

    Example:
        >>> stored_arrow(pa.array([{"x": 1}])).struct
        True
    """
    batch = to_batch(value)
    return StoredArrow(value.type, is_struct_batch(value), batch.schema, ipc_stream(batch))


def read_batch(data: bytes | memoryview | pa.Buffer) -> pa.RecordBatch:
    """The one batch of a stored message.

    Raises:
        RecordingError: ``data`` is not an Arrow IPC stream holding a batch.

    Example:
        >>> read_batch(ipc_stream(to_batch(pa.array(["a"])))).num_rows
        1
    """
    try:
        reader = pa.ipc.open_stream(pa.py_buffer(data) if not isinstance(data, pa.Buffer) else data)
        return reader.read_next_batch()
    except (pa.ArrowInvalid, StopIteration, OSError) as exc:
        raise RecordingError(
            f"a message is not an Arrow IPC stream with a batch ({exc})",
            fix="the file may be damaged; `doradus recording info` shows what is readable",
        ) from exc


def from_batch(batch: pa.RecordBatch) -> pa.Array:
    """The array a node sent, from the batch it was stored as.

    Example:
        >>> from_batch(to_batch(pa.array([7]))).to_pylist()
        [7]
    """
    shape = (batch.schema.metadata or {}).get(SHAPE_KEY)
    if shape == b"struct":
        plain = batch.replace_schema_metadata(None)
        array: pa.Array = plain.to_struct_array()
        return array
    column: pa.Array = batch.column(0)
    return column


def read_value(data: bytes | memoryview | pa.Buffer) -> pa.Array:
    """The array a node sent, from a stored message.

    Raises:
        RecordingError: ``data`` is not an Arrow IPC stream holding a batch.

    Example:
        >>> read_value(ipc_stream(to_batch(pa.array([1.0])))).type
        DataType(double)
    """
    return from_batch(read_batch(data))
