"""How much of a sender's shared memory one receiver may hold, and the messages shed past it.

A receiver holds a segment of its sender's pool from the moment a message is sent until the
node lets go of the last Arrow buffer over it (`doradus.backends._segments`). A receiver that
stops reading — a frozen process, a node keeping every value it gets — would make its sender's
pool grow without end. So each out link has a *hold limit* in bytes: the sending node's
``shared_memory_pool_size`` (`DEFAULT_HOLD_LIMIT` when unset). A message that would take the
receiver past it is not sent to that receiver, unless it holds fewer than `MIN_HELD` messages
(one message larger than the limit still goes). Other receivers of the same message are not
affected. The sender tells the receiver how many messages it missed with a ``SHED`` flow
message (`doradus.backends._flow`), at once if its socket has room, else with the next
message or release on that link; the receiver counts them as dropped on the inputs they would
have fed, beside its queue's own drops. Messages small enough to travel inline in the datagram
hold no shared memory and are never shed.

Example:
    >>> import socket
    >>> from doradus.backends._shm_links import OutLink
    >>> a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    >>> link = OutLink(0, "viewer", a, ("image",))
    >>> link.hold_limit = 1000
    >>> for seg_id in (1, 2):
    ...     link.track(seg_id, 600)
    >>> [x.peer for x in admit([link], b"image", 600)], link.withheld
    ([], 1)
    >>> from doradus.backends._flow import decode_flow
    >>> decode_flow(b.recv(64))
    (7, 1, 'image')
    >>> a.close(); b.close()
"""

from __future__ import annotations

import socket
from collections.abc import Iterable
from typing import TYPE_CHECKING

from doradus.backends._flow import KIND_SHED, encode_flow

if TYPE_CHECKING:
    from doradus.backends._shm_links import OutLink

DEFAULT_HOLD_LIMIT = 1 << 30
"""Bytes of a sender's shared memory one receiver may hold when ``shared_memory_pool_size`` is unset."""
MIN_HELD = 2
"""A receiver holding fewer messages than this is always sent the next one, whatever its size."""
_MAX_TOLD = 255
"""The most messages one ``SHED`` message tells (its count is one byte)."""


def admit(links: list[OutLink], output: bytes, size: int) -> list[OutLink]:
    """The links of a ``size``-byte message of ``output`` whose receivers have room for it.

    The others have it counted as shed, and are told (`tell_shed`).

    Example:
        >>> admit([], b"image", 1 << 20)
        []
    """
    room: list[OutLink] | None = None
    for index, link in enumerate(links):
        if link.shed:
            tell_shed(link)
        if link.held_count < MIN_HELD or link.held_bytes + size <= link.hold_limit:
            if room is not None:
                room.append(link)
            continue
        if room is None:
            room = links[:index]
        with link.lock:
            link.shed[output] = link.shed.get(output, 0) + 1
            link.withheld += 1
        tell_shed(link)
    return links if room is None else room


def tell_shed(link: OutLink) -> None:
    """Send ``link``'s receiver the counts of messages shed since it was last told, without blocking.

    What its socket has no room for stays counted on the link, for the next call.

    Example:
        >>> import socket
        >>> from doradus.backends._shm_links import OutLink
        >>> a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        >>> link = OutLink(0, "viewer", a, ("image",))
        >>> link.shed[b"image"] = 300
        >>> tell_shed(link); link.shed
        {}
        >>> [len(b.recv(64)) for _ in range(2)]
        [9, 9]
        >>> a.close(); b.close()
    """
    with link.lock:
        for output, count in list(link.shed.items()):
            name = output.decode()
            while count > 0:
                told = min(count, _MAX_TOLD)
                try:
                    link.sock.send(encode_flow(KIND_SHED, told, name), socket.MSG_DONTWAIT)
                except OSError:  # no room (a frozen receiver) or the link is gone: told later, or never
                    break
                count -= told
            if count:
                link.shed[output] = count
            else:
                del link.shed[output]


def withheld(links: Iterable[OutLink]) -> dict[str, int]:
    """Messages shed so far per receiver (the backend's statistics).

    Example:
        >>> withheld([])
        {}
    """
    counts: dict[str, int] = {}
    for link in links:
        if link.withheld:
            counts[link.peer] = counts.get(link.peer, 0) + link.withheld
    return counts
