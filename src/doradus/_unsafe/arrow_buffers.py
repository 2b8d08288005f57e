"""Arrow buffers over shared-memory mappings: the one place where an address becomes a buffer.

``pyarrow.foreign_buffer`` trusts the address and size it is given: a range past the end of
a mapping, or a buffer that outlives its mapping, reads memory that is not there. Doradus
makes its Arrow buffers over shared memory only with `region_buffer`, which checks the range
against the `Region` and makes the buffer hold the region, so the memory stays mapped as
long as the buffer, or any slice, array or numpy view of it, lives (invariant 2 of
`doradus._unsafe.memory`). The buffer is immutable: Arrow refuses writes into it.

May import: the standard library, pyarrow and `doradus._unsafe.memory`.

Example:
    >>> import os
    >>> fd = os.memfd_create("doctest", os.MFD_CLOEXEC); os.ftruncate(fd, 4096)
    >>> region = map_file(fd, 4096, writable=False); os.close(fd)
    >>> buffer = region_buffer(region, 100, 16)
    >>> buffer.size, buffer.is_mutable, buffer.to_pybytes() == bytes(16)
    (16, False, True)
    >>> region_buffer(region, 4000, 200)
    Traceback (most recent call last):
    ...
    IndexError: bytes 4000..4200 are outside the 4096 B mapping
"""

from __future__ import annotations

import pyarrow as pa

from doradus._unsafe.memory import Region, map_file

__all__ = ["map_file", "region_buffer"]


def region_buffer(region: Region, offset: int, size: int, owner: object = None) -> pa.Buffer:
    """An immutable Arrow buffer over bytes ``[offset, offset + size)`` of ``region``.

    Args:
        region: the mapping.
        offset: where the buffer starts in the mapping.
        size: its length in bytes.
        owner: an object the buffer keeps alive besides the region (e.g. a lease whose
            finalizer must run only once no buffer over the message is left).

    Returns:
        The buffer; it holds ``region`` (and ``owner``) until it and every view of it are gone.

    Raises:
        IndexError: the range does not lie inside the mapping.

    Example:
        >>> import os
        >>> fd = os.memfd_create("doctest", os.MFD_CLOEXEC); os.ftruncate(fd, 4096)
        >>> region = map_file(fd, 4096, writable=True); os.close(fd)
        >>> region_buffer(region, 0, 4096, owner="a lease").size
        4096
    """
    if offset < 0 or size < 0 or offset + size > region.size:
        raise IndexError(f"bytes {offset}..{offset + size} are outside the {region.size} B mapping")
    # SAFETY: the range lies inside the mapping (checked above), and the buffer's base holds
    # the region, which is unmapped only once unreachable: the memory outlives the buffer.
    return pa.foreign_buffer(region.address + offset, size, base=region if owner is None else (owner, region))
