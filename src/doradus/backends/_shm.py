"""The ``shm`` backend: direct node-to-node links on one machine.

Each (sender node, receiver node) pair shares a ``SOCK_SEQPACKET`` socket
pair made by the daemon. Payloads up to ``INLINE_MAX`` travel inside the
datagram; larger ones are copied into (or were allocated in) a pooled
``memfd`` segment that receivers map read-only. See docs/concepts/data-plane.md.

Example::

    backend = ShmBackend("camera", receiver)
    backend.open(links, fds)
    backend.start()
    backend.send(outgoing)
"""

from __future__ import annotations

import select
import socket
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from doradus._protocol import CODEC_SHIFT, DATA, FLAG_FD, FLAG_IPC, FLAG_SHM, INLINE_MAX, KIND_DATA
from doradus._values import KIND_BUFFERS, KIND_IPC, PLAIN_OFFSETS, ValuePlan, layout_struct
from doradus.backends._base import Backend, BackendStatistics, LinkSpec, Outgoing, Receiver
from doradus.backends._segments import Mapping, Segment, SegmentPool
from doradus.backends._shm_links import InLink, LinkReader, OutLink, Reactor

_ZEROS = bytes(64)
FORWARD_BIT = 1 << 62
"""Marks segment ids of received segments this node passes on (``bit | link << 32 | id``)."""


class ShmBackend(Backend):
    """Unix socket pairs plus shared memory; the local default."""

    name = "shm"

    def __init__(self, node_id: str, receiver: Receiver) -> None:
        super().__init__(node_id, receiver)
        self.pool = SegmentPool(f"doradus-{node_id}")
        self._routes: dict[bytes, list[OutLink]] = {}
        self._out_links: list[OutLink] = []
        self._reactor = Reactor(
            LinkReader(receiver.deliver, self._link_closed, receiver.error),
            self._released,
            self._receiver_gone,
        )
        # Received segments passed on to our receivers: forward id -> [lease, holders].
        self._forwarded: dict[int, list[Any]] = {}
        self._forward_lock = threading.Lock()
        # The node's own thread reads too, while it waits: see wait().
        self._reader = LinkReader(receiver.deliver, self._link_closed, receiver.error)
        self._epoll = select.epoll()
        self._in_by_fd: dict[int, InLink] = {}
        self._wake_fd = -1
        self._sent = 0
        self._bytes = 0
        self._failures = 0

    def open(self, links: Sequence[LinkSpec], fds: Sequence[int]) -> None:
        """Wrap each descriptor in its link end."""
        for index, (spec, fd) in enumerate(zip(links, fds, strict=True)):
            sock = socket.socket(fileno=fd)
            if spec.direction == "out":
                link = OutLink(index, spec.peer, sock, spec.outputs)
                for output in link.outputs:
                    self._routes.setdefault(output.encode(), []).append(link)
                self._out_links.append(link)
                self._reactor.add_out(link)
            else:
                inbound = InLink(index, spec.peer, sock, spec.routes)
                # Registered here first, then in the reactor: with EPOLLEXCLUSIVE the kernel
                # wakes the first epoll that has a waiter, i.e. the node thread when it waits.
                self._epoll.register(sock.fileno(), select.EPOLLIN | select.EPOLLEXCLUSIVE)
                self._in_by_fd[sock.fileno()] = inbound
                self._reactor.add_in(inbound)

    def start(self) -> None:
        """Start the reader thread."""
        self._reactor.start()

    def _released(self, seg_id: int) -> None:
        if seg_id & FORWARD_BIT:
            self._unhold_forward(seg_id, 1)
        else:
            self.pool.release(seg_id)

    def _receiver_gone(self, link: OutLink, held: dict[int, int]) -> None:
        own = {seg_id: n for seg_id, n in held.items() if not seg_id & FORWARD_BIT}
        self.pool.forget_link(link.id, own)
        for seg_id, count in held.items():
            if seg_id & FORWARD_BIT:
                self._unhold_forward(seg_id, count)
        link.known_forwards.clear()

    def _unhold_forward(self, fwd_id: int, count: int) -> None:
        with self._forward_lock:
            entry = self._forwarded.get(fwd_id)
            if entry is None:
                return
            entry[1] -= count
            if entry[1] <= 0:
                del self._forwarded[fwd_id]  # our lease goes: the original sender gets its release

    def _link_closed(self, link: InLink) -> None:
        self.receiver.closed(link.inputs)

    def send(self, message: Outgoing) -> int:
        """Send to the live links subscribed to the output. Call with the node's send lock held."""
        links = self._routes.get(message.output)
        if not links:
            return 0
        if message.plan.size <= INLINE_MAX:
            self._send_inline(links, message)
        else:
            self._send_shared(links, message)
        self._sent += 1
        self._bytes += message.plan.size
        return len(links)

    def _lost(self, link: OutLink) -> None:
        """A receiver is gone: stop sending to it (the reactor reclaims its segments)."""
        link.alive = False
        self._failures += 1
        for routed in self._routes.values():
            if link in routed:
                routed.remove(link)

    def _header(self, message: Outgoing, flags: int, seg: tuple[int, int, int] = (0, 0, 0)) -> bytes:
        plan = message.plan
        return DATA.pack(
            KIND_DATA,
            flags | (FLAG_IPC if plan.kind == KIND_IPC else 0) | (message.codec << CODEC_SHIFT),
            len(message.output),
            len(plan.type_blob),
            len(plan.layout),
            len(message.metadata),
            message.seq,
            message.stamp_ns,
            *seg,
        )

    def _send_inline(self, links: list[OutLink], message: Outgoing) -> None:
        plan = message.plan
        used = (
            DATA.size + len(message.output) + len(plan.type_blob) + len(plan.layout) + len(message.metadata)
        )
        prefix = b"".join(
            (
                self._header(message, 0),
                message.output,
                plan.type_blob,
                plan.layout,
                message.metadata,
                _ZEROS[: -used % 8],
            )
        )
        iov: list[Any]
        if plan.offsets is PLAIN_OFFSETS:
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
        for link in list(links):
            try:
                link.sock.sendmsg(iov)
            except OSError:
                self._lost(link)

    def _send_shared(self, links: list[OutLink], message: Outgoing) -> None:
        plan = message.plan
        if plan.kind == KIND_BUFFERS and self._forward(links, message):
            return
        layout = plan.layout
        seg = self._zero_copy_segment(message.array, plan) if self.pool.has_user_segments else None
        if seg is not None:
            layout = _rebase_layout(message.array, seg.address)
            self.pool.add_pending(seg, len(links))
        else:
            seg = self.pool.acquire(plan.size)
            plan.write_into(memoryview(seg.view), 0)
            self.pool.set_pending(seg, len(links))
        for link in list(links):
            first = link.id not in seg.known_by
            if self._send_segment(link, message, layout, seg.id, seg.size, seg.fd if first else None):
                if first:
                    seg.known_by.add(link.id)
            elif link.untrack(seg.id):
                self.pool.release(seg.id)

    def _send_segment(
        self, link: OutLink, message: Outgoing, layout: bytes, seg_id: int, seg_size: int, fd: int | None
    ) -> bool:
        """One shared-memory datagram (with the segment's descriptor if ``fd``); False if the link died."""
        plan = message.plan
        header = DATA.pack(
            KIND_DATA,
            FLAG_SHM
            | (FLAG_FD if fd is not None else 0)
            | (FLAG_IPC if plan.kind == KIND_IPC else 0)
            | (message.codec << CODEC_SHIFT),
            len(message.output),
            len(plan.type_blob),
            len(layout),
            len(message.metadata),
            message.seq,
            message.stamp_ns,
            seg_id,
            seg_size,
            0,
        )
        tail = b"".join((message.output, plan.type_blob, layout, message.metadata))
        link.track(seg_id)
        try:
            if fd is not None:
                link.sock.sendmsg([header, tail], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, _fd_bytes(fd))])
            else:
                link.sock.sendmsg([header, tail])
        except OSError:
            self._lost(link)
            return False
        return True

    def _forward(self, links: list[OutLink], message: Outgoing) -> bool:
        """Pass on, without a copy, a value that lives in a segment we received."""
        found = self._received_segment(message.array)
        if found is None:
            return False
        in_link, seg_id, mapping = found
        lease = in_link.leases.get(seg_id)
        if lease is None:
            return False
        fwd_id = FORWARD_BIT | (in_link.id << 32) | seg_id
        layout = _rebase_layout(message.array, mapping.address)
        with self._forward_lock:
            entry = self._forwarded.setdefault(fwd_id, [lease, 0])
            entry[0] = lease
            entry[1] += len(links)
        for link in list(links):
            first = fwd_id not in link.known_forwards
            if self._send_segment(link, message, layout, fwd_id, mapping.size, mapping.fd if first else None):
                if first:
                    link.known_forwards.add(fwd_id)
            elif link.untrack(fwd_id):
                self._unhold_forward(fwd_id, 1)
        return True

    def _received_segment(self, array: pa.Array) -> tuple[InLink, int, Mapping] | None:
        found: tuple[InLink, int, Mapping] | None = None
        for buf in array.buffers():
            if buf is None:
                continue
            if found is not None:
                mapping = found[2]
                if not mapping.address <= buf.address <= mapping.address + mapping.size - buf.size:
                    return None
                continue
            found = self._mapping_containing(buf.address, buf.size)
            if found is None:
                return None
        return found

    def _mapping_containing(self, address: int, size: int) -> tuple[InLink, int, Mapping] | None:
        for link in self._reactor.in_links:
            for seg_id, mapping in list(link.mappings.items()):
                if mapping.address <= address and address + size <= mapping.address + mapping.size:
                    return link, seg_id, mapping
        return None

    def _zero_copy_segment(self, array: pa.Array, plan: ValuePlan) -> Segment | None:
        if plan.kind != KIND_BUFFERS:
            return None
        found: Segment | None = None
        for buf in array.buffers():
            if buf is None:
                continue
            seg = self.pool.find(buf.address, buf.size)
            if seg is None or (found is not None and seg is not found):
                return None
            found = seg
        return found

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
        """Send the releases noted since the last wait."""
        for link in self._reactor.in_links:
            if link.pending:
                link.flush()

    def close(self) -> None:
        """Stop the reader and close every link."""
        self._reactor.stop()
        for link in self._out_links:
            try:
                link.sock.close()
            except OSError:
                pass
        for inbound in self._in_by_fd.values():
            try:
                inbound.sock.close()
            except OSError:
                pass
        self._epoll.close()

    def statistics(self) -> BackendStatistics:
        """Counters plus the segment pool's usage."""
        return BackendStatistics(
            self.name,
            messages_sent=self._sent,
            bytes_sent=self._bytes,
            messages_received=sum(link.received for link in self._reactor.in_links),
            send_failures=self._failures,
            details={"shared_memory": self.pool.statistics()},
        )


def _fd_bytes(fd: int) -> bytes:
    return np.array([fd], np.int32).tobytes()


def _rebase_layout(array: pa.Array, base_address: int) -> bytes:
    buffers = array.buffers()
    flat: list[int] = []
    for buf in buffers:
        if buf is None:
            flat += [-1, 0]
        else:
            flat += [buf.address - base_address, buf.size]
    return layout_struct(len(buffers)).pack(len(array), array.null_count, array.offset, len(buffers), *flat)
