"""Conformance kits: prove that a plug-in keeps the guarantees of its interface.

`check_codec` runs a codec through what every codec must do: round-trip
values, and meet truncated, garbage and foreign bytes with a `DecodeError`
(never another exception, never a crash). The built-in codecs' tests call
it, and a third-party codec can call it the same way.

Example::

    from doradus.codecs import FormatSpec, get_codec
    from doradus.testing import check_codec

    check_codec(get_codec(FormatSpec("avro", Path("reading.avsc"))), [{"label": "a", "seq": 1}])
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from doradus._exceptions import DecodeError
from doradus.codecs._base import Codec

GARBAGE = (
    b"",
    b"\x00",
    b"\xff",
    b"\x00" * 8,
    b"\xff" * 8,
    b"\xff" * 64,
    b"\x01\x00\x00\x00\xff\xff\xff\x7f",
    b"not a message at all",
    b"\x7f" * 4096,
)
"""Byte strings no codec may accept silently or crash on."""


def garbage_for(encoded: bytes, seed: int = 0) -> Iterator[bytes]:
    """Invalid variants of a valid message: every short prefix, some longer ones, corrupted copies.

    Example:
        >>> len(list(garbage_for(b"abcdef"))) > 6
        True
    """
    rng = random.Random(seed)
    n = len(encoded)
    cuts = sorted({*range(min(n, 48)), *(n * k // 8 for k in range(1, 8)), n - 1} - {n})
    for cut in cuts:
        if 0 <= cut < n:
            yield encoded[:cut]
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


def decode_fully(codec: Codec, data: bytes) -> Any:
    """Decode ``data`` and read every field (``to_python``): what a receiver may do.

    Example::

        decode_fully(codec, codec.encode(value))
    """
    return codec.to_python(codec.decode(data))


def check_codec(
    codec: Codec,
    values: Iterable[Any],
    *,
    expected: Callable[[Any], Any] | None = None,
    strict_truncation: bool = True,
) -> None:
    """Assert the codec guarantees on ``values`` (each a value its schema accepts).

    - each value round-trips: ``to_python(decode(encode(v)))`` equals
      ``expected(v)`` (``v`` itself by default);
    - ``to_arrow`` of each decoded value works or raises `DecodeError`;
    - every byte string of `GARBAGE` and every variant from `garbage_for`
      either decodes or raises `DecodeError` (no other exception); with
      ``strict_truncation``, every strict prefix of a message must raise.

    Raises:
        AssertionError: a guarantee does not hold (the message says which and for what input).

    Example::

        check_codec(get_codec(FormatSpec()), [[1, 2], [], ["a"]])
    """
    expect = expected or (lambda v: v)
    for value in values:
        encoded = bytes(memoryview(codec.encode(value)))
        got = decode_fully(codec, encoded)
        assert got == expect(value), f"{codec.name}: round trip of {value!r} gave {got!r}"
        try:
            codec.to_arrow(codec.decode(encoded))
        except DecodeError:
            pass
        for bad in garbage_for(encoded):
            truncated = len(bad) < len(encoded) and encoded.startswith(bad)
            _assert_rejects_or_decodes(codec, bad, must_reject=truncated and strict_truncation)
    for bad in GARBAGE:
        _assert_rejects_or_decodes(codec, bad, must_reject=False)


def _assert_rejects_or_decodes(codec: Codec, data: bytes, *, must_reject: bool) -> None:
    try:
        decode_fully(codec, data)
    except DecodeError:
        return
    except Exception as exc:  # the guarantee under test: nothing but DecodeError escapes
        raise AssertionError(
            f"{codec.name}: decoding {data[:32]!r}… ({len(data)} B) raised {type(exc).__name__}: {exc}"
        ) from exc
    assert not must_reject, f"{codec.name}: a truncated message ({len(data)} B) decoded without error"
