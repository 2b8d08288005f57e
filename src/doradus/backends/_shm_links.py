"""The two ends of a node-to-node link, and the thread that reads them.

An ``OutLink`` is the sending end: data goes out, releases come back. An
``InLink`` is the receiving end: data comes in, releases go back. A
``LinkReader`` turns datagrams into inbox entries; the node's thread reads with
one while it waits for events, and the ``Reactor`` thread with another while
the node is busy, so a fast sender never waits on a busy receiver.

Example:
    >>> import socket
    >>> a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    >>> OutLink(1, "b", a, ("out",)).peer
    'b'
    >>> a.close(); b.close()
"""

from __future__ import annotations

import os
import select
import socket
import threading
import weakref
from collections.abc import Callable
from typing import Any

from doradus._protocol import (
    DATA,
    FLAG_FD,
    FLAG_SHM,
    KIND_DATA,
    KIND_RELEASE,
    MAX_RELEASES,
    RECV_BUFFER,
    RELEASE_HEAD,
    SEG_ID,
    fds_from,
)
from doradus.backends._segments import Lease, Mapping

_ANC = socket.CMSG_SPACE(4 * 4)


class OutLink:
    """The sending end of a link to one receiving node."""

    def __init__(self, link_id: int, peer: str, sock: socket.socket, outputs: tuple[str, ...]) -> None:
        self.id = link_id
        self.peer = peer
        self.sock = sock
        self.outputs = outputs
        self.alive = True
        self.lock = threading.Lock()
        self.outstanding: dict[int, int] = {}
        self.sent = 0
        self.known_forwards: set[int] = set()
        """Forwarded segments whose descriptor this receiver already has."""

    def track(self, seg_id: int) -> None:
        """The receiver now holds one more reference to ``seg_id``."""
        with self.lock:
            self.outstanding[seg_id] = self.outstanding.get(seg_id, 0) + 1

    def untrack(self, seg_id: int) -> bool:
        """The receiver released ``seg_id``; False if it was not held."""
        with self.lock:
            count = self.outstanding.get(seg_id, 0)
            if count <= 0:
                return False
            if count == 1:
                del self.outstanding[seg_id]
            else:
                self.outstanding[seg_id] = count - 1
            return True


class InLink:
    """The receiving end of a link from one sending node."""

    def __init__(self, link_id: int, peer: str, sock: socket.socket, routes: dict[str, list[str]]) -> None:
        self.id = link_id
        self.peer = peer
        self.sock = sock
        self.routes: dict[bytes, tuple[str, ...]] = {k.encode(): tuple(v) for k, v in routes.items()}
        self.inputs: tuple[str, ...] = tuple(i for v in routes.values() for i in v)
        self.mappings: dict[int, Mapping] = {}
        self.leases: weakref.WeakValueDictionary[int, Lease] = weakref.WeakValueDictionary()
        """The live lease of each mapped segment (one message per segment at a time)."""
        self.received = 0
        self.closed = False
        self.pending: list[int] = []
        self.lock = threading.Lock()
        """Held while reading: one thread at a time, so order is kept."""

    def release(self, seg_id: int) -> None:
        """Note that we are done with ``seg_id`` (called from finalizers, any thread).

        The release travels with the next :meth:`flush`; ``list.append`` is atomic,
        so no lock is taken in a finalizer.
        """
        self.pending.append(seg_id)

    def flush(self) -> None:
        """Send the noted releases in one datagram."""
        pending = self.pending
        if not pending:
            return
        self.pending = []
        if self.closed:
            return
        for start in range(0, len(pending), MAX_RELEASES):
            chunk = pending[start : start + MAX_RELEASES]
            data = RELEASE_HEAD.pack(KIND_RELEASE, len(chunk)) + b"".join(SEG_ID.pack(s) for s in chunk)
            try:
                self.sock.send(data)
            except OSError:
                return


class LinkReader:
    """Reads the datagrams of receiving ends; one per reading thread (it owns a buffer).

    ``deliver(input_ids, entry)`` receives each data message (once per
    message, with every input it feeds); ``on_closed(link)`` runs once when a
    sender is gone; ``on_error(text)`` when a datagram could not be read.
    """

    def __init__(
        self,
        deliver: Callable[[tuple[str, ...], tuple[Any, ...]], None],
        on_closed: Callable[[InLink], None],
        on_error: Callable[[str], None],
    ) -> None:
        self._deliver = deliver
        self._on_closed = on_closed
        self._on_error = on_error
        self._view = memoryview(bytearray(RECV_BUFFER))

    def drain(self, link: InLink, once: bool = False) -> bool:
        """Read the datagrams waiting on ``link``; False once the link is closed.

        With ``once``, stop after one datagram: the caller's level-triggered
        epoll reports the link again if more wait, and the common case of one
        message costs no failed read.
        """
        with link.lock:
            if link.closed:
                return False
            sock = link.sock
            view = self._view
            while True:
                try:
                    nbytes, ancdata, _flags, _addr = sock.recvmsg_into([view], _ANC, socket.MSG_DONTWAIT)
                except BlockingIOError:
                    return True
                except OSError:
                    nbytes, ancdata = 0, []
                if nbytes == 0 and not ancdata:
                    link.closed = True
                    self._on_closed(link)
                    return False
                try:
                    self._on_data(link, bytes(view[:nbytes]), ancdata)
                except Exception as exc:  # a malformed datagram must not kill the reader
                    self._on_error(f"dropped a malformed message from {link.peer!r}: {exc!r}")
                if once:
                    return True

    def _on_data(self, link: InLink, data: bytes, ancdata: list[Any]) -> None:
        (kind, flags, out_len, type_len, layout_len, meta_len, _seq, stamp, seg_id, seg_size, seg_off) = (
            DATA.unpack_from(data, 0)
        )
        if kind != KIND_DATA:
            return
        pos = DATA.size
        inputs = link.routes.get(data[pos : pos + out_len])
        lease: Lease | None = None
        if flags & FLAG_SHM:
            if flags & FLAG_FD:
                fd = fds_from(ancdata)[0]
                try:
                    link.mappings[seg_id] = Mapping(fd, seg_size)
                except OSError:
                    os.close(fd)
                    raise
            lease = Lease(link.mappings[seg_id], seg_id, link.release)
            link.leases[seg_id] = lease
        if not inputs:
            return  # nobody here listens to this output; the lease releases on return
        link.received += 1
        self._deliver(
            inputs, (data, pos + out_len, type_len, layout_len, meta_len, stamp, lease, seg_off, flags)
        )


class Reactor:
    """The node's background thread: drains receiving ends while the node is busy.

    It also applies the releases coming back on sending ends, and notices
    receivers going away. Receiving ends are registered with
    ``EPOLLEXCLUSIVE``, after the node thread's own registrations: the kernel
    then wakes the node thread when it is waiting, and this thread otherwise.
    """

    def __init__(
        self,
        reader: LinkReader,
        on_release: Callable[[int], None],
        on_receiver_gone: Callable[[OutLink, dict[int, int]], None],
    ) -> None:
        self._on_release = on_release
        self._on_receiver_gone = on_receiver_gone
        self._reader = reader
        self._epoll = select.epoll()
        self._targets: dict[int, InLink | OutLink | None] = {}
        self._thread = threading.Thread(target=self._run, name="doradus-reactor", daemon=True)
        self._wake_r, self._wake_w = os.pipe()
        self._running = True
        self.in_links: list[InLink] = []

    def add_in(self, link: InLink) -> None:
        """Watch a receiving end."""
        self.in_links.append(link)
        self._register(link.sock.fileno(), link, select.EPOLLIN | select.EPOLLEXCLUSIVE)

    def add_out(self, link: OutLink) -> None:
        """Watch a sending end (for releases and the receiver going away)."""
        self._register(link.sock.fileno(), link, select.EPOLLIN)

    def _register(self, fd: int, target: InLink | OutLink | None, events: int) -> None:
        self._targets[fd] = target
        self._epoll.register(fd, events)

    def start(self) -> None:
        """Start the thread."""
        self._register(self._wake_r, None, select.EPOLLIN)
        self._thread.start()

    def stop(self) -> None:
        """Ask the thread to end (idempotent)."""
        if self._running:
            self._running = False
            try:
                os.write(self._wake_w, b"x")
            except OSError:
                pass

    def _run(self) -> None:
        poll = self._epoll.poll
        while self._running:
            for link in self.in_links:
                if link.pending:  # releases of messages this thread dropped
                    link.flush()
            for fd, _events in poll():
                target = self._targets.get(fd)
                if target is None:
                    if fd == self._wake_r:
                        return
                    continue
                if isinstance(target, InLink):
                    if not self._reader.drain(target):
                        self._forget(fd)
                else:
                    self._read_out(fd, target)

    def _forget(self, fd: int) -> None:
        self._targets.pop(fd, None)
        try:
            self._epoll.unregister(fd)
        except (OSError, ValueError):
            pass

    def _read_out(self, fd: int, link: OutLink) -> None:
        sock = link.sock
        while True:
            try:
                data = sock.recv(RELEASE_HEAD.size + MAX_RELEASES * SEG_ID.size, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self._forget(fd)
                self._receiver_gone(link)
                return
            kind, count = RELEASE_HEAD.unpack_from(data, 0)
            if kind != KIND_RELEASE or len(data) != RELEASE_HEAD.size + count * SEG_ID.size:
                continue
            for (seg_id,) in SEG_ID.iter_unpack(memoryview(data)[RELEASE_HEAD.size :]):
                if link.untrack(seg_id):
                    self._on_release(seg_id)

    def _receiver_gone(self, link: OutLink) -> None:
        link.alive = False
        with link.lock:
            held = dict(link.outstanding)
            link.outstanding.clear()
        self._on_receiver_gone(link, held)
