"""Bytes on the wire between nodes: the data and release datagrams.

Node-to-node links are ``SOCK_SEQPACKET`` Unix socket pairs: one datagram per
message, order kept, no framing needed. A data datagram is::

    header (DATA struct) | output id | type descriptor | layout | metadata | pad to 8 | inline payload

Payloads above ``INLINE_MAX`` live in a shared-memory segment named by the
header (``seg_id``, ``seg_off``); the segment's descriptor rides along
(``SCM_RIGHTS``) the first time a receiver sees it. Receivers answer with
``RELEASE`` datagrams (a count, then segment ids) when they are done with
segments; they send them when idle, so a release never delays a message.

The control channel between a node and its daemon is `doradus._wire.control`.

Example:
    >>> DATA.size
    56
"""

from __future__ import annotations

import struct

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
