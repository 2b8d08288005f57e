"""Rates of one output over a sliding window of messages: ``doradus topic hz`` and ``topic bw``.

`RateWindow` keeps the send time and payload size of the last ``window + 1`` messages (the
intervals between them are the window) and the totals since the tap opened. Times are the
*sender's* (the message header's send time), so the rate is the rate the node sent at,
whatever the delivery did; every message counts, whatever its size, since a headers tap
carries a small record per message and never the payload (`doradus.backends._shm_taps`).

Example:
    >>> book = RateWindow(window=3)
    >>> for k in range(5):
    ...     book.add(seq=k + 1, stamp_ns=k * 20_000_000, size=8, skipped=0)
    >>> stats = book.stats(now_ns=90_000_000)
    >>> stats.rate_hz, stats.min_s, stats.max_s, stats.count, stats.bytes_per_s
    (50.0, 0.02, 0.02, 5, 400.0)
"""

from __future__ import annotations

import itertools
import math
import threading
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any

DEFAULT_WINDOW = 100
"""Intervals the statistics span unless ``--window`` says otherwise."""


@dataclass(frozen=True)
class WindowStats:
    """One look at an output's rates (times in seconds, sizes in bytes; None before two messages).

    ``count`` is every message the tap saw, ``skipped`` those that skipped it (its reader was
    behind), ``first_seq``/``last_seq`` the sequence numbers of the first and last seen (a
    node's sequence counts every message it sends, on any output), ``idle_s`` how long since
    the newest message was sent.

    Example:
        >>> WindowStats(None, None, None, None, None, None, None, None, 0, 0, 0, 0, None, None, None).count
        0
    """

    rate_hz: float | None
    min_s: float | None
    max_s: float | None
    mean_s: float | None
    std_s: float | None
    bytes_per_s: float | None
    mean_size: float | None
    max_size: int | None
    window: int
    count: int
    bytes: int
    skipped: int
    first_seq: int | None
    last_seq: int | None
    idle_s: float | None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict of the fields.

        Example:
            >>> sorted(RateWindow(3).stats(0).to_json())[:3]
            ['bytes', 'bytes_per_s', 'count']
        """
        return asdict(self)


class RateWindow:
    """Send times and sizes of an output's last messages, and its totals. Thread-safe.

    Args:
        window: intervals the statistics span (at least 1).
    """

    def __init__(self, window: int = DEFAULT_WINDOW) -> None:
        self._window = max(1, window)
        self._stamps: deque[tuple[int, int]] = deque(maxlen=self._window + 1)
        self._lock = threading.Lock()
        self._count = 0
        self._bytes = 0
        self._skipped_first: int | None = None
        self._skipped = 0
        self._first_seq: int | None = None
        self._last_seq: int | None = None

    def add(self, seq: int, stamp_ns: int, size: int, skipped: int) -> None:
        """One message: its sequence number, send time, payload size, and the tap's skip count (mod 2**32)."""
        with self._lock:
            self._stamps.append((stamp_ns, size))
            self._count += 1
            self._bytes += size
            if self._skipped_first is None:
                self._skipped_first = skipped
            self._skipped = (skipped - self._skipped_first) % (1 << 32)
            if self._first_seq is None:
                self._first_seq = seq
            self._last_seq = seq

    def stats(self, now_ns: int) -> WindowStats:
        """The statistics over the window now (``now_ns``: `time.time_ns`, for ``idle_s``)."""
        with self._lock:
            stamps = list(self._stamps)
            totals = (self._count, self._bytes, self._skipped, self._first_seq, self._last_seq)
        intervals = [(b[0] - a[0]) / 1e9 for a, b in itertools.pairwise(stamps)]
        sizes = [size for _stamp, size in stamps[1:]]
        idle = None if not stamps else max(0.0, (now_ns - stamps[-1][0]) / 1e9)
        if not intervals:
            return WindowStats(None, None, None, None, None, None, None, None, 0, *totals, idle)
        span = sum(intervals)
        mean = span / len(intervals)
        std = math.sqrt(sum((i - mean) ** 2 for i in intervals) / len(intervals))
        return WindowStats(
            rate_hz=round(len(intervals) / span, 3) if span > 0 else None,
            min_s=round(min(intervals), 6),
            max_s=round(max(intervals), 6),
            mean_s=round(mean, 6),
            std_s=round(std, 6),
            bytes_per_s=round(sum(sizes) / span, 1) if span > 0 else None,
            mean_size=round(sum(sizes) / len(sizes), 1),
            max_size=max(sizes),
            window=len(intervals),
            count=totals[0],
            bytes=totals[1],
            skipped=totals[2],
            first_seq=totals[3],
            last_seq=totals[4],
            idle_s=idle,
        )
