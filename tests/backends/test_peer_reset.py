"""A peer that ends with datagrams of ours unread: what it sent last still arrives.

Linux reports ``ECONNRESET`` once on an ``AF_UNIX`` socket whose peer closed with unread
datagrams in its queue, *before* the datagrams the peer sent last. A reader that took the reset
for the end lost those silently: a sender that exited without reading its receiver's last
releases lost its last messages (found by the eight-thread send test, under load).
"""

from __future__ import annotations

import gc
import os
import socket

import numpy as np

from doradus._wire.control import recv_json, send_json
from doradus.backends import LinkSpec
from doradus.backends._shm import ShmBackend
from doradus.testing import CollectingReceiver, outgoing

WAIT = 10.0


def test_a_sender_ending_with_releases_unread_loses_none_of_its_last_messages() -> None:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    receiver = CollectingReceiver()
    inbound = ShmBackend("b", receiver)
    inbound.open([LinkSpec("a", "in", routes={"out": ["in"]})], [b.detach()])
    sender = ShmBackend("a", CollectingReceiver())  # never started: it reads nothing coming back
    sender.open([LinkSpec("b", "out", ("out",))], [a.detach()])
    wake = os.eventfd(0, os.EFD_CLOEXEC)
    try:
        sender.send(outgoing(np.zeros(100_000, np.uint8), 0))  # in shared memory: released later
        for _ in range(int(WAIT / 0.1)):
            inbound.wait(0.1, wake)  # the node's thread reading, as in `next()`
            if receiver.values:
                break
        assert len(receiver.values) == 1
        receiver.values.clear()
        gc.collect()
        inbound.idle()  # the release goes back; the sender never reads it
        for seq in range(1, 11):
            sender.send(outgoing([seq], seq))
        sender.close()  # with the release unread: the receiver's socket reports ECONNRESET first
        inbound.start()
        assert receiver.wait_for(lambda r: "in" in r.closed_inputs, WAIT)
        assert [v.to_pylist() for _inputs, v in receiver.values] == [[seq] for seq in range(1, 11)]
        assert receiver.errors == []
    finally:
        os.close(wake)
        sender.close()
        inbound.close()


def test_a_control_peer_ending_with_messages_unread_still_delivers_its_last_one() -> None:
    daemon, node = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    send_json(daemon, {"op": "stop"})  # the node never reads it
    send_json(node, {"op": "stats", "final": True})
    node.close()
    assert recv_json(daemon) == ({"op": "stats", "final": True}, [])
    assert recv_json(daemon) == (None, [])
    daemon.close()
