"""Bytes on the wire between nodes, and between a node and its daemon.

Node-to-node links are ``SOCK_SEQPACKET`` Unix socket pairs: one datagram per
message, order kept, no framing needed. A data datagram is::

    header (DATA struct) | output id | type descriptor | layout | metadata | pad to 8 | inline payload

Payloads above ``INLINE_MAX`` live in a shared-memory segment named by the
header (``seg_id``, ``seg_off``); the segment's descriptor rides along
(``SCM_RIGHTS``) the first time a receiver sees it. Receivers answer with
``RELEASE`` datagrams (a count, then segment ids) when they are done with
segments; they send them when idle, so a release never delays a message.

The control channel (node ↔ daemon) carries JSON objects, one per datagram,
with descriptors attached where a message hands over link ends.

Example:
    >>> DATA.size
    56
"""

from __future__ import annotations

import array
import json
import socket
import struct
from typing import Any

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
MAX_FDS = 250

ENV_CONFIG = "DORADUS_NODE_CONFIG"
LATENCY_BOUNDS_US = (
    25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000,
)  # fmt: skip
"""Upper bounds (µs) of the per-input latency histogram buckets; one more bucket holds the rest."""


def send_control(sock: socket.socket, message: dict[str, Any], fds: list[int] | None = None) -> None:
    """Send one control message, optionally handing over file descriptors.

    Example:
        >>> a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        >>> send_control(a, {"op": "start"})
        >>> recv_control(b)
        ({'op': 'start'}, [])
        >>> a.close(); b.close()
    """
    data = json.dumps(message, separators=(",", ":")).encode()
    if fds:
        sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
    else:
        sock.sendall(data)


def recv_control(sock: socket.socket) -> tuple[dict[str, Any] | None, list[int]]:
    """Receive one control message; ``(None, [])`` when the peer has gone.

    Example:
        >>> a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        >>> a.close(); recv_control(b)
        (None, [])
        >>> b.close()
    """
    data, ancdata, _flags, _addr = sock.recvmsg(1 << 20, socket.CMSG_SPACE(MAX_FDS * 4))
    fds = fds_from(ancdata)
    if not data:
        return None, fds
    return json.loads(data), fds


def fds_from(ancdata: list[tuple[int, int, bytes]]) -> list[int]:
    """File descriptors carried in ``recvmsg`` ancillary data."""
    fds: list[int] = []
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            got = array.array("i")
            got.frombytes(payload[: len(payload) - len(payload) % got.itemsize])
            fds.extend(got)
    return fds
