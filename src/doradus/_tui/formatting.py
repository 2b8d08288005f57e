"""How the TUI writes numbers: rates with their unit, latencies, bytes, durations, shares.

Every function takes None for "not measured yet" and writes it as ``-``, so a cell is
never empty and never a made-up zero. Widths stay short and steady (a rate is at most
9 characters: ``999.9k/s``), so columns do not jump as values change.

Example:
    >>> rate(12.0), latency(4560.0), size(3 * 2**20), duration(125)
    ('12.0/s', '4.56 ms', '3.0 MiB', '2m 05s')
"""

from __future__ import annotations

NOT_MEASURED = "-"
"""What a value not measured yet shows as."""
_RATE_STEPS = ((1e9, "G"), (1e6, "M"), (1e3, "k"))
_SIZE_STEPS = ((2**40, "TiB"), (2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB"))


def rate(per_second: float | None) -> str:
    """Messages per second with the unit: ``12.0/s``, ``12.3k/s``, ``1.5M/s``.

    Example:
        >>> rate(0), rate(19.96), rate(12345), rate(None)
        ('0.0/s', '20.0/s', '12.3k/s', '-')
    """
    if per_second is None:
        return NOT_MEASURED
    return f"{_scaled(per_second)}/s"


def _scaled(value: float) -> str:
    for step, suffix in _RATE_STEPS:
        if abs(value) >= step * 0.99995:
            return f"{value / step:.1f}{suffix}"
    return f"{value:.1f}"


def latency(microseconds: float | None) -> str:
    """A latency given in microseconds: ``250 µs``, ``4.56 ms``, ``1.23 s``.

    Example:
        >>> latency(250.0), latency(4560.0), latency(1_234_000.0), latency(None)
        ('250 µs', '4.56 ms', '1.23 s', '-')
    """
    if microseconds is None:
        return NOT_MEASURED
    if microseconds < 999.5:
        return f"{microseconds:.0f} µs"
    if microseconds < 999_995:
        return f"{microseconds / 1000:.2f} ms"
    return f"{microseconds / 1_000_000:.2f} s"


def size(count: float | None) -> str:
    """Bytes in binary units: ``512 B``, ``1.5 KiB``, ``12.3 MiB``.

    Example:
        >>> size(512), size(1536), size(12.3 * 2**20), size(None)
        ('512 B', '1.5 KiB', '12.3 MiB', '-')
    """
    if count is None:
        return NOT_MEASURED
    for step, unit in _SIZE_STEPS:
        if count >= step:
            return f"{count / step:.1f} {unit}"
    return f"{count:.0f} B"


def byte_rate(per_second: float | None) -> str:
    """Bytes per second: ``4.0 MiB/s``.

    Example:
        >>> byte_rate(4 * 2**20), byte_rate(None)
        ('4.0 MiB/s', '-')
    """
    return NOT_MEASURED if per_second is None else f"{size(per_second)}/s"


def duration(seconds: float | None) -> str:
    """A duration to the second, two units at most: ``42s``, ``2m 05s``, ``3h 07m``, ``2d 04h``.

    Example:
        >>> duration(42.7), duration(125), duration(3 * 3600 + 7 * 60), duration(2 * 86400 + 4 * 3600)
        ('42s', '2m 05s', '3h 07m', '2d 04h')
    """
    if seconds is None:
        return NOT_MEASURED
    whole = max(0, int(seconds))
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours:02d}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def percent(share: float | None) -> str:
    """A percentage to one decimal: ``12.5%``.

    Example:
        >>> percent(12.49), percent(None)
        ('12.5%', '-')
    """
    return NOT_MEASURED if share is None else f"{share:.1f}%"


def count(number: int | None) -> str:
    """A counter: ``1234``, or ``-`` when not measured.

    Example:
        >>> count(0), count(1234), count(None)
        ('0', '1234', '-')
    """
    return NOT_MEASURED if number is None else str(number)


def histogram_p50(bounds: list[float], buckets: list[int]) -> float | None:
    """The median of a latency histogram: the upper bound of the bucket holding it.

    ``buckets[i]`` counts values at most ``bounds[i]``; the last bucket (beyond every
    bound) has no upper bound, so a median there is the last bound. None when empty.

    Example:
        >>> histogram_p50([100.0, 1000.0, 10000.0], [1, 5, 2, 0])
        1000.0
        >>> histogram_p50([100.0], [0, 0]) is None
        True
    """
    total = sum(buckets)
    if total <= 0 or not bounds:
        return None
    seen = 0
    for index, number in enumerate(buckets):
        seen += number
        if seen * 2 >= total:
            return bounds[min(index, len(bounds) - 1)]
    return bounds[-1]


_BARS = " ▁▂▃▄▅▆▇█"


def sparkline(values: list[float], width: int = 30) -> str:
    """The last ``width`` values as bars from zero up to the largest; zero is a blank cell.

    Scaled from zero, not from the smallest value: a rate that falls to zero shows as
    empty cells, a steady rate as full ones, and any value above zero as a bar.

    Example:
        >>> sparkline([0, 5, 10, 10, 0], width=4)
        '▄██ '
        >>> sparkline([], width=3)
        ''
    """
    shown = values[-width:]
    top = max(shown, default=0.0)
    if top <= 0:
        return " " * len(shown)
    steps = len(_BARS) - 1
    return "".join(_BARS[_bar(value, top, steps)] for value in shown)


def _bar(value: float, top: float, steps: int) -> int:
    if value <= 0:
        return 0
    return max(1, min(steps, round(value / top * steps)))
