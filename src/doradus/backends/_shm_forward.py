"""Finding the received segment a value lives in, to pass it on without a copy.

``ReceivedFds`` keeps (within a budget) the descriptors of received segments, which
forwarding needs to pass a segment to a receiver new to it.

A node that sends on a value it received (``send_output("out", event.value)``) sends the
segment it arrived in rather than a copy, when every buffer of the value lies in one segment
it mapped (`doradus.backends._shm.ShmBackend._forward`).

Example::

    found = received_segment(reactor.in_links, event.value)   # (in_link, seg_id, mapping) or None
"""

from __future__ import annotations

import os
import threading
import weakref
from collections import OrderedDict
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa

    from doradus.backends._segments import Mapping, Segment, SegmentPool
    from doradus.backends._shm_links import InLink


def received_segment(in_links: list[InLink], array: pa.Array) -> tuple[InLink, int, Mapping] | None:
    """The in link, segment id and mapping holding every buffer of ``array``; None if there is none.

    Example::

        received_segment(reactor.in_links, pa.array([1, 2]))   # None: ordinary memory
    """
    found: tuple[InLink, int, Mapping] | None = None
    for buf in array.buffers():
        if buf is None:
            continue
        if found is not None:
            mapping = found[2]
            if not mapping.address <= buf.address <= mapping.address + mapping.size - buf.size:
                return None
            continue
        found = _mapping_containing(in_links, buf.address, buf.size)
        if found is None:
            return None
    return found


def _mapping_containing(
    in_links: list[InLink], address: int, size: int
) -> tuple[InLink, int, Mapping] | None:
    for link in in_links:
        for seg_id, mapping in list(link.mappings.items()):
            if mapping.address <= address and address + size <= mapping.address + mapping.size:
                return link, seg_id, mapping
    return None


def own_segment(pool: SegmentPool, array: pa.Array) -> Segment | None:
    """The segment of ``pool`` holding every buffer of ``array`` (from ``allocate()``); None if none.

    Example::

        own_segment(backend.pool, pa.array(node.allocate(16)))   # the segment: sent without a copy
    """
    found: Segment | None = None
    for buf in array.buffers():
        if buf is None:
            continue
        seg = pool.find(buf.address, buf.size)
        if seg is None or (found is not None and seg is not found):
            return None
        found = seg
    return found


class ReceivedFds:
    """Descriptors of received segments kept to forward them without a copy. Thread-safe.

    At most ``budget`` stay open (``_segments.descriptor_budget``); keeping one more
    closes the least recently kept or forwarded. A mapping whose descriptor
    went is forwarded as a copy.

    Example:
        >>> fds = ReceivedFds(budget=0)
        >>> fds.statistics()
        {'kept': 0, 'budget': 0}
    """

    def __init__(self, budget: int | None = None) -> None:
        from doradus.backends._segments import descriptor_budget  # loads numpy: not with the hooks

        self._budget = descriptor_budget() if budget is None else budget
        self._lock = threading.Lock()
        self._kept: OrderedDict[weakref.ref[Mapping], None] = OrderedDict()

    def keep(self, mapping: Mapping, fd: int) -> None:
        """Hand ``fd`` (``mapping``'s descriptor) over: kept within the budget, else closed."""
        if self._budget <= 0:
            os.close(fd)
            return
        with self._lock:
            mapping.fd = fd
            self._kept[weakref.ref(mapping)] = None
            if len(self._kept) <= self._budget:
                return
            for ref in [ref for ref in self._kept if ref() is None]:
                del self._kept[ref]  # the mapping went, and closed its descriptor
            while len(self._kept) > self._budget:
                oldest = self._kept.popitem(last=False)[0]()
                if oldest is not None and oldest.fd >= 0:
                    os.close(oldest.fd)
                    oldest.fd = -1

    def borrow(self, mapping: Mapping) -> int:
        """A duplicate of ``mapping``'s descriptor (the caller closes it), or -1 if it is gone."""
        with self._lock:
            if mapping.fd < 0:
                return -1
            ref = weakref.ref(mapping)
            if ref in self._kept:  # always, while fd >= 0: checked, not assumed
                self._kept.move_to_end(ref)
            try:
                return os.dup(mapping.fd)
            except OSError:
                return -1  # out of descriptors: the caller copies instead

    def statistics(self) -> dict[str, int]:
        """How many descriptors are kept, and the budget."""
        with self._lock:
            kept = sum(1 for ref in self._kept if (m := ref()) is not None and m.fd >= 0)
            return {"kept": kept, "budget": self._budget}

    def close(self) -> None:
        """Close every kept descriptor (the mappings stay)."""
        with self._lock:
            for ref in self._kept:
                mapping = ref()
                if mapping is not None and mapping.fd >= 0:
                    os.close(mapping.fd)
                    mapping.fd = -1
            self._kept.clear()
