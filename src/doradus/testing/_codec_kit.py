"""The codec conformance kit.

`check_codec` holds a codec to exactly what it declares in `Codec.detects`:
its values round-trip; every kind of bad input it declares (truncated, with
trailing bytes, garbage) raises `DecodeError`; and every other bad input —
corrupted messages, the kinds it does not declare — raises nothing but
`DecodeError`, or decodes to a value that `to_python` reads fully. Never
another exception, never a crash. `check_foreign` does the same for a
message another format wrote. The built-in codecs' tests call them, and a
third-party codec can call them the same way.

Example:
    >>> from doradus.codecs import FormatSpec, get_codec
    >>> check_codec(get_codec(FormatSpec("arrow")), [[1, 2], ["a"]])
"""

from __future__ import annotations

import random
import reprlib
import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from doradus._exceptions import DecodeError
from doradus.codecs._base import Buffer, Codec, Detects

GARBAGE = (
    b"",
    b"\x00",
    b"\xff",
    b"\x00" * 8,
    b"\xff" * 8,
    b"\x00" * 16,
    b"\xff" * 64,
    b"\x01\x00\x00\x00\xff\xff\xff\x7f",
    b"not a message at all",
    b"\x7f" * 4096,
    random.Random(0).randbytes(64),
    random.Random(1).randbytes(1000),
)
"""Bytes that are no message: a codec declaring `Detects.GARBAGE` rejects each; no codec crashes on one.

Example:
    >>> from doradus import DecodeError
    >>> from doradus.codecs import Detects, FormatSpec, get_codec
    >>> arrow = get_codec(FormatSpec("arrow"))
    >>> rejected = []
    >>> for data in GARBAGE:
    ...     try:
    ...         decode_fully(arrow, data)
    ...     except DecodeError:
    ...         rejected.append(data)
    >>> Detects.GARBAGE in arrow.detects, len(rejected) == len(GARBAGE)
    (True, True)
"""

_TRAILERS = (b"\x00", b"\x00" * 4, b"\x00" * 8, b"\xff" * 8)
"""What `check_codec` appends to a message (besides the message itself): padding-sized runs."""


def _prefix_cuts(size: int) -> list[int]:
    """Where to cut a message of ``size`` bytes: everywhere if short, else its start, its end and between."""
    if size <= 256:
        return list(range(size))
    # headers live at the start, end markers and alignment padding at the end
    return sorted({*range(64), *(size * k // 16 for k in range(1, 16)), *range(size - 16, size)})


def _corruptions(encoded: bytes, seed: int) -> Iterator[bytes]:
    """Copies of a message with random bytes changed, and one with its first 8 bytes replaced."""
    rng = random.Random(seed)
    n = len(encoded)
    for _ in range(16):
        corrupted = bytearray(encoded)
        for _ in range(max(1, n // 16)):
            if corrupted:
                corrupted[rng.randrange(len(corrupted))] = rng.randrange(256)
        yield bytes(corrupted)
    if n >= 8:
        header = bytearray(encoded)
        header[:8] = bytes(rng.randrange(256) for _ in range(8))
        yield bytes(header)


def garbage_for(encoded: bytes, seed: int = 0) -> Iterator[bytes]:
    """Invalid variants of a valid message: strict prefixes (every one of a short message), corrupted copies.

    Example:
        >>> len(list(garbage_for(b"abcdef"))) > 6
        True
    """
    for cut in _prefix_cuts(len(encoded)):
        yield encoded[:cut]
    yield from _corruptions(encoded, seed)


def decode_fully(codec: Codec, data: bytes) -> Any:
    """Decode ``data`` and read every field (``to_python``): what a receiver may do.

    Example:
        >>> from doradus.codecs import FormatSpec, get_codec
        >>> codec = get_codec(FormatSpec("arrow"))
        >>> decode_fully(codec, bytes(codec.encode([1, 2])))
        [1, 2]
    """
    return codec.to_python(codec.decode(data))


def check_codec(
    codec: Codec,
    values: Iterable[Any],
    *,
    expected: Callable[[Any], Any] | None = None,
    strict_truncation: bool | None = None,
) -> None:
    """Assert the codec's guarantees on ``values`` (each a value its schema accepts).

    - each value round-trips: ``to_python(decode(encode(v)))`` equals
      ``expected(v)`` (``v`` itself by default), and ``to_arrow`` of the
      decoded value works or raises `DecodeError`;
    - its strict prefixes (every one of a message up to 256 bytes, else the
      first 64, the last 16 and 15 between), the message followed by a few
      bytes or by itself, and every byte string of `GARBAGE` raise
      `DecodeError` if the codec declares `Detects.TRUNCATION`,
      `Detects.TRAILING_BYTES` or `Detects.GARBAGE` respectively;
    - whatever the codec does not declare, and corrupted copies of each
      message, raise nothing but `DecodeError` or decode to a value that
      ``to_python`` reads fully.

    Args:
        codec: the codec under test; ``codec.detects`` says what it must reject.
        values: values its ``encode`` accepts.
        expected: what ``to_python`` gives back for a value (the value itself by default).
        strict_truncation: deprecated: declare `Detects.TRUNCATION` in the
            codec's ``detects`` instead. True requires truncation to be
            detected, False only the weaker guarantee, whatever ``detects`` says.

    Raises:
        AssertionError: a guarantee does not hold; the message names the
            codec, the guarantee and the input.

    Example:
        >>> from doradus.codecs import FormatSpec, get_codec
        >>> check_codec(get_codec(FormatSpec("arrow")), [[1, 2], [], ["a"]])
    """
    detects = _declared(codec, strict_truncation)
    expect = expected or (lambda v: v)
    for value in values:
        encoded = bytes(memoryview(codec.encode(value)))
        _check_round_trip(codec, value, encoded, expect(value))
        message = f"a {len(encoded)}-byte message"
        for cut in _prefix_cuts(len(encoded)):
            _expect(codec, encoded[:cut], Detects.TRUNCATION, detects, f"the {cut}-byte prefix of {message}")
        for tail in (*_TRAILERS, encoded):
            what = f"{message} followed by {'itself' if tail is encoded else repr(tail)}"
            _expect(codec, encoded + tail, Detects.TRAILING_BYTES, detects, what)
        for bad in _corruptions(encoded, seed=0):
            _assert_rejects_or_decodes(codec, bad, must_reject=False, what=f"a corrupted copy of {message}")
    for index, bad in enumerate(GARBAGE):
        _expect(codec, bad, Detects.GARBAGE, detects, f"GARBAGE[{index}]")


def check_foreign(codec: Codec, data: Buffer, *, writer: str = "another format") -> None:
    r"""Assert what ``codec`` does with ``data``, a message another format wrote.

    If the codec declares `Detects.FOREIGN_FORMAT`, decoding ``data`` must
    raise `DecodeError`; if not, it must raise nothing but `DecodeError`, or
    decode to a value that ``to_python`` reads fully.

    Args:
        codec: the codec under test.
        data: a message another codec encoded.
        writer: who wrote it (the other codec's name), for the failure message.

    Raises:
        AssertionError: a guarantee does not hold; the message names the
            codec, the guarantee and the input.

    Example:
        >>> from doradus.codecs import FormatSpec, get_codec
        >>> check_foreign(get_codec(FormatSpec("arrow")), b"\x02a\x00", writer="avro")
    """
    what = f"a message {writer} wrote"
    _expect(codec, bytes(memoryview(data)), Detects.FOREIGN_FORMAT, codec.detects, what)


def _declared(codec: Codec, strict_truncation: bool | None) -> Detects:
    detects = codec.detects
    if strict_truncation is None:
        return detects
    warnings.warn(
        "check_codec(strict_truncation=...) is deprecated: declare Detects.TRUNCATION in the "
        "codec's `detects` instead",
        DeprecationWarning,
        stacklevel=3,
    )
    return detects | Detects.TRUNCATION if strict_truncation else detects & ~Detects.TRUNCATION


def _check_round_trip(codec: Codec, value: Any, encoded: bytes, want: Any) -> None:
    try:
        got = decode_fully(codec, encoded)
    except Exception as exc:  # even DecodeError: the codec wrote this message itself
        raise AssertionError(
            f"{codec.name}: decoding its own message of {_short(value)} raised {type(exc).__name__}: {exc}"
        ) from exc
    if got != want:
        raise AssertionError(f"{codec.name}: round trip of {_short(value)} gave {_short(got)}")
    try:
        codec.to_arrow(codec.decode(encoded))
    except DecodeError:
        pass  # a value without an Arrow form
    except Exception as exc:  # the guarantee under test: nothing but DecodeError escapes
        raise AssertionError(
            f"{codec.name}: to_arrow of {_short(value)} raised {type(exc).__name__}: {exc}; "
            f"it may raise only DecodeError"
        ) from exc


def _assert_rejects_or_decodes(
    codec: Codec, data: bytes, *, must_reject: bool, guarantee: Detects | None = None, what: str = "decoding"
) -> None:
    """Decode ``data`` fully: DecodeError passes, a value unless ``must_reject``; anything else fails."""
    shown = f"{what} ({_preview(data)})"
    try:
        decode_fully(codec, data)
    except DecodeError:
        return
    except Exception as exc:  # the guarantee under test: nothing but DecodeError escapes
        raise AssertionError(
            f"{codec.name}: {shown} raised {type(exc).__name__}: {exc}; bad input may raise only DecodeError"
        ) from exc
    if must_reject:
        declared = f"Detects.{guarantee.name}" if guarantee is not None else "to detect it"
        raise AssertionError(f"{codec.name}: declares {declared}, but {shown} decoded without DecodeError")


def _expect(codec: Codec, data: bytes, guarantee: Detects, detects: Detects, what: str) -> None:
    """Assert ``guarantee`` on ``data`` if declared in ``detects``, else the weaker guarantee."""
    _assert_rejects_or_decodes(codec, data, must_reject=guarantee in detects, guarantee=guarantee, what=what)


def _preview(data: bytes) -> str:
    return f"{len(data)} B: {data[:24]!r}{'…' if len(data) > 24 else ''}"


def _short(value: Any) -> str:
    return reprlib.repr(value)
