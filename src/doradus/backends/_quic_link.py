"""The ``quic`` backend's connections: records on a QUIC stream, and the protocol of each connection.

`LinkProtocol` is aioquic's protocol for one connection of a `QuicBackend`, on
either side: the sender's side (`Outbound`) reads the receiver's
acknowledgements, the receiver's side (`Inbound`) splits the stream into
records (`RecordReader`) and hands frames to the backend. Imported only when
a QUIC link opens (it needs ``aioquic``).

Example:
    >>> [bytes(r) for r in RecordReader().feed(LENGTH.pack(2) + b"hi")]
    [b'hi']
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.quic import events
from aioquic.quic.connection import QuicConnection

from doradus.backends._quic import ACK_EVERY, HELLO_MAX, LENGTH

if TYPE_CHECKING:
    from doradus.backends._quic import QuicBackend


class RecordReader:
    """Splits a byte stream into length-prefixed records (8-byte little-endian length, then the bytes).

    Example:
        >>> reader = RecordReader()
        >>> data = LENGTH.pack(2) + b"hi" + LENGTH.pack(0)
        >>> [bytes(r) for r in reader.feed(data[:5]) + reader.feed(data[5:])]
        [b'hi', b'']
    """

    def __init__(self) -> None:
        self._head = bytearray()
        self._body: bytearray | None = None
        self._got = 0

    def feed(self, data: bytes) -> list[bytearray]:
        """The records that ``data`` completes, in order."""
        done: list[bytearray] = []
        view = memoryview(data)
        pos, end = 0, len(view)
        while pos < end:
            if self._body is None:
                take = view[pos : pos + LENGTH.size - len(self._head)]
                self._head += take
                pos += len(take)
                if len(self._head) == LENGTH.size:
                    size = LENGTH.unpack(self._head)[0]
                    self._head.clear()
                    self._body, self._got = bytearray(size), 0
                    if size == 0:
                        done.append(self._body)
                        self._body = None
            else:
                body = self._body
                take_n = min(len(body) - self._got, end - pos)
                body[self._got : self._got + take_n] = view[pos : pos + take_n]
                self._got += take_n
                pos += take_n
                if self._got == len(body):
                    done.append(body)
                    self._body = None
        return done


@dataclass
class Outbound:
    """The sender's side of one link, touched only from the loop thread."""

    protocol: LinkProtocol
    transport: asyncio.DatagramTransport
    stream_id: int
    written: int = 0
    acked: int = 0
    progress: asyncio.Event = field(default_factory=asyncio.Event)
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    broken: str | None = None
    acks: bytearray = field(default_factory=bytearray)
    pending: deque[bytes] = field(default_factory=deque)
    """Records handed over by senders, not yet written to the stream (guarded by ``cond``)."""
    pending_bytes: int = 0
    scheduled: bool = False
    cond: threading.Condition = field(default_factory=threading.Condition)


@dataclass
class Inbound:
    """The receiver's side of one stream."""

    reader: RecordReader = field(default_factory=RecordReader)
    peer: str | None = None
    received: int = 0
    acked: int = 0


class LinkProtocol(QuicConnectionProtocol):
    """One QUIC connection of a `QuicBackend`, on either side.

    Example::

        create_protocol=lambda *a, **kw: LinkProtocol(*a, backend=backend, **kw)
    """

    def __init__(self, quic: QuicConnection, *args: Any, backend: QuicBackend, **kwargs: Any) -> None:
        super().__init__(quic, *args, **kwargs)
        self.backend = backend
        self.outbound: Outbound | None = None
        self.inbound: dict[int, Inbound] = {}

    def error_received(self, exc: Exception) -> None:
        """An ICMP error (nobody listens there): fail a handshake in progress at once."""
        waiter = self._connected_waiter
        if waiter is not None and not waiter.done():
            self._connected_waiter = None
            waiter.set_exception(ConnectionRefusedError(str(exc)))

    def quic_event_received(self, event: events.QuicEvent) -> None:
        """Route stream data and connection ends to the sender's or the receiver's side."""
        if isinstance(event, events.StreamDataReceived):
            if self.outbound is not None:
                self._acks(self.outbound, event)
            else:
                self._records(event)
        elif isinstance(event, events.ConnectionTerminated):
            out = self.outbound
            if out is not None:
                if not out.finished.is_set():
                    out.broken = event.reason_phrase or f"connection closed (error {event.error_code})"
                out.progress.set()
                out.finished.set()
                with out.cond:
                    out.cond.notify_all()
            for state in self.inbound.values():
                if state.peer is not None:
                    self.backend.peer_gone(state.peer)

    def _acks(self, out: Outbound, event: events.StreamDataReceived) -> None:
        out.acks += event.data
        usable = len(out.acks) - len(out.acks) % LENGTH.size
        if usable:
            out.acked = LENGTH.unpack_from(out.acks, usable - LENGTH.size)[0]
            del out.acks[:usable]
            out.progress.set()
            self.backend._flush(out)
        if event.end_stream:
            out.finished.set()

    def _records(self, event: events.StreamDataReceived) -> None:
        state = self.inbound.get(event.stream_id)
        if state is None:
            state = self.inbound[event.stream_id] = Inbound()
        for record in state.reader.feed(event.data):
            if state.peer is None:
                if len(record) > HELLO_MAX:
                    self.close(reason_phrase="a sender id longer than 4096 B")
                    return
                state.peer = record.decode()
                continue
            self.backend._frame(state.peer, record)
        state.received += len(event.data)
        if event.end_stream:
            self._quic.send_stream_data(event.stream_id, LENGTH.pack(state.received), end_stream=True)
            if state.peer is not None:
                self.backend.peer_gone(state.peer)  # no-op when an END frame already closed its inputs
        elif state.received - state.acked >= ACK_EVERY:
            state.acked = state.received
            self._quic.send_stream_data(event.stream_id, LENGTH.pack(state.received))
