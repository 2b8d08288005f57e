"""Malformed frames reaching a receiving node (tcp, shared memory) are dropped and counted, never fatal.

A hostile client connects to the node's listening port beside its real sender and writes
garbage: frames whose lengths do not add up, an output id that is not UTF-8, a frame of
another kind, a declared length no sender would use, greetings that are no node id. The
receiving backend keeps delivering the real sender's messages, in order, and counts every
dropped frame in ``statistics().details["malformed"]``.
"""

from __future__ import annotations

import socket
import struct

from doradus._wire.protocol import DATA, FLAG_SHM, KIND_DATA
from doradus.backends import LinkSpec
from doradus.backends._frames import encode_frame
from doradus.backends._shm_links import InLink, LinkReader
from doradus.backends._tcp import FRAME_MAX, HELLO_MAX, TcpBackend
from doradus.testing import CollectingReceiver
from doradus.testing._backend_kit import outgoing

LENGTH = struct.Struct("<Q")
# Generous: delivery on loopback takes milliseconds; this only bounds a failing test.
WAIT = 30.0


def _framed(payload: bytes) -> bytes:
    return LENGTH.pack(len(payload)) + payload


def _data_frame(output: bytes, kind: int = KIND_DATA, extra: bytes = b"") -> bytes:
    head = DATA.pack(kind, 0, len(output), 0, 0, 0, 0, 0, 0, 0, 0) + output
    return head + bytes(-len(head) % 8) + extra


GARBAGE_FRAMES = [
    b"hello",  # shorter than a header
    _data_frame(b"\xff\xfe"),  # output id not UTF-8
    _data_frame(b"out", kind=7),  # not a data frame
    _data_frame(b"out", extra=b"12345"),  # lengths do not add up
]


def _wait_malformed(backend: TcpBackend, count: int, receiver: CollectingReceiver) -> int:
    receiver.wait_for(lambda _r: backend.statistics().details["malformed"] >= count, WAIT)
    malformed: int = backend.statistics().details["malformed"]
    return malformed


def test_garbage_over_tcp_is_dropped_and_counted() -> None:
    receiver = CollectingReceiver()
    inbound = TcpBackend("b", receiver)
    inbound.open([LinkSpec("a", "in", routes={"out": ["in"]}, options={"listen": "127.0.0.1:0"})], [])
    inbound.start()
    assert inbound.address is not None
    host, port = inbound.address
    sender = TcpBackend("a", CollectingReceiver())
    sender.open([LinkSpec("b", "out", ("out",), options={"connect": f"{host}:{port}"})], [])
    sender.start()
    try:
        with socket.create_connection((host, port)) as hostile:
            hostile.sendall(_framed(b"a") + b"".join(_framed(f) for f in GARBAGE_FRAMES))
            assert _wait_malformed(inbound, len(GARBAGE_FRAMES), receiver) == len(GARBAGE_FRAMES)
            for seq in range(20):
                sender.send(outgoing([seq], seq))
            assert receiver.wait_for(lambda r: len(r.values) >= 20, WAIT), "good messages stopped arriving"
            assert [v.to_pylist()[0] for _inputs, v in receiver.values] == list(range(20))
            hostile.sendall(LENGTH.pack(FRAME_MAX + 1))  # refused at once: no memory reserved
            assert _wait_malformed(inbound, len(GARBAGE_FRAMES) + 1, receiver) == len(GARBAGE_FRAMES) + 1
            assert hostile.recv(1) == b"", "the node kept a connection declaring an impossible frame"
        for greeting in (_framed(b"\xff\xfe"), LENGTH.pack(HELLO_MAX + 1)):
            with socket.create_connection((host, port)) as hostile:
                hostile.sendall(greeting)
                assert hostile.recv(1) == b""
        assert _wait_malformed(inbound, len(GARBAGE_FRAMES) + 3, receiver) == len(GARBAGE_FRAMES) + 3
        assert receiver.closed_inputs == [], "garbage closed the real sender's input"
        for seq in range(20, 40):
            sender.send(outgoing([seq], seq))
        assert receiver.wait_for(lambda r: len(r.values) >= 40, WAIT), "good messages stopped arriving"
        assert [v.to_pylist()[0] for _inputs, v in receiver.values] == list(range(40))
        assert inbound.statistics().messages_received == 40
        assert (
            len([e for e in receiver.errors if "malformed" in e or "closed" in e]) == len(GARBAGE_FRAMES) + 3
        )
    finally:
        sender.close()
        inbound.close()


def test_garbage_on_a_shared_memory_link_is_dropped_and_counted() -> None:
    """The shm link reader, on a real socket pair: garbage datagrams dropped, counted, the next read."""
    receiver = CollectingReceiver()
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    link = InLink(1, "a", mine, {"out": ["in"]})
    reader = LinkReader(receiver.deliver, lambda _link: None, receiver.error)
    garbage = [
        b"x",  # shorter than a header
        DATA.pack(KIND_DATA, FLAG_SHM, 3, 0, 0, 0, 0, 0, 9, 4096, 0) + b"out",  # a segment, no descriptor
    ]
    try:
        for datagram in [*garbage, b"".join(encode_frame(outgoing([7], 7)))]:
            theirs.send(datagram)
        assert reader.drain(link), "the reader gave up on the link"
        assert link.malformed == len(garbage)
        assert len(receiver.errors) == len(garbage)
        assert [v.to_pylist() for _inputs, v in receiver.values] == [[7]]
    finally:
        mine.close()
        theirs.close()


def test_a_connection_without_the_runs_link_key_cannot_pose_as_a_sender() -> None:
    """A hostile client greets as the real sender, without (or with a wrong) link key, then leaves:
    refused and counted; the real sender's input stays open until the real sender ends."""
    receiver = CollectingReceiver()
    key = {"link_key": "k" * 32}
    inbound = TcpBackend("b", receiver)
    inbound.open([LinkSpec("a", "in", routes={"out": ["in"]}, options={"listen": "127.0.0.1:0", **key})], [])
    inbound.start()
    assert inbound.address is not None
    host, port = inbound.address
    sender = TcpBackend("a", CollectingReceiver())
    sender.open([LinkSpec("b", "out", ("out",), options={"connect": f"{host}:{port}", **key})], [])
    sender.start()
    try:
        for greeting in (b"a", b"a\n" + b"x" * 32):
            with socket.create_connection((host, port)) as hostile:
                hostile.sendall(_framed(greeting) + _framed(_data_frame(b"out")))
                try:
                    closed = hostile.recv(1) == b""
                except ConnectionResetError:  # closed with our frame unread
                    closed = True
                assert closed, "the node kept a connection without the link key"
        assert _wait_malformed(inbound, 2, receiver) == 2
        assert any("without this run's link key" in e for e in receiver.errors)
        for seq in range(10):
            sender.send(outgoing([seq], seq))
        assert receiver.wait_for(lambda r: len(r.values) >= 10, WAIT), "good messages stopped arriving"
        assert receiver.closed_inputs == [], "a posing client closed the real sender's input"
    finally:
        sender.close()
    assert receiver.wait_for(lambda r: r.closed_inputs == [("in",)] or r.closed_inputs == ["in"], WAIT), (
        receiver.closed_inputs
    )
    inbound.close()
