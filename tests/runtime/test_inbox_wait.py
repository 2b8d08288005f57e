"""`Inbox.pop` around its waiter: what the wait brought, a failed wait, deadlines, wake-ups."""

from __future__ import annotations

import itertools
import os
import threading
import time

import pytest

from doradus._node.inbox import Inbox

DEADLINE = 10.0  # seconds; generous, for loaded machines


def eventfd_pending(box: Inbox) -> bool:
    """Whether the inbox's eventfd holds a wake-up nobody read (it is non-blocking)."""
    try:
        os.eventfd_read(box.wake_fd)
    except BlockingIOError:
        return False
    return True


def test_what_the_waiter_delivers_on_the_consumer_thread_comes_out_of_that_one_wait() -> None:
    # A backend reads its sockets inside the wait and pushes from the consumer's own thread.
    box = Inbox({"x": 4})
    calls: list[float] = []

    def waiter(timeout: float, wake_fd: int) -> None:
        calls.append(timeout)
        box.push("x", len(calls))

    box.waiter = waiter
    try:
        assert box.pop(None) == ("x", 1)
        assert box.pop(DEADLINE) == ("x", 2)
        assert calls[0] == -1.0  # no timeout: wait for ever
        assert 0 < calls[1] <= DEADLINE
        assert len(calls) == 2
        assert not eventfd_pending(box)  # a push from the consumer's thread writes no wake-up
        assert box.delivered == {"x": 2}
    finally:
        box.close()


def test_a_waiter_that_raises_leaves_the_inbox_usable_and_its_message_queued() -> None:
    box = Inbox({"x": 4})

    def failing(timeout: float, wake_fd: int) -> None:
        box.push("x", "read before the failure")
        raise OSError("the wait failed")

    box.waiter = failing
    try:
        with pytest.raises(OSError, match="the wait failed"):
            box.pop(None)
        # The consumer no longer waits: another thread's push writes no wake-up.
        producer = threading.Thread(target=box.push, args=("x", "later"))
        producer.start()
        producer.join(DEADLINE)
        assert not eventfd_pending(box)
        assert box.pop(0) == ("x", "read before the failure")
        assert box.pop(0) == ("x", "later")
    finally:
        box.close()


def test_a_wait_that_brings_nothing_ends_at_the_deadline() -> None:
    box = Inbox({"x": 4})
    calls: list[float] = []

    def idle(timeout: float, wake_fd: int) -> None:
        calls.append(timeout)
        time.sleep(min(timeout, 0.01))

    box.waiter = idle
    try:
        t0 = time.monotonic()
        assert box.pop(0.05) is None
        assert time.monotonic() - t0 >= 0.05
        assert len(calls) >= 2
        assert all(later < earlier for earlier, later in itertools.pairwise(calls))
    finally:
        box.close()


def test_a_wake_up_from_another_thread_is_read_once_taken() -> None:
    box = Inbox({"x": 4})
    calls: list[float] = []
    poll_wake = box.waiter

    def counting(timeout: float, wake_fd: int) -> None:
        calls.append(timeout)
        poll_wake(timeout, wake_fd)

    box.waiter = counting
    got: list[object] = []
    consumer = threading.Thread(target=lambda: got.append(box.pop(DEADLINE)))
    try:
        consumer.start()
        deadline = time.monotonic() + DEADLINE
        while not calls:  # the consumer is about to wait (or waits)
            assert time.monotonic() < deadline, "the consumer never waited"
            time.sleep(0.001)
        box.push("x", "from another thread")
        consumer.join(DEADLINE)
        assert got == [("x", "from another thread")]
        # The wake-up was read: the next wait sleeps instead of returning at once, again and again.
        calls.clear()
        assert box.pop(0.05) is None
        assert len(calls) <= 3, f"the wait returned at once {len(calls)} times: a wake-up left unread"
    finally:
        consumer.join(DEADLINE)
        box.close()
