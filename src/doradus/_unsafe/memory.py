"""Mapping shared-memory segments without keeping their descriptors.

Python's ``mmap.mmap`` duplicates the descriptor it maps and keeps the copy
open for the life of the map object, so a process holding many segments runs
out of descriptors (``ulimit -n``) long before it runs out of memory. A
mapping does not need its descriptor once made: :func:`map_file` calls
``mmap(2)`` directly, and the caller may close the descriptor at once.

A :class:`Region` is one mapping. It exposes its memory only through the numpy
array interface (``np.asarray(region)`` gives a ``uint8`` array whose ``base`` is
the region) and through its ``address`` for ``pa.foreign_buffer(..., base=...)``.

Invariants — what keeps this memory-safe, and what every caller must keep:

1. **Unmapped only when unreachable.** A region is unmapped by its ``__del__``,
   i.e. only when no Python object refers to it any more. There is no
   ``close()``: nothing can unmap memory that an array may still read.
2. **Whoever exposes the memory holds the region.** Every object that reads or
   writes the memory must keep a strong reference to the region, directly or
   through its base chain: a numpy array from ``np.asarray(region)`` has it as
   ``base`` (views and memoryviews of that array keep the array), an Arrow
   buffer must be made with ``pa.foreign_buffer(address, size, base=owner)``
   where ``owner`` holds the region (slices and arrays over the buffer keep the
   buffer). Never build a buffer from a bare ``address``.
3. **Addresses are not references.** An ``address`` may be compared (to find
   which mapping holds a buffer) but is dereferenced only through an object
   that keeps invariant 2.
4. **Read-only stays read-only.** A region mapped without ``writable`` is
   ``PROT_READ``, and its array interface says so: numpy and Arrow refuse
   writes instead of the process faulting.
5. **No unmapping at exit.** Regions still referenced when the interpreter
   exits are left to the kernel (``weakref.finalize`` would unmap them from
   ``atexit`` under a still-running reader thread).
6. **Finalizers and cycles.** A finalizer of an object that may sit in one
   reference cycle with a region must not read the region's memory: the cyclic
   collector may finalize the region first. (Doradus's lease and allocation
   finalizers only send releases and flip flags.)

This module may import only the standard library.

Example:
    >>> import os
    >>> fd = os.memfd_create("doctest", os.MFD_CLOEXEC)
    >>> os.ftruncate(fd, 4096)
    >>> region = map_file(fd, 4096, writable=True)
    >>> os.close(fd)  # the mapping does not need it
    >>> region.size, region.writable, region.address != 0
    (4096, True, True)
    >>> del region  # unmapped here: nothing else refers to it
"""

from __future__ import annotations

import ctypes
import mmap
import os
from typing import Any

# SAFETY: the C library of this process, already loaded. mmap(2) and munmap(2) get their
# exact C signatures, so ctypes converts and checks each argument (a pointer-sized address,
# a size_t length, an off_t offset) instead of truncating it to an int.
_libc = ctypes.CDLL(None, use_errno=True)
_mmap = _libc.mmap
_mmap.restype = ctypes.c_void_p
_mmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int64)
_munmap = _libc.munmap
_munmap.restype = ctypes.c_int
_munmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t)
_MAP_FAILED = ctypes.c_void_p(-1).value
_MADE_HERE = object()
"""Only :func:`map_file` makes regions: a region made from any other address would unmap it."""


class Region:
    """One shared mapping of a file, unmapped when the last reference to it goes.

    Thread-safe: immutable once made. See the module's invariants.

    Example:
        >>> fd = os.memfd_create("doctest", os.MFD_CLOEXEC); os.ftruncate(fd, 4096)
        >>> region = map_file(fd, 4096, writable=False); os.close(fd)
        >>> region.__array_interface__["data"][1]  # read-only
        True
        >>> del region
    """

    __slots__ = ("__weakref__", "address", "size", "writable")

    def __init__(self, address: int, size: int, writable: bool, made_by: object = None) -> None:
        if made_by is not _MADE_HERE:
            raise TypeError("regions are made by map_file()")
        self.address = address
        self.size = size
        self.writable = writable

    @property
    def __array_interface__(self) -> dict[str, Any]:
        """The numpy array interface: ``size`` bytes (``uint8``), read-only unless ``writable``."""
        # SAFETY: numpy reads `size` bytes from `address`, all inside this mapping, and keeps
        # the region as the array's base, so it stays mapped while any view lives (invariant
        # 2); a read-only mapping says it is read-only, so numpy refuses writes (invariant 4).
        return {
            "version": 3,
            "shape": (self.size,),
            "typestr": "|u1",
            "data": (self.address, not self.writable),
        }

    def __del__(self) -> None:
        # SAFETY (invariant 1): reaching here means nothing refers to the region, so nothing
        # can read it; the address and size are the ones mmap returned (only map_file makes regions).
        try:
            _munmap(self.address, self.size)
        except Exception:  # a finalizer must never raise (the interpreter may be exiting)
            pass


def map_file(fd: int, size: int, *, writable: bool) -> Region:
    """Map ``size`` bytes of ``fd`` shared (``MAP_SHARED``), without keeping ``fd``.

    Args:
        fd: an open descriptor; the caller still owns it and may close it at once.
        size: bytes to map, from offset 0 (more than the file holds faults on access:
            check the file's size first).
        writable: map ``PROT_READ | PROT_WRITE`` (else ``PROT_READ``).

    Returns:
        The mapping, unmapped when the last reference to it goes.

    Raises:
        OSError: ``mmap(2)`` failed (``ENOMEM``: address space or ``vm.max_map_count``
            exhausted; ``EPERM``: a writable mapping of a write-sealed file; ``EACCES``:
            the descriptor's access mode does not allow it).
        ValueError: ``size`` is not positive.

    Example:
        >>> fd = os.memfd_create("doctest", os.MFD_CLOEXEC); os.ftruncate(fd, 8192)
        >>> map_file(fd, 8192, writable=True).size
        8192
        >>> os.close(fd)
    """
    if size <= 0:
        raise ValueError(f"cannot map {size} bytes")
    prot = mmap.PROT_READ | (mmap.PROT_WRITE if writable else 0)
    # SAFETY: a new mapping at an address the kernel chooses (NULL hint, no MAP_FIXED), so it
    # cannot replace memory in use; a bad descriptor or size fails with an errno, checked here.
    address = _mmap(None, size, prot, mmap.MAP_SHARED, fd, 0)
    if address is None or address == _MAP_FAILED:
        err = ctypes.get_errno()
        raise OSError(err, f"mmap of {size} bytes failed: {os.strerror(err)}")
    return Region(address, size, writable, _MADE_HERE)
