"""How ``doradus topic`` commands print: echo lines, hz and bw lines, the list and info tables.

Example:
    >>> size_text(41_943_040), rate_text(None)
    ('40.0 MiB', '-')
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from doradus._control.topic_rates import WindowStats
from doradus._control.topic_taps import TapMessage
from doradus._control.topic_values import jsonable, text_of

IDLE_NOTE = 2.0
"""Seconds without a message after which hz and bw say so."""


def size_text(size: float | None) -> str:
    """A byte count for people (``512 B``, ``3.2 KiB``, ``40.0 MiB``); ``-`` for none.

    Example:
        >>> size_text(512), size_text(3300)
        ('512 B', '3.2 KiB')
    """
    if size is None:
        return "-"
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size:.0f} B"


def rate_text(rate: float | None) -> str:
    """Messages per second for tables; ``-`` when not measured.

    Example:
        >>> rate_text(49.996)
        '50.0/s'
    """
    return "-" if rate is None else f"{rate:.1f}/s"


def _iso(stamp_ns: int) -> str:
    return datetime.fromtimestamp(stamp_ns / 1e9, UTC).isoformat().replace("+00:00", "Z")


def echo_line(topic: str, message: TapMessage, output: str, metadata: bool) -> str:
    """One message on one line: its value (``table``), or a JSON object (``json``).

    Example:
        >>> from doradus._control.topic_values import Shown
        >>> message = TapMessage(3, 0, 24, Shown([1, 2, 3], "int64", 3, False), {"k": 1}, 0)
        >>> echo_line("cam/n", message, "table", metadata=True)
        '[1, 2, 3]  metadata={"k": 1}'
        >>> json.loads(echo_line("cam/n", message, "json", metadata=False))["value"]
        [1, 2, 3]
    """
    if output == "json":
        entry: dict[str, Any] = {
            "topic": topic,
            "seq": message.seq,
            "timestamp": _iso(message.stamp_ns),
            "type": message.shown.type,
            "length": message.shown.length,
            "size": message.size,
            "value": message.shown.value,
            "truncated": message.shown.truncated,
            "missed": message.missed,
        }
        if metadata:
            entry["metadata"] = message.metadata
        return json.dumps(entry, ensure_ascii=False)
    line = text_of(message.shown)
    if metadata:
        line += "  metadata=" + json.dumps(jsonable(message.metadata), ensure_ascii=False)
    return line


def hz_line(topic: str, stats: WindowStats, output: str) -> str:
    """One look at an output's rate (``hz``): a line for people, or a JSON object.

    Example:
        >>> from doradus._control.topic_rates import RateWindow
        >>> book = RateWindow(2)
        >>> for k in range(3):
        ...     book.add(k + 1, k * 20_000_000, 8, 0)
        >>> hz_line("t/x", book.stats(40_000_000), "table")
        't/x: 50.00 Hz  min 20.00 ms  max 20.00 ms  std 0.00 ms  window 2  (3 messages)'
    """
    if output == "json":
        return json.dumps({"topic": topic, **stats.to_json()})
    if stats.rate_hz is None or stats.min_s is None or stats.max_s is None or stats.std_s is None:
        return f"{topic}: waiting for messages ({stats.count} so far)"
    line = (
        f"{topic}: {stats.rate_hz:.2f} Hz  min {stats.min_s * 1e3:.2f} ms  max {stats.max_s * 1e3:.2f} ms"
        f"  std {stats.std_s * 1e3:.2f} ms  window {stats.window}  ({_counts(stats)})"
    )
    return line + _idle(stats)


def bw_line(topic: str, stats: WindowStats, output: str) -> str:
    """One look at an output's bandwidth (``bw``): a line for people, or a JSON object.

    Example:
        >>> from doradus._control.topic_rates import RateWindow
        >>> book = RateWindow(2)
        >>> for k in range(3):
        ...     book.add(k + 1, k * 100_000_000, 41_943_040, 0)
        >>> bw_line("t/x", book.stats(200_000_000), "table")
        't/x: 400.0 MiB/s  mean 40.0 MiB  max 40.0 MiB  window 2  (3 messages)'
    """
    if output == "json":
        return json.dumps({"topic": topic, **stats.to_json()})
    if stats.bytes_per_s is None:
        return f"{topic}: waiting for messages ({stats.count} so far)"
    line = (
        f"{topic}: {size_text(stats.bytes_per_s)}/s  mean {size_text(stats.mean_size)}"
        f"  max {size_text(stats.max_size)}  window {stats.window}  ({_counts(stats)})"
    )
    return line + _idle(stats)


def _counts(stats: WindowStats) -> str:
    text = f"{stats.count} messages"
    return text + (f", {stats.skipped} skipped the tap" if stats.skipped else "")


def _idle(stats: WindowStats) -> str:
    if stats.idle_s is not None and stats.idle_s > IDLE_NOTE:
        return f"  no message for {stats.idle_s:.1f} s"
    return ""


def topic_rows(topics: list[dict[str, Any]]) -> list[list[str]]:
    """The rows of ``topic list``: topic, format, publisher, subscribers, backend, rate, bandwidth, sent.

    Example:
        >>> row = {"topic": "cam/image", "format": "arrow", "schema": None, "node": "cam", "state": "running",
        ...        "subscribers": ["det/frames"], "backend": "shm", "rate": 30.0, "bytes_per_s": 9e5,
        ...        "counters": {"sent": 90, "bytes": 2700000, "at": 1.0}}
        >>> topic_rows([row])[0]
        ['cam/image', 'arrow', 'cam (running)', 'det/frames', 'shm', '30.0/s', '878.9 KiB/s', '90']
    """
    rows = []
    for t in topics:
        fmt = t["format"] + (f" ({t['schema']})" if t.get("schema") else "")
        counters = t.get("counters") or {}
        bandwidth = t.get("bytes_per_s")
        rows.append(
            [
                t["topic"],
                fmt,
                f"{t['node']} ({t['state']})",
                ", ".join(t["subscribers"]) or "-",
                t["backend"],
                rate_text(t.get("rate")),
                "-" if bandwidth is None else f"{size_text(bandwidth)}/s",
                str(counters.get("sent", "-")),
            ]
        )
    return rows


def info_lines(facts: dict[str, Any]) -> list[str]:
    """``topic info`` for people: one ``key: value`` line per fact.

    Example:
        >>> info_lines({"topic": "cam/image", "format": "arrow", "subscribers": []})[:2]
        ['Topic:        cam/image', 'Format:       arrow']
    """
    counters = facts.get("counters") or {}
    sample = facts.get("sample") or {}
    fields = [
        ("Topic", facts.get("topic")),
        ("Format", f"{facts.get('format')}" + (f" ({facts['schema']})" if facts.get("schema") else "")),
        ("Type", sample.get("type")),
        ("Publisher", f"{facts.get('node')} on {facts.get('machine')} ({facts.get('state')})"),
        ("Subscribers", ", ".join(facts.get("subscribers") or []) or "none"),
        ("Backend", facts.get("backend")),
        ("Rate", rate_text(facts.get("rate"))),
        ("Bandwidth", None if facts.get("bytes_per_s") is None else f"{size_text(facts['bytes_per_s'])}/s"),
        ("Sent", None if not counters else f"{counters['sent']} messages, {size_text(counters['bytes'])}"),
        ("Last message", None if not sample else f"{size_text(sample.get('size'))}, seq {sample.get('seq')}"),
        ("Tap", facts.get("tappable") or "yes (topic echo, hz, bw read it here)"),
    ]
    return [f"{name + ':':<13} {value}" for name, value in fields if value is not None]
