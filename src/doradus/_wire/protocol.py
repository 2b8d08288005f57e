"""Bytes on the wire between nodes: the data and release datagrams.

Node-to-node links are ``SOCK_SEQPACKET`` Unix socket pairs: one datagram per
message, order kept, no framing needed. A data datagram is::

    header (DATA struct) | output id | type descriptor | layout | metadata | pad to 8 | inline payload

Payloads above ``INLINE_MAX`` live in a shared-memory segment named by the
header (``seg_id``, ``seg_off``); the segment's descriptor rides along
(``SCM_RIGHTS``) the first time a receiver sees it. Receivers answer with
``RELEASE`` datagrams (a count, then segment ids) when they are done with
segments; they send them when idle, so a release never delays a message.

The same header starts the self-contained frames of the network backends
(`doradus.backends._frames`). `pack_data` is the one place that fills it and
`unpack_data` the one that reads it.

The control channel between a node and its daemon is `doradus._wire.control`.

Example:
    >>> DATA.size
    56
"""

from __future__ import annotations

import struct
from typing import Protocol

KIND_DATA = 1
KIND_RELEASE = 2

FLAG_SHM = 1
FLAG_FD = 2
FLAG_IPC = 4
CODEC_SHIFT = 3
CODEC_MASK = 7 << CODEC_SHIFT
"""Bits 3-5 of the flags: the data format's tag (0 Arrow, 1 Cap'n Proto, 2 FlatBuffers, 3 Avro)."""

# kind, flags, output-id len, type len, layout len, metadata len, seq, timestamp ns,
# segment id, segment size, payload offset in segment
DATA = struct.Struct("<BBHIIIQqQQQ")
RELEASE_HEAD = struct.Struct("<BH")
SEG_ID = struct.Struct("<Q")
MAX_RELEASES = 512

INLINE_MAX = 64 * 1024
"""Largest payload carried inside the datagram; larger ones go through shared memory."""
MAX_METADATA = 32 * 1024
"""Largest encoded metadata: metadata is for small key-values, not data."""
RECV_BUFFER = INLINE_MAX + MAX_METADATA + 16 * 1024
"""Every datagram fits: payload, metadata, header, output id, type and layout."""

PLAN_FLAGS = (0, FLAG_IPC)
"""The flag of each kind of value plan, indexed by ``ValuePlan.kind`` (`doradus._wire.values`).

``KIND_BUFFERS`` (0) travels as raw buffers, ``KIND_IPC`` (1) as an Arrow IPC stream. A table
rather than an import: `values` loads numpy and pyarrow, and reading this module must not.
"""

_pack = DATA.pack
_unpack_from = DATA.unpack_from

DataHeader = tuple[int, int, int, int, int, int, int, int, int, int, int]
"""A data header's fields, in `DATA` order: kind, flags, output id length, type length, layout
length, metadata length, seq, timestamp ns, segment id, segment size, payload offset."""


class PlanFields(Protocol):
    """What the header reads of a value's plan (`doradus._wire.values.ValuePlan`)."""

    @property
    def kind(self) -> int:
        """``KIND_BUFFERS`` or ``KIND_IPC``."""

    @property
    def type_blob(self) -> bytes:
        """The value's Arrow type, encoded."""


class MessageFields(Protocol):
    """What the header reads of a message (`doradus.backends.Outgoing`)."""

    @property
    def output(self) -> bytes:
        """The output id."""

    @property
    def plan(self) -> PlanFields:
        """The value's plan."""

    @property
    def metadata(self) -> bytes:
        """The encoded metadata."""

    @property
    def seq(self) -> int:
        """The sender's sequence number."""

    @property
    def stamp_ns(self) -> int:
        """When it was sent."""

    @property
    def codec(self) -> int:
        """The data format's tag."""


def pack_data(
    message: MessageFields, layout: bytes, flags: int, seg_id: int, seg_size: int, seg_off: int = 0
) -> bytes:
    """The `DATA` header of ``message``, its value laid out as ``layout``.

    The value's kind (`PLAN_FLAGS`) and the message's codec tag are added to the
    transport's ``flags`` (``FLAG_SHM``, ``FLAG_FD``). A plain function on the hot path:
    one ``struct`` call, nothing allocated but the header.

    Args:
        message: The message (a `doradus.backends.Outgoing`).
        layout: The layout that travels: the plan's, or one rebased onto a segment.
        flags: The transport's flags.
        seg_id: The shared-memory segment holding the payload (0: none).
        seg_size: That segment's size, or the inline payload's size in a frame.
        seg_off: Where the payload starts in that segment.

    Returns:
        The header's `DATA.size` bytes.

    Example:
        >>> from types import SimpleNamespace as Fields
        >>> plan = Fields(kind=1, type_blob=b"type")
        >>> message = Fields(output=b"out", plan=plan, metadata=b"", seq=7, stamp_ns=99, codec=2)
        >>> header = unpack_data(pack_data(message, b"layout", FLAG_SHM, 3, 4096))
        >>> header[1] == FLAG_SHM | FLAG_IPC | 2 << CODEC_SHIFT, header[2:8], header[8:]
        (True, (3, 4, 6, 0, 7, 99), (3, 4096, 0))
    """
    plan = message.plan
    return _pack(
        KIND_DATA,
        flags | PLAN_FLAGS[plan.kind] | (message.codec << CODEC_SHIFT),
        len(message.output),
        len(plan.type_blob),
        len(layout),
        len(message.metadata),
        message.seq,
        message.stamp_ns,
        seg_id,
        seg_size,
        seg_off,
    )


def unpack_data(datagram: bytes | bytearray | memoryview) -> DataHeader:
    """The `DATA` header's fields at the start of ``datagram`` (see `DataHeader`).

    Raises:
        struct.error: ``datagram`` is shorter than `DATA.size`.

    Example:
        >>> unpack_data(bytes(DATA.size))[:2]
        (0, 0)
    """
    header: DataHeader = _unpack_from(datagram)
    return header
