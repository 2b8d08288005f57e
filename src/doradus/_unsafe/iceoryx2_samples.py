"""iceoryx2 samples as bytes: written in place by a sender, read in place by a receiver.

The `iceoryx2` backend's one contact with shared memory. iceoryx2's ``Slice.as_memory_view``
turns a sample's payload into a ``memoryview`` over the publisher's shared memory; what
makes that safe is when the view may be used:

1. **A sender writes only before it sends** (`write_sample`): the view it fills is released
   before ``send``, so nothing writes into a sample receivers already read.
2. **A receiver reads a sample only while it holds it** (`held_view`): the view is exported
   through a read-only numpy array that keeps the sample object, and Arrow buffers and
   arrays made from the view keep that array; the sample goes back to its publisher (which
   may then reuse the memory) only once nothing reads it any more. Nothing can write
   through the view.

Example::

    sent = write_sample(publisher, 3, lambda view: view.__setitem__(slice(0, 3), b"abc"))
    frame = held_view(sample, on_release=counter.released)
"""

from __future__ import annotations

import ctypes
import weakref
from collections.abc import Callable
from typing import Any, cast

import numpy as np

U8: Any = ctypes.c_uint8
"""The element type of iceoryx2's byte slices (``iceoryx2.Slice[U8]``): a type, not memory."""


def write_sample(publisher: Any, size: int, fill: Callable[[memoryview], None]) -> int:
    """Loan a ``size``-byte sample of ``publisher``, let ``fill`` write it, send it: receivers reached.

    0 reached: no receiver, or its queue is full.

    Example::

        write_sample(publisher, 3, lambda view: view.__setitem__(slice(0, 3), b"abc"))
    """
    sample = publisher.loan_slice_uninit(size)
    # SAFETY: the view covers exactly the loaned sample, which nobody else sees until `send`;
    # it is released before `send` (invariant 1), so no write can follow the send.
    view = sample.payload().as_memory_view().cast("B")
    try:
        fill(view)
    finally:
        view.release()
    return int(sample.assume_init().send())


def sample_bytes(sample: Any) -> memoryview:
    """A view of ``sample``'s payload, to copy from at once (the caller releases it, then the sample).

    Example::

        view = sample_bytes(sample); data = bytes(view); view.release(); sample.delete()
    """
    # SAFETY: the caller copies and releases the view before it returns the sample (`delete`).
    return cast("memoryview", sample.payload().as_memory_view().cast("B"))


def held_view(sample: Any, view: memoryview, on_release: Callable[[], None]) -> memoryview:
    """A read-only view of ``view`` (``sample``'s payload) that keeps ``sample`` while it is used.

    ``on_release`` runs once nothing reads the sample any more (its holder was collected).

    Example::

        frame = held_view(sample, sample_bytes(sample), on_release=counter.released)
    """
    # SAFETY: the array is read-only and holds `sample`: the memory stays the sample's, and
    # unwritten, for as long as any buffer made from the returned view lives (invariant 2).
    array = np.frombuffer(view, dtype=np.uint8).view(_HeldArray)
    array.setflags(write=False)
    array.sample = sample
    weakref.finalize(array, on_release)
    return memoryview(cast("Any", array))


class _HeldArray(np.ndarray):
    """A read-only byte array over a received sample, that keeps the sample (``sample``)."""

    sample: Any = None
