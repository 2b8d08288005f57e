"""Taps: extra ``shm`` out links through which ``doradus topic`` reads one output of a running node.

A tap is a link the daemon hands a running node (``peer_links``) for one output, marked by the
link option `TAP_OPTION`; its other end is read by ``doradus topic`` on the same machine. Two
kinds, and two things that set both apart from a receiver's link:

- **The sender never waits for a tap.** Its end is non-blocking: when the tap's reader is
  behind and the socket's buffer is full, the message skips the tap and is counted. A message
  sent after the reader went away skips it the same way, until the sender notices the end and
  drops the tap: removing one leaves the sender as it was, with no failure counted.
- **What a tap missed is told.**

A `TAP_FULL` tap (``topic echo``) is an ordinary out link whose socket is a `TapSocket`: it
carries the datagrams as they are (the reader maps shared memory read-only and releases it,
like any receiver). `ShmBackend` takes a `TapSocket`'s ``BlockingIOError`` as a skip, not a
failure, and hands back the segment it had counted the tap in. The messages it skipped are
told, before the next datagram that goes through, by flow ``SKIP`` messages whose value counts
them (`doradus.backends._flow`); a receiving ``shm`` backend reports each as
``Receiver.timed_out``.

A `TAP_HEADERS` tap (``topic hz`` and ``bw``) is no link: `HeaderTaps` sends it, for each
message of its output, one `HEADER_RECORD` made from the message itself — sequence number,
send time, payload size, the messages skipped so far — never the payload, never a segment.
The sender's shared memory does not know it is there.

An output without a tap costs its sender one empty check per message (`HeaderTaps` is false).

Example:
    >>> from doradus.backends import LinkSpec
    >>> from doradus.testing import outgoing
    >>> a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    >>> taps = HeaderTaps()
    >>> taps.add(LinkSpec("doradus-topic-1", "out", ("out",), options={"tap": "headers"}), a.detach())
    >>> taps.record(outgoing([1, 2, 3], seq=7))
    >>> record = read_header_record(b.recv(64))
    >>> record.seq, record.size, record.skipped
    (7, 24, 0)
    >>> taps.close(); b.close()
"""

from __future__ import annotations

import errno
import socket
import struct
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, NamedTuple

from doradus.backends._flow import KIND_SKIP, encode_flow

if TYPE_CHECKING:
    from doradus.backends._base import LinkSpec, Outgoing

TAP_OPTION = "tap"
"""The link option marking a tap; its value is `TAP_FULL` or `TAP_HEADERS`."""
TAP_FULL = "full"
TAP_HEADERS = "headers"
TAP_MODES = (TAP_FULL, TAP_HEADERS)
KIND_HEADER = 9
"""The first byte of a `HEADER_RECORD` (no data, release or flow message starts with it)."""
HEADER_RECORD = struct.Struct("<BxxxIQqQ")
"""kind, messages skipped so far (mod 2**32), seq, send time (ns), payload bytes."""
MAX_TOLD = 255
"""Most skipped messages one ``SKIP`` tells (its value is one byte)."""
_GONE = (BrokenPipeError, ConnectionResetError)


class HeaderRecord(NamedTuple):
    """One message as a headers tap sees it.

    Example:
        >>> HeaderRecord(seq=1, stamp_ns=5, size=8, skipped=0).size
        8
    """

    seq: int
    stamp_ns: int
    size: int
    """Payload bytes, as the sender counts them."""
    skipped: int
    """Messages that skipped this tap so far (its reader was behind), modulo 2**32."""


def is_headers_tap(spec: LinkSpec) -> bool:
    """Whether a link the daemon wired is a headers tap (`HeaderTaps` takes it, not the links).

    Example:
        >>> from doradus.backends import LinkSpec
        >>> is_headers_tap(LinkSpec("t", "out", ("x",), options={"tap": "headers"}))
        True
    """
    return spec.direction == "out" and spec.options.get(TAP_OPTION) == TAP_HEADERS


def link_socket(spec: LinkSpec, fd: int) -> socket.socket:
    """The socket of one ``shm`` link end: a `TapSocket` for a full tap's sending end, else a plain one.

    Example:
        >>> from doradus.backends import LinkSpec
        >>> a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        >>> spec = LinkSpec("doradus-topic", "out", ("image",), options={"tap": "full"})
        >>> end = link_socket(spec, a.detach())
        >>> type(end).__name__, end.getblocking()
        ('TapSocket', False)
        >>> end.close(); b.close()
    """
    if spec.direction != "out" or spec.options.get(TAP_OPTION) != TAP_FULL:
        return socket.socket(fileno=fd)
    return TapSocket(fd, spec.outputs[0] if spec.outputs else "")


class TapSocket(socket.socket):
    """The sending end of a full tap: never blocks, counts what skips it, tells it.

    Thread safety: as a link's socket, used under the node's send lock.

    Args:
        fd: the descriptor of the link's end (owned from now on).
        output: the output the tap reads.
    """

    def __init__(self, fd: int, output: str) -> None:
        super().__init__(fileno=fd)
        self.setblocking(False)
        self.skipped = 0
        """Messages that skipped the tap (its reader was behind, or gone)."""
        self._untold = 0
        self._output = output

    def sendmsg(
        self,
        buffers: Iterable[Any],
        ancdata: Iterable[Any] = (),
        flags: int = 0,
        address: Any = None,
        /,
    ) -> int:
        """Send one message's datagram without waiting, after the ``SKIP``s still untold.

        Raises:
            BlockingIOError: the message skipped the tap (counted): its buffer is full, or its
                reader has gone.
        """
        try:
            if self._untold:
                self._tell_skips()
            return super().sendmsg(buffers, ancdata, flags)
        except BlockingIOError:
            self._skipped()
            raise
        except _GONE as exc:  # the sender's reactor drops the link soon
            self._skipped()
            raise BlockingIOError(errno.EAGAIN, "the tap's reader has gone") from exc

    def _skipped(self) -> None:
        self.skipped += 1
        self._untold += 1

    def _tell_skips(self) -> None:
        """``SKIP`` messages, each counting up to `MAX_TOLD` (BlockingIOError while still full)."""
        while self._untold:
            told = min(self._untold, MAX_TOLD)
            self.send(encode_flow(KIND_SKIP, told, self._output))
            self._untold -= told


class _HeaderTap:
    """One headers tap: its socket and what skipped it."""

    __slots__ = ("output", "skipped", "sock")

    def __init__(self, sock: socket.socket, output: bytes) -> None:
        self.sock = sock
        self.output = output
        self.skipped = 0


class HeaderTaps:
    """The headers taps of one sender, by output; false while there are none.

    Thread safety: `add` may run on any thread (the node's control thread) while `record`
    runs under the node's send lock; `record` drops a tap whose reader has gone.

    Example:
        >>> bool(HeaderTaps())
        False
    """

    def __init__(self) -> None:
        self._by_output: dict[bytes, list[_HeaderTap]] = {}
        self._lock = threading.Lock()

    def __bool__(self) -> bool:
        return bool(self._by_output)

    def add(self, spec: LinkSpec, fd: int) -> None:
        """A new headers tap on ``spec``'s output, its sending end ``fd`` (owned from now on)."""
        sock = socket.socket(fileno=fd)
        sock.setblocking(False)
        output = (spec.outputs[0] if spec.outputs else "").encode()
        with self._lock:  # a new list: a `record` under way keeps the one it took
            self._by_output = {
                **self._by_output,
                output: [*self._by_output.get(output, ()), _HeaderTap(sock, output)],
            }

    def record(self, message: Outgoing) -> None:
        """Send ``message``'s record to the taps of its output (a full one skips, counted)."""
        taps = self._by_output.get(message.output)
        if not taps:
            return
        for tap in taps:
            record = HEADER_RECORD.pack(
                KIND_HEADER, tap.skipped & 0xFFFFFFFF, message.seq, message.stamp_ns, message.plan.size
            )
            try:
                tap.sock.send(record)
            except BlockingIOError:
                tap.skipped += 1
            except OSError:  # its reader has gone (EPIPE, ECONNRESET)
                self._drop(tap)

    def _drop(self, tap: _HeaderTap) -> None:
        with self._lock:
            kept = [t for t in self._by_output.get(tap.output, ()) if t is not tap]
            others = {o: t for o, t in self._by_output.items() if o != tap.output}
            self._by_output = {**others, tap.output: kept} if kept else others
        tap.sock.close()

    def close(self) -> None:
        """Close every tap's end (the backend closes)."""
        with self._lock:
            taps, self._by_output = self._by_output, {}
        for listed in taps.values():
            for tap in listed:
                tap.sock.close()


def read_header_record(data: bytes) -> HeaderRecord | None:
    """The record in one datagram of a headers tap; None if it is something else.

    Example:
        >>> read_header_record(HEADER_RECORD.pack(KIND_HEADER, 2, 7, 99, 8))
        HeaderRecord(seq=7, stamp_ns=99, size=8, skipped=2)
        >>> read_header_record(b"other") is None
        True
    """
    if len(data) != HEADER_RECORD.size or data[0] != KIND_HEADER:
        return None
    _kind, skipped, seq, stamp, size = HEADER_RECORD.unpack(data)
    return HeaderRecord(seq, stamp, size, skipped)
