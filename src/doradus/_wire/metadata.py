"""Message metadata: a small, typed key-value map that travels with every message.

Values may be ``bool``, ``int`` (64-bit), ``float``, ``str``, ``datetime``, or a
list of ints, floats or strings: dora-rs's metadata types. Anything else is
refused with a :class:`~doradus.MetadataError` (dora silently turns it into a
string; a silent change of type is a bug waiting to happen).

The encoding is a compact tag-length-value form packed with ``struct``: cheap
enough for the hot path, and safe to decode from an untrusted peer (nothing is
executed, every length is checked).

Example:
    >>> blob = encode_metadata({"seq": 3, "label": "cam"})
    >>> decode_metadata(blob)
    {'seq': 3, 'label': 'cam'}
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from doradus._exceptions import DecodeError, MetadataError

_FALSE, _TRUE, _INT, _FLOAT, _STR, _INTS, _FLOATS, _STRS, _TIME = range(1, 10)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_I64 = struct.Struct("<q")
_F64 = struct.Struct("<d")
_U32 = struct.Struct("<I")
_HEAD = struct.Struct("<H")
_INT_MIN, _INT_MAX = -(2**63), 2**63 - 1

MetadataValue = bool | int | float | str | datetime | list[int] | list[float] | list[str]

TIMESTAMP = "timestamp"
"""The reserved key: every received message's metadata holds its send time (an aware UTC
``datetime``) under it, set by the runtime from the message header.

A ``datetime`` a sender passes under this key (typically metadata it received and forwards,
as dora nodes do) does not travel: the receiver gets this hop's send time. Any other value
is refused with a `MetadataError`, since it would reach the receiver as something other than
a time."""


def encode_metadata(metadata: Mapping[str, Any] | None) -> bytes:
    """Encode a metadata mapping; ``None`` or ``{}`` encode to ``b""``.

    Args:
        metadata: keys are strings (at most 255 bytes in UTF-8).

    Returns:
        The encoded bytes.

    Raises:
        MetadataError: a key or value has a type that cannot travel, or ``timestamp``
            (reserved for the send time) is not a datetime.

    Example:
        >>> encode_metadata({})
        b''
        >>> from datetime import datetime, UTC
        >>> decode_metadata(encode_metadata({"seq": 1, "timestamp": datetime.now(UTC)}))
        {'seq': 1}
    """
    if not metadata:
        return b""
    if not isinstance(metadata, Mapping):
        raise MetadataError(f"metadata must be a dict, not {type(metadata).__name__}")
    # `timestamp` is reserved (see TIMESTAMP): a forwarded datetime stays behind, else an error.
    if len(metadata) > 0xFFFF:
        raise MetadataError(f"metadata has {len(metadata)} keys; at most 65535 can travel")
    try:
        return _encode_items(metadata)
    except UnicodeEncodeError as exc:
        raise MetadataError(f"metadata text is not valid Unicode: {exc}") from exc


def _encode_items(metadata: Mapping[str, Any]) -> bytes:
    if TIMESTAMP in metadata:
        metadata = _without_timestamp(metadata)
        if not metadata:
            return b""
    parts = [_HEAD.pack(len(metadata))]
    for key, value in metadata.items():
        if not isinstance(key, str):
            raise MetadataError(f"metadata keys must be str, got {key!r}")
        raw_key = key.encode()
        if len(raw_key) > 255:
            raise MetadataError(f"metadata key {key[:20]!r}... is longer than 255 bytes")
        parts.append(bytes((len(raw_key),)))
        parts.append(raw_key)
        parts.append(_encode_value(key, value))
    return b"".join(parts)


def _without_timestamp(metadata: Mapping[str, Any]) -> dict[str, Any]:
    value = metadata[TIMESTAMP]
    if not isinstance(value, datetime):
        raise MetadataError(
            f"metadata key {TIMESTAMP!r} is reserved for the send time, which the runtime sets; "
            f"got a {type(value).__name__}: name yours otherwise (e.g. 'capture_time')"
        )
    return {k: v for k, v in metadata.items() if k != TIMESTAMP}


def _encode_value(key: str, value: Any) -> bytes:
    if value is True:
        return bytes((_TRUE,))
    if value is False:
        return bytes((_FALSE,))
    if isinstance(value, int):
        return bytes((_INT,)) + _I64.pack(_checked_int(key, value))
    if isinstance(value, float):
        return bytes((_FLOAT,)) + _F64.pack(value)
    if isinstance(value, str):
        raw = value.encode()
        return bytes((_STR,)) + _U32.pack(len(raw)) + raw
    if isinstance(value, datetime):
        micros = _micros(value)
        try:
            _EPOCH + timedelta(microseconds=micros)
        except OverflowError as exc:
            raise MetadataError(
                f"metadata datetime {key!r} is outside the range a datetime holds in UTC"
            ) from exc
        return bytes((_TIME,)) + _I64.pack(micros)
    if isinstance(value, list | tuple):
        return _encode_list(key, list(value))
    raise MetadataError(
        f"metadata value for {key!r} has type {type(value).__name__}; allowed: bool, int, "
        "float, str, datetime, or a list of int, float or str (encode other values as str)"
    )


def _encode_list(key: str, values: list[Any]) -> bytes:
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        ints = [_checked_int(key, v) for v in values]
        return bytes((_INTS,)) + _U32.pack(len(ints)) + struct.pack(f"<{len(ints)}q", *ints)
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        try:
            packed = struct.pack(f"<{len(values)}d", *values)
        except (struct.error, OverflowError) as exc:
            raise MetadataError(f"metadata list {key!r} holds a number too large for a float") from exc
        return bytes((_FLOATS,)) + _U32.pack(len(values)) + packed
    if all(isinstance(v, str) for v in values):
        raws = [v.encode() for v in values]
        body = b"".join(_U32.pack(len(r)) + r for r in raws)
        return bytes((_STRS,)) + _U32.pack(len(raws)) + body
    raise MetadataError(f"metadata list {key!r} must hold only ints, only floats or only strings")


def _checked_int(key: str, value: int) -> int:
    if not _INT_MIN <= value <= _INT_MAX:
        raise MetadataError(f"metadata int {key!r} does not fit in 64 bits: {value}")
    return value


def _micros(value: datetime) -> int:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def datetime_from_ns(ns: int) -> datetime:
    """Turn nanoseconds since the Unix epoch into an aware UTC datetime (µs).

    Example:
        >>> datetime_from_ns(1_000_000_000).isoformat()
        '1970-01-01T00:00:01+00:00'
    """
    return _EPOCH + timedelta(microseconds=ns // 1000)


def decode_metadata(blob: bytes | memoryview) -> dict[str, MetadataValue]:
    """Decode bytes made by :func:`encode_metadata`.

    Raises:
        DecodeError: the bytes are truncated or malformed.

    Example:
        >>> decode_metadata(b"")
        {}
    """
    if not blob:
        return {}
    try:
        return _decode(memoryview(blob))
    except (struct.error, IndexError, UnicodeDecodeError, ValueError, OverflowError) as exc:
        raise DecodeError(f"malformed metadata: {exc}") from exc


def _decode(view: memoryview) -> dict[str, MetadataValue]:
    (count,) = _HEAD.unpack_from(view, 0)
    pos = 2
    out: dict[str, MetadataValue] = {}
    for _ in range(count):
        key_len = view[pos]
        key = bytes(view[pos + 1 : pos + 1 + key_len]).decode()
        pos += 1 + key_len
        tag = view[pos]
        out[key], pos = _decode_value(view, tag, pos + 1)
    if pos != len(view):
        raise ValueError("trailing bytes")
    return out


def _take(view: memoryview, pos: int, size: int) -> memoryview:
    if pos + size > len(view):
        raise ValueError("truncated")
    return view[pos : pos + size]


def _decode_value(view: memoryview, tag: int, pos: int) -> tuple[MetadataValue, int]:
    if tag == _TRUE:
        return True, pos
    if tag == _FALSE:
        return False, pos
    if tag == _INT:
        return _I64.unpack_from(view, pos)[0], pos + 8
    if tag == _FLOAT:
        return _F64.unpack_from(view, pos)[0], pos + 8
    if tag == _TIME:
        micros = _I64.unpack_from(view, pos)[0]
        return _EPOCH + timedelta(microseconds=micros), pos + 8
    (n,) = _U32.unpack_from(view, pos)
    pos += 4
    if tag == _STR:
        return bytes(_take(view, pos, n)).decode(), pos + n
    if tag in (_INTS, _FLOATS):
        code = "q" if tag == _INTS else "d"
        values = list(struct.unpack_from(f"<{n}{code}", _take(view, pos, 8 * n)))
        return values, pos + 8 * n
    if tag == _STRS:
        strings: list[str] = []
        for _ in range(n):
            (size,) = _U32.unpack_from(view, pos)
            strings.append(bytes(_take(view, pos + 4, size)).decode())
            pos += 4 + size
        return strings, pos
    raise ValueError(f"unknown tag {tag}")
