"""The ``shm`` backend: direct node-to-node links on one machine.

Each (sender node, receiver node) pair shares a ``SOCK_SEQPACKET`` socket
pair made by the daemon. Payloads up to ``INLINE_MAX`` travel inside the
datagram; larger ones are copied into (or were allocated in) a pooled
``memfd`` segment that receivers map read-only. See docs/concepts/data-plane.md.

Segments are sealed so that no receiver can write them, and no descriptor is
kept per segment beyond a small budget; see :mod:`doradus.backends._segments`
for both guarantees. A system limit reached while sending (open files,
mappings, memory, descriptors in flight) raises
:class:`~doradus.ResourceLimitError` from ``send``; one reached while
receiving reaches the node as an ``Error`` event with the same text.

Reading the class's hooks (`doradus.backends.backend_class`, as the supervisor does)
imports neither numpy nor pyarrow: the segments, the link ends and the value layout
that load them are imported by the first backend made, and bound to it once.

Example::

    backend = ShmBackend("camera", receiver)
    backend.open(links, fds)
    backend.start()
    backend.send(outgoing)
"""

from __future__ import annotations

import os
import select
import socket
import struct
import threading
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any

from doradus._exceptions import ResourceLimitError
from doradus._wire.protocol import DATA, FLAG_FD, FLAG_SHM, INLINE_MAX, pack_data
from doradus.backends._base import Backend, BackendStatistics, LinkSpec, Outgoing, Receiver
from doradus.backends._shm_ends import LinkEnds
from doradus.backends._shm_flow import ShmFlow
from doradus.backends._shm_forward import own_segment, received_segment
from doradus.backends._shm_holds import admit, withheld
from doradus.backends._shm_taps import HeaderTaps, is_headers_tap, link_socket

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

    from doradus.backends._segments import Segment
    from doradus.backends._shm_links import InLink, OutLink

_ZEROS = bytes(64)
_FD = struct.Struct("i")
"""One descriptor as ``SCM_RIGHTS`` carries it (a C ``int``)."""
FORWARD_BIT = 1 << 62
"""Marks segment ids of received segments this node passes on (``bit | link << 32 | id``)."""


class ShmBackend(Backend):
    """Unix socket pairs plus shared memory; the local default."""

    name = "shm"
    options = frozenset()  # nothing to configure: the daemon hands the socket ends
    uses_socket_pairs = True
    applies_backpressure = True  # credits and holds ride the socket pairs (`doradus.backends._shm_flow`)
    reports_sender_end = True  # a receiver's socket end closes with the sender's process
    restarts_links = True  # the daemon hands new socket pairs to a restarted node's peers
    close_when_main_thread_ends = False  # the kernel closes its sockets with the process

    def __init__(self, node_id: str, receiver: Receiver) -> None:
        super().__init__(node_id, receiver)
        # Imported here, not with the class: they load numpy and pyarrow, which reading the
        # hooks must not. The value layout's names are bound once, so sending imports nothing.
        from doradus._wire.values import KIND_BUFFERS, PLAIN_OFFSETS, layout_struct
        from doradus.backends._segments import SegmentPool
        from doradus.backends._shm_forward import ReceivedFds
        from doradus.backends._shm_links import LinkReader, Reactor

        self._kind_buffers = KIND_BUFFERS
        self._plain_offsets = PLAIN_OFFSETS
        self._layout_struct = layout_struct
        self.pool = SegmentPool(f"doradus-{node_id}")
        self._routes: dict[bytes, list[OutLink]] = {}
        self._out_links: list[OutLink] = []
        self._next_link = 0
        # Descriptors of received segments, kept (within a budget) to forward them without a copy.
        self.received_fds = ReceivedFds()
        self._reactor = Reactor(
            LinkReader(receiver.deliver, self._link_closed, receiver.error, self.received_fds),
            self._released,
            self._receiver_gone,
            self._lost_segment,
        )
        # Received segments passed on to our receivers: forward id -> [lease, holders].
        self._forwarded: dict[int, list[Any]] = {}
        self._forward_lock = threading.Lock()
        # The node's own thread reads too, while it waits: see wait().
        self._reader = LinkReader(receiver.deliver, self._link_closed, receiver.error, self.received_fds)
        # Backpressure: gates of out links, credits of in links (`doradus.backends._shm_flow`).
        self.flow = ShmFlow(node_id, receiver)
        self._reactor.on_flow = self.flow.from_receiver
        self._reader.on_flow = self._reactor.reader.on_flow = self.flow.from_sender
        self._epoll = select.epoll()
        self._in_by_fd: dict[int, InLink] = {}
        self._wake_fd = -1
        self._sent = 0
        self._bytes = 0
        self._failures = 0
        # Links whose other end restarts or ends: held inputs, missed messages, closing the old.
        self.ends = LinkEnds(self)
        self.header_taps = HeaderTaps()  # `doradus topic hz` and `bw`: records, not links
        self._tapped = False
        """A headers tap was ever opened: each send asks the taps (a plain flag costs no call)."""

    def open(self, links: Sequence[LinkSpec], fds: Sequence[int]) -> None:
        """Wrap each descriptor in its link end (link ids stay unique if called again)."""
        from doradus.backends._shm_links import InLink, OutLink

        for spec, fd in zip(links, fds, strict=True):
            if is_headers_tap(spec):
                self.header_taps.add(spec, fd)
                self._tapped = True
                continue
            index = self._next_link
            self._next_link += 1
            sock = link_socket(spec, fd)  # a tap's end never blocks a send (`_shm_taps`)
            if spec.direction == "out":
                self.ends.peer_back(spec.peer)
                link = OutLink(index, spec.peer, sock, spec.outputs)
                link.gate = self.flow.gate_for(spec)
                link.held = spec.held
                link.hold_limit = spec.hold_limit or link.hold_limit
                for output in link.outputs:
                    # A new list: a send under way (a tap opened by the control thread) keeps its own.
                    self._routes[output.encode()] = [*self._routes.get(output.encode(), ()), link]
                self._out_links.append(link)
                # A receiver wired later has none of the descriptors closed so far: segments it
                # lacks are not picked for it, and a buffer from allocate() goes as a copy.
                self.pool.links.add(link.id)
                self._reactor.add_out(link)
            else:
                inbound = InLink(index, spec.peer, sock, spec.routes)
                inbound.held = spec.held
                # Registered here first, then in the reactor: with EPOLLEXCLUSIVE the kernel
                # wakes the first epoll that has a waiter, i.e. the node thread when it waits.
                self._epoll.register(sock.fileno(), select.EPOLLIN | select.EPOLLEXCLUSIVE)
                self._in_by_fd[sock.fileno()] = inbound
                self.flow.add_in(inbound)
                self._reactor.add_in(inbound)

    def start(self) -> None:
        """Start the reader thread."""
        self._reactor.start()

    def _released(self, seg_id: int) -> None:
        if seg_id & FORWARD_BIT:
            self._unhold_forward(seg_id, 1)
        else:
            self.pool.release(seg_id)

    def _lost_segment(self, link: OutLink, seg_id: int) -> None:
        """``link``'s receiver could not map ``seg_id``: pass its descriptor again next time."""
        if seg_id & FORWARD_BIT:
            link.known_forwards.discard(seg_id)
        else:
            self.pool.lost(seg_id, link.id)

    def _receiver_gone(self, link: OutLink, held: dict[int, int]) -> None:
        own = {seg_id: n for seg_id, n in held.items() if not seg_id & FORWARD_BIT}
        self.pool.forget_link(link.id, own)
        for seg_id, count in held.items():
            if seg_id & FORWARD_BIT:
                self._unhold_forward(seg_id, count)
        link.known_forwards.clear()
        self.ends.mark_down(link)
        self.ends.ended_out.append(link)  # closed by the next send, under the node's send lock

    def _unhold_forward(self, fwd_id: int, count: int) -> None:
        with self._forward_lock:
            entry = self._forwarded.get(fwd_id)
            if entry is None:
                return
            entry[1] -= count
            if entry[1] <= 0:
                del self._forwarded[fwd_id]  # our lease goes: the original sender gets its release

    def _link_closed(self, link: InLink) -> None:
        self.ends.link_closed(link)

    def sender_ended(self, peer: str) -> None:
        """``peer`` will not be restarted: its held links' end is the end of their inputs."""
        self.ends.sender_ended(peer)

    def peer_restarting(self, peer: str) -> None:
        """``peer`` restarts: send it nothing (counted) until its new link opens; its old end is no end."""
        self.ends.peer_restarting(peer)

    def restart_drops(self) -> dict[str, int]:
        """Messages not sent to each restarting receiver while it was down (receiver → count)."""
        return dict(self.ends.restart_drops)

    def send(self, message: Outgoing) -> int:
        """Send to the live links subscribed to the output. Call with the node's send lock held."""
        ends = self.ends
        if ends.ended_out:  # a receiver ended (a restart, a crash): its socket closes here
            ends.close_ended_out()
        links = self._routes.get(message.output)
        if self._tapped:  # an output `doradus topic hz` or `bw` reads: its record
            self.header_taps.record(message)
        if ends.down:  # a receiver is restarting: what it misses is counted
            ends.count_down(message.output)
        if not links:
            return 0
        if self.flow.gated:  # a receiver has backpressure inputs: wait for room there
            links = self.flow.admit(links, message.output)
            if not links:
                return 0
        size = message.plan.size
        if size <= INLINE_MAX:
            self._send_inline(links, message)
        else:
            links = admit(links, message.output, size)  # a receiver holding too much misses it
            if not links:
                return 0
            self._send_shared(links, message)
        self._sent += 1
        self._bytes += message.plan.size
        return len(links)

    def _lost(self, link: OutLink) -> None:
        """A receiver is gone: stop sending to it (the reactor reclaims its segments)."""
        self._failures += 1
        self.ends.mark_down(link)

    def _send_inline(self, links: list[OutLink], message: Outgoing) -> None:
        plan = message.plan
        used = (
            DATA.size + len(message.output) + len(plan.type_blob) + len(plan.layout) + len(message.metadata)
        )
        prefix = b"".join(
            (
                pack_data(message, plan.layout, 0, 0, 0),
                message.output,
                plan.type_blob,
                plan.layout,
                message.metadata,
                _ZEROS[: -used % 8],
            )
        )
        iov: list[Any]
        if plan.offsets is self._plain_offsets:
            iov = [prefix, plan.parts[1]]
        else:
            iov = [prefix]
            cursor = 0
            for part, offset in zip(plan.parts, plan.offsets, strict=True):
                if part is None:
                    continue
                if offset > cursor:
                    iov.append(_ZEROS[: offset - cursor])
                iov.append(part)
                cursor = offset + part.size
        failure: ResourceLimitError | None = None
        for link in list(links):
            try:
                link.sock.sendmsg(iov)
            except OSError as exc:
                failure = self._send_failed(link, exc) or failure
        if failure is not None:
            raise failure

    def _send_failed(self, link: OutLink, exc: OSError) -> ResourceLimitError | None:
        """A send to ``link`` failed: a resource limit (returned), or the receiver is gone."""
        if isinstance(exc, BlockingIOError):  # the message skipped a tap (`_shm_taps`): no failure
            return None
        err = ResourceLimitError.from_os_error(exc, f"sending to {link.peer!r}")
        if err is None:
            self._lost(link)
        return err

    def _send_shared(self, links: list[OutLink], message: Outgoing) -> None:
        plan = message.plan
        if plan.kind == self._kind_buffers and self._forward(links, message):
            return
        ids = [link.id for link in links]
        layout = plan.layout
        fd: int | None = None
        seg = None
        if plan.kind == self._kind_buffers and self.pool.has_user_segments:
            seg = own_segment(self.pool, message.array)  # sent from allocate(): no copy
        if seg is not None:
            fd = self.pool.lend_fd(seg, ids)
            if fd is None:
                seg = None  # a receiver lacks it and its descriptor is closed: send a copy
            else:
                layout = self._rebase_layout(message.array, seg.address)
                self.pool.add_pending(seg, len(links))
        if seg is None:
            seg = self.pool.acquire(plan.size, ids)
            try:
                fd = self.pool.lend_fd(seg, ids)  # not None: acquire picked a segment they can all get
                plan.write_into(seg.view, 0)
            except BaseException:
                if fd is not None and fd >= 0:
                    os.close(fd)
                self.pool.set_pending(seg, 0)
                raise
            self.pool.set_pending(seg, len(links))
        try:
            failure = self._send_to_all(links, message, layout, seg, fd if fd is not None else -1)
        finally:
            if fd is not None and fd >= 0:
                os.close(fd)
        if seg.fd >= 0:
            self.pool.settle(seg)
        if failure is not None:
            raise failure

    def _send_to_all(
        self, links: list[OutLink], message: Outgoing, layout: bytes, seg: Segment, fd: int
    ) -> ResourceLimitError | None:
        """Send ``seg`` to each link (with ``fd`` to those new to it); a limit reached is returned."""
        failure: ResourceLimitError | None = None
        for link in list(links):
            first = fd >= 0 and link.id not in seg.known_by
            if first:  # before sending: the receiver's answer (a loss) may beat sendmsg's return
                seg.known_by.add(link.id)
            try:
                sent = self._send_segment(link, message, layout, seg.id, seg.size, fd if first else None)
            except ResourceLimitError as exc:
                sent, failure = False, exc
            if not sent:
                if first:
                    seg.known_by.discard(link.id)
                if link.untrack(seg.id):
                    self.pool.release(seg.id)
        return failure

    def _send_segment(
        self, link: OutLink, message: Outgoing, layout: bytes, seg_id: int, seg_size: int, fd: int | None
    ) -> bool:
        """One shared-memory datagram (with the segment's descriptor if ``fd``); False if the link died."""
        header = pack_data(message, layout, FLAG_SHM if fd is None else FLAG_SHM | FLAG_FD, seg_id, seg_size)
        tail = b"".join((message.output, message.plan.type_blob, layout, message.metadata))
        link.track(seg_id, seg_size)
        try:
            if fd is not None:
                link.sock.sendmsg([header, tail], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, _FD.pack(fd))])
            else:
                link.sock.sendmsg([header, tail])
        except OSError as exc:
            err = self._send_failed(link, exc)
            if err is not None:
                raise err from exc
            return False
        return True

    def _forward(self, links: list[OutLink], message: Outgoing) -> bool:
        """Pass on, without a copy, a value that lives in a segment we received."""
        found = received_segment(self._reactor.in_links, message.array)
        if found is None:
            return False
        in_link, seg_id, mapping = found
        lease = in_link.leases.get(seg_id)
        if lease is None:
            return False
        fwd_id = FORWARD_BIT | (in_link.id << 32) | seg_id
        fd = -1
        if any(fwd_id not in link.known_forwards for link in links):
            fd = self.received_fds.borrow(mapping)
            if fd < 0:
                return False  # its descriptor was not kept (budget): the caller sends a copy
        layout = self._rebase_layout(message.array, mapping.address)
        with self._forward_lock:
            entry = self._forwarded.setdefault(fwd_id, [lease, 0])
            entry[0] = lease
            entry[1] += len(links)
        failure: ResourceLimitError | None = None
        try:
            for link in list(links):
                first = fd >= 0 and fwd_id not in link.known_forwards
                if first:  # before sending, as in _send_to_all
                    link.known_forwards.add(fwd_id)
                try:
                    sent = self._send_segment(
                        link, message, layout, fwd_id, mapping.size, fd if first else None
                    )
                except ResourceLimitError as exc:
                    sent, failure = False, exc
                if not sent:
                    if first:
                        link.known_forwards.discard(fwd_id)
                    if link.untrack(fwd_id):
                        self._unhold_forward(fwd_id, 1)
        finally:
            if fd >= 0:
                os.close(fd)
        if failure is not None:
            raise failure
        return True

    def _rebase_layout(self, array: pa.Array, base_address: int) -> bytes:
        """``array``'s layout with its buffers' offsets from ``base_address`` (a segment's start)."""
        buffers = array.buffers()
        flat: list[int] = []
        for buf in buffers:
            if buf is None:
                flat += [-1, 0]
            else:
                flat += [buf.address - base_address, buf.size]
        packer = self._layout_struct(len(buffers))
        return packer.pack(len(array), array.null_count, array.offset, len(buffers), *flat)

    def taken(self, input_id: str) -> None:
        """The node took a message of backpressure input ``input_id``: a credit to its sender."""
        self.flow.taken(input_id)

    def hold_senders(self, inputs: Collection[str], held: bool) -> None:
        """The node was paused or resumed: the senders of ``inputs`` hear it."""
        self.flow.hold_senders(inputs, held)

    def allocate(self, nbytes: int) -> np.ndarray:
        """A writable array in a pooled segment; sending it costs no copy."""
        return self.pool.allocate(nbytes)

    def wait(self, timeout: float, wake_fd: int) -> None:
        """Wait on the receiving ends and the inbox's eventfd; read what arrives right here."""
        if wake_fd != self._wake_fd:
            self._epoll.register(wake_fd, select.EPOLLIN)
            self._wake_fd = wake_fd
        for fd, _events in self._epoll.poll(timeout):
            link = self._in_by_fd.get(fd)
            if link is not None and not self._reader.drain(link, once=True):
                del self._in_by_fd[fd]
                try:
                    self._epoll.unregister(fd)
                except (OSError, ValueError):
                    pass

    def idle(self) -> None:
        """Send the releases noted since the last wait; close the in links that ended."""
        ended = False
        for link in self._reactor.in_links:
            if link.pending:
                link.flush()
            ended = ended or (link.closed and link.unwatched)
        if ended:
            self.ends.close_ended_in()

    def drain(self) -> None:
        """Read the datagrams waiting on every in link into the node's queues, without blocking.

        What is still in a socket when the node ends then counts as undelivered (or dropped).
        """
        for link in list(self._reactor.in_links):
            if not link.closed and link.sock.fileno() >= 0:  # not closed by close() either
                self._reader.drain(link)

    def end_outputs(self) -> None:
        """Shut the sending side of every link: receivers read what was sent, then the end.

        Each link's socket stays open for reading (late releases); a send after this fails
        like a send to a receiver that has gone.

        Example:
            >>> import socket
            >>> from doradus.testing import CollectingReceiver
            >>> a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            >>> backend = ShmBackend("cam", CollectingReceiver())
            >>> backend.open([LinkSpec("det", "out", outputs=("image",))], [a.detach()])
            >>> backend.end_outputs(); b.recv(10)
            b''
            >>> backend.close(); b.close()
        """
        for link in self._out_links:
            try:
                link.sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass  # already gone

    def close(self) -> None:
        """Stop the reader and close every link and descriptor the backend holds.

        Mappings stay while received values or allocated buffers use them.
        """
        self._reactor.stop()
        self.header_taps.close()
        for link in self._out_links:
            try:
                link.sock.close()
            except OSError:
                pass
        for inbound in self._reactor.in_links:
            try:
                inbound.sock.close()
            except OSError:
                pass
        self._epoll.close()
        self.pool.close()
        self.received_fds.close()

    def statistics(self) -> BackendStatistics:
        """Counters plus the segment pool's usage."""
        return BackendStatistics(
            self.name,
            messages_sent=self._sent,
            bytes_sent=self._bytes,
            messages_received=sum(link.received for link in self._reactor.in_links),
            send_failures=self._failures,
            details={
                "shared_memory": {
                    **self.pool.statistics(),
                    "received_fds": self.received_fds.statistics()["kept"],
                },
                "restart_drops": dict(self.ends.restart_drops),
                "withheld": withheld(self._out_links),
                "malformed": sum(link.malformed for link in self._reactor.in_links),
                "backpressure_timeouts": self.flow.statistics(),
            },
        )
