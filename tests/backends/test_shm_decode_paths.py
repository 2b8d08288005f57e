"""What the ``shm`` backend reads, decoded on the node's own thread: every value layout, both ways
a payload travels (inside the datagram, in a shared-memory segment), and malformed layouts."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from doradus._exceptions import DecodeError
from doradus._node.inbox import Inbox
from doradus._node.receive import InboxReceiver, decode_input
from doradus._wire.metadata import TIMESTAMP, encode_metadata
from doradus._wire.protocol import INLINE_MAX
from doradus._wire.values import layout_struct, plan_value, type_blob
from doradus.backends import LinkSpec
from doradus.backends._shm import ShmBackend
from doradus.testing import CollectingReceiver, outgoing

DEADLINE = 10.0  # seconds; generous, for loaded machines

VALUES = {
    "int64": pa.array([1, 2, 3], pa.int64()),
    "empty": pa.array([], pa.float32()),
    "uint8-inline-max": pa.array(np.arange(INLINE_MAX, dtype=np.uint8)),
    "uint8-shared": pa.array(np.arange(INLINE_MAX + 1, dtype=np.uint8)),
    "float64-shared": pa.array(np.linspace(0, 1, 200_000)),
    "with-nulls": pa.array([1, None, 3], pa.int32()),
    "sliced": pa.array(np.arange(100, dtype=np.int16)).slice(7, 50),
    "bool": pa.array([True, False, True]),
    "strings": pa.array(["a", "bc", ""]),
    "strings-shared": pa.array(["x" * 1000] * 100),
    "timestamps": pa.array([0, 10**18], pa.timestamp("ns")),
    "nested": pa.array([[1, 2], [3]]),
}


class Pair:
    """Node ``a`` sending on ``out`` to node ``b``, whose inbox reads on the consumer's thread."""

    def __init__(self) -> None:
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        for sock in (a, b):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
        self.inbox = Inbox({"in": 4})
        self.inbound = ShmBackend("b", InboxReceiver(self.inbox))
        self.inbound.open([LinkSpec("a", "in", routes={"out": ["in"]})], [b.detach()])
        self.inbox.waiter = self.inbound.wait
        self.inbound.start()
        self.sender = ShmBackend("a", CollectingReceiver())
        self.sender.open([LinkSpec("b", "out", ("out",))], [a.detach()])
        self.sender.start()

    def entry(self, array: pa.Array, metadata: dict[str, Any] | None = None) -> tuple[Any, ...]:
        message = outgoing(array, 1)
        if metadata:
            message = message._replace(metadata=encode_metadata(metadata))
        assert self.sender.send(message) == 1
        got = self.inbox.pop(DEADLINE)
        assert got is not None, "nothing arrived"
        input_id, item = got
        assert input_id == "in"
        return tuple(item)

    def close(self) -> None:
        self.sender.close()
        self.inbound.close()
        self.inbox.close()


@pytest.fixture
def pair() -> Iterator[Pair]:
    p = Pair()
    try:
        yield p
    finally:
        p.close()


@pytest.mark.parametrize("name", sorted(VALUES))
def test_every_layout_arrives_equal(pair: Pair, name: str) -> None:
    sent = VALUES[name]
    got = decode_input("in", pair.entry(sent, {"t": 5, "seq": 1}))
    assert got.value.type == sent.type
    assert got.value.equals(sent)
    assert (got.metadata["t"], got.metadata["seq"]) == (5, 1)
    assert TIMESTAMP in got.metadata


def test_a_shared_memory_value_is_read_in_place(pair: Pair) -> None:
    item = pair.entry(VALUES["float64-shared"])
    lease = item[6]
    assert lease is not None, "a value above INLINE_MAX travels in a segment"
    value = decode_input("in", item).value
    data = value.buffers()[1]
    assert lease.mapping.address <= data.address
    assert data.address + data.size <= lease.mapping.address + lease.mapping.size


def test_the_datagram_arrives_whole_and_alone(pair: Pair) -> None:
    # Read as bytes of the datagram's own size: nothing of a longer one read before it remains.
    big = pair.entry(VALUES["uint8-inline-max"])
    small = pair.entry(VALUES["int64"])
    assert isinstance(small[0], bytes)
    assert len(small[0]) < 1024 < INLINE_MAX < len(big[0])
    assert decode_input("in", big).value.equals(VALUES["uint8-inline-max"])  # still intact


def test_messages_inline_and_shared_arrive_in_order_through_the_reader_thread() -> None:
    count = 2000
    receiver = CollectingReceiver()
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    inbound = ShmBackend("b", receiver)
    inbound.open([LinkSpec("a", "in", routes={"out": ["in"]})], [b.detach()])
    inbound.start()
    sender = ShmBackend("a", CollectingReceiver())
    sender.open([LinkSpec("b", "out", ("out",))], [a.detach()])
    try:
        sizes = [8, 4096, INLINE_MAX, INLINE_MAX + 8]
        for seq in range(count):
            size = sizes[seq % len(sizes)]
            value = np.full(size // 8, seq, dtype=np.int64)
            sender.send(outgoing(value, seq))
        assert receiver.wait_for(lambda r: len(r.values) >= count, DEADLINE)
        firsts = [v[0].as_py() for _inputs, v in receiver.values]
        assert firsts == list(range(count))
        assert receiver.errors == []
    finally:
        sender.close()
        inbound.close()


# --- malformed layouts (a sender is not trusted) ---------------------------------------------------


def _forged(
    array: pa.Array,
    layout_fields: tuple[int, ...],
    *,
    payload: bytes | None = None,
    blob: bytes | None = None,
) -> tuple[Any, ...]:
    """An inline entry for ``array``'s type with a layout of two buffers made of ``layout_fields``."""
    plan = plan_value(array)
    blob = type_blob(array.type) if blob is None else blob
    layout = layout_struct(2).pack(*layout_fields)
    body = bytes(plan.size) if payload is None else payload
    head = blob + layout
    data = head + bytes(-len(head) % 8) + body
    return (data, 0, len(blob), len(layout), 0, 0, None, 0, 0)


def test_a_plain_layout_is_rebuilt_from_the_message() -> None:
    item = _forged(
        pa.array([7, 8], pa.int64()),
        (2, 0, 0, 2, -1, 0, 0, 16),
        payload=pa.array([7, 8]).buffers()[1].to_pybytes(),
    )
    assert decode_input("x", item).value.to_pylist() == [7, 8]


@pytest.mark.parametrize(
    ("layout_fields", "reason"),
    [
        ((2, 0, 0, 2, -1, 0, 0, 17), "outside"),  # one byte past the message
        ((2, 0, 0, 2, -1, 0, 8, 16), "outside"),
        ((4, 0, 0, 2, -1, 0, 0, 16), "rebuild"),  # four int64 in 16 bytes
        ((-1, 0, 0, 2, -1, 0, 0, 16), "length"),
        ((2, 0, -1, 2, -1, 0, 0, 16), "offset"),
        ((2, 0, 0, 2, -1, 0, -5, 16), "rebuild"),  # no data buffer
    ],
    ids=[
        "past-the-end",
        "shifted-past-the-end",
        "too-short",
        "negative-length",
        "negative-offset",
        "no-data",
    ],
)
def test_a_malformed_plain_layout_is_a_decode_error(layout_fields: tuple[int, ...], reason: str) -> None:
    item = _forged(pa.array([7, 8], pa.int64()), layout_fields)
    with pytest.raises(DecodeError, match=reason):
        decode_input("x", item)


def test_a_plain_layout_for_a_type_of_three_buffers_is_a_decode_error() -> None:
    item = _forged(pa.array([7, 8], pa.int64()), (2, 0, 0, 2, -1, 0, 0, 16), blob=type_blob(pa.string()))
    with pytest.raises(DecodeError, match="rebuild"):
        decode_input("x", item)


def test_a_layout_past_the_segment_is_a_decode_error(pair: Pair) -> None:
    item = list(pair.entry(VALUES["uint8-shared"]))
    lease = item[6]
    item[7] = lease.mapping.size - 8  # the payload said to start near the segment's end
    with pytest.raises(DecodeError, match="segment"):
        decode_input("in", tuple(item))


def test_decoding_in_many_threads_at_once_gives_each_its_own_value(pair: Pair) -> None:
    items = [pair.entry(pa.array(np.full(16, n, dtype=np.int32))) for n in range(8)]
    results: dict[int, list[int]] = {}

    def decode(n: int) -> None:
        for _ in range(200):
            values = decode_input("in", items[n]).value.to_pylist()
            assert values == [n] * 16
        results[n] = values

    threads = [threading.Thread(target=decode, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(DEADLINE)
    assert sorted(results) == list(range(8))
