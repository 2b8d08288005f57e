"""A node's incoming queue: per-input bounds, drop-oldest, arrival order kept.

Each input holds at most ``queue_size`` undelivered messages; when one more
arrives the oldest of *that input* is dropped and counted. Events of all
inputs come out in arrival order. Control events (input closed, stop, error)
are never dropped.

Thread-safe: one or more producer threads push, one consumer pops.

Example:
    >>> box = Inbox({"x": 2})
    >>> for i in range(3):
    ...     box.push("x", i)
    >>> box.pop(0), box.pop(0), box.pop(0)
    (('x', 1), ('x', 2), None)
    >>> box.dropped["x"]
    1
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

# A slot is [input_id or None, item, alive]; lists are the cheapest mutable record.
_INPUT, _ITEM, _ALIVE = 0, 1, 2


class Inbox:
    """Bounded per-input queues merged in arrival order."""

    def __init__(self, bounds: dict[str, int]) -> None:
        self._bounds = dict(bounds)
        self._lock = threading.Lock()
        self._order: deque[list[Any]] = deque()
        self._per_input: dict[str, deque[list[Any]]] = {k: deque() for k in bounds}
        self._dead = 0
        self._wake = threading.Lock()
        self._wake.acquire()
        self._waiting = False
        self.dropped: dict[str, int] = dict.fromkeys(bounds, 0)
        self.received: dict[str, int] = dict.fromkeys(bounds, 0)

    def push(self, input_id: str | None, item: Any) -> None:
        """Queue ``item`` for ``input_id`` (``None``: a control event, never dropped)."""
        slot = [input_id, item, True]
        with self._lock:
            if input_id is not None:
                queue = self._per_input[input_id]
                self.received[input_id] += 1
                if len(queue) >= self._bounds[input_id]:
                    old = queue.popleft()
                    old[_ALIVE] = False
                    old[_ITEM] = None
                    self.dropped[input_id] += 1
                    self._dead += 1
                    if self._dead > 64 and self._dead * 2 > len(self._order):
                        self._compact()
                queue.append(slot)
            self._order.append(slot)
            if self._waiting:
                self._waiting = False
                self._wake.release()

    def _compact(self) -> None:
        self._order = deque(s for s in self._order if s[_ALIVE])
        self._dead = 0

    def _pop_locked(self) -> tuple[str | None, Any] | None:
        order = self._order
        while order:
            slot = order.popleft()
            if not slot[_ALIVE]:
                self._dead -= 1
                continue
            input_id = slot[_INPUT]
            if input_id is not None:
                self._per_input[input_id].popleft()
            return input_id, slot[_ITEM]
        return None

    def pop(self, timeout: float | None) -> tuple[str | None, Any] | None:
        """The oldest event, waiting up to ``timeout`` seconds (None: forever).

        Returns ``None`` when nothing arrived in time.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                got = self._pop_locked()
                if got is not None or timeout == 0:
                    return got
                self._waiting = True
            remaining = -1.0 if deadline is None else max(0.0, deadline - time.monotonic())
            woke = self._wake.acquire(timeout=remaining)
            if not woke:
                with self._lock:
                    if self._waiting:
                        self._waiting = False
                        return self._pop_locked()
                # a producer released the lock just after the timeout: consume it
                self._wake.acquire()

    def __len__(self) -> int:
        with self._lock:
            return len(self._order) - self._dead

    def depth(self, input_id: str) -> int:
        """Undelivered messages queued for one input."""
        with self._lock:
            return len(self._per_input[input_id])
