"""Turning message values into bytes laid out for the data plane, and back.

A value travels as an Arrow array. Arrays of flat types (numbers, booleans,
strings, binaries, temporal types...) travel as their raw Arrow buffers plus a
small layout record, so the receiver rebuilds the array over the received
memory without copying. Nested, dictionary and extension types fall back to
the Arrow IPC stream format (still read without copying).

Example:
    >>> import pyarrow as pa
    >>> plan = plan_value(pa.array([1, 2, 3]))
    >>> payload = bytearray(plan.size)
    >>> plan.write_into(memoryview(payload), 0)
    >>> decode_value(plan.kind, plan.type_blob, plan.layout, pa.py_buffer(bytes(payload))).to_pylist()
    [1, 2, 3]
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from doradus._exceptions import DecodeError, EncodeError

KIND_BUFFERS = 0
KIND_IPC = 1
ALIGN = 64

_LAYOUT_HEAD = struct.Struct("<qqqB")
_type_blobs: dict[pa.DataType, bytes] = {}
_types: dict[bytes, pa.DataType] = {}
_layout_structs: dict[int, struct.Struct] = {}
_type_info: dict[pa.DataType, tuple[bytes, bool]] = {}
_LAYOUT_PLAIN = struct.Struct("<qqqB4q")
PLAIN_OFFSETS = (-1, 0)


def to_arrow(data: Any) -> pa.Array:
    """Convert what a node may send into an Arrow array.

    Accepts a pyarrow ``Array``/``ChunkedArray``/``RecordBatch`` (sent as a
    ``StructArray``), a numpy array (flattened, without a copy when
    contiguous), ``bytes``/``bytearray``/``memoryview`` (a ``UInt8Array`` over
    the same memory), a Python list, or ``None`` (an empty null array).

    Raises:
        EncodeError: the value cannot be sent.

    Example:
        >>> to_arrow(b"hi").type
        DataType(uint8)
    """
    if isinstance(data, pa.Array):
        return data
    if isinstance(data, np.ndarray):
        return _numpy_to_arrow(data)
    if isinstance(data, bytes | bytearray | memoryview):
        try:
            buf = pa.py_buffer(data)
        except BufferError as exc:
            raise EncodeError(f"cannot send this buffer without copying it: {exc}; pass bytes(view)") from exc
        return pa.Array.from_buffers(pa.uint8(), buf.size, [None, buf])
    if isinstance(data, pa.ChunkedArray):
        return data.combine_chunks()
    if isinstance(data, pa.RecordBatch):
        if data.num_columns == 0:
            return pa.Array.from_buffers(pa.struct([]), data.num_rows, [None], children=[])
        return pa.StructArray.from_arrays(data.columns, fields=list(data.schema))
    if isinstance(data, list | tuple):
        try:
            return pa.array(data)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise EncodeError(f"cannot convert list to an Arrow array: {exc}") from exc
    if data is None:
        return pa.nulls(0)
    raise EncodeError(
        f"cannot send a value of type {type(data).__name__}; send a pyarrow array, a numpy "
        "array, bytes, or a list (for text: pa.array([text]))"
    )


def _numpy_to_arrow(data: np.ndarray) -> pa.Array:
    flat = data.reshape(-1) if data.ndim != 1 else data
    try:
        return pa.array(flat)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        raise EncodeError(f"cannot send numpy array of dtype {data.dtype}: {exc}") from exc


def _is_flat(type_: pa.DataType) -> bool:
    return (
        type_.num_fields == 0
        and not pa.types.is_dictionary(type_)
        and not isinstance(type_, pa.ExtensionType)
    )


def type_blob(type_: pa.DataType) -> bytes:
    """Encode an Arrow type once (cached) as a schema message.

    Example:
        >>> type_from_blob(type_blob(pa.float32()))
        DataType(float)
    """
    blob = _type_blobs.get(type_)
    if blob is None:
        blob = pa.schema([pa.field("v", type_)]).serialize().to_pybytes()
        _type_blobs[type_] = blob
        _types[blob] = type_
    return blob


def type_from_blob(blob: bytes | bytearray | memoryview) -> pa.DataType:
    """Decode (cached) an Arrow type encoded by :func:`type_blob`.

    Example:
        >>> type_from_blob(type_blob(pa.string()))
        DataType(string)
    """
    if not isinstance(blob, bytes):  # frames read into a bytearray: the cache needs a hashable key
        blob = bytes(blob)
    type_ = _types.get(blob)
    if type_ is None:
        try:
            type_ = pa.ipc.read_schema(pa.py_buffer(blob)).field(0).type
        except (pa.ArrowException, IndexError, OSError) as exc:
            raise DecodeError(f"bad type descriptor: {exc}") from exc
        _types[blob] = type_
    return type_


def layout_struct(count: int) -> struct.Struct:
    """The (cached) struct packing a layout of ``count`` buffers.

    Example:
        >>> layout_struct(2).size
        57
    """
    packer = _layout_structs.get(count)
    if packer is None:
        packer = struct.Struct(f"<qqqB{2 * count}q")
        _layout_structs[count] = packer
    return packer


@dataclass
class ValuePlan:
    """Where each part of a value goes in the payload.

    ``size`` is the payload's byte count; ``write_into`` copies the parts into
    a destination at a given offset. ``zero_copy_base`` is set by the sender
    when the buffers already live in a shared-memory segment.
    """

    kind: int
    type_blob: bytes
    layout: bytes
    parts: Sequence[Any]
    offsets: Sequence[int]
    size: int

    def write_into(self, dest: memoryview, base: int) -> None:
        """Copy every part to ``dest[base + offset]``.

        Example:
            >>> p = plan_value(pa.array([7], pa.int8()))
            >>> out = bytearray(p.size)
            >>> p.write_into(memoryview(out), 0)
            >>> out[0]
            7
        """
        for part, offset in zip(self.parts, self.offsets, strict=True):
            if part is None:
                continue
            start = base + offset
            view = memoryview(part)
            dest[start : start + view.nbytes] = (
                view.cast("B") if view.ndim != 1 or view.format != "B" else view
            )


def _align(value: int, to: int) -> int:
    return (value + to - 1) // to * to


def plan_value(array: pa.Array, align: int = 8) -> ValuePlan:
    """Lay out an array's buffers (or its IPC form) for sending.

    Args:
        array: the value.
        align: byte alignment of each buffer within the payload.

    Example:
        >>> plan_value(pa.array([1.0, 2.0])).size
        16
    """
    type_ = array.type
    info = _type_info.get(type_)
    if info is None:
        info = _type_info[type_] = (type_blob(type_), True) if _is_flat(type_) else (b"", False)
    blob, flat = info
    if not flat:
        return _plan_ipc(array)
    buffers = array.buffers()
    if len(buffers) == 2 and buffers[0] is None:
        # The common case, a primitive array without nulls: one data buffer at offset 0.
        span = buffers[1].size
        layout = _LAYOUT_PLAIN.pack(len(array), 0, array.offset, 2, -1, 0, 0, span)
        return ValuePlan(KIND_BUFFERS, blob, layout, buffers, PLAIN_OFFSETS, span)
    offsets: list[int] = []
    flat_layout: list[int] = []
    size = 0
    for buf in buffers:
        if buf is None:
            offsets.append(-1)
            flat_layout += (-1, 0)
            continue
        size = _align(size, align)
        offsets.append(size)
        flat_layout += (size, buf.size)
        size += buf.size
    layout = layout_struct(len(buffers)).pack(
        len(array), array.null_count, array.offset, len(buffers), *flat_layout
    )
    return ValuePlan(KIND_BUFFERS, blob, layout, buffers, offsets, size)


def _plan_ipc(array: pa.Array) -> ValuePlan:
    batch = pa.RecordBatch.from_arrays([array], ["v"])
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    data = sink.getvalue()
    return ValuePlan(KIND_IPC, b"", b"", [data], [0], data.size)


def decode_value(kind: int, blob: bytes, layout: bytes, payload: pa.Buffer) -> pa.Array:
    """Rebuild an array over ``payload`` without copying.

    Raises:
        DecodeError: the layout does not fit the payload or the type is unknown.

    Example:
        >>> p = plan_value(pa.array(["a", "bc"]))
        >>> out = bytearray(p.size); p.write_into(memoryview(out), 0)
        >>> decode_value(p.kind, p.type_blob, p.layout, pa.py_buffer(bytes(out))).to_pylist()
        ['a', 'bc']
    """
    if kind == KIND_IPC:
        try:
            batch = pa.ipc.open_stream(payload).read_next_batch()
            if batch.num_columns != 1:
                raise DecodeError(f"bad IPC payload: {batch.num_columns} columns instead of 1")
            column: pa.Array = batch.column(0)
        except (pa.ArrowException, StopIteration, OSError, IndexError, UnicodeDecodeError) as exc:
            raise DecodeError(f"bad IPC payload: {exc}") from exc
        return column
    if kind != KIND_BUFFERS:
        raise DecodeError(f"unknown value kind {kind}")
    type_ = type_from_blob(blob)
    count = (len(layout) - _LAYOUT_HEAD.size) // 16
    try:
        length, nulls, offset, declared, *flat = layout_struct(count).unpack(layout)
    except struct.error as exc:
        raise DecodeError(f"bad value layout: {exc}") from exc
    if declared != count:
        raise DecodeError(f"bad value layout: {declared} buffers declared, {count} present")
    if length < 0 or offset < 0 or nulls < -1:
        raise DecodeError(f"bad value layout: length {length}, offset {offset}, null count {nulls}")
    buffers: list[pa.Buffer | None] = []
    limit = payload.size
    for i in range(count):
        start, span = flat[2 * i], flat[2 * i + 1]
        if start < 0:
            buffers.append(None)
            continue
        if span < 0 or start + span > limit:
            raise DecodeError(f"buffer {i} ({start}+{span}) lies outside the {limit} B payload")
        buffers.append(payload.slice(start, span))
    try:
        return pa.Array.from_buffers(type_, length, buffers, nulls, offset)
    except (pa.ArrowInvalid, ValueError, TypeError) as exc:
        raise DecodeError(f"cannot rebuild array: {exc}") from exc
