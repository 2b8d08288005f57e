"""A receiver that holds too much of its sender's shared memory misses newer messages, counted.

The receiver here keeps every value it gets (a `CollectingReceiver`), so it never releases a
segment: without the hold limit its sender's pool would grow by one segment per message.
"""

from __future__ import annotations

import gc
import socket

import numpy as np
import pyarrow as pa

from doradus.backends import LinkSpec
from doradus.backends._base import Outgoing
from doradus.backends._shm import ShmBackend
from doradus.testing import CollectingReceiver, outgoing

MIB = 1 << 20
LIMIT = 8 * MIB
WAIT = 10.0
"""Seconds to wait for what the reactor threads do at once (releases, counts)."""


Pair = tuple[ShmBackend, ShmBackend, ShmBackend | None]


def pair(receiver: CollectingReceiver, fan_out: bool = False) -> Pair:
    """A sender with a hold limit of `LIMIT` to ``b``, and (``fan_out``) an unlimited link to ``c``."""
    ends = []
    for _ in range(2 if fan_out else 1):
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        for sock in (a, b):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
        ends.append((a, b))
    inbound = ShmBackend("b", receiver)
    inbound.open([LinkSpec("a", "in", routes={"out": ["in"]})], [ends[0][1].detach()])
    inbound.start()
    other = None
    if fan_out:
        other = ShmBackend("c", CollectingReceiver())
        other.open([LinkSpec("a", "in", routes={"out": ["in"]})], [ends[1][1].detach()])
        other.start()
    specs = [LinkSpec("b", "out", ("out",), hold_limit=LIMIT)]
    if fan_out:
        specs.append(LinkSpec("c", "out", ("out",)))
    sender = ShmBackend("a", CollectingReceiver())
    sender.open(specs, [end[0].detach() for end in ends])
    sender.start()
    return sender, inbound, other


def message(index: int) -> Outgoing:
    """A 1 MiB message whose every value is ``index``."""
    out: Outgoing = outgoing(pa.array(np.full(MIB // 8, index, dtype=np.int64)), index)
    return out


def test_a_receiver_that_keeps_every_value_bounds_the_pool_and_counts_what_it_missed() -> None:
    receiver = CollectingReceiver()
    sender, inbound, _ = pair(receiver)
    try:
        sent = [sender.send(message(i)) for i in range(40)]
        # 1 MiB messages in 1 MiB segments: 8 fit in the limit; the other 32 are shed.
        assert sum(sent) == 8
        assert receiver.wait_for(lambda r: len(r.values) == 8 and r.dropped_counts.get("in") == 32, WAIT)
        stats = sender.statistics()
        assert stats.details["withheld"] == {"b": 32}
        assert stats.details["shared_memory"]["segments"] <= 9
        assert [v[1][0].as_py() for v in receiver.values] == list(range(8))

        # The node lets go of what it kept: its sender sends to it again.
        with receiver.changed:
            receiver.values.clear()
        gc.collect()
        for _ in range(int(WAIT / 0.05)):
            if sender.send(message(100)):
                break
            inbound.idle()  # what the node's thread does before it waits: the releases go
            receiver.wait_for(lambda r: False, 0.05)
        else:
            raise AssertionError("the receiver released everything, yet its sender still sheds")
        assert receiver.wait_for(lambda r: any(v[1][0].as_py() == 100 for v in r.values), WAIT)
        assert sender.statistics().details["shared_memory"]["segments"] <= 9
    finally:
        sender.close()
        inbound.close()


def test_only_the_receiver_over_its_limit_misses_messages() -> None:
    receiver = CollectingReceiver()
    sender, inbound, other = pair(receiver, fan_out=True)
    assert other is not None
    try:
        for i in range(20):
            sender.send(message(i))
        assert receiver.wait_for(lambda r: r.dropped_counts.get("in") == 12, WAIT)
        assert sender.statistics().details["withheld"] == {"b": 12}
    finally:
        sender.close()
        inbound.close()
        other.close()


def test_a_message_larger_than_the_limit_still_goes_to_a_receiver_holding_little() -> None:
    receiver = CollectingReceiver()
    sender, inbound, _ = pair(receiver)
    try:
        big = outgoing(pa.array(np.zeros(2 * LIMIT // 8, dtype=np.int64)), 0)
        assert sender.send(big) == 1
        assert sender.send(big) == 1  # it holds one: the second goes too (MIN_HELD)
        assert sender.send(big) == 0
        assert receiver.wait_for(lambda r: len(r.values) == 2 and r.dropped_counts.get("in") == 1, WAIT)
    finally:
        sender.close()
        inbound.close()
