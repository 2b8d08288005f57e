"""What one client of the live stream is owed, in bounded room: the `Outbox` of its session.

A client that reads slower than the coordinator produces must not hold the coordinator, nor
make it keep without bound. So each client's session keeps at most: a few ``hello`` and
``error`` messages, the ``tail`` it asked for, one pending change per dataflow and per node
(a newer replaces it), the newest periodic update of each kind, and `LOG_QUEUE` log messages,
the oldest dropped first and counted in a ``dropped`` message.

Example:
    >>> box = Outbox()
    >>> box.update(DataflowsUpdate(dataflows=[]))
    >>> box.update(DataflowsUpdate(dataflows=[]))
    >>> [m.type for m in box.drain()]
    ['dataflows']
"""

from __future__ import annotations

import asyncio
from collections import deque

from doradus._control.stream_models import (
    MAX_TAIL,
    DataflowsUpdate,
    DataflowUpdate,
    Dropped,
    Hello,
    LogMessage,
    NodeStateChange,
    StateChange,
    StreamError,
)

__all__ = ["LOG_QUEUE", "Message", "Outbox"]

LOG_QUEUE = MAX_TAIL
"""Log messages kept for a client that reads slower than they come; beyond, the oldest are dropped."""
URGENT_QUEUE = 16
"""``hello`` and ``error`` messages kept for a client that does not read (it sent that many requests)."""

Change = StateChange | NodeStateChange
Message = Hello | DataflowsUpdate | DataflowUpdate | Change | LogMessage | Dropped | StreamError
"""Any message a session sends."""


class Outbox:
    """What one client is owed, in bounded room, and the order it goes out in.

    ``hello`` and ``error`` first, then the ``tail`` records a subscription asked for, then
    state changes (a newer change of the same dataflow or node replaces one not sent yet,
    keeping its ``previous``), then the periodic updates (the newest of each kind only), then
    log messages: at most `LOG_QUEUE`; past that the oldest are dropped, and a ``dropped``
    message saying how many goes before the next one sent.

    Not thread-safe: used from the coordinator's event loop only.

    Example:
        >>> from doradus._control.models import LogRecord
        >>> box = Outbox(log_limit=2)
        >>> for n in range(5):
        ...     box.log(LogMessage(record=LogRecord(timestamp="t", message=str(n))))
        >>> [m.type for m in box.drain()]
        ['dropped', 'log', 'log']
    """

    def __init__(self, log_limit: int = LOG_QUEUE) -> None:
        self.urgent: deque[Hello | StreamError] = deque(maxlen=URGENT_QUEUE)
        self.tail: deque[LogMessage] = deque(maxlen=MAX_TAIL)
        self.changes: dict[tuple[str, ...], Change] = {}
        self.updates: dict[str, DataflowsUpdate | DataflowUpdate] = {}
        self.logs: deque[LogMessage] = deque()
        self.log_limit = log_limit
        self.dropped = 0
        self.ready = asyncio.Event()
        """Set when something waits to be sent."""

    def put(self, message: Hello | StreamError) -> None:
        """Queue a ``hello`` or an ``error``."""
        self.urgent.append(message)
        self.ready.set()

    def backlog(self, messages: list[LogMessage]) -> None:
        """Queue the records a subscription's ``tail`` asked for (they go before any update)."""
        self.tail.extend(messages)
        self.ready.set()

    def change(self, key: tuple[str, ...], message: Change) -> None:
        """Queue a state change, replacing the unsent one of the same ``key`` (keeping its ``previous``).

        Example:
            >>> box = Outbox()
            >>> for state, previous in [("running", "pending"), ("failed", "running")]:
            ...     news = NodeStateChange(dataflow="r", node="a", state=state, previous=previous)
            ...     box.change(("node", "r", "a"), news)
            >>> [(m.state, m.previous) for m in box.drain()]
            [('failed', 'pending')]
        """
        older = self.changes.pop(key, None)
        if older is not None:
            message = message.model_copy(update={"previous": older.previous})
        self.changes[key] = message
        self.ready.set()

    def update(self, message: DataflowsUpdate | DataflowUpdate) -> None:
        """Queue a periodic update, replacing the unsent one of its kind."""
        self.updates[message.type] = message
        self.ready.set()

    def log(self, message: LogMessage) -> None:
        """Queue a log message, dropping the oldest when full."""
        if len(self.logs) >= self.log_limit:
            self.logs.popleft()
            self.dropped += 1
        self.logs.append(message)
        self.ready.set()

    def forget_subscription(self) -> None:
        """Drop what was queued for the old subscription (its dataflow's update, nodes and logs)."""
        self.logs.clear()
        self.tail.clear()
        self.dropped = 0
        self.updates.pop("dataflow", None)
        self.changes = {k: v for k, v in self.changes.items() if k[0] != "node"}

    def next(self) -> Message | None:
        """The next message to send, taken off the box; None when nothing waits.

        Example:
            >>> Outbox().next() is None
            True
        """
        if self.urgent:
            return self.urgent.popleft()
        if self.tail:
            return self.tail.popleft()
        if self.changes:
            return self.changes.pop(next(iter(self.changes)))
        if self.updates:
            return self.updates.pop(next(iter(self.updates)))
        if self.dropped:
            dropped, self.dropped = self.dropped, 0
            return Dropped(logs=dropped)
        if self.logs:
            return self.logs.popleft()
        return None

    def drain(self) -> list[Message]:
        """Every waiting message, in order (what a client reading fast enough gets)."""
        taken = []
        while (message := self.next()) is not None:
            taken.append(message)
        return taken
