"""The one-way latency histogram every node keeps per input: its bucket bounds.

A node counts each message's latency (receive time minus the sender's stamp) into the bucket
of the first bound it does not exceed, or into one more bucket for the rest; its ``stats``
reports carry the counts, which ``doradus status``, the TUI, Prometheus and OpenTelemetry read
against these same bounds.

Example:
    >>> from bisect import bisect_left
    >>> bisect_left(LATENCY_BOUNDS_US, 80), len(LATENCY_BOUNDS_US) + 1
    (2, 18)
"""

from __future__ import annotations

LATENCY_BOUNDS_US = (
    25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000,
)  # fmt: skip
"""Upper bounds (µs) of the per-input latency histogram buckets; one more bucket holds the rest."""
LATENCY_BOUNDS_NS = tuple(b * 1000 for b in LATENCY_BOUNDS_US)
"""`LATENCY_BOUNDS_US` in nanoseconds, the unit a node measures in."""
