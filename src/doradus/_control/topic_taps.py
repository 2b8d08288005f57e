"""Reading a tap in this process: the messages (``topic echo``) or their header records (``hz``, ``bw``).

A tap's reading end comes from the run's topic socket (`doradus._control.topics`); the node
sends to it directly. Neither reader can slow the node: its end skips what does not fit
(`doradus.backends._shm_taps`), and each reader drains its end on a thread of its own.

- `MessageTap` reads a ``full`` tap as a receiving node would (an ``shm`` backend: shared
  memory mapped read-only, no copy) and turns each message into a `TapMessage` on that
  thread — the value cut to what is shown (`doradus._control.topic_values`) — so the
  message's memory goes back to the node at once. The messages wait in a bounded queue for
  the printing thread; when it falls behind (a slow terminal), the oldest are dropped and
  counted. Messages the node's end skipped are counted too (``SKIP`` messages).
- `HeaderTap` reads a ``headers`` tap: one small record per message (never the payload, nor
  its shared memory), into a `doradus._control.topic_rates.RateWindow`; it looks every 10 ms
  rather than waiting on the socket, so the node's sends wake no one.

Example::

    tapped, fd = topics.tap("camera", "image", "full")
    with MessageTap(fd, "camera", "image", tapped["format"]) as tap:
        message = tap.next(timeout=1.0)
"""

from __future__ import annotations

import os
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from doradus._control.topic_rates import RateWindow
from doradus._control.topic_values import MAX_ITEMS, Shown, jsonable, render_array, render_python
from doradus._exceptions import DoradusError

QUEUE_SIZE = 100
"""Messages a `MessageTap` keeps for its reader; past that the oldest are dropped (counted)."""
POLL_INTERVAL = 0.01
"""Seconds a `HeaderTap` sleeps between two looks at its socket when little came."""
MAX_DRAIN = 4096
"""Records a `HeaderTap` takes in one look."""
DRAIN_AGAIN = 256
"""A look that took at least this many is followed by the next at once (a fast output)."""
TAP_INPUT = "tap"


@dataclass(frozen=True)
class TapMessage:
    """One message as ``topic echo`` shows it.

    ``missed`` counts the messages of the output this tap did not show just before this one
    (the node's end skipped them, or the queue dropped them).

    Example:
        >>> TapMessage(7, 1_700_000_000_000_000_000, 24, Shown([1, 2, 3], "int64", 3, False), {}, 0).seq
        7
    """

    seq: int
    stamp_ns: int
    size: int
    shown: Shown
    metadata: dict[str, Any]
    missed: int


class MessageTap:
    """The reading end of a ``full`` tap (see the module documentation).

    Args:
        fd: the tap's reading end (owned from now on).
        node: the node it taps (for messages).
        output: the output.
        format_json: the output's data format (`doradus.codecs.FormatSpec.to_json`), None for Arrow.
        max_items: items of an array shown.
        queue_size: messages kept for the reader.
    """

    def __init__(
        self,
        fd: int,
        node: str,
        output: str,
        format_json: dict[str, Any] | None,
        *,
        max_items: int = MAX_ITEMS,
        queue_size: int = QUEUE_SIZE,
    ) -> None:
        from doradus.backends import LinkSpec, get_backend

        self._codec = _codec_of(format_json)
        self._max_items = max_items
        self._queue: deque[TapMessage] = deque()
        self._queue_size = queue_size
        self._ready = threading.Condition()
        self._missed = 0
        self.missed_total = 0
        """Messages not shown: skipped by the node's end, or dropped from the queue."""
        self.ended = False
        """The node's end closed: it ended, or restarted."""
        self.errors: list[str] = []
        self._backend = get_backend("shm")("doradus-topic", self)
        self._backend.open([LinkSpec(node, "in", routes={output: [TAP_INPUT]})], [fd])
        self._backend.start()

    def __enter__(self) -> MessageTap:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def next(self, timeout: float) -> TapMessage | None:
        """The next message, waiting at most ``timeout`` seconds; None if none came (or the tap ended)."""
        with self._ready:
            if not self._queue and not self.ended:
                self._ready.wait(timeout)
            return self._queue.popleft() if self._queue else None

    def close(self) -> None:
        """Close the tap: the node sees its end and drops the link."""
        self._backend.close()

    # ------------------------------------------------------- backend receiver
    def deliver(self, inputs: tuple[str, ...], entry: tuple[Any, ...]) -> None:
        """One message (the backend's reading thread): made a `TapMessage`, its memory let go."""
        try:
            message = self._message(entry)
        except DoradusError as exc:
            self.error(f"could not read a message: {exc}")
            return
        with self._ready:
            if len(self._queue) >= self._queue_size:
                self._queue.popleft()
                self._missed += 1
                self.missed_total += 1
            self._queue.append(message)
            self._ready.notify_all()

    def closed(self, inputs: Sequence[str]) -> None:
        """The node's end closed."""
        with self._ready:
            self.ended = True
            self._ready.notify_all()

    def error(self, message: str) -> None:
        """A message could not be read (kept for the command to say)."""
        self.errors.append(message)

    def timed_out(self, inputs: Sequence[str]) -> None:
        """A message skipped this tap at the node (told by a ``SKIP``)."""
        self.dropped(inputs, 1)

    def dropped(self, inputs: Sequence[str], count: int) -> None:
        """``count`` messages skipped this tap at the node."""
        with self._ready:
            self._missed += count
            self.missed_total += count

    def _message(self, entry: tuple[Any, ...]) -> TapMessage:
        from doradus._wire.protocol import unpack_data

        value, metadata, size = decode_entry(entry, self._codec)
        if self._codec is None:
            shown = render_array(value, self._max_items)
        else:
            shown = render_python(self._codec.to_python(value), str(self._codec.spec), self._max_items)
        seq = unpack_data(entry[0])[6]
        with self._ready:
            missed, self._missed = self._missed, 0
        return TapMessage(seq, int(entry[5]), size, shown, jsonable(metadata, self._max_items), missed)


def _codec_of(format_json: dict[str, Any] | None) -> Any:
    """The codec of a format other than Arrow (None for Arrow)."""
    if not format_json or format_json.get("name", "arrow") == "arrow":
        return None
    from doradus.codecs import FormatSpec, get_codec

    return get_codec(FormatSpec.from_json(format_json))


def decode_entry(entry: tuple[Any, ...], codec: Any) -> tuple[Any, dict[str, Any], int]:
    """A received message as (value, metadata, payload bytes): an Arrow array, or the codec's value.

    ``entry`` is what an ``shm`` backend delivers (see `doradus._node.receive.decode_input`,
    which reads the same for a node). The metadata holds ``timestamp``, the send time.

    Raises:
        DecodeError: the message is not valid (or of another format than the output's).
    """
    import pyarrow as pa

    from doradus._exceptions import DecodeError
    from doradus._wire.metadata import TIMESTAMP, datetime_from_ns, decode_metadata
    from doradus._wire.protocol import CODEC_MASK, CODEC_SHIFT, FLAG_IPC
    from doradus._wire.values import KIND_BUFFERS, KIND_IPC, decode_value

    data, pos, type_len, layout_len, meta_len, stamp, lease, seg_off, flags = entry
    blob = data[pos : pos + type_len]
    layout = data[pos + type_len : pos + type_len + layout_len]
    pos += type_len + layout_len
    metadata: dict[str, Any] = dict(decode_metadata(data[pos : pos + meta_len])) if meta_len else {}
    pos += meta_len
    metadata[TIMESTAMP] = datetime_from_ns(stamp)
    if lease is not None:
        payload = lease.buffer(seg_off, lease.mapping.size - seg_off)
    else:
        payload = pa.py_buffer(data).slice(pos + (-pos % 8))
    value = decode_value(KIND_IPC if flags & FLAG_IPC else KIND_BUFFERS, blob, layout, payload)
    size = (
        layout_span(layout) if layout else (payload.size if lease is None else value.get_total_buffer_size())
    )
    tag = (flags & CODEC_MASK) >> CODEC_SHIFT
    if tag != (0 if codec is None else codec.tag):
        raise DecodeError(f"a message of format tag {tag}, not the output's")
    if codec is None:
        return value, metadata, size
    body = value.buffers()[1]
    if body is None:
        raise DecodeError(f"a {codec.name} message carries no bytes")
    return codec.decode(body.slice(value.offset, len(value))), metadata, size


class HeaderTap:
    """The reading end of a ``headers`` tap: each record into ``book``.

    It looks at its socket every `POLL_INTERVAL` (at once again after a full look) instead of
    waiting on it: a node sending to a reader that is not waiting wakes no one, which is most of
    what a message costs the node's process at a moderate rate. The socket's buffer holds what
    comes meanwhile; what does not fit skips the tap, counted.

    Args:
        fd: the tap's reading end (owned from now on).
        book: where the records go.
    """

    def __init__(self, fd: int, book: RateWindow) -> None:
        self._sock = socket.socket(fileno=fd)
        self._book = book
        self.ended = False
        """The node's end closed: it ended, or restarted."""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="doradus-topic-headers", daemon=True)
        self._thread.start()

    def __enter__(self) -> HeaderTap:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop reading and close the tap: the node drops it at its next message on the output."""
        self._stop.set()
        self._thread.join(timeout=1.0)
        self._sock.close()

    def wait(self, seconds: float) -> bool:
        """Sleep ``seconds`` (less if the tap ends); whether it has ended."""
        deadline = time.monotonic() + seconds
        while not self.ended and time.monotonic() < deadline:
            self._stop.wait(min(0.05, max(0.0, deadline - time.monotonic())))
        return self.ended

    def _run(self) -> None:
        """Read what waits every `POLL_INTERVAL`, never blocked on the socket (see `HeaderTap`)."""
        while not self._stop.is_set():
            got = self._drain()
            if got is None:
                self.ended = True
                return
            if got < DRAIN_AGAIN:
                self._stop.wait(POLL_INTERVAL)

    def _drain(self) -> int | None:
        """Take the records waiting (at most a few thousand); how many, None once the node's end closed."""
        from doradus.backends._shm_taps import read_header_record

        got = 0
        while got < MAX_DRAIN:
            try:
                data = self._sock.recv(64, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return got
            except OSError:
                data = b""
            if not data:
                return None
            record = read_header_record(data)
            if record is not None:
                got += 1
                self._book.add(record.seq, record.stamp_ns, record.size, record.skipped)
        return got


def layout_span(layout: bytes) -> int:
    """The bytes an Arrow value's buffers span in its payload, from its layout (0 for none).

    Example:
        >>> import pyarrow as pa
        >>> from doradus._wire.values import plan_value
        >>> plan = plan_value(pa.array([1, None, 3]))
        >>> layout_span(plan.layout) == plan.size
        True
    """
    from doradus._wire.values import layout_struct

    count = (len(layout) - layout_struct(0).size) // 16  # a head, then (offset, size) per buffer
    try:
        _length, _nulls, _offset, _count, *flat = layout_struct(count).unpack(layout)
    except (ValueError, struct.error):
        return 0
    present = [(int(flat[k]), int(flat[k + 1])) for k in range(0, len(flat), 2) if flat[k] >= 0]
    if not present:
        return 0
    return max(offset + size for offset, size in present) - min(offset for offset, _ in present)


def close_fd(fd: int) -> None:
    """Close a tap's descriptor not handed to a reader (its node then drops the link).

    Example:
        >>> a, b = socket.socketpair(); close_fd(a.detach()); b.close()
    """
    try:
        os.close(fd)
    except OSError:
        pass
