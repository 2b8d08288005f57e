"""Messages as self-contained frames, for backends that carry bytes (TCP, brokers, Zenoh…).

A frame is what the shared-memory backend sends inline, made standalone: the
``DATA`` header (`pack_data`; its segment fields hold the payload size), the output id,
the value's type and layout, the metadata, padding to 8 bytes, the payload.
The receiving side hands the frame to the node as it is: the node decodes
values straight from it (no copy), exactly like an inline shared-memory
message.

An ``END`` frame (kind 3) tells receivers that a sender closed its output
cleanly, after everything it sent.

Example:
    >>> from doradus._wire.values import plan_value
    >>> import pyarrow as pa
    >>> arr = pa.array([1, 2])
    >>> message = Outgoing(b"out", arr, plan_value(arr), b"", 1, 0)
    >>> output, entry = decode_frame(b"".join(encode_frame(message)))
    >>> output, entry[5]
    ('out', 0)
"""

from __future__ import annotations

import struct
from typing import Any

from doradus._exceptions import DecodeError
from doradus._wire.protocol import DATA, KIND_DATA, pack_data, unpack_data
from doradus.backends._base import Outgoing

KIND_END = 3
END = struct.Struct("<BBH")
"""kind, 0, output id length; then the output id (empty: every output of the sender)."""
_PAD = bytes(8)


def encode_frame(message: Outgoing) -> list[bytes | memoryview]:
    """The parts of ``message``'s frame, in order (join them, or write them one by one).

    The payload parts are views of the value's buffers: nothing is copied
    until a transport writes them.

    Example::

        sock.sendmsg(encode_frame(message))
    """
    plan = message.plan
    head = pack_data(message, plan.layout, 0, 0, plan.size)
    pos = len(head) + len(message.output) + len(plan.type_blob) + len(plan.layout) + len(message.metadata)
    parts: list[bytes | memoryview] = [head, message.output, plan.type_blob, plan.layout, message.metadata]
    pad = -pos % 8
    if pad:
        parts.append(_PAD[:pad])
    if plan.size:
        payload = bytearray(plan.size)
        plan.write_into(memoryview(payload), 0)
        parts.append(memoryview(payload))
    return parts


def frame_size(parts: list[bytes | memoryview]) -> int:
    """Total bytes of a frame's parts.

    Example:
        >>> frame_size([b"ab", memoryview(b"c")])
        3
    """
    return sum(len(p) for p in parts)


def encode_end(output: str = "") -> bytes:
    """An ``END`` frame: ``output`` (or, empty, every output of the sender) is closed.

    Example:
        >>> decode_end(encode_end("out"))
        'out'
    """
    raw = output.encode()
    return END.pack(KIND_END, 0, len(raw)) + raw


def is_end(frame: bytes | bytearray | memoryview) -> bool:
    """Whether ``frame`` is an ``END`` frame.

    Example:
        >>> is_end(encode_end())
        True
    """
    return len(frame) >= END.size and frame[0] == KIND_END


def decode_end(frame: bytes | bytearray | memoryview) -> str:
    """The output id an ``END`` frame closes ('' for all).

    Raises:
        DecodeError: the output id is not UTF-8.

    Example:
        >>> decode_end(encode_end())
        ''
    """
    _kind, _zero, length = END.unpack_from(frame)
    return _text(frame[END.size : END.size + length], "END frame's output id")


def decode_frame(frame: bytes | bytearray | memoryview) -> tuple[str, tuple[Any, ...]]:
    """(output id, the entry the node decodes) of a data frame, checking its lengths.

    The entry is ``(data, pos, type_len, layout_len, meta_len, stamp, None, 0,
    flags)``, what `doradus.backends.Receiver.deliver` takes.

    Raises:
        DecodeError: the frame is truncated, its lengths do not add up or its
            output id is not UTF-8.

    Example::

        output, entry = decode_frame(received_bytes)
    """
    if len(frame) < DATA.size:
        raise DecodeError(f"a frame of {len(frame)} B is shorter than its header ({DATA.size} B)")
    (kind, flags, out_len, type_len, layout_len, meta_len, _seq, stamp, _seg, size, _off) = unpack_data(frame)
    if kind != KIND_DATA:
        raise DecodeError(f"not a data frame (kind {kind})")
    pos = DATA.size + out_len
    end = pos + type_len + layout_len + meta_len
    end += -end % 8
    if end + size != len(frame):
        raise DecodeError(f"frame lengths add up to {end + size} B, the frame has {len(frame)} B")
    output = _text(frame[DATA.size : pos], "data frame's output id")
    return output, (frame, pos, type_len, layout_len, meta_len, stamp, None, 0, flags)


def _text(raw: bytes | bytearray | memoryview, what: str) -> str:
    try:
        return bytes(raw).decode()
    except UnicodeDecodeError as exc:
        raise DecodeError(f"the {what} is not UTF-8 ({exc}): the sender is not a Doradus node") from exc
