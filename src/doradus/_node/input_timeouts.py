"""Per-input ``input_timeout``: an input silent too long reads as closed until it receives again.

`InputTimeouts.pop` stands in for the inbox's ``pop`` of a node that has inputs with an
``input_timeout`` (a node without one keeps the inbox's own: its message path is unchanged).
Each such input has a deadline: the start barrier plus its timeout, then each of its messages
taken plus its timeout. Deadlines are checked only when the node would wait (no thread, no
timer per input); an input past its deadline with nothing queued gives ``InputClosed`` (as
`LAPSED` entries, which `doradus._node.receive.EventReader` hands out as `InputClosed` without
counting the input closed for good: the stream does not end for it). Its next message comes
after an `InputRecovered`. A real close (the source ended) stops the input's deadline.

Called from the node's consuming thread only.

Example:
    >>> from doradus._node.inbox import Inbox
    >>> clock = [0.0]
    >>> inbox = Inbox({"x": 4})
    >>> timeouts = InputTimeouts({"x": 1.0}, inbox, clock=lambda: clock[0])
    >>> inbox.push("x", "m1"); timeouts.pop(0)
    ('x', 'm1')
    >>> clock[0] = 1.5; timeouts.pop(0)
    (None, Lapsed(id='x'))
    >>> inbox.push("x", "m2"); timeouts.pop(0), timeouts.pop(0)
    ((None, InputRecovered(id='x')), ('x', 'm2'))
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from doradus._node.events import InputClosed, InputRecovered
from doradus._node.inbox import Inbox

Entry = tuple[str | None, Any]
"""What an inbox pops: ``(input id, message)`` or ``(None, event)``."""


@dataclass(frozen=True, slots=True)
class Lapsed:
    """Input ``id`` passed its ``input_timeout``: handed to the node as ``InputClosed(id)``.

    Example:
        >>> Lapsed("x").id
        'x'
    """

    id: str


class InputTimeouts:
    """The deadlines of a node's inputs that have an ``input_timeout``; a timed ``pop``.

    Args:
        timeouts: input id → seconds without a message before it reads as closed.
        inbox: the node's inbox (its ``pop`` and ``depth`` are used).
        clock: monotonic seconds (tests pass their own).

    Example:
        >>> timeouts = InputTimeouts({"x": 2.0}, Inbox({"x": 1}), clock=lambda: 10.0)
        >>> timeouts.next_deadline()
        12.0
    """

    def __init__(
        self, timeouts: Mapping[str, float], inbox: Inbox, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._timeouts = dict(timeouts)
        self._inbox_pop = inbox.pop
        self._depth = inbox.depth
        self._clock = clock
        now = clock()
        self._due = {input_id: now + seconds for input_id, seconds in self._timeouts.items()}
        """Deadline of each timed input still open and not lapsed."""
        self._lapsed: set[str] = set()
        self._held: deque[Entry] = deque()

    @property
    def held(self) -> int:
        """Entries made and not handed out yet (a message after its `InputRecovered`, lapses).

        Example:
            >>> InputTimeouts({}, Inbox({})).held
            0
        """
        return len(self._held)

    def next_deadline(self) -> float | None:
        """The earliest deadline of an input not lapsed (None: none is left).

        Example:
            >>> InputTimeouts({}, Inbox({})).next_deadline() is None
            True
        """
        return min(self._due.values(), default=None)

    def pop(self, timeout: float | None) -> Entry | None:
        """The next entry, as `doradus._node.inbox.Inbox.pop`, with lapses and recoveries added.

        Args:
            timeout: seconds to wait at most (None: until something comes).

        Returns:
            An inbox entry, ``(None, Lapsed(id))``, ``(None, InputRecovered(id))``, or None
            when ``timeout`` passed with nothing to hand out.

        Example:
            >>> timeouts = InputTimeouts({"x": 5.0}, Inbox({"x": 1}), clock=lambda: 0.0)
            >>> timeouts.pop(0) is None
            True
        """
        if self._held:
            return self._held.popleft()
        end = None if timeout is None else self._clock() + timeout
        while True:
            got = self._inbox_pop(0)
            if got is not None:
                return self._taken(got)
            now = self._clock()
            self._lapse(now)
            if self._held:
                return self._held.popleft()
            wait = self._wait(now, end)
            if wait is not None and wait <= 0:
                return None
            got = self._inbox_pop(wait)
            if got is not None:
                return self._taken(got)

    def _taken(self, got: Entry) -> Entry:
        input_id, item = got
        if input_id is None:
            if isinstance(item, InputClosed) and item.id in self._timeouts:
                self._due.pop(item.id, None)  # closed for good: no deadline any more
                self._lapsed.discard(item.id)
            return got
        seconds = self._timeouts.get(input_id)
        if seconds is None:
            return got
        self._due[input_id] = self._clock() + seconds
        if input_id in self._lapsed:
            self._lapsed.discard(input_id)
            self._held.append(got)
            return None, InputRecovered(input_id)
        return got

    def _lapse(self, now: float) -> None:
        """Lapse every input past its deadline; one with messages queued (held) is not silent."""
        for input_id, due in sorted(self._due.items(), key=lambda item: item[1]):
            if due > now:
                break
            if self._depth(input_id):
                self._due[input_id] = now + self._timeouts[input_id]
                continue
            del self._due[input_id]
            self._lapsed.add(input_id)
            self._held.append((None, Lapsed(input_id)))

    def _wait(self, now: float, end: float | None) -> float | None:
        """Seconds to wait: until the caller's end or the next deadline (None: no limit)."""
        due = self.next_deadline()
        if due is None:
            return None if end is None else end - now
        if end is None or due < end:
            return max(due - now, 0.0) + 0.001  # just past the deadline, so it has passed on waking
        return end - now
