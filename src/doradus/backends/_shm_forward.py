"""Finding the received segment a value lives in, to pass it on without a copy.

A node that sends on a value it received (``send_output("out", event.value)``) sends the
segment it arrived in rather than a copy, when every buffer of the value lies in one segment
it mapped (`doradus.backends._shm.ShmBackend._forward`).

Example::

    found = received_segment(reactor.in_links, event.value)   # (in_link, seg_id, mapping) or None
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa

    from doradus.backends._segments import Mapping
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
