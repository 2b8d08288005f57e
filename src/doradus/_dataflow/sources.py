"""Input sources as written in dataflow files: ``node/output``, timers, logs.

`parse_source` reads one source string on its own; whether the node and
output it names exist is checked by the descriptor, which knows every node.

Example:
    >>> parse_source("dora/timer/millis/20")
    TimerSource(source='dora/timer/millis/20', interval_ns=20000000)
    >>> parse_source("camera/frame")
    NodeSource(node='camera', output='frame')
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from doradus._dataflow.model import InputSource, LogSource, NodeSource, TimerSource
from doradus._dataflow.problems import closest

TIMER_UNITS: dict[str, int] = {"secs": 10**9, "millis": 10**6, "micros": 10**3, "nanos": 1}
"""Nanoseconds per unit of ``dora/timer/<unit>/<N>``."""

LOG_LEVELS = ("error", "warn", "info", "debug", "trace")
"""dora's log-input levels (`dora/logs/<level>`), as dora spells them: a dora fact, not Doradus's
level table (which adds FATAL; see `doradus._observability.records.LEVEL_TABLE`)."""

MAX_INTERVAL_NS = 2**63 - 1  # timers are scheduled with 64-bit nanosecond clocks

_UNIT_ALIASES = {
    "s": "secs",
    "sec": "secs",
    "second": "secs",
    "seconds": "secs",
    "ms": "millis",
    "milli": "millis",
    "milliseconds": "millis",
    "us": "micros",
    "micro": "micros",
    "microseconds": "micros",
    "ns": "nanos",
    "nano": "nanos",
    "nanoseconds": "nanos",
    "hertz": "hz",
    "freq": "hz",
}
_TIMER_EXAMPLE = "write `dora/timer/millis/20` (every 20 ms) or `dora/timer/hz/50` (50 times a second)"
_INTEGER = re.compile(r"[0-9]+")
_DECIMAL = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")


@dataclass(frozen=True)
class SourceError:
    """Why a source string cannot be read, and how to fix it.

    Example:
        >>> parse_source("camera").message
        'source `camera` must be `node/output`'
    """

    message: str
    fix: str


def parse_source(text: str) -> InputSource | SourceError:
    """Read one input source string.

    Args:
        text: ``node/output`` (split at the first ``/``, so operator outputs
            ``node/op/output`` work), ``dora/timer/<unit>/<N>``,
            ``dora/timer/hz/<F>``, or ``dora/logs[/<level>[/<node>]]``.

    Returns:
        The source, or a `SourceError` explaining what is wrong.

    Example:
        >>> parse_source("dora/timer/hz/50").interval_ns
        20000000
        >>> parse_source("dora/logs/info/camera")
        LogSource(source='dora/logs/info/camera', level='info', node='camera')
    """
    node, slash, output = text.partition("/")
    if not slash:
        return SourceError(
            f"source `{text}` must be `node/output`",
            "name the node and its output, e.g. `camera/image`, or use a timer like `dora/timer/millis/20`",
        )
    if node == "dora":
        return _parse_dora_source(text, output.split("/"))
    if not node or not output:
        return SourceError(
            f"source `{text}` must be `node/output` with both parts non-empty",
            "write the node id, a `/`, then one of its outputs, e.g. `camera/image`",
        )
    return NodeSource(node=node, output=output)


def _parse_dora_source(text: str, parts: list[str]) -> TimerSource | LogSource | SourceError:
    kind = parts[0]
    if kind == "timer":
        return _parse_timer(text, parts[1:])
    if kind == "logs":
        return _parse_logs(text, parts[1:])
    guess = closest(kind, ["timer", "logs"])
    hint = f"did you mean `dora/{guess}/...`? " if guess else ""
    return SourceError(
        f"unknown built-in source `{text}`: `dora/` sources are timers and logs",
        f"{hint}{_TIMER_EXAMPLE}, or `dora/logs`",
    )


def _parse_timer(text: str, parts: list[str]) -> TimerSource | SourceError:
    if len(parts) != 2:
        return SourceError(f"timer source `{text}` must be `dora/timer/<unit>/<number>`", _TIMER_EXAMPLE)
    unit, amount = parts
    if unit == "hz":
        return _parse_rate(text, amount)
    if unit not in TIMER_UNITS:
        return _bad_timer_unit(text, unit)
    if _INTEGER.fullmatch(amount) and len(amount) > 30:
        return SourceError(
            f"timer interval in `{text}` is too long", "use an interval shorter than 292 years"
        )
    if not _INTEGER.fullmatch(amount) or int(amount) == 0:
        return SourceError(
            f"timer interval `{amount}` in `{text}` must be a whole number greater than 0",
            _whole_number_fix(unit, amount),
        )
    interval = int(amount) * TIMER_UNITS[unit]
    if interval > MAX_INTERVAL_NS:
        return SourceError(
            f"timer interval in `{text}` is too long", "use an interval shorter than 292 years"
        )
    return TimerSource(source=text, interval_ns=interval)


def _parse_rate(text: str, amount: str) -> TimerSource | SourceError:
    rate = float(amount) if _DECIMAL.fullmatch(amount) else math.nan
    if not math.isfinite(rate) or rate <= 0:
        return SourceError(
            f"timer rate `{amount}` in `{text}` must be a number of ticks per second greater than 0",
            "write e.g. `dora/timer/hz/50` for 50 ticks a second, or `dora/timer/hz/0.5` for one every 2 s",
        )
    exact = 1e9 / rate  # may be inf for tiny rates: compare before rounding
    if exact > MAX_INTERVAL_NS:
        return SourceError(
            f"timer rate in `{text}` is too low", "use a higher rate, or a `dora/timer/secs/N` timer"
        )
    interval = round(exact)
    if interval < 1:
        return SourceError(f"timer rate in `{text}` is above 1 GHz", "use a rate of at most 1000000000 Hz")
    return TimerSource(source=text, interval_ns=interval)


def _bad_timer_unit(text: str, unit: str) -> SourceError:
    units = [*TIMER_UNITS, "hz"]
    guess = _UNIT_ALIASES.get(unit.lower()) or closest(unit.lower(), units)
    listed = ", ".join(f"`{u}`" for u in units)
    hint = f"did you mean `{guess}`? " if guess else ""
    return SourceError(
        f"unknown timer unit `{unit}` in `{text}` (known: {listed})", f"{hint}{_TIMER_EXAMPLE}"
    )


def _whole_number_fix(unit: str, amount: str) -> str:
    """Suggest a finer unit for a fractional interval (``millis/1.5`` → ``micros/1500``)."""
    finer = {"secs": "millis", "millis": "micros", "micros": "nanos"}.get(unit)
    if finer is not None and _DECIMAL.fullmatch(amount) and "e" not in amount.lower():
        scaled = float(amount) * 1000
        if scaled > 0 and scaled.is_integer():
            return f"use a finer unit: `dora/timer/{finer}/{int(scaled)}`"
    return f"write a positive whole number, e.g. `dora/timer/{unit}/10`"


def _parse_logs(text: str, parts: list[str]) -> LogSource | SourceError:
    if len(parts) > 2:
        return SourceError(
            f"log source `{text}` has too many parts",
            "write `dora/logs`, `dora/logs/<level>` or `dora/logs/<level>/<node>`",
        )
    level = parts[0] if parts else None
    node = parts[1] if len(parts) == 2 else None
    if level is not None and level not in LOG_LEVELS:
        guess = closest(level.lower(), LOG_LEVELS)
        hint = f"did you mean `{guess}`? " if guess else ""
        listed = ", ".join(f"`{name}`" for name in LOG_LEVELS)
        return SourceError(f"unknown log level `{level}` in `{text}`", f"{hint}use one of {listed}")
    if node == "":
        return SourceError(
            f"log source `{text}` ends with an empty node id", f"write `dora/logs/{level}/<node>`"
        )
    return LogSource(source=text, level=level, node=node)
