"""The deadlines of inputs with an ``input_timeout`` (`doradus._node.input_timeouts`)."""

from __future__ import annotations

import threading
import time

from doradus._node.events import InputClosed, InputRecovered, Stop
from doradus._node.inbox import Inbox
from doradus._node.input_timeouts import InputTimeouts, Lapsed
from doradus._node.receive import EventReader
from doradus._node.statistics import NodeCounters
from doradus._wire.node_config import InputConfig


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_an_input_lapses_at_its_deadline_and_recovers_before_its_next_message():
    clock, inbox = Clock(), Inbox({"x": 4})
    timeouts = InputTimeouts({"x": 2.0}, inbox, clock=clock)
    clock.now += 1.9
    assert timeouts.pop(0) is None  # not yet
    inbox.push("x", "m1")
    assert timeouts.pop(0) == ("x", "m1")  # the deadline moves to 101.9 + 2
    clock.now += 1.9
    assert timeouts.pop(0) is None
    clock.now += 0.2
    assert timeouts.pop(0) == (None, Lapsed("x"))
    clock.now += 60
    assert timeouts.pop(0) is None  # lapsed once, not again while silent
    inbox.push("x", "m2")
    assert timeouts.pop(0) == (None, InputRecovered("x"))
    assert timeouts.held == 1  # the message, next (the node is not empty)
    assert timeouts.pop(0) == ("x", "m2")
    assert timeouts.held == 0
    clock.now += 2.1
    assert timeouts.pop(0) == (None, Lapsed("x"))  # each silence lapses again


def test_queued_messages_are_not_silence():
    clock, inbox = Clock(), Inbox({"x": 4})
    timeouts = InputTimeouts({"x": 1.0}, inbox, clock=clock)
    inbox.pause()  # messages held: the node waits for control events only
    inbox.push("x", "held")
    clock.now += 5
    assert timeouts.pop(0) is None
    inbox.resume()
    assert timeouts.pop(0) == ("x", "held")


def test_a_real_close_ends_the_deadline():
    clock, inbox = Clock(), Inbox({"x": 4})
    timeouts = InputTimeouts({"x": 1.0}, inbox, clock=clock)
    inbox.push(None, InputClosed("x"))
    assert timeouts.pop(0) == (None, InputClosed("x"))
    assert timeouts.next_deadline() is None
    clock.now += 10
    assert timeouts.pop(0) is None


def test_inputs_lapse_in_deadline_order_and_untimed_inputs_never():
    clock, inbox = Clock(), Inbox({"slow": 4, "fast": 4, "plain": 4})
    timeouts = InputTimeouts({"slow": 3.0, "fast": 1.0}, inbox, clock=clock)
    clock.now += 5
    assert [timeouts.pop(0), timeouts.pop(0), timeouts.pop(0)] == [
        (None, Lapsed("fast")),
        (None, Lapsed("slow")),
        None,
    ]
    inbox.push("plain", "p")
    assert timeouts.pop(0) == ("plain", "p")  # no recovery for an input without a timeout


def test_a_wait_ends_at_the_deadline_and_a_shorter_wait_ends_first():
    timeout = 0.3
    timeouts = InputTimeouts({"x": timeout}, Inbox({"x": 1}))
    started = time.monotonic()
    assert timeouts.pop(timeout / 3) is None  # the caller's wait ended before the deadline
    assert timeouts.pop(60) == (None, Lapsed("x"))  # woken by the deadline, not the 60 s
    assert time.monotonic() - started >= timeout
    assert timeouts.next_deadline() is None  # lapsed: no deadline until it receives again


def test_the_reader_hands_a_lapse_out_as_input_closed_without_ending_the_stream():
    inbox = Inbox({"x": 2})
    x: InputConfig = {"kind": "node", "queue_size": 2, "policy": "drop-oldest", "source": "a/o"}
    reader = EventReader(inbox, NodeCounters(["x"], []), {"x": x}, {}, threading.Event())
    assert reader.event((None, Lapsed("x"))) == InputClosed("x")
    assert reader.event((None, InputRecovered("x"))) == InputRecovered("x")
    assert inbox.pop(0) is None
    assert not reader.ended
    assert reader.event((None, InputClosed("x"))) == InputClosed("x")
    assert inbox.pop(0) == (None, Stop("all-inputs-closed"))  # the real close ends it
