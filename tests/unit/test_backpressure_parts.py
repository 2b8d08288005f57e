"""The parts of ``queue_policy: backpressure``: a sender's gate, a lossless inbox, timers, flow messages."""

from __future__ import annotations

import socket
import threading
from typing import Any

import pytest

from doradus._exceptions import DecodeError
from doradus._node.inbox import Inbox, hard_cap
from doradus._node.receive import TIMER
from doradus._node.timers import start_timers
from doradus.backends import LinkSpec
from doradus.backends._flow import KIND_CREDIT, KIND_SKIP, SendGate, decode_flow, encode_flow
from doradus.backends._shm_flow import ShmFlow
from doradus.backends._shm_links import InLink
from doradus.testing import CollectingReceiver

DEADLINE = 10.0  # seconds; generous, for loaded machines
LONG = 60.0
"""A timeout no test may wait out: reaching it means the wait did not end as it should."""


def _waiting(gate: SendGate, output: bytes = b"out") -> tuple[threading.Thread, list[bool]]:
    """A thread in ``gate.admit``, and where its answer goes."""
    answer: list[bool] = []
    thread = threading.Thread(target=lambda: answer.append(gate.admit(output)), daemon=True)
    thread.start()
    return thread, answer


def test_a_gate_admits_up_to_the_queue_size_then_waits_for_a_credit() -> None:
    gate = SendGate("a", "b", {"out": {"x": (2, LONG)}})
    assert gate.admit(b"out")
    assert gate.admit(b"out")
    thread, answer = _waiting(gate)
    thread.join(0.2)
    assert thread.is_alive()
    assert answer == []
    gate.credit("x", 1)
    thread.join(DEADLINE)
    assert answer == [True]
    assert gate.admit(b"other")  # an output without backpressure inputs never waits


def test_a_wait_times_out_counted_per_input() -> None:
    gate = SendGate("a", "b", {"out": {"x": (1, 0.05), "y": (5, 0.05)}})
    assert gate.admit(b"out")
    assert not gate.admit(b"out")
    assert gate.timeouts == {"x": 1, "y": 0}  # only the full input counts it


def test_a_paused_receiver_suspends_the_deadline_and_a_closed_one_releases() -> None:
    gate = SendGate("a", "b", {"out": {"x": (1, 0.05)}})
    gate.admit(b"out")
    gate.hold(True)
    thread, answer = _waiting(gate)
    thread.join(0.3)  # six timeouts' worth
    assert thread.is_alive()
    assert gate.timeouts == {"x": 0}
    gate.hold(False)  # resumed: the deadline runs again from now
    thread.join(DEADLINE)
    assert answer == [False]
    assert gate.timeouts == {"x": 1}

    gate.hold(True)
    thread, answer = _waiting(gate)
    gate.close()  # the receiver is gone: nobody waits
    thread.join(DEADLINE)
    assert answer == [True]


def test_credits_never_make_room_past_the_queue_size() -> None:
    gate = SendGate("a", "b", {"out": {"x": (1, 0.01)}})
    gate.credit("x", 5)  # a restarted sender hears of its predecessor's messages
    assert gate.admit(b"out")
    assert not gate.admit(b"out")


def test_a_lossless_input_does_not_drop_until_its_hard_cap() -> None:
    box = Inbox({"x": 2, "y": 2}, lossless=["x"])
    taken: list[str] = []
    box.on_taken = taken.append
    for i in range(hard_cap(2) + 3):
        box.push("x", i)
    box.push("y", "a")
    box.push("y", "b")
    box.push("y", "c")
    assert (box.dropped["x"], box.depth("x")) == (3, hard_cap(2))
    assert box.dropped["y"] == 1
    while box.pop(0) is not None:
        pass
    assert taken == ["x"] * hard_cap(2)  # a credit per message taken, none for the other input


def test_a_timer_into_a_full_lossless_input_skips_its_ticks() -> None:
    box = Inbox({"tick": 2}, lossless=["tick"])
    stop = threading.Event()
    thread = start_timers(box, [("tick", 1_000_000)], stop)
    try:
        assert box.pop(DEADLINE) is not None
        first: Any = box.pop(DEADLINE)
        assert first is not None
        assert first[1][0] is TIMER
        # nobody takes them: the queue fills to its size and stays there, nothing dropped
        stop.wait(0.1)
        assert (box.depth("tick"), box.dropped["tick"]) == (2, 0)
    finally:
        stop.set()
        thread.join(DEADLINE)


def test_flow_messages_round_trip_and_malformed_ones_are_refused() -> None:
    assert decode_flow(encode_flow(KIND_CREDIT, 3, "image")) == (KIND_CREDIT, 3, "image")
    with pytest.raises(DecodeError):
        decode_flow(encode_flow(KIND_SKIP, 0, "image")[:-1])
    with pytest.raises(DecodeError):
        decode_flow(b"\x01 data")


def test_socket_pair_flow_credits_the_sender_and_counts_skips_at_the_receiver() -> None:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        receiver = CollectingReceiver()
        flow = ShmFlow("b", receiver)
        inbound = InLink(1, "a", theirs, {"out": ["x"]})
        flow.add_in(inbound)
        flow.taken("x")
        assert decode_flow(ours.recv(64)) == (KIND_CREDIT, 1, "x")
        flow.from_sender(inbound, encode_flow(KIND_SKIP, 0, "out"))
        assert receiver.timeouts == ["x"]

        sender = ShmFlow("a", CollectingReceiver())
        gate = sender.gate_for(LinkSpec("b", "out", ("out",), backpressure={"out": {"x": (1, LONG)}}))
        assert gate is not None
        assert sender.gated
        assert gate.admit(b"out")
        thread, answer = _waiting(gate)

        class Out:
            pass

        link: Any = Out()
        link.gate = gate
        sender.from_receiver(link, encode_flow(KIND_CREDIT, 1, "x"))
        thread.join(DEADLINE)
        assert answer == [True]
    finally:
        ours.close()
        theirs.close()
