"""Whether OpenTelemetry export is on, read from the standard ``OTEL_*`` variables.

Nothing here imports OpenTelemetry: nodes and the runtime call
`enabled_signals` at start-up, and only when it returns something do they
load the SDK (``doradus._observability.telemetry``). With no endpoint set, telemetry costs
one ``is None`` test per message.

A signal (``traces``, ``metrics``, ``logs``) is on when
``OTEL_EXPORTER_OTLP_ENDPOINT`` or its own ``OTEL_EXPORTER_OTLP_<SIGNAL>_ENDPOINT``
is set, unless ``OTEL_SDK_DISABLED=true`` or ``OTEL_<SIGNAL>_EXPORTER=none``.

Example:
    >>> sorted(enabled_signals({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}))
    ['logs', 'metrics', 'traces']
    >>> enabled_signals({})
    frozenset()
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

SIGNALS = ("traces", "metrics", "logs")
CONTEXT_KEY = "open_telemetry_context"
"""The metadata key carrying the W3C trace context (dora's key)."""
_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


def enabled_signals(env: Mapping[str, str] | None = None) -> frozenset[str]:
    """The OpenTelemetry signals to export, from the environment (see the module documentation).

    Example:
        >>> env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_LOGS_EXPORTER": "none"}
        >>> sorted(enabled_signals(env))
        ['metrics', 'traces']
    """
    env = os.environ if env is None else env
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return frozenset()
    base = env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
    on = set()
    for signal in SIGNALS:
        if env.get(f"OTEL_{signal.upper()}_EXPORTER", "otlp").strip().lower() == "none":
            continue
        if base or env.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT", "").strip():
            on.add(signal)
    return frozenset(on)


def protocol(signal: str, env: Mapping[str, str] | None = None) -> str:
    """``grpc`` or ``http/protobuf`` (the default) for ``signal``.

    Example:
        >>> protocol("traces", {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})
        'grpc'
        >>> protocol("logs", {})
        'http/protobuf'
    """
    env = os.environ if env is None else env
    value = env.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_PROTOCOL") or env.get(
        "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"
    )
    return "grpc" if value.strip().lower() == "grpc" else "http/protobuf"


def format_context(trace_id: int, span_id: int, sampled: bool = True) -> str:
    """The metadata value of a trace context: ``traceparent:<W3C traceparent>;`` as dora writes it.

    Example:
        >>> format_context(1, 2)
        'traceparent:00-00000000000000000000000000000001-0000000000000002-01;'
    """
    return f"traceparent:00-{trace_id:032x}-{span_id:016x}-{'01' if sampled else '00'};"


def parse_context(value: object) -> tuple[int, int, bool] | None:
    """(trace id, span id, sampled) from a metadata value, or None if it holds no valid context.

    Accepts dora's ``key:value;`` list and a bare W3C ``traceparent``.

    Example:
        >>> parse_context("traceparent:00-00000000000000000000000000000001-0000000000000002-01;")
        (1, 2, True)
        >>> parse_context("garbage") is None
        True
    """
    if not isinstance(value, str):
        return None
    text = value.strip()
    candidates = [text]
    if ":" in text:
        candidates = [
            part.split(":", 1)[1].strip()
            for part in text.split(";")
            if part.strip().lower().startswith("traceparent:")
        ]
    for candidate in candidates:
        match = _TRACEPARENT.match(candidate.lower())
        if match is None or match.group(1) == "ff":
            continue
        trace_id, span_id = int(match.group(2), 16), int(match.group(3), 16)
        if trace_id and span_id:
            return trace_id, span_id, bool(int(match.group(4), 16) & 1)
    return None
