"""Message metadata: a small, typed key-value map that travels with every message.

Values may be ``bool``, ``int`` (64-bit), ``float``, ``str``, ``datetime``, or a
list of ints, floats or strings: dora-rs's metadata types. Anything else is
refused with a :class:`~doradus.MetadataError` (dora silently turns it into a
string; a silent change of type is a bug waiting to happen).

The encoding is a MessagePack map, written and read by msgspec (in C): datetimes
travel as MessagePack timestamps, in UTC. Sending checks each value's type in one
short loop and leaves the rest to msgspec; receiving checks every value against
the allowed types in C, so decoding bytes from an untrusted peer is safe (nothing
is executed, anything malformed raises `DecodeError`). Metadata holding datetimes
takes a slower path both ways.

Example:
    >>> blob = encode_metadata({"seq": 3, "label": "cam"})
    >>> decode_metadata(blob)
    {'seq': 3, 'label': 'cam'}
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec

from doradus._exceptions import DecodeError, MetadataError

_INT_MIN, _INT_MAX = -(2**63), 2**63 - 1
_Int64 = Annotated[int, msgspec.Meta(ge=_INT_MIN, le=_INT_MAX)]
# A union holds one str-like type at most: datetimes are read by `_decode_with_times`.
_PlainValue = bool | _Int64 | float | str | list[_Int64 | float | str]
_LIST_KINDS: tuple[frozenset[type], ...] = tuple(frozenset(k) for k in ((), (int,), (float,), (str,)))
"""The element types of a list that travels as it is (empty, ints, floats, strings)."""

_encode = msgspec.msgpack.Encoder().encode
_decode_plain = msgspec.msgpack.Decoder(dict[str, _PlainValue]).decode
_decode_any = msgspec.msgpack.Decoder(dict[str, Any]).decode
_decode_time = msgspec.msgpack.Decoder(datetime).decode
_TIMESTAMP_96 = struct.Struct(">BBbIq")
"""A MessagePack timestamp (ext 8, type -1): nanoseconds, then seconds since the epoch."""

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
    if type(metadata) is not dict:
        if not isinstance(metadata, Mapping):
            raise MetadataError(f"metadata must be a dict, not {type(metadata).__name__}")
        return _encode_checked(metadata)  # another mapping: copied into a plain dict
    if TIMESTAMP in metadata or len(metadata) > 0xFFFF:
        return _encode_checked(metadata)
    # The common case in one loop: keys of 63 characters at most (252 UTF-8 bytes at most),
    # values of the exact scalar types or plain lists. Anything else takes the full check.
    for key, value in metadata.items():
        kind = type(value)
        if kind is int:
            if not _INT_MIN <= value <= _INT_MAX:
                break
        elif kind is list:
            if not _is_plain_list(value):
                break
        elif kind is not float and kind is not str and kind is not bool:
            break
        if type(key) is not str or len(key) > 63:
            break
    else:
        try:
            return _encode(metadata)
        except UnicodeEncodeError as exc:
            raise MetadataError(f"metadata text is not valid Unicode: {exc}") from exc
    return _encode_checked(metadata)


def _is_plain_list(values: list[Any]) -> bool:
    """A list that travels as it is: only 64-bit ints, only floats or only strings."""
    kinds = frozenset(map(type, values))
    if kinds not in _LIST_KINDS:
        return False
    return kinds != _LIST_KINDS[1] or (min(values) >= _INT_MIN and max(values) <= _INT_MAX)


def _encode_checked(metadata: Mapping[str, Any]) -> bytes:
    """Every rule, each with its own message; values normalised (tuples, datetimes, subclasses)."""
    if len(metadata) > 0xFFFF:
        raise MetadataError(f"metadata has {len(metadata)} keys; at most 65535 can travel")
    if TIMESTAMP in metadata:
        metadata = _without_timestamp(metadata)
        if not metadata:
            return b""
    normal: dict[str, Any] = {}
    try:
        for key, value in metadata.items():
            if not isinstance(key, str):
                raise MetadataError(f"metadata keys must be str, got {key!r}")
            if len(key.encode()) > 255:
                raise MetadataError(f"metadata key {key[:20]!r}... is longer than 255 bytes")
            normal[key] = _normal_value(key, value)
        return _encode(normal)
    except UnicodeEncodeError as exc:
        raise MetadataError(f"metadata text is not valid Unicode: {exc}") from exc


def _without_timestamp(metadata: Mapping[str, Any]) -> dict[str, Any]:
    value = metadata[TIMESTAMP]
    if not isinstance(value, datetime):
        raise MetadataError(
            f"metadata key {TIMESTAMP!r} is reserved for the send time, which the runtime sets; "
            f"got a {type(value).__name__}: name yours otherwise (e.g. 'capture_time')"
        )
    return {k: v for k, v in metadata.items() if k != TIMESTAMP}


def _normal_value(key: str, value: Any) -> Any:
    """``value`` as it travels (exact types, aware UTC datetimes, lists), or `MetadataError`."""
    if value is True or value is False:
        return value
    if isinstance(value, int):
        return _checked_int(key, value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        try:
            return aware.astimezone(UTC)
        except OverflowError as exc:
            raise MetadataError(
                f"metadata datetime {key!r} is outside the range a datetime holds in UTC"
            ) from exc
    if isinstance(value, list | tuple):
        return _normal_list(key, list(value))
    raise MetadataError(
        f"metadata value for {key!r} has type {type(value).__name__}; allowed: bool, int, "
        "float, str, datetime, or a list of int, float or str (encode other values as str)"
    )


def _normal_list(key: str, values: list[Any]) -> list[Any]:
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return [_checked_int(key, v) for v in values]
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        try:
            return [float(v) for v in values]
        except OverflowError as exc:
            raise MetadataError(f"metadata list {key!r} holds a number too large for a float") from exc
    if all(isinstance(v, str) for v in values):
        return [str(v) for v in values]
    raise MetadataError(f"metadata list {key!r} must hold only ints, only floats or only strings")


def _checked_int(key: str, value: int) -> int:
    if not _INT_MIN <= value <= _INT_MAX:
        raise MetadataError(f"metadata int {key!r} does not fit in 64 bits: {value}")
    return int(value)


def datetime_from_ns(ns: int) -> datetime:
    """Turn nanoseconds since the Unix epoch into an aware UTC datetime (µs).

    Made by msgspec from a MessagePack timestamp: one C call, cheaper than datetime
    arithmetic on the message path.

    Example:
        >>> datetime_from_ns(1_000_000_000).isoformat()
        '1970-01-01T00:00:01+00:00'
    """
    seconds, nanos = divmod(ns, 1_000_000_000)
    return _decode_time(_TIMESTAMP_96.pack(0xC7, 12, -1, nanos - nanos % 1000, seconds))


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
        plain: dict[str, Any] = _decode_plain(blob)  # lists of one kind, as every encoder makes them
        return plain
    except msgspec.ValidationError:
        return _decode_with_times(blob)  # a datetime (or a malformed map)
    except msgspec.DecodeError as exc:
        raise DecodeError(f"malformed metadata: {_reason(exc)}") from exc


def _decode_with_times(blob: bytes | memoryview) -> dict[str, MetadataValue]:
    """The slower decoding of a map that holds datetimes: every value checked here."""
    try:
        decoded = _decode_any(blob)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise DecodeError(f"malformed metadata: {_reason(exc)}") from exc
    for key, value in decoded.items():
        if not _is_value(value):
            raise DecodeError(f"malformed metadata: {key!r} holds a {type(value).__name__}")
    return decoded


def _is_value(value: Any) -> bool:
    if type(value) is int:
        return _INT_MIN <= value <= _INT_MAX
    if type(value) is list:
        return all(type(v) in (float, str) or (type(v) is int and _INT_MIN <= v <= _INT_MAX) for v in value)
    return type(value) in (bool, float, str, datetime)


def _reason(exc: BaseException) -> str:
    text = str(exc)
    return f"trailing bytes ({text})" if "trailing" in text else text
