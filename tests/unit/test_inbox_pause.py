"""A paused inbox: messages queue and drop as ever, control events pass, resume keeps order."""

from __future__ import annotations

import threading
import time
from typing import Any

from doradus._node.inbox import Inbox

DEADLINE = 10.0  # seconds; generous, for loaded machines


def drain(box: Inbox) -> list[tuple[str | None, Any]]:
    out = []
    while (got := box.pop(0)) is not None:
        out.append(got)
    return out


def test_paused_messages_queue_and_drop_the_oldest_counted() -> None:
    box = Inbox({"a": 2, "b": 3})
    box.pause()
    for i in range(5):
        box.push("a", f"a{i}")
    box.push("b", "b0")
    assert box.pop(0) is None
    assert len(box) == 0  # nothing to hand out while paused
    assert (box.received["a"], box.dropped["a"], box.delivered["a"]) == (5, 3, 0)
    assert (box.depth("a"), box.depth("b")) == (2, 1)


def test_control_events_pass_a_paused_inbox_in_their_order() -> None:
    box = Inbox({"a": 4})
    box.pause()
    box.push("a", 1)
    box.push(None, "closed")
    box.push("a", 2)
    box.push(None, "stop")
    assert len(box) == 2
    assert drain(box) == [(None, "closed"), (None, "stop")]
    assert box.depth("a") == 2  # the messages stay, behind the control events taken


def test_resume_delivers_what_queued_first_in_arrival_order() -> None:
    box = Inbox({"a": 2, "b": 4})
    box.pause()
    for item in ("a0", "b0", "a1", "b1", "a2"):
        box.push(item[0], item)
    box.resume()
    box.push("b", "b2")
    assert drain(box) == [("b", "b0"), ("a", "a1"), ("b", "b1"), ("a", "a2"), ("b", "b2")]
    assert (box.delivered["a"], box.delivered["b"], box.dropped["a"]) == (2, 3, 1)


def test_pause_and_resume_are_idempotent() -> None:
    box = Inbox({"a": 2})
    box.pause()
    box.pause()
    assert box.paused
    box.resume()
    box.resume()
    box.push("a", 1)
    assert not box.paused
    assert drain(box) == [("a", 1)]


def test_a_paused_consumer_sleeps_through_messages_and_wakes_on_resume() -> None:
    box = Inbox({"a": 8})
    box.pause()
    got: list[Any] = []
    consumer = threading.Thread(target=lambda: got.append(box.pop(DEADLINE)))
    consumer.start()
    deadline = time.monotonic() + DEADLINE
    while not box._waiting:
        assert time.monotonic() < deadline, "the consumer never blocked"
        time.sleep(0.001)
    box.push("a", "held")
    assert box._waiting  # a message did not wake the paused consumer
    box.resume()
    consumer.join(DEADLINE)
    assert got == [("a", "held")]


def test_a_paused_consumer_wakes_for_a_control_event() -> None:
    box = Inbox({"a": 8})
    box.pause()
    box.push("a", "held")
    got: list[Any] = []
    consumer = threading.Thread(target=lambda: got.append(box.pop(DEADLINE)))
    consumer.start()
    deadline = time.monotonic() + DEADLINE
    while not box._waiting:
        assert time.monotonic() < deadline, "the consumer never blocked"
        time.sleep(0.001)
    box.push(None, "stop")
    consumer.join(DEADLINE)
    assert got == [(None, "stop")]
    assert box.depth("a") == 1
