"""The inbox: per-input bounds with drop-oldest, arrival order, control events, waking."""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

import pytest

from doradus._node.inbox import Inbox

DEADLINE = 10.0  # seconds; generous, for loaded machines


def drain(box: Inbox) -> list[tuple[str | None, Any]]:
    out = []
    while (got := box.pop(0)) is not None:
        out.append(got)
    return out


def wait_until_blocked(box: Inbox) -> None:
    """Return once a consumer is parked in ``pop`` (the inbox has no event to say so)."""
    deadline = time.monotonic() + DEADLINE
    while not box._waiting:
        assert time.monotonic() < deadline, "the consumer never blocked"
        time.sleep(0.001)


# --- bounds and order ----------------------------------------------------------------------------


def test_each_input_drops_its_own_oldest_and_counts_it() -> None:
    box = Inbox({"a": 2, "b": 3})
    for i in range(5):
        box.push("a", f"a{i}")
    box.push("b", "b0")
    box.push("b", "b1")

    assert box.depth("a") == 2
    assert box.depth("b") == 2
    assert len(box) == 4
    assert drain(box) == [("a", "a3"), ("a", "a4"), ("b", "b0"), ("b", "b1")]
    assert box.dropped == {"a": 3, "b": 0}
    assert box.received == {"a": 5, "b": 2}


def test_events_come_out_in_arrival_order_across_inputs() -> None:
    box = Inbox({"a": 10, "b": 10, "c": 10})
    pushed = [(name, i) for i in range(3) for name in ("c", "a", "b")]
    for name, i in pushed:
        box.push(name, i)

    assert drain(box) == pushed


def test_a_drop_on_one_input_keeps_the_others_in_place() -> None:
    box = Inbox({"a": 1, "b": 10})
    for step in ("a1", "b1", "a2", "b2", "a3"):
        box.push(step[0], step)

    assert drain(box) == [("b", "b1"), ("b", "b2"), ("a", "a3")]
    assert box.dropped == {"a": 2, "b": 0}


def test_bound_counts_undelivered_messages_only() -> None:
    box = Inbox({"a": 2})
    box.push("a", 1)
    box.push("a", 2)
    assert box.pop(0) == ("a", 1)
    box.push("a", 3)

    assert drain(box) == [("a", 2), ("a", 3)]
    assert box.dropped == {"a": 0}
    assert box.depth("a") == 0
    assert len(box) == 0


def test_control_events_are_never_dropped_nor_counted() -> None:
    box = Inbox({"a": 1})
    for i in range(100):
        box.push(None, f"control{i}")
        box.push("a", i)

    got = drain(box)

    assert [item for input_id, item in got if input_id is None] == [f"control{i}" for i in range(100)]
    assert [item for input_id, item in got if input_id == "a"] == [99]
    assert got[-1] == ("a", 99)
    assert box.dropped == {"a": 99}
    assert box.received == {"a": 100}


def test_len_counts_undelivered_events_including_control_events() -> None:
    box = Inbox({"a": 1, "b": 5})
    box.push("a", 1)
    box.push("a", 2)
    box.push("b", 1)
    box.push(None, "stop")

    assert len(box) == 3
    box.pop(0)
    assert len(box) == 2


# --- waiting -------------------------------------------------------------------------------------


def test_pop_zero_on_an_empty_inbox_returns_none_at_once() -> None:
    box = Inbox({"a": 1})
    start = time.monotonic()

    assert box.pop(0) is None
    assert time.monotonic() - start < 1.0


@pytest.mark.parametrize("timeout", [0.05, 0.2])
def test_pop_waits_at_least_its_timeout_and_returns_none(timeout: float) -> None:
    box = Inbox({"a": 1})
    start = time.monotonic()

    got = box.pop(timeout)

    elapsed = time.monotonic() - start
    assert got is None
    assert timeout <= elapsed < timeout + 1.0


def test_pop_returns_a_queued_event_without_waiting() -> None:
    box = Inbox({"a": 1})
    box.push("a", "x")
    start = time.monotonic()

    assert box.pop(30) == ("a", "x")
    assert time.monotonic() - start < 1.0


@pytest.mark.parametrize("timeout", [30.0, None])
def test_a_producer_thread_wakes_a_blocked_consumer(timeout: float | None) -> None:
    box = Inbox({"a": 1})
    result: list[Any] = []
    consumer = threading.Thread(target=lambda: result.append(box.pop(timeout)))
    consumer.start()
    wait_until_blocked(box)

    start = time.monotonic()
    threading.Thread(target=box.push, args=("a", "hello")).start()
    consumer.join(DEADLINE)

    assert not consumer.is_alive()
    assert result == [("a", "hello")]
    assert time.monotonic() - start < DEADLINE


def test_a_control_event_wakes_a_blocked_consumer() -> None:
    box = Inbox({"a": 1})
    result: list[Any] = []
    consumer = threading.Thread(target=lambda: result.append(box.pop(None)))
    consumer.start()
    wait_until_blocked(box)

    box.push(None, "stop")
    consumer.join(DEADLINE)

    assert result == [(None, "stop")]


def test_consumer_wakes_once_per_event_in_a_ping_pong() -> None:
    box = Inbox({"ping": 1})
    replies = Inbox({"pong": 1})
    rounds = 500

    def echo() -> None:
        for _ in range(rounds):
            got = box.pop(DEADLINE)
            assert got is not None
            replies.push("pong", got[1])

    echoer = threading.Thread(target=echo)
    echoer.start()
    for i in range(rounds):
        box.push("ping", i)
        assert replies.pop(DEADLINE) == ("pong", i)
    echoer.join(DEADLINE)

    assert not echoer.is_alive()
    assert box.dropped == {"ping": 0}


# --- stress --------------------------------------------------------------------------------------

PRODUCERS = 4
PUSHES = 10_000


@pytest.mark.parametrize("pop_timeout", [DEADLINE, 0.0005, 0], ids=["blocking", "short-timeouts", "polling"])
def test_concurrent_producers_lose_nothing_but_drops(pop_timeout: float) -> None:
    # From always dropping to never dropping (the last bound holds every push).
    bounds = {"in0": 1, "in1": 16, "in2": 1_000, "in3": PUSHES}
    inputs = list(bounds)
    box = Inbox(bounds)
    start = threading.Barrier(PRODUCERS + 1)
    delivered: dict[str | None, list[int]] = {name: [] for name in inputs}
    control: list[Any] = []

    def produce(name: str) -> None:
        start.wait(DEADLINE)
        for i in range(PUSHES):
            box.push(name, i)

    def consume() -> None:
        deadline = time.monotonic() + 6 * DEADLINE
        while time.monotonic() < deadline:
            got = box.pop(pop_timeout)
            if got is None:
                continue
            input_id, item = got
            if input_id is None:
                control.append(item)
                return
            delivered[input_id].append(item)

    producers = [threading.Thread(target=produce, args=(name,)) for name in inputs]
    consumer = threading.Thread(target=consume)
    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # switch threads often, so pushes and pops interleave
    try:
        for thread in [*producers, consumer]:
            thread.start()
        start.wait(DEADLINE)
        for thread in producers:
            thread.join(6 * DEADLINE)
        box.push(None, "end")  # control events are never dropped and come after every earlier push
        consumer.join(6 * DEADLINE)
    finally:
        sys.setswitchinterval(switch_interval)

    assert not consumer.is_alive()
    assert control == ["end"]
    for name in inputs:
        got = delivered[name]
        assert got == sorted(set(got)), f"{name}: out of order or duplicated"
        assert got[-1] == PUSHES - 1, f"{name}: the newest message must survive"
        assert box.received[name] == PUSHES
        assert box.received[name] == len(got) + box.dropped[name]
        assert box.depth(name) == 0
    assert delivered["in3"] == list(range(PUSHES))
    assert box.dropped["in3"] == 0
    assert len(box) == 0


# --- memory --------------------------------------------------------------------------------------


def test_dropped_slots_are_compacted_so_memory_stays_bounded() -> None:
    box = Inbox({"a": 1})
    longest = 0
    for i in range(100_000):
        box.push("a", i)
        longest = max(longest, len(box._order))

    assert longest < 200
    assert len(box) == 1
    assert box.dropped == {"a": 99_999}
    assert drain(box) == [("a", 99_999)]


def test_compaction_keeps_arrival_order_and_counts() -> None:
    box = Inbox({"a": 1, "b": 100_000})
    for i in range(1_000):
        box.push("a", i)
        box.push("b", i)

    assert len(box) == 1_001
    assert drain(box) == [("b", i) for i in range(999)] + [("a", 999), ("b", 999)]
    assert len(box) == 0
    assert box.depth("a") == box.depth("b") == 0
    assert box.dropped == {"a": 999, "b": 0}


def test_dropped_items_are_released_at_once() -> None:
    box = Inbox({"a": 1})
    released = threading.Event()

    class Payload:
        def __del__(self) -> None:
            released.set()

    box.push("a", Payload())
    box.push("a", "newer")  # the dropped payload must not linger in the order queue

    assert released.is_set()
