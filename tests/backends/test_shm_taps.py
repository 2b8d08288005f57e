"""Taps on the ``shm`` backend: a sender never waits for one, counts what skips it, and forgets it."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable

from doradus._control.topic_rates import RateWindow
from doradus._control.topic_taps import HeaderTap
from doradus.backends import LinkSpec
from doradus.backends._shm import ShmBackend
from doradus.backends._shm_taps import TapSocket
from doradus.testing import CollectingReceiver, outgoing

SMALL_BUFFER = 32 * 1024
"""The tap's send buffer: a few inline messages fill it."""


def _sender_with_tap(mode: str) -> tuple[ShmBackend, ShmBackend, CollectingReceiver, socket.socket]:
    """A sender linked to a receiver that reads, and to a tap whose reading end is returned unread."""
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    tap_out, tap_in = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    tap_out.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SMALL_BUFFER)
    received = CollectingReceiver()
    inbound = ShmBackend("b", received)
    inbound.open([LinkSpec("a", "in", routes={"out": ["in"]})], [b.detach()])
    inbound.start()
    sender = ShmBackend("a", CollectingReceiver())
    links = [
        LinkSpec("b", "out", ("out",)),
        LinkSpec("doradus-topic-1", "out", ("out",), options={"tap": mode}),
    ]
    sender.open(links, [a.detach(), tap_out.detach()])
    sender.start()
    return sender, inbound, received, tap_in


def _send(sender: ShmBackend, values: list[object]) -> None:
    """Send ``values`` from a thread; fail if the sends do not all return (a blocked sender)."""

    def run() -> None:
        for k, value in enumerate(values, 1):
            sender.send(outgoing(value, seq=k))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(30.0)
    assert not thread.is_alive(), "the sender waited for a tap"


def _tap_socket(sender: ShmBackend) -> TapSocket:
    (tap,) = [link.sock for link in sender._out_links if isinstance(link.sock, TapSocket)]
    return tap


def test_a_stalled_full_tap_never_blocks_the_sender_and_is_told_what_it_skipped() -> None:
    sender, inbound, received, tap_in = _sender_with_tap("full")
    try:
        _send(sender, [bytes(1000)] * 2000)
        assert received.wait_for(lambda r: len(r.values) == 2000, 10.0)  # the receiver missed nothing
        skipped = _tap_socket(sender).skipped
        assert 0 < skipped < 2000
        # The tap's reader comes back: the datagrams waiting, one SKIP per message it missed,
        # then what is sent now.
        seen = CollectingReceiver()
        reader = ShmBackend("doradus-topic", seen)
        reader.open([LinkSpec("a", "in", routes={"out": ["tap"]})], [tap_in.detach()])
        reader.start()
        time.sleep(0.1)  # the reader drains the full buffer: room for the SKIPs and the last message
        _send(sender, [bytes(1000)])
        assert seen.wait_for(lambda r: len(r.values) + len(r.timeouts) == 2001, 10.0)
        assert len(seen.timeouts) == skipped
        assert sender.statistics().send_failures == 0
        reader.close()
    finally:
        sender.close()
        inbound.close()


def test_a_headers_tap_counts_every_shared_memory_message_and_hands_each_segment_back() -> None:
    sender, inbound, received, tap_in = _sender_with_tap("headers")
    book = RateWindow(window=10)
    try:
        with HeaderTap(tap_in.detach(), book):
            for k in range(1, 31):
                _send(sender, [bytes(1 << 20)])
                assert received.wait_for(lambda r: len(r.values) == 1, 10.0)
                received.values.clear()  # the receiver's array goes: its release follows
                assert _eventually(lambda k=k: book.stats(time.time_ns()).count == k)
            stats = book.stats(time.time_ns())
            assert stats.skipped == 0
            assert stats.max_size == 1 << 20
            # Both hand each segment back, so the pool reuses a few instead of making 30.
            assert sender.pool.statistics()["segments"] <= 4
    finally:
        received.values.clear()
        sender.close()
        inbound.close()


def _eventually(check: Callable[[], bool], seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while not check() and time.monotonic() < deadline:
        time.sleep(0.01)
    return check()


def test_a_tap_whose_reader_goes_is_dropped_without_a_failure() -> None:
    sender, inbound, received, tap_in = _sender_with_tap("full")
    try:
        tap = _tap_socket(sender)
        tap_in.close()
        _send(sender, [bytes(100)] * 200)
        deadline = time.monotonic() + 5.0
        while tap.fileno() != -1 and time.monotonic() < deadline:  # closed at a send once its end is seen
            _send(sender, [bytes(100)])
            time.sleep(0.01)
        assert tap.fileno() == -1
        assert all(not isinstance(link.sock, TapSocket) for link in sender._out_links)
        assert sender.statistics().send_failures == 0
        assert received.wait_for(lambda r: len(r.values) >= 200, 10.0)
    finally:
        sender.close()
        inbound.close()
