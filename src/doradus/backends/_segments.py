"""Shared-memory segments: a sender's pool and a receiver's read-only mappings.

Segments are anonymous ``memfd`` files. A sender passes a segment's file
descriptor to each receiver once (``SCM_RIGHTS``); the receiver maps it
read-only and keeps the mapping, so a steady stream pays no page faults per
message. The kernel frees a segment when its last holder (mapping or open
descriptor) is gone: a crashed process leaks nothing, and nothing ever appears
in ``/dev/shm``.

A segment carrying a message goes back to its sender's pool only once every
receiver has released it (each receiver sends a release when the last Arrow
buffer over the message is garbage-collected).

**Only the sender writes.** A segment is sealed as soon as its sender's own
writable mapping exists (``F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_FUTURE_WRITE |
F_SEAL_SEAL``, Linux ≥ 5.1). From then on the kernel refuses, with ``EPERM``,
every new writable shared mapping and every ``write(2)``, ``ftruncate(2)`` and
hole punch, through any descriptor — including one a receiver reopens
read-write through ``/proc/self/fd/N`` — and ``mprotect`` cannot make a
receiver's read-only mapping writable (``EACCES``). A receiver therefore cannot
change what another receiver reads, nor shrink the file under its mapping
(which would fault other readers). The sender keeps writing through the
mapping it made before sealing (pool reuse, ``allocate()``). Receivers refuse
segments that do not carry these seals. What a sender writes into a segment
it has sent is not policed: the guarantee is between receivers.

**Descriptors are not kept.** A mapping does not need its descriptor
(:mod:`doradus._unsafe.memory`): a receiver closes it once mapped, unless it
keeps it, within :func:`descriptor_budget`, to forward the segment without a
copy (``ReceivedFds`` in :mod:`doradus.backends._shm_forward`); a sender closes
it once every receiver wired to it has it (or past the same budget). A process
therefore holds a bounded number of descriptors however many values it keeps.
A limit still reached raises :class:`~doradus.ResourceLimitError` naming the
limit and the fix.

Example:
    >>> pool = SegmentPool()
    >>> seg = pool.acquire(100_000)
    >>> seg.size >= 100_000
    True
    >>> pool.close()
"""

from __future__ import annotations

import errno
import fcntl
import os
import resource
import threading
import weakref
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from doradus._exceptions import DecodeError, ResourceLimitError, TransportError
from doradus._unsafe.arrow_buffers import region_buffer
from doradus._unsafe.memory import Region, map_file

MIN_SEGMENT = 64 * 1024
PAGE = resource.getpagesize()
F_SEAL_FUTURE_WRITE = 0x0010
"""``<linux/fcntl.h>``; not in Python's ``fcntl`` module (Linux ≥ 5.1)."""
SEALS = fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | F_SEAL_FUTURE_WRITE | fcntl.F_SEAL_SEAL
"""The seals every segment carries once its sender has mapped it."""


def _size_class(nbytes: int) -> int:
    size = MIN_SEGMENT
    while size < nbytes:
        size *= 2
    return size


def descriptor_budget() -> int:
    """How many segment descriptors a pool (or a receiver) keeps open at most.

    A sixteenth of the soft ``RLIMIT_NOFILE``, between 16 and 256: the rest is
    the node's own.

    Example:
        >>> 16 <= descriptor_budget() <= 256
        True
    """
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft == resource.RLIM_INFINITY:
        return 256
    return max(16, min(256, soft // 16))


def _raise_for_limit(exc: OSError, doing: str) -> None:
    err = ResourceLimitError.from_os_error(exc, doing)
    if err is not None:
        raise err from exc


def check_sealed(fd: int, size: int) -> None:
    """Refuse a received segment that its sender did not seal, or that is smaller than ``size``.

    Raises:
        DecodeError: the descriptor is not a sealed memfd of at least ``size`` bytes.

    Example:
        >>> fd = os.memfd_create("doctest", os.MFD_CLOEXEC)
        >>> try:
        ...     check_sealed(fd, 4096)
        ... except DecodeError as exc:
        ...     print(exc)
        not a sealed shared-memory segment (seals 0x1)
        >>> os.close(fd)
    """
    try:
        seals = fcntl.fcntl(fd, fcntl.F_GET_SEALS)
        actual = os.fstat(fd).st_size
    except OSError as exc:
        raise DecodeError(f"not a shared-memory segment: {exc}") from exc
    if seals & SEALS != SEALS:
        raise DecodeError(f"not a sealed shared-memory segment (seals {seals:#x})")
    if not 0 < size <= actual:
        raise DecodeError(f"a segment of {actual} B announced as {size} B")


@dataclass(eq=False)
class Segment:
    """One memfd segment mapped read-write in its sender.

    ``pending`` counts receivers that still hold the segment; ``user_held`` is
    true while a buffer from :meth:`SegmentPool.allocate` is alive. ``fd`` is
    -1 once closed: then only receivers in ``known_by`` can be sent it.
    Read or close ``fd`` only under the pool's lock (:meth:`SegmentPool.lend_fd`).
    """

    id: int
    size: int
    fd: int
    region: Region
    view: memoryview
    """The whole segment, writable (it keeps ``region`` mapped)."""
    address: int
    pending: int = 0
    user_held: bool = False
    known_by: set[int] = field(default_factory=set)
    """Ids of links that have already received this segment's descriptor."""

    @property
    def free(self) -> bool:
        """True when nobody holds the segment."""
        return self.pending == 0 and not self.user_held


class SegmentPool:
    """A sender's pool of reusable segments. Thread-safe.

    ``links`` holds the ids of the receivers wired to the sender (the backend
    keeps it): a segment's descriptor is closed once all of them have it.
    At most ``fd_budget`` descriptors stay open (:func:`descriptor_budget`).

    Example:
        >>> pool = SegmentPool()
        >>> arr = pool.allocate(16)
        >>> arr.flags.writeable, arr.nbytes
        (True, 16)
        >>> pool.close()
    """

    def __init__(self, name: str = "doradus", fd_budget: int | None = None) -> None:
        self._name = name
        self._lock = threading.Lock()
        self._segments: dict[int, Segment] = {}
        self._next_id = 1
        self._user_count = 0
        self._open_fds = 0
        self._fd_budget = descriptor_budget() if fd_budget is None else fd_budget
        self.links: set[int] = set()

    def acquire(self, nbytes: int, links: Collection[int] = ()) -> Segment:
        """Return a free segment of at least ``nbytes`` that can reach ``links``, reserved.

        The segment is marked pending (1); the caller sets the real count
        before anyone can release it. A segment whose descriptor is closed is
        chosen only if every one of ``links`` already has it.

        Raises:
            ResourceLimitError: a new segment was needed and a system limit stopped it.
        """
        with self._lock:
            best: Segment | None = None
            for seg in self._segments.values():
                fits = seg.free and nbytes <= seg.size <= 2 * max(nbytes, MIN_SEGMENT)
                if not fits or (best is not None and seg.size >= best.size):
                    continue
                if seg.fd < 0 and not seg.known_by.issuperset(links):
                    continue  # its descriptor is gone and some receiver never saw it
                best = seg
            if best is None:
                best = self._create(_size_class(nbytes))
            best.pending = 1  # reserved until the sender sets the real count
            return best

    def _create(self, size: int) -> Segment:
        while self._open_fds >= self._fd_budget and self._shed_fd():
            pass
        doing = f"creating a {size} B shared-memory segment"
        try:
            fd = os.memfd_create(f"{self._name}-{self._next_id}", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        except OSError as exc:
            _raise_for_limit(exc, doing)
            raise
        try:
            os.ftruncate(fd, size)
            region = map_file(fd, size, writable=True)
            # Sealed only now: our writable mapping exists, and no other ever can.
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, SEALS)
        except OSError as exc:
            os.close(fd)
            _raise_for_limit(exc, doing)
            if exc.errno == errno.EINVAL:  # a kernel without F_SEAL_FUTURE_WRITE
                raise TransportError(
                    f"{doing}: the kernel refused its seals; the shm backend needs Linux 5.1 or later"
                ) from exc
            raise
        seg = Segment(self._next_id, size, fd, region, np.asarray(region).data, region.address)
        self._segments[seg.id] = seg
        self._next_id += 1
        self._open_fds += 1
        return seg

    def _shed_fd(self) -> bool:
        """Close the oldest descriptor no message is waiting on (over budget); False if none."""
        for seg in self._segments.values():
            if seg.fd >= 0 and seg.pending == 0:
                self._close_fd(seg)
                if not seg.known_by and not seg.user_held:
                    del self._segments[seg.id]  # no receiver could ever be sent it again
                return True
        return False

    def _close_fd(self, seg: Segment) -> None:
        try:
            os.close(seg.fd)
        except OSError:
            pass
        seg.fd = -1
        self._open_fds -= 1

    def lend_fd(self, seg: Segment, links: Collection[int]) -> int | None:
        """A duplicate of ``seg``'s descriptor if one of ``links`` lacks it (the caller closes it).

        Returns -1 when every one of ``links`` already has the segment, and
        None when one lacks it but the descriptor is closed (send a copy).
        A duplicate, because another thread may close the pool's own at any time.

        Raises:
            ResourceLimitError: no descriptor was left to duplicate it into.
        """
        known = seg.known_by
        if all(link in known for link in links):
            return -1
        with self._lock:
            if seg.fd < 0:
                return None
            try:
                return os.dup(seg.fd)
            except OSError as exc:
                _raise_for_limit(exc, "passing a shared-memory segment on")
                raise

    def settle(self, seg: Segment) -> None:
        """Close ``seg``'s descriptor if every receiver has it, or past the budget."""
        with self._lock:
            if seg.fd >= 0 and (seg.known_by >= self.links or self._open_fds > self._fd_budget):
                self._close_fd(seg)

    def set_pending(self, seg: Segment, count: int) -> None:
        """Record how many receivers hold ``seg`` (0 frees it)."""
        with self._lock:
            seg.pending = count

    def add_pending(self, seg: Segment, count: int) -> None:
        """``count`` more receivers now hold ``seg`` (zero-copy sends)."""
        with self._lock:
            seg.pending += count

    @property
    def has_user_segments(self) -> bool:
        """True while some buffer from :meth:`allocate` may still be alive."""
        return self._user_count > 0

    def release(self, seg_id: int, count: int = 1) -> None:
        """A receiver gave back ``seg_id``."""
        with self._lock:
            seg = self._segments.get(seg_id)
            if seg is not None and seg.pending > 0:
                seg.pending = max(0, seg.pending - count)

    def lost(self, seg_id: int, link_id: int) -> None:
        """Receiver ``link_id`` could not map ``seg_id``: it needs the descriptor again.

        Without a descriptor left to pass, the segment is retired instead (the
        receivers that have it keep their mappings): reused, it would be
        skipped for that receiver forever, and the pool would grow around it.
        """
        with self._lock:
            seg = self._segments.get(seg_id)
            if seg is not None:
                seg.known_by.discard(link_id)
                if seg.fd < 0:
                    del self._segments[seg_id]

    def allocate(self, nbytes: int) -> np.ndarray:
        """A writable numpy ``uint8`` array of ``nbytes`` in shared memory.

        Sending it (or any array viewing it) with ``send_output`` costs no
        copy. The segment returns to the pool when the array is gone and every
        receiver has released it.

        Raises:
            ResourceLimitError: a system limit stopped a new segment.

        Example:
            >>> pool = SegmentPool(); buf = pool.allocate(8); buf[:] = 1
            >>> int(buf.sum())
            8
            >>> del buf; pool.close()
        """
        seg = self.acquire(nbytes, tuple(self.links))
        with self._lock:
            seg.pending = 0
            seg.user_held = True
            self._user_count += 1
        array = np.frombuffer(seg.view, dtype=np.uint8, count=nbytes)
        weakref.finalize(array, self._user_released, seg)
        return array

    def _user_released(self, seg: Segment) -> None:
        with self._lock:
            seg.user_held = False
            self._user_count -= 1

    def find(self, address: int, nbytes: int) -> Segment | None:
        """The user-held segment containing ``[address, address + nbytes)``, if any."""
        with self._lock:
            for seg in self._segments.values():
                if seg.user_held and seg.address <= address and address + nbytes <= seg.address + seg.size:
                    return seg
        return None

    def get(self, seg_id: int) -> Segment | None:
        """The segment with this id."""
        return self._segments.get(seg_id)

    def forget_link(self, link_id: int, seg_ids: dict[int, int]) -> None:
        """A receiver is gone: forget it knew anything, and retire what it held.

        A segment the receiver still held is never reused: the receiver may
        have passed it on (a relay forwards without copying), and whoever got
        it may still be reading. Dropping it from the pool lets the kernel
        free it once the last mapping is gone. So does a segment no live
        receiver has and whose descriptor is closed: it can never be sent again.
        """
        with self._lock:
            self.links.discard(link_id)
            for seg in list(self._segments.values()):
                seg.known_by.discard(link_id)
                if seg.id in seg_ids or (seg.fd < 0 and not seg.known_by):
                    del self._segments[seg.id]
                    if seg.fd >= 0:
                        self._close_fd(seg)

    def statistics(self) -> dict[str, int]:
        """Counts for status displays.

        Example:
            >>> SegmentPool().statistics()["segments"]
            0
        """
        with self._lock:
            return {
                "segments": len(self._segments),
                "bytes": sum(s.size for s in self._segments.values()),
                "in_use": sum(1 for s in self._segments.values() if not s.free),
                "descriptors": self._open_fds,
            }

    def close(self) -> None:
        """Drop the pool's descriptors and references (receivers keep their mappings).

        A segment stays mapped here while an array from :meth:`allocate` views it.
        """
        with self._lock:
            for seg in self._segments.values():
                if seg.fd >= 0:
                    self._close_fd(seg)
            self._segments.clear()


class Mapping:
    """A receiver's read-only mapping of one sender segment.

    Mapping does not take the descriptor: the caller closes it, or hands it to
    ``ReceivedFds``, which stores it in ``fd`` (closed with the mapping, or
    earlier when the budget needs it) so the segment can be forwarded without a copy.

    Raises:
        DecodeError: the descriptor is not a sealed segment of at least ``size`` bytes.
        ResourceLimitError: a system limit stopped the mapping.
    """

    __slots__ = ("__weakref__", "address", "base", "fd", "region", "size", "view")

    def __init__(self, fd: int, size: int) -> None:
        check_sealed(fd, size)
        try:
            self.region = map_file(fd, size, writable=False)
        except OSError as exc:
            _raise_for_limit(exc, f"mapping a {size} B shared-memory segment")
            raise
        self.fd = -1
        self.size = size
        self.address = self.region.address
        self.view = np.asarray(self.region).data
        self.base = region_buffer(self.region, 0, size)

    def __del__(self) -> None:
        # Nothing refers to the mapping, so no ReceivedFds.borrow can be reading fd.
        try:
            if self.fd >= 0:
                os.close(self.fd)
        except Exception:  # a finalizer must never raise (the interpreter may be exiting)
            pass


class Lease:
    """Keeps a mapping alive while Arrow buffers use it; releases on collection.

    The release callback runs when the last buffer over the message is freed,
    in whatever thread drops it.
    """

    __slots__ = ("__weakref__", "_release", "mapping", "seg_id")

    def __init__(self, mapping: Mapping, seg_id: int, release: Callable[[int], Any]) -> None:
        self.mapping = mapping
        self.seg_id = seg_id
        self._release = release

    def buffer(self, offset: int, size: int) -> pa.Buffer:
        """An immutable Arrow buffer over ``[offset, offset + size)`` of the mapping.

        The buffer holds this lease, which holds the mapping: the memory stays
        mapped while the buffer (or any slice, array or numpy view of it) lives.

        Raises:
            DecodeError: the range does not lie inside the segment (a malformed header).
        """
        try:
            return region_buffer(self.mapping.region, offset, size, owner=self)
        except IndexError as exc:  # a header naming bytes past its segment
            raise DecodeError(f"segment {self.seg_id}: {exc}") from exc

    def __del__(self) -> None:
        try:
            self._release(self.seg_id)
        except Exception:
            pass
