"""Durations and byte sizes as written in dataflow files.

dora-rs dataflows write durations as seconds (``2``, ``0.5``) or with a unit
(``"500ms"``, ``"2s"``, ``"1m"``) and memory sizes as bytes or with a unit
(``256MB``, ``1GiB``). Decimal units (``KB``, ``MB``) are powers of 1000 and
binary units (``KiB``, ``MiB``) powers of 1024, as in the ``bytesize`` crate
dora uses.

Example:
    >>> parse_duration("250ms"), parse_byte_size("1KiB")
    (0.25, 1024)
"""

from __future__ import annotations

import math
import re

DURATION_UNITS: dict[str, float] = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "sec": 1.0,
    "secs": 1.0,
    "m": 60.0,
    "min": 60.0,
    "mins": 60.0,
    "h": 3600.0,
}

BYTE_UNITS: dict[str, int] = {
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "t": 1000**4,
    "tb": 1000**4,
    "ki": 1024,
    "kib": 1024,
    "mi": 1024**2,
    "mib": 1024**2,
    "gi": 1024**3,
    "gib": 1024**3,
    "ti": 1024**4,
    "tib": 1024**4,
}

# Bounded digit counts keep int() and float() away from huge inputs.
_QUANTITY = re.compile(r"\s*([0-9]{1,30}(?:\.[0-9]{0,30})?|\.[0-9]{1,30})\s*([a-zA-Zµ]*)\s*")


def parse_duration(text: str) -> float | None:
    """Return the seconds in a duration like ``"500ms"``, or None if unreadable.

    A number without a unit is seconds.

    Example:
        >>> parse_duration("2s"), parse_duration("1m"), parse_duration("1.5"), parse_duration("soon")
        (2.0, 60.0, 1.5, None)
    """
    match = _QUANTITY.fullmatch(text)
    if match is None:
        return None
    unit = DURATION_UNITS.get(match.group(2) or "s")
    if unit is None:
        return None
    seconds = float(match.group(1)) * unit
    return seconds if math.isfinite(seconds) else None


def parse_byte_size(text: str) -> int | None:
    """Return the bytes in a size like ``"256MB"``, or None if unreadable.

    Units are case-insensitive; a number without a unit is bytes.

    Example:
        >>> parse_byte_size("256MB"), parse_byte_size("512kib"), parse_byte_size("7")
        (256000000, 524288, 7)
    """
    match = _QUANTITY.fullmatch(text)
    if match is None:
        return None
    unit = BYTE_UNITS.get((match.group(2) or "b").lower())
    if unit is None:
        return None
    number = match.group(1)
    if "." not in number:
        return int(number) * unit
    size = float(number) * unit
    return round(size) if math.isfinite(size) else None
