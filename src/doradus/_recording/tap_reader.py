"""Reading a running node's output for ``doradus record --attach``: taps into one bounded inbox.

A **tap** is an ``shm`` link the run's daemon hands a running node for one output; the node
sends every message of that output to it, as to one more receiver (`doradus._runtime.taps`).
`TopicTap` reads one tap on its backend's reading thread and makes each message what the file
stores at once — an Arrow value its IPC stream (`arrow_ipc.stored_arrow`), another format its
encoded bytes as the node sent them — so the node's shared memory goes back to it before the
next message is read. The result goes to the `Inbox` the writer takes from.

Nothing waits for the recorder, and nothing it misses goes uncounted:

- the node never waits for a tap: when the tap's socket is full (the reading thread behind),
  the message skips the tap and the node tells how many before the next one that fits; each
  is counted as dropped on its topic (`TopicTap.timed_out`, `TopicTap.dropped`);
- the inbox holds at most ``max_messages`` messages and ``max_bytes`` bytes: when the writer
  is behind, the oldest message is dropped, counted on its topic.

Example::

    inbox = Inbox(max_messages=1000, max_bytes=256 << 20)
    tap = TopicTap(fd, "camera", "image", None, inbox)
    received = inbox.take(timeout=0.25)
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from doradus._exceptions import DecodeError, DoradusError
from doradus._recording.arrow_ipc import StoredArrow, stored_arrow
from doradus._wire.format_spec import FormatSpec
from doradus._wire.metadata import decode_metadata
from doradus._wire.protocol import CODEC_MASK, CODEC_SHIFT, FLAG_IPC
from doradus._wire.values import KIND_BUFFERS, KIND_IPC, decode_value

TAP_INPUT = "recorded"
"""The input id a tap's messages arrive on (a tap carries one output)."""


@dataclass(frozen=True)
class Received:
    """One message, made what the file stores, waiting for the writer.

    Example:
        >>> Received("cam/image", b"...", {}, 2, 1, 3).topic
        'cam/image'
    """

    topic: str
    data: StoredArrow | bytes
    """An Arrow value's IPC stream, or another format's encoded bytes."""
    metadata: dict[str, Any]
    """The message's metadata keys (its send time is ``publish_time``)."""
    log_time: int
    """When it was received (ns since the Unix epoch)."""
    publish_time: int
    """When the node sent it (ns since the Unix epoch, µs precision as the foreground recorder's)."""
    size: int
    """Bytes it holds in memory while it waits."""


class Inbox:
    """The messages of every tap, in arrival order, bounded in count and bytes; thread-safe.

    Args:
        max_messages: most messages kept; the oldest is dropped (counted) past it.
        max_bytes: most bytes kept (one message more is always taken).

    Example:
        >>> inbox = Inbox(max_messages=1, max_bytes=1 << 20)
        >>> inbox.put(Received("a/x", b"1", {}, 0, 0, 1)); inbox.put(Received("a/x", b"2", {}, 0, 0, 1))
        >>> inbox.take(0).data, inbox.dropped
        (b'2', {'a/x': 1})
    """

    def __init__(self, *, max_messages: int, max_bytes: int) -> None:
        self._queue: deque[Received] = deque()
        self._bytes = 0
        self._max_messages = max_messages
        self._max_bytes = max_bytes
        self._ready = threading.Condition()
        self.dropped: dict[str, int] = {}
        """Messages dropped per topic: by this inbox when full, or skipped at the node."""
        self.peak_bytes = 0
        """The most bytes it held at once."""

    def put(self, message: Received) -> None:
        """Add ``message``, dropping the oldest ones (counted) while it is over its bounds."""
        with self._ready:
            while self._queue and (
                len(self._queue) >= self._max_messages or self._bytes + message.size > self._max_bytes
            ):
                old = self._queue.popleft()
                self._bytes -= old.size
                self.dropped[old.topic] = self.dropped.get(old.topic, 0) + 1
            self._queue.append(message)
            self._bytes += message.size
            self.peak_bytes = max(self.peak_bytes, self._bytes)
            self._ready.notify()

    def count_dropped(self, topic: str, count: int) -> None:
        """``count`` messages of ``topic`` skipped the tap at the node (they never came here)."""
        with self._ready:
            self.dropped[topic] = self.dropped.get(topic, 0) + count

    def take(self, timeout: float) -> Received | None:
        """The oldest message, waiting at most ``timeout`` seconds; None if none came."""
        with self._ready:
            if not self._queue:
                self._ready.wait(timeout)
            if not self._queue:
                return None
            message = self._queue.popleft()
            self._bytes -= message.size
            return message

    def __len__(self) -> int:
        with self._ready:
            return len(self._queue)


class TopicTap:
    """The reading end of a ``full`` tap on one output, feeding an `Inbox` (see the module doc).

    Implements the backend's ``Receiver``: its methods run on the backend's reading thread.

    Args:
        fd: the tap's reading end (owned from now on, closed by `close`).
        node: the node sending.
        output: its output.
        format_json: the output's data format (`FormatSpec.to_json`), None for Arrow.
        inbox: where the messages go.
    """

    def __init__(
        self, fd: int, node: str, output: str, format_json: dict[str, Any] | None, inbox: Inbox
    ) -> None:
        from doradus.backends import LinkSpec, get_backend

        self.node = node
        self.output = output
        self.topic = f"{node}/{output}"
        self.spec = None if not format_json else FormatSpec.from_json(format_json)
        self._tag = 0
        if self.spec is not None and self.spec.name != "arrow":
            from doradus.codecs import get_codec

            self._tag = get_codec(self.spec).tag
        else:
            self.spec = None
        self._inbox = inbox
        self.ended = threading.Event()
        """Set when the node's end closed: it ended or restarted."""
        self.errors: list[str] = []
        """Messages that could not be read (the first few)."""
        self._backend = get_backend("shm")("doradus-recorder", self)
        self._backend.open([LinkSpec(node, "in", routes={output: [TAP_INPUT]})], [fd])
        self._backend.start()

    def close(self) -> None:
        """Stop reading and close the tap: the node sees its end and drops the link."""
        self._backend.close()

    # ------------------------------------------------------- backend receiver
    def deliver(self, inputs: tuple[str, ...], entry: tuple[Any, ...]) -> None:
        """One message: made what the file stores, its shared memory let go, into the inbox."""
        received = time.time_ns()
        try:
            data, metadata, stamp = read_entry(entry, self._tag)
        except DoradusError as exc:
            self.error(f"{self.topic}: could not read a message: {exc}")
            return
        size = data.data.size if isinstance(data, StoredArrow) else len(data)
        self._inbox.put(Received(self.topic, data, metadata, received, stamp // 1000 * 1000, size))

    def closed(self, inputs: Sequence[str]) -> None:
        """The node's end closed."""
        self.ended.set()

    def error(self, message: str) -> None:
        """A message could not be read (the first few are kept)."""
        if len(self.errors) < 10:
            self.errors.append(message)

    def timed_out(self, inputs: Sequence[str]) -> None:
        """A message skipped this tap at the node (its ``SKIP``): dropped."""
        self._inbox.count_dropped(self.topic, 1)

    def dropped(self, inputs: Sequence[str], count: int) -> None:
        """``count`` messages were not sent to this tap by the node: dropped."""
        self._inbox.count_dropped(self.topic, count)


def read_entry(entry: tuple[Any, ...], tag: int) -> tuple[StoredArrow | bytes, dict[str, Any], int]:
    """A received message as (what the file stores, its metadata keys, its send time in ns).

    ``entry`` is what an ``shm`` backend delivers (`doradus._node.receive.decode_input` reads
    the same for a node); ``tag`` the output's format tag (0: Arrow). Whatever is returned
    holds its own memory: none of the entry's.

    Raises:
        DecodeError: the message is invalid, or of another format than ``tag``.

    Example:
        >>> from doradus._wire.values import plan_value
        >>> plan = plan_value(pa.array([1, 2, 3]))
        >>> body = bytearray(plan.size); plan.write_into(memoryview(body), 0)
        >>> head = plan.type_blob + plan.layout
        >>> data = head + bytes(-len(head) % 8) + bytes(body)
        >>> item = (data, 0, len(plan.type_blob), len(plan.layout), 0, 5, None, 0, 0)
        >>> stored, metadata, stamp = read_entry(item, 0)
        >>> stored.value_type, metadata, stamp
        (DataType(int64), {}, 5)
    """
    data, pos, type_len, layout_len, meta_len, stamp, lease, seg_off, flags = entry
    found = (flags & CODEC_MASK) >> CODEC_SHIFT
    if found != tag:
        raise DecodeError(f"a message of format tag {found}, not the output's ({tag})")
    blob = data[pos : pos + type_len]
    layout = data[pos + type_len : pos + type_len + layout_len]
    pos += type_len + layout_len
    metadata: dict[str, Any] = dict(decode_metadata(data[pos : pos + meta_len])) if meta_len else {}
    pos += meta_len
    if lease is not None:
        payload = lease.buffer(seg_off, lease.mapping.size - seg_off)
    else:
        payload = pa.py_buffer(data).slice(pos + (-pos % 8))
    value = decode_value(KIND_IPC if flags & FLAG_IPC else KIND_BUFFERS, blob, layout, payload)
    if not tag:
        return stored_arrow(value), metadata, int(stamp)
    body = value.buffers()[1]
    if body is None or value.type != pa.uint8():
        raise DecodeError("a message of another format carries no bytes")
    return body.slice(value.offset, len(value)).to_pybytes(), metadata, int(stamp)
