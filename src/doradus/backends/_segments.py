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

Example:
    >>> pool = SegmentPool()
    >>> seg = pool.acquire(100_000)
    >>> seg.size >= 100_000
    True
    >>> pool.close()
"""

from __future__ import annotations

import mmap
import os
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

MIN_SEGMENT = 64 * 1024
PAGE = mmap.PAGESIZE


def _size_class(nbytes: int) -> int:
    size = MIN_SEGMENT
    while size < nbytes:
        size *= 2
    return size


@dataclass(eq=False)
class Segment:
    """One memfd segment mapped read-write in its sender.

    ``pending`` counts receivers that still hold the segment; ``user_held`` is
    true while a buffer from :meth:`SegmentPool.allocate` is alive.
    """

    id: int
    size: int
    fd: int
    view: mmap.mmap
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

    Example:
        >>> pool = SegmentPool()
        >>> arr = pool.allocate(16)
        >>> arr.flags.writeable, arr.nbytes
        (True, 16)
        >>> pool.close()
    """

    def __init__(self, name: str = "doradus") -> None:
        self._name = name
        self._lock = threading.Lock()
        self._segments: dict[int, Segment] = {}
        self._next_id = 1
        self._user_count = 0

    def acquire(self, nbytes: int) -> Segment:
        """Return a free segment of at least ``nbytes``, marked pending-zero.

        The caller sets ``pending`` before anyone can release it.
        """
        with self._lock:
            best: Segment | None = None
            for seg in self._segments.values():
                fits = seg.free and nbytes <= seg.size <= 2 * max(nbytes, MIN_SEGMENT)
                if fits and (best is None or seg.size < best.size):
                    best = seg
            if best is None:
                best = self._create(_size_class(nbytes))
            best.pending = 1  # reserved until the sender sets the real count
            return best

    def _create(self, size: int) -> Segment:
        fd = os.memfd_create(f"{self._name}-{self._next_id}", os.MFD_CLOEXEC)
        os.ftruncate(fd, size)
        view = mmap.mmap(fd, size)
        address = np.frombuffer(view, dtype=np.uint8, count=1).__array_interface__["data"][0]
        seg = Segment(self._next_id, size, fd, view, address)
        self._segments[seg.id] = seg
        self._next_id += 1
        return seg

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

    def allocate(self, nbytes: int) -> np.ndarray:
        """A writable numpy ``uint8`` array of ``nbytes`` in shared memory.

        Sending it (or any array viewing it) with ``send_output`` costs no
        copy. The segment returns to the pool when the array is gone and every
        receiver has released it.

        Example:
            >>> pool = SegmentPool(); buf = pool.allocate(8); buf[:] = 1
            >>> int(buf.sum())
            8
            >>> del buf; pool.close()
        """
        seg = self.acquire(nbytes)
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
        free it once the last mapping is gone.
        """
        with self._lock:
            for seg in self._segments.values():
                seg.known_by.discard(link_id)
            for seg_id in seg_ids:
                held = self._segments.pop(seg_id, None)
                if held is not None:
                    try:
                        os.close(held.fd)
                    except OSError:
                        pass

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
            }

    def close(self) -> None:
        """Drop the pool's own references (receivers keep their mappings)."""
        with self._lock:
            for seg in self._segments.values():
                try:
                    os.close(seg.fd)
                except OSError:
                    pass
            self._segments.clear()


class Mapping:
    """A receiver's read-only mapping of one sender segment.

    It owns the segment's descriptor (closed with the mapping) so that the
    receiver can pass the segment on without a copy when it forwards a value.
    """

    __slots__ = ("address", "base", "fd", "size", "view")

    def __init__(self, fd: int, size: int) -> None:
        self.fd = fd
        self.size = size
        self.view = mmap.mmap(fd, size, prot=mmap.PROT_READ)
        self.base = pa.py_buffer(self.view)
        self.address: int = self.base.address

    def __del__(self) -> None:
        try:
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
        """An immutable Arrow buffer over ``[offset, offset + size)`` of the mapping."""
        return pa.foreign_buffer(self.mapping.base.address + offset, size, base=self)

    def __del__(self) -> None:
        try:
            self._release(self.seg_id)
        except Exception:
            pass
