"""The ``shm`` backend through the same conformance kit as every other backend."""

from __future__ import annotations

import socket

import pytest

from doradus.backends import LinkSpec, _segments
from doradus.backends._shm import ShmBackend
from doradus.testing import CollectingReceiver, check_backend, outgoing


def shm_pair(receiver: CollectingReceiver) -> tuple[ShmBackend, ShmBackend]:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    for sock in (a, b):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    inbound = ShmBackend("b", receiver)
    inbound.open([LinkSpec("a", "in", routes={"out": ["in"]})], [b.detach()])
    inbound.start()
    sender = ShmBackend("a", CollectingReceiver())
    sender.open([LinkSpec("b", "out", ("out",))], [a.detach()])
    sender.start()
    return sender, inbound


def test_conformance() -> None:
    check_backend(shm_pair)


def test_conformance_with_no_descriptor_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    # Every segment's descriptor is closed as early as possible: reuse, releases and large
    # payloads must not depend on a descriptor being kept.
    monkeypatch.setattr(_segments, "descriptor_budget", lambda: 0)
    check_backend(shm_pair)


def test_drain_reads_what_the_links_hold_before_the_last_report() -> None:
    # The reader thread never started: only drain() can read what waits in the socket.
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    receiver = CollectingReceiver()
    inbound = ShmBackend("b", receiver)
    inbound.open([LinkSpec("a", "in", routes={"out": ["in"]})], [b.detach()])
    sender = ShmBackend("a", CollectingReceiver())
    sender.open([LinkSpec("b", "out", ("out",))], [a.detach()])
    try:
        for seq in range(5):
            sender.send(outgoing([seq], seq))
        assert receiver.values == []
        inbound.drain()
        assert [v.to_pylist() for _inputs, v in receiver.values] == [[seq] for seq in range(5)]
        inbound.close()
        inbound.drain()  # after close: nothing to read, no error
        assert receiver.errors == []
        assert receiver.closed_inputs == []
    finally:
        sender.close()
        inbound.close()
