"""The two ends of a node-to-node link, and the thread that reads them.

An ``OutLink`` is the sending end: data goes out, releases come back. An
``InLink`` is the receiving end: data comes in, releases go back. A
``LinkReader`` turns datagrams into inbox entries; the node's thread reads with
one while it waits for events, and the ``Reactor`` thread with another while
the node is busy, so a fast sender never waits on a busy receiver.

A receiver that cannot map a segment (its descriptor was cut off at the
process's open-file limit, or the mapping failed) drops the message, reports
a :class:`~doradus.ResourceLimitError` naming the limit and the fix, and
releases the segment with ``LOST_BIT`` set: its sender then passes the
descriptor again (or uses another segment) instead of sending it more messages
it cannot read.

Example:
    >>> import socket
    >>> a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    >>> OutLink(1, "b", a, ("out",)).peer
    'b'
    >>> a.close(); b.close()
"""

from __future__ import annotations

import errno
import os
import select
import socket
import threading
import weakref
from collections.abc import Callable
from typing import Any

from doradus._exceptions import DecodeError, ResourceLimitError
from doradus._wire.control import fds_from
from doradus._wire.protocol import (
    DATA,
    FLAG_FD,
    FLAG_SHM,
    KIND_DATA,
    KIND_RELEASE,
    MAX_RELEASES,
    RECV_BUFFER,
    RELEASE_HEAD,
    SEG_ID,
)
from doradus.backends._flow import SendGate, is_flow
from doradus.backends._segments import Lease, Mapping
from doradus.backends._shm_forward import ReceivedFds
from doradus.backends._shm_holds import DEFAULT_HOLD_LIMIT, tell_shed

_ANC = socket.CMSG_SPACE(4 * 4)
_unpack_header = DATA.unpack_from  # `unpack_data` without its call: this runs once per message
LOST_BIT = 1 << 63
"""Set on a released segment id the receiver could not map: it needs the descriptor again."""


def _out_of_files() -> ResourceLimitError:
    """Receiving a descriptor found no free slot (``MSG_CTRUNC``): ``EMFILE``, said plainly."""
    err = ResourceLimitError.from_os_error(OSError(errno.EMFILE, ""), "receiving a shared-memory segment")
    assert err is not None  # EMFILE is a known limit
    return err


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
        self.gate: SendGate | None = None
        """Room left in the receiver's backpressure inputs (None: it has none fed by this link)."""
        self.held = False
        """The receiver may be restarted when it ends: what is not sent to it meanwhile is counted."""
        self.hold_limit = DEFAULT_HOLD_LIMIT
        """Bytes of shared memory the receiver may hold before messages to it are shed (`_shm_holds`)."""
        self.held_bytes = 0
        """Bytes of the segments the receiver holds (each counted once per message sent in it)."""
        self.held_count = 0
        """Messages sent in segments that the receiver has not released yet."""
        self._sizes: dict[int, int] = {}
        self.shed: dict[bytes, int] = {}
        """Per output, messages shed that the receiver has not been told of yet."""
        self.withheld = 0
        """Messages not sent to the receiver because it held too much (`_shm_holds`)."""

    def track(self, seg_id: int, size: int) -> None:
        """The receiver now holds one more reference to ``seg_id`` (a segment of ``size`` bytes)."""
        with self.lock:
            self.outstanding[seg_id] = self.outstanding.get(seg_id, 0) + 1
            self._sizes[seg_id] = size
            self.held_bytes += size
            self.held_count += 1

    def untrack(self, seg_id: int) -> bool:
        """The receiver released ``seg_id``; False if it was not held."""
        with self.lock:
            count = self.outstanding.get(seg_id, 0)
            if count <= 0:
                return False
            if count == 1:
                del self.outstanding[seg_id]
                size = self._sizes.pop(seg_id, 0)
            else:
                self.outstanding[seg_id] = count - 1
                size = self._sizes.get(seg_id, 0)
            self.held_bytes -= size
            self.held_count -= 1
            return True

    def release_all(self) -> dict[int, int]:
        """The receiver is gone: forget what it held; returns segment id → references it held."""
        with self.lock:
            held = dict(self.outstanding)
            self.outstanding.clear()
            self._sizes.clear()
            self.held_bytes = self.held_count = 0
            return held


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
        self.malformed = 0
        """Datagrams dropped because they could not be read."""
        self.closed = False
        self.superseded = False
        """Its sender is restarting: the end of this link is not the end of its inputs."""
        self.held = False
        """Its sender may be restarted when it ends: the end waits for the daemon's word."""
        self.unwatched = False
        """The reactor no longer watches it (it ended): the node's thread may close its socket."""
        self.awaiting = False
        """The link ended while held: its inputs close if the daemon says the end is for good."""
        self.pending: list[int] = []
        self.starved = False
        """True from a message lost to a resource limit until a segment maps again (one report)."""
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
    """Reads the datagrams of receiving ends; one per reading thread.

    ``deliver(input_ids, entry)`` receives each data message (once per
    message, with every input it feeds); ``on_closed(link)`` runs once when a
    sender is gone; ``on_error(text)`` when a datagram could not be read.
    Received segment descriptors go to ``fds`` once mapped (kept or closed).
    """

    def __init__(
        self,
        deliver: Callable[[tuple[str, ...], tuple[Any, ...]], None],
        on_closed: Callable[[InLink], None],
        on_error: Callable[[str], None],
        fds: ReceivedFds | None = None,
    ) -> None:
        self._deliver = deliver
        self._on_closed = on_closed
        self._on_error = on_error
        self._fds = ReceivedFds(0) if fds is None else fds
        self.on_flow: Callable[[InLink, bytes], None] | None = None
        """Takes a flow message (`doradus.backends._flow`) that came on a link; None: ignored."""

    def drain(self, link: InLink, once: bool = False) -> bool:
        """Read the datagrams waiting on ``link``; False once the link is closed.

        With ``once``, stop after one datagram: the caller's level-triggered
        epoll reports the link again if more wait, and the common case of one
        message costs no failed read.
        """
        with link.lock:
            if link.closed:
                return False
            recvmsg = link.sock.recvmsg
            while True:
                try:
                    # The datagram as bytes of its own size: one copy out of the kernel, none
                    # after (the entry handed on keeps it, so a shared buffer could not be reused).
                    data, ancdata, msg_flags, _addr = recvmsg(RECV_BUFFER, _ANC, socket.MSG_DONTWAIT)
                except BlockingIOError:
                    return True
                except ConnectionResetError:
                    # The sender ended with datagrams of ours (releases) unread: the kernel says
                    # so once, *before* the datagrams it sent last. Those are still to be read.
                    continue
                except OSError:
                    data, ancdata, msg_flags = b"", [], 0
                if not data and not ancdata:
                    link.closed = True
                    self._on_closed(link)
                    return False
                fds = fds_from(ancdata) if ancdata else []
                try:
                    self._on_data(link, data, fds, msg_flags & socket.MSG_CTRUNC != 0)
                except ResourceLimitError as exc:
                    if not link.starved:  # once, not once per lost message
                        link.starved = True
                        self._on_error(
                            f"dropped a message from {link.peer!r} (and drops more until fixed): {exc}"
                        )
                except Exception as exc:  # a malformed datagram must not kill the reader
                    link.malformed += 1
                    self._on_error(f"dropped a malformed message from {link.peer!r}: {exc!r}")
                finally:
                    for fd in fds:  # whatever a mapping did not take (a sender may attach any)
                        if fd >= 0:
                            os.close(fd)
                if once:
                    return True

    def _on_data(self, link: InLink, data: bytes, fds: list[int], truncated: bool) -> None:
        """Deliver one datagram; a descriptor ``fds`` loses to a mapping is set to -1 there."""
        if data[0] != KIND_DATA:  # a flow message (backpressure), else garbage: counted by the caller
            if not is_flow(data):
                raise ValueError(f"a datagram of unknown kind {data[0]} ({len(data)} B)")
            if self.on_flow is not None:
                self.on_flow(link, data)
            return
        (kind, flags, out_len, type_len, layout_len, meta_len, _seq, stamp, seg_id, seg_size, seg_off) = (
            _unpack_header(data)
        )
        if kind != KIND_DATA:
            return
        pos = DATA.size
        inputs = link.routes.get(data[pos : pos + out_len])
        lease: Lease | None = None
        if flags & FLAG_SHM:
            try:
                mapping = self._mapping(link, flags, seg_id, seg_size, fds, truncated)
            except Exception:
                link.release(seg_id | LOST_BIT)  # the sender must not wait for this one, nor reuse it blind
                raise
            lease = Lease(mapping, seg_id, link.release)
            link.leases[seg_id] = lease
        if not inputs:
            return  # nobody here listens to this output; the lease releases on return
        link.received += 1
        self._deliver(
            inputs, (data, pos + out_len, type_len, layout_len, meta_len, stamp, lease, seg_off, flags)
        )

    def _mapping(
        self, link: InLink, flags: int, seg_id: int, seg_size: int, fds: list[int], truncated: bool
    ) -> Mapping:
        """The mapping of segment ``seg_id``: mapped now if its descriptor came along."""
        if not flags & FLAG_FD:
            mapping = link.mappings.get(seg_id)
            if mapping is None:
                if link.starved:  # its descriptor was among those cut off
                    raise _out_of_files()
                raise DecodeError(f"segment {seg_id} was never received")
            return mapping
        if not fds:
            if truncated:  # the kernel had no descriptor slot left for it
                raise _out_of_files()
            raise DecodeError("a shared-memory message without its segment's descriptor")
        fd = fds[0]
        try:
            mapping = Mapping(fd, seg_size)
        except ResourceLimitError:
            raise  # an OSError too, but not a bad message
        except OSError as exc:
            raise DecodeError(f"cannot map segment {seg_id}: {exc}") from exc
        fds[0] = -1  # handed over: kept for forwarding, or closed now
        self._fds.keep(mapping, fd)
        link.mappings[seg_id] = mapping
        link.starved = False
        return mapping


class Reactor:
    """The node's background thread: drains receiving ends while the node is busy.

    It also applies the releases coming back on sending ends, and notices
    receivers going away. Receiving ends are registered with
    ``EPOLLEXCLUSIVE``, after the node thread's own registrations: the kernel
    then wakes the node thread when it is waiting, and this thread otherwise.
    ``on_lost(link, seg_id)`` runs for a segment the receiver could not map.

    :meth:`stop` ends the thread and closes the reactor's own descriptors (its
    epoll and wake-up eventfd), so a long-lived process running many
    dataflows does not collect them.
    """

    def __init__(
        self,
        reader: LinkReader,
        on_release: Callable[[int], None],
        on_receiver_gone: Callable[[OutLink, dict[int, int]], None],
        on_lost: Callable[[OutLink, int], None] | None = None,
    ) -> None:
        self._on_release = on_release
        self._on_receiver_gone = on_receiver_gone
        self._on_lost = on_lost
        self.reader = reader
        """Reads the receiving ends for this thread."""
        self._epoll = select.epoll()
        self._targets: dict[int, InLink | OutLink | None] = {}
        self._thread = threading.Thread(target=self._run, name="doradus-reactor", daemon=True)
        self._wake = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        self._fds_lock = threading.Lock()
        """Guards closing the epoll and eventfd against a late wake-up write (a reused number)."""
        self._fds_closed = False
        self._running = True
        self.in_links: list[InLink] = []
        self.on_flow: Callable[[OutLink, bytes], None] | None = None
        """Takes a flow message that came back on an out link (backpressure credits); None: ignored."""

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
        self._register(self._wake, None, select.EPOLLIN)
        self._thread.start()

    def stop(self, timeout: float = 1.0) -> None:
        """End the thread and close the reactor's descriptors (idempotent).

        If the thread does not end within ``timeout`` (it is blocked handing a
        message over), it closes them itself when it ends.
        """
        with self._fds_lock:
            if self._running and not self._fds_closed:
                self._running = False
                os.eventfd_write(self._wake, 1)
        self._running = False
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        if not self._thread.is_alive():
            self._close_fds()

    def _close_fds(self) -> None:
        with self._fds_lock:
            if not self._fds_closed:
                self._fds_closed = True
                self._epoll.close()
                os.close(self._wake)

    def _run(self) -> None:
        try:
            self._loop()
        finally:
            if not self._running:
                self._close_fds()

    def _loop(self) -> None:
        poll = self._epoll.poll
        while self._running:
            for link in self.in_links:
                if link.pending:  # releases of messages this thread dropped
                    link.flush()
            for fd, _events in poll():
                target = self._targets.get(fd)
                if target is None:
                    if fd == self._wake:
                        return
                    continue
                if isinstance(target, InLink):
                    if not self.reader.drain(target):
                        self._forget(fd)
                        target.unwatched = True  # this thread is done with it: it may be closed
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
            if data[0] != KIND_RELEASE:
                if self.on_flow is not None and is_flow(data):
                    self.on_flow(link, data)
                continue
            kind, count = RELEASE_HEAD.unpack_from(data, 0)
            if kind != KIND_RELEASE or len(data) != RELEASE_HEAD.size + count * SEG_ID.size:
                continue
            for (seg_id,) in SEG_ID.iter_unpack(memoryview(data)[RELEASE_HEAD.size :]):
                if seg_id & LOST_BIT:
                    seg_id &= ~LOST_BIT
                    if self._on_lost is not None:  # before the release: reused, it carries the fd again
                        self._on_lost(link, seg_id)
                if link.untrack(seg_id):
                    self._on_release(seg_id)
            if link.shed:  # room again at a receiver that had messages shed: tell it how many
                tell_shed(link)

    def _receiver_gone(self, link: OutLink) -> None:
        link.alive = False
        if link.gate is not None:
            link.gate.close()  # a sender waiting for room there waits no more
        self._on_receiver_gone(link, link.release_all())
