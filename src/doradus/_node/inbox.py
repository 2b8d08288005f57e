"""A node's incoming queue: per-input bounds, drop-oldest, arrival order kept.

Each input holds at most ``queue_size`` undelivered messages; when one more
arrives the oldest of *that input* is dropped and counted. Events of all
inputs come out in arrival order. Control events (input closed, stop, error)
are never dropped.

A *lossless* input (``queue_policy: backpressure``) is not bounded here: its
senders wait for room instead (`doradus.backends._flow`), told of each message
the node takes through ``on_taken``. As a safety net it drops its oldest past
`hard_cap` (dora's figure), counted in ``dropped`` too. `Inbox.offer` queues
only within ``queue_size`` (a timer's tick finding a lossless input full is not
made). ``timed_out`` counts, per input, the messages a sender did not send after
its wait for room timed out.

A paused inbox (`Inbox.pause`) hands out control events only: messages go on
arriving into their inputs' queues (and the oldest go on being dropped past
``queue_size``, counted in ``dropped``) until `Inbox.resume`, after which the
queued messages come out first, in arrival order. ``received`` counts arrivals,
``dropped`` the queue's drops, ``delivered`` the messages handed to the node.

Thread-safe: one or more producer threads push, one consumer pops. The
consumer waits through a pluggable ``waiter(timeout, wake_fd)`` — by default a
poll on the inbox's own eventfd; a backend may wait on its sockets as well and
deliver what arrives from the consumer's own thread (no hand-off between
threads on the hot path). Producers write the eventfd only while the consumer
waits.

Example:
    >>> box = Inbox({"x": 2})
    >>> for i in range(3):
    ...     box.push("x", i)
    >>> box.pop(0), box.pop(0), box.pop(0)
    (('x', 1), ('x', 2), None)
    >>> box.dropped["x"], box.delivered["x"]
    (1, 2)
    >>> box.pause(); box.push("x", 3); box.push(None, "stop")
    >>> box.pop(0), box.pop(0)
    ((None, 'stop'), None)
    >>> box.resume(); box.pop(0)
    ('x', 3)
"""

from __future__ import annotations

import os
import select
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Iterable
from typing import Any

# A slot is [input_id or None, item, alive]; lists are the cheapest mutable record.
_INPUT, _ITEM, _ALIVE = 0, 1, 2


def hard_cap(queue_size: int) -> int:
    """The most a lossless input holds before dropping its oldest: 10 x ``queue_size``, 100 at least.

    Example:
        >>> hard_cap(2), hard_cap(50)
        (100, 500)
    """
    return max(10 * queue_size, 100)


class Inbox:
    """Bounded per-input queues merged in arrival order."""

    def __init__(
        self,
        bounds: dict[str, int],
        waiter: Callable[[float, int], None] | None = None,
        lossless: Collection[str] = (),
    ) -> None:
        self.lossless = frozenset(lossless)
        """The inputs whose senders wait for room (``queue_policy: backpressure``)."""
        self._room = {k: bounds[k] for k in self.lossless}
        self._bounds = {k: hard_cap(n) if k in self.lossless else n for k, n in bounds.items()}
        self.on_taken: Callable[[str], None] | None = None
        """Called (outside the lock) with a lossless input each time one of its messages is popped."""
        self.timed_out: dict[str, int] = dict.fromkeys(bounds, 0)
        if self.lossless:  # swapped in, so the default path tests nothing
            self.pop = self._pop_crediting  # type: ignore[method-assign]  # see above
        self._lock = threading.Lock()
        self._order: deque[list[Any]] = deque()
        self._per_input: dict[str, deque[list[Any]]] = {k: deque() for k in bounds}
        self._dead = 0
        self.wake_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self.waiter = waiter or self._poll_wake
        self._waiting = False
        self._signaled = False
        self._consumer = 0
        self._paused = False
        self.dropped: dict[str, int] = dict.fromkeys(bounds, 0)
        self.received: dict[str, int] = dict.fromkeys(bounds, 0)
        self.shed: dict[str, int] = dict.fromkeys(bounds, 0)
        """Per input, the part of ``dropped`` its sender dropped (`count_dropped`)."""

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
            if (
                self._waiting
                and threading.get_ident() != self._consumer
                and (input_id is None or not self._paused)  # a paused consumer waits for control only
            ):
                self._waiting = False
                self._signaled = True
                os.eventfd_write(self.wake_fd, 1)

    def offer(self, input_id: str, item: Any) -> bool:
        """`push`, unless ``input_id`` is lossless and holds ``queue_size`` messages; whether it did.

        Example:
            >>> box = Inbox({"tick": 1}, lossless=["tick"])
            >>> box.offer("tick", 1), box.offer("tick", 2), box.dropped["tick"]
            (True, False, 0)
        """
        room = self._room.get(input_id)
        if room is not None and self.depth(input_id) >= room:
            return False
        self.push(input_id, item)
        return True

    def count_timeouts(self, inputs: Iterable[str]) -> None:
        """A sender did not send a message for each of ``inputs``: its wait for room timed out.

        Example:
            >>> box = Inbox({"x": 1}); box.count_timeouts(["x", "unknown"]); box.timed_out
            {'x': 1}
        """
        with self._lock:
            for input_id in inputs:
                if input_id in self.timed_out:
                    self.timed_out[input_id] += 1

    def count_dropped(self, inputs: Iterable[str], count: int) -> None:
        """``count`` messages for each of ``inputs`` were dropped before they arrived (by their sender).

        They count as arrived and dropped, so ``delivered`` stays ``received - dropped - queued``.

        Example:
            >>> box = Inbox({"x": 1}); box.count_dropped(["x", "unknown"], 3)
            >>> box.dropped, box.received, box.delivered, box.shed
            ({'x': 3}, {'x': 3}, {'x': 0}, {'x': 3})
        """
        with self._lock:
            for input_id in inputs:
                if input_id in self.dropped:
                    self.dropped[input_id] += count
                    self.received[input_id] += count
                    self.shed[input_id] += count

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

    def _pop_control_locked(self) -> tuple[str | None, Any] | None:
        """While paused: the oldest control event, the messages left in place (order kept)."""
        order = self._order
        for index, slot in enumerate(order):
            if slot[_INPUT] is None:
                del order[index]
                return None, slot[_ITEM]
        return None

    def pause(self) -> None:
        """Hand out control events only; messages queue (and drop past their bound) until `resume`.

        Thread-safe, idempotent.

        Example:
            >>> box = Inbox({"x": 1}); box.pause()
            >>> box.push("x", 1); box.push("x", 2); box.pop(0), box.dropped["x"]
            (None, 1)
        """
        with self._lock:
            self._paused = True
            # `pop` takes control events only: swapped in, so the unpaused path tests nothing
            self._pop_locked = self._pop_control_locked  # type: ignore[method-assign]  # see above

    def resume(self) -> None:
        """Deliver messages again, the queued ones first in arrival order (wakes a waiting consumer).

        Thread-safe, idempotent.

        Example:
            >>> box = Inbox({"x": 4}); box.pause(); box.push("x", 1); box.resume()
            >>> box.pop(0)
            ('x', 1)
        """
        with self._lock:
            if not self._paused:
                return
            self._paused = False
            del self._pop_locked  # the class's own again
            if self._waiting and threading.get_ident() != self._consumer and len(self._order) > self._dead:
                self._waiting = False
                self._signaled = True
                os.eventfd_write(self.wake_fd, 1)

    @property
    def delivered(self) -> dict[str, int]:
        """Per input, the messages handed out so far (a snapshot).

        Every arrival was dropped, is still queued, or was handed out, so the count costs the
        message path nothing: ``received - dropped - queued``, read under the lock.

        Example:
            >>> box = Inbox({"x": 1}); box.push("x", 1); box.push("x", 2); box.pop(0)
            ('x', 2)
            >>> box.delivered
            {'x': 1}
        """
        with self._lock:
            return {k: n - self.dropped[k] - len(self._per_input[k]) for k, n in self.received.items()}

    @property
    def paused(self) -> bool:
        """Whether messages are held (`pause`).

        Example:
            >>> Inbox({}).paused
            False
        """
        return self._paused

    def pop(self, timeout: float | None) -> tuple[str | None, Any] | None:
        """The oldest event, waiting up to ``timeout`` seconds (None: forever).

        Returns ``None`` when nothing arrived in time.
        """
        deadline: float | None = None
        while True:
            with self._lock:
                got = self._pop_locked()
                if got is not None or timeout == 0:
                    return got
                remaining = -1.0
                if timeout is not None:
                    now = time.monotonic()
                    if deadline is None:
                        deadline = now + timeout
                    remaining = deadline - now
                    if remaining <= 0:
                        return None
                self._waiting = True
                self._consumer = threading.get_ident()
            waited = False
            try:
                self.waiter(remaining, self.wake_fd)
                waited = True
            finally:
                with self._lock:  # what the wait brought is taken under the same lock
                    self._waiting = False
                    signaled, self._signaled = self._signaled, False
                    got = self._pop_locked() if waited else None
                if signaled:
                    try:
                        os.eventfd_read(self.wake_fd)
                    except BlockingIOError:
                        pass
            if got is not None:
                return got

    def _pop_crediting(self, timeout: float | None) -> tuple[str | None, Any] | None:
        """`pop`, then ``on_taken`` for a lossless input's message (swapped in: see ``__init__``)."""
        got = Inbox.pop(self, timeout)
        if got is not None and got[0] in self.lossless and self.on_taken is not None:
            self.on_taken(got[0])  # its sender may send one more
        return got

    def _poll_wake(self, timeout: float, wake_fd: int) -> None:
        poller = select.poll()
        poller.register(wake_fd, select.POLLIN)
        poller.poll(None if timeout < 0 else timeout * 1000)

    def close(self) -> None:
        """Release the eventfd."""
        os.close(self.wake_fd)

    def __len__(self) -> int:
        """Events `pop` would hand out now (while paused: the control events)."""
        with self._lock:
            if self._paused:
                return sum(1 for slot in self._order if slot[_INPUT] is None)
            return len(self._order) - self._dead

    def depth(self, input_id: str) -> int:
        """Undelivered messages queued for one input."""
        with self._lock:
            return len(self._per_input[input_id])
