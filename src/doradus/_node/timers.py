"""A node's timer inputs (``dora/timer/...``): one thread ticking them all into the inbox.

Example:
    >>> import threading
    >>> from doradus._node.inbox import Inbox
    >>> inbox, stop = Inbox({"tick": 2}), threading.Event()
    >>> thread = start_timers(inbox, [("tick", 1_000_000)], stop)
    >>> input_id, (mark, _stamp) = inbox.pop(1.0)
    >>> input_id, mark is TIMER
    ('tick', True)
    >>> stop.set(); thread.join()
"""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Sequence

from doradus._node.inbox import Inbox
from doradus._node.receive import TIMER


def start_timers(inbox: Inbox, timers: Sequence[tuple[str, int]], stop: threading.Event) -> threading.Thread:
    """Start the daemonic thread that ticks ``timers`` (input id, interval ns) until ``stop`` is set.

    A timer that falls behind skips the ticks it missed rather than delivering them in a burst.
    Into a ``queue_policy: backpressure`` input, a tick that finds the queue full is skipped the
    same way (the timer waits for room; nothing is dropped).

    Returns:
        The thread, started.

    Example:
        >>> start_timers(Inbox({}), [], threading.Event()).join()
    """
    thread = threading.Thread(target=_run, args=(inbox, timers, stop), name="doradus-timers", daemon=True)
    thread.start()
    return thread


def _run(inbox: Inbox, timers: Sequence[tuple[str, int]], stop: threading.Event) -> None:
    if not timers:
        return
    now = time.monotonic_ns()
    heap = [(now + interval, interval, input_id) for input_id, interval in timers]
    heapq.heapify(heap)
    while True:
        due, interval, input_id = heap[0]
        delay = (due - time.monotonic_ns()) / 1e9
        if delay > 0 and stop.wait(delay):
            return
        if stop.is_set():
            return
        inbox.offer(input_id, (TIMER, time.time_ns()))  # a full backpressure input: the tick is not made
        nxt = due + interval
        now = time.monotonic_ns()
        if nxt < now:  # fell behind: skip missed ticks rather than bursting
            nxt = now + interval
        heapq.heapreplace(heap, (nxt, interval, input_id))
