"""Routes a node's Python ``logging`` and ``node.log`` calls into the run's structured logs.

`install` puts one `RecordHandler` on the root logger of the node process and
sets the root level from ``DORADUS_LOG_LEVEL`` (what ``doradus run
--log-level`` passes; INFO by default). Stream handlers writing to the
process's stdout or stderr are removed from the root logger (their output
would reach the logs a second time, as plain text), and ``logging.basicConfig``
called later finds the root configured and does nothing.

A record travels to the daemon over the node's control socket as
``{"op": "log", "record": {...}}``; the daemon adds the node, dataflow, run
and machine (see ``doradus._observability.records``).

Example::

    handler = install(send, current_ids)
    logging.getLogger("camera").warning("no frame for %d ms", 120)
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable
from typing import Any

from doradus._observability.records import (
    LEVELS,
    PYTHON_LEVELS,
    iso_timestamp,
    level_from_python,
    normalize_level,
)
from doradus._wire.node_reports import LogRecord

MAX_MESSAGE = 16 * 1024
"""Longer messages are cut (the control socket carries small messages)."""
_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}

SendRecord = Callable[[LogRecord], None]
CurrentIds = Callable[[], tuple[str | None, str | None]]

logging.addLevelName(PYTHON_LEVELS["TRACE"], "TRACE")


def configured_level(default: str = "INFO") -> str:
    """The minimum level from ``DORADUS_LOG_LEVEL`` (``default`` when unset or unknown).

    Example::

        configured_level()   # 'INFO'
    """
    return normalize_level(os.environ.get("DORADUS_LOG_LEVEL", "")) or default


def fields_of(record: logging.LogRecord) -> dict[str, Any]:
    """The extra key-values of a ``logging`` record (``extra={...}``) plus its logger name.

    Example::

        fields_of(logging.makeLogRecord({"name": "cam", "seq": 3}))   # {'logger': 'cam', 'seq': 3}
    """
    fields: dict[str, Any] = {"logger": record.name}
    for key, value in vars(record).items():
        if key not in _STANDARD_ATTRS and not key.startswith("_"):
            fields[key] = value if isinstance(value, str | int | float | bool | type(None)) else repr(value)
    return fields


class RecordHandler(logging.Handler):
    """A ``logging`` handler that sends each record to the daemon as a structured record.

    Example::

        logging.getLogger().addHandler(RecordHandler(send, lambda: (None, None)))
    """

    def __init__(self, send: SendRecord, current_ids: CurrentIds) -> None:
        super().__init__()
        self._send = send
        self._current_ids = current_ids
        self._busy = threading.local()

    def emit(self, record: logging.LogRecord) -> None:
        """Send ``record`` (never raises; a failure to send is dropped silently)."""
        if getattr(self._busy, "on", False):  # a log call made while sending: would loop
            return
        self._busy.on = True
        try:
            message = record.getMessage()
            if record.exc_info:
                message = f"{message}\n{logging.Formatter().formatException(record.exc_info)}"
            elif record.exc_text:
                message = f"{message}\n{record.exc_text}"
            trace_id, span_id = self._current_ids()
            self._send(
                {
                    "timestamp": iso_timestamp(record.created),
                    "level": level_from_python(record.levelno),
                    "message": message[:MAX_MESSAGE],
                    "trace_id": trace_id,
                    "span_id": span_id,
                    "source": "log",
                    "fields": fields_of(record),
                }
            )
        except Exception:
            pass
        finally:
            self._busy.on = False


_installed: RecordHandler | None = None
_install_lock = threading.Lock()


def install(send: SendRecord, current_ids: CurrentIds) -> RecordHandler:
    """Route the process's ``logging`` to the daemon (once per process; later calls rebind it).

    Example::

        install(lambda record: print(record), lambda: (None, None))
    """
    global _installed
    with _install_lock:
        root = logging.getLogger()
        if _installed is not None:
            _installed._send = send
            _installed._current_ids = current_ids
            return _installed
        for handler in list(root.handlers):
            stream = getattr(handler, "stream", None)
            if isinstance(handler, logging.StreamHandler) and stream in (sys.stderr, sys.stdout):
                root.removeHandler(handler)
        _installed = RecordHandler(send, current_ids)
        root.addHandler(_installed)
        root.setLevel(PYTHON_LEVELS[configured_level()])
        return _installed


def log(logger: logging.Logger, level: str, message: str, fields: dict[str, Any] | None = None) -> None:
    """Log ``message`` at a Doradus level name (``error``, ``warn``, ``info``, ``debug``, ``trace``).

    ``fields`` become the record's extra key-values.

    Example::

        log(logging.getLogger("doradus.node.camera"), "warn", "slow", {"ms": 40})
    """
    canonical = normalize_level(level)
    if canonical is None:
        raise ValueError(f"unknown log level {level!r}: use one of {', '.join(LEVELS).lower()}")
    extra = {k: v for k, v in (fields or {}).items() if k not in _STANDARD_ATTRS}
    logger.log(PYTHON_LEVELS[canonical], "%s", message, extra=extra, stacklevel=3)
