"""`Node`'s log methods (dora-rs's names): records of the node's logger, or of another one.

They log through Python's ``logging`` like any other code of the node, so the handler that
`doradus._node.log_handler.install` puts in place sends their records to the run's logs.

Example::

    node.log("warn", "frame late", fields={"seq": 12}, late_ms=40)
"""

from __future__ import annotations

import logging
from typing import Any

from doradus._node.log_handler import log as log_at_level


class LogMethods:
    """The ``log`` methods of `Node`, mixed into it.

    Example::

        node.log_info("model loaded", seconds=2.5)
    """

    _log: logging.Logger
    """The node's own logger, ``doradus.node.<id>``."""

    def log(
        self,
        level: str,
        message: str,
        target: str | None = None,
        fields: dict[str, Any] | None = None,
        **extra: Any,
    ) -> None:
        """Write a structured log record of this node.

        The same as logging through Python's ``logging`` (which the node also
        routes into the run's logs), with the fields as extra key-values.

        Args:
            level: ``trace``, ``debug``, ``info``, ``warn``, ``error`` or ``fatal``.
            message: the text.
            target: the logger name (default ``doradus.node.<id>``).
            fields: key-values stored with the record.
            **extra: more key-values, merged into ``fields``.

        Raises:
            ValueError: an unknown level.

        Example::

            node.log("warn", "frame late", fields={"seq": 12}, late_ms=40)
        """
        logger = logging.getLogger(target) if target else self._log
        log_at_level(logger, level, message, {**(fields or {}), **extra})

    def log_error(self, message: str, **fields: Any) -> None:
        """Log ``message`` at error level.

        Example::

            node.log_error("camera unplugged")
        """
        self.log("error", message, **fields)

    def log_warn(self, message: str, **fields: Any) -> None:
        """Log ``message`` at warn level.

        Example::

            node.log_warn("dropping frames")
        """
        self.log("warn", message, **fields)

    def log_info(self, message: str, **fields: Any) -> None:
        """Log ``message`` at info level.

        Example::

            node.log_info("model loaded", seconds=2.5)
        """
        self.log("info", message, **fields)

    def log_debug(self, message: str, **fields: Any) -> None:
        """Log ``message`` at debug level.

        Example::

            node.log_debug("queue depth", depth=3)
        """
        self.log("debug", message, **fields)

    def log_trace(self, message: str, **fields: Any) -> None:
        """Log ``message`` at trace level.

        Example::

            node.log_trace("tick")
        """
        self.log("trace", message, **fields)
