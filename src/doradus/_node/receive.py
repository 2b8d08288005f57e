"""What arrives at a node, made into events: the inbox's feed, decoding, the end of the stream.

A backend hands each message over undecoded (`InboxReceiver.deliver`, from its own threads or
from the consuming thread itself); the inbox queues it per input; `EventReader.event` turns
what the inbox pops into an event only when the node's user asks for one, so a message the
queue bound drops is never decoded. An inbox entry is one of:

- a message: ``(data, pos, type_len, layout_len, meta_len, stamp_ns, lease, seg_off, flags)``
  (see `decode_input`), from a backend;
- a timer tick: ``(TIMER, time_ns)``;
- a log record for a ``logs`` input: ``(LOG, record as JSON text, time_ns)``;
- under the input id None, an event made already (`InputClosed`, `InputRecovered`, `Stop`,
  `Error`), or a `doradus._node.input_timeouts.Lapsed` input (handed out as `InputClosed`).

Example:
    >>> from doradus._node.inbox import Inbox
    >>> inbox = Inbox({"x": 4})
    >>> InboxReceiver(inbox).closed(["x"])
    >>> inbox.pop(0)
    (None, InputClosed(id='x'))
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from doradus._exceptions import DecodeError
from doradus._node.events import STOP_ALL_INPUTS_CLOSED, Error, Event, Input, InputClosed, Stop
from doradus._node.inbox import Inbox
from doradus._node.input_timeouts import Lapsed
from doradus._node.statistics import NodeCounters
from doradus._observability.latency import LATENCY_BOUNDS_NS
from doradus._wire.metadata import TIMESTAMP, datetime_from_ns, decode_metadata
from doradus._wire.node_config import InputConfig, LinkConfig
from doradus._wire.protocol import CODEC_MASK, CODEC_SHIFT, FLAG_IPC
from doradus._wire.values import KIND_BUFFERS, KIND_IPC, decode_value, layout_struct, type_from_blob

if TYPE_CHECKING:
    from doradus._observability.telemetry import NodeTelemetry
    from doradus.codecs import Codec

TIMER = object()
"""Marks a timer tick in the inbox: ``(TIMER, time_ns)``."""
LOG = object()
"""Marks a log record for a ``logs`` input in the inbox: ``(LOG, record JSON, time_ns)``."""
_PLAIN = layout_struct(2)
"""The layout of a value of two buffers (a primitive array: validity, data): read in place."""
_PLAIN_SIZE = _PLAIN.size
_unpack_plain = _PLAIN.unpack_from
_from_buffers = pa.Array.from_buffers


def lossless_inputs(inputs: Mapping[str, InputConfig], links: Sequence[LinkConfig]) -> set[str]:
    """The inputs whose senders wait for room (``queue_policy: backpressure``, where it applies).

    A timer's input, and a node's input fed by a link whose backend applies backpressure
    (`doradus.backends.Backend.applies_backpressure`); a ``logs`` input, or one fed by
    another backend, drops its oldest instead (``doradus check`` says so).

    Example:
        >>> tick: InputConfig = {"kind": "timer", "queue_size": 1, "policy": "backpressure", "source": "t"}
        >>> x: InputConfig = {"kind": "node", "queue_size": 1, "policy": "backpressure", "source": "a/o"}
        >>> link: LinkConfig = {"peer": "a", "dir": "in", "routes": {"o": ["x"]}, "backend": "zenoh"}
        >>> sorted(lossless_inputs({"tick": tick, "x": x}, [link]))
        ['tick']
    """
    wanted = {k for k, v in inputs.items() if v["policy"] == "backpressure" and v["kind"] != "logs"}
    if not wanted:
        return set()
    applied = {
        i
        for link in links
        if link["dir"] == "in" and _applies_backpressure(link["backend"])
        for ins in link.get("routes", {}).values()
        for i in ins
    }
    return {k for k in wanted if inputs[k]["kind"] == "timer" or k in applied}


def _applies_backpressure(backend: str) -> bool:
    from doradus.backends import backend_class

    try:
        return backend_class(backend).applies_backpressure
    except KeyError:  # unknown here: the backend cannot be opened either, and says so
        return False


class InboxReceiver:
    """The `doradus.backends.Receiver` of a node: feeds what its backend receives into its inbox.

    Example:
        >>> inbox = Inbox({})
        >>> InboxReceiver(inbox).error("link broken")
        >>> inbox.pop(0)
        (None, Error(message='link broken'))
    """

    def __init__(self, inbox: Inbox) -> None:
        self._push = inbox.push
        self._count_timeouts = inbox.count_timeouts
        self._count_dropped = inbox.count_dropped

    def deliver(self, inputs: tuple[str, ...], entry: tuple[Any, ...]) -> None:
        """Queue one message for each of ``inputs`` (decoded when the node takes it)."""
        push = self._push
        for input_id in inputs:
            push(input_id, entry)

    def closed(self, inputs: Sequence[str]) -> None:
        """These inputs receive nothing more: an `InputClosed` each."""
        for input_id in inputs:
            self._push(None, InputClosed(input_id))

    def error(self, message: str) -> None:
        """The backend failed in a way the node should see: an `Error` event."""
        self._push(None, Error(message))

    def timed_out(self, inputs: Sequence[str]) -> None:
        """A sender's wait for room in a backpressure input timed out: counted on ``inputs``."""
        self._count_timeouts(inputs)

    def dropped(self, inputs: Sequence[str], count: int) -> None:
        """A sender dropped ``count`` messages for ``inputs`` (this node held too much): counted."""
        self._count_dropped(inputs, count)


class EventReader:
    """Turns what the inbox pops into the node's events, and knows when its stream has ended.

    Counts each message's one-way latency (and decode errors) into the node's counters,
    decodes it with its input's codec, and queues ``Stop`` once no input can deliver more.
    Called from the node's consuming thread only.

    Attributes:
        ended: a ``Stop`` event was taken: the stream has ended.
        telemetry: the node's OpenTelemetry, told of each message received (None: off).

    Example:
        >>> inbox = Inbox({"logs": 2})
        >>> logs: InputConfig = {"kind": "logs", "queue_size": 2, "policy": "drop-oldest", "source": "x"}
        >>> reader = EventReader(inbox, NodeCounters(["logs"], []), {"logs": logs}, {}, threading.Event())
        >>> inbox.push("logs", (LOG, '{"message": "hi"}', 0))
        >>> reader.event(inbox.pop(0)).value.to_pylist()
        ['{"message": "hi"}']
        >>> reader.event((None, InputClosed("logs"))), reader.event(inbox.pop(0)), reader.ended
        (InputClosed(id='logs'), Stop(reason='all-inputs-closed'), True)
    """

    def __init__(
        self,
        inbox: Inbox,
        counters: NodeCounters,
        inputs: Mapping[str, InputConfig],
        codecs: Mapping[str, Codec],
        timer_stop: threading.Event,
    ) -> None:
        self.ended = False
        self.telemetry: NodeTelemetry | None = None
        self._inbox = inbox
        self._counters = counters
        # the counters' containers themselves: the message path updates them without a call
        self._latencies = counters.latencies
        self._histograms = counters.histograms
        self._latency_sums = counters.latency_sums
        self._codecs = dict(codecs)
        self._retired: dict[str, Codec | None] = {}
        """Input id → the codec it read before `switch_format` (None: Arrow), for what is still queued."""
        self._timer_stop = timer_stop
        self._timed = any(v["kind"] == "timer" for v in inputs.values())
        self._open = {k for k, v in inputs.items() if v["kind"] == "node"}
        self._lingering = {k for k, v in inputs.items() if v["kind"] == "logs"}

    def stop_if_all_closed(self) -> None:
        """Queue ``Stop`` if no input can deliver anything more (none left open, no timer)."""
        if not self._open and not self._timed and not self._lingering:
            self._inbox.push(None, Stop(STOP_ALL_INPUTS_CLOSED))

    def event(self, got: tuple[str | None, Any]) -> Event:
        """The event of one entry the inbox popped (see the module documentation)."""
        input_id, item = got
        if input_id is None:
            event: Event = item
            if isinstance(event, InputClosed):
                self._input_closed(event.id)
            elif isinstance(event, Stop):
                self.ended = True
                self._timer_stop.set()
            elif isinstance(event, Error):
                self._counters.errors += 1
            elif isinstance(event, Lapsed):  # past its input_timeout: closed for the node, not for good
                return InputClosed(event.id)
            return event
        if item[0] is TIMER:
            return Input(input_id, pa.nulls(0), {"timestamp": datetime_from_ns(item[1])})
        if item[0] is LOG:
            return Input(input_id, pa.array([item[1]]), {"timestamp": datetime_from_ns(item[2])})
        latency = time.time_ns() - item[5]  # one-way latency: now - sender's stamp
        self._latencies.append(latency)
        self._histograms[input_id][bisect_left(LATENCY_BOUNDS_NS, latency)] += 1
        self._latency_sums[input_id] += latency
        try:
            event = decode_input(input_id, item, self._codecs.get(input_id) if self._codecs else None)
        except DecodeError as exc:
            if input_id not in self._retired:
                self._counters.errors += 1
                return Error(f"could not decode a message on input {input_id!r}: {exc}")
            event = self._decode_retired(input_id, item, exc)
            if isinstance(event, Error):
                return event
        else:
            if self._retired and input_id in self._retired:  # the new format came: the old comes no more
                self._retired = {k: v for k, v in self._retired.items() if k != input_id}
        if self.telemetry is not None:
            self.telemetry.on_receive(input_id, event.metadata, latency)
        return event

    def switch_format(self, input_id: str, format_json: dict[str, Any] | None) -> None:
        """Decode ``input_id`` with a new format from now on (its sender restarted with it).

        Messages still queued in the old format (sent before the switch) are decoded in that
        format, until the first message in the new one arrives (a new schema of the same format
        cannot be told apart: what is queued is read with the new one). Called from the node's
        control thread (``input_format``); the consuming thread sees the new codec at its next
        message.

        Args:
            input_id: the input.
            format_json: `doradus.codecs.FormatSpec.to_json`'s form (None or ``arrow``: Arrow).

        Raises:
            KeyError: the format is unknown.
            ImportError: the format's packages are missing.
            SchemaError: its schema is invalid.

        Example:
            >>> inbox = Inbox({"x": 2})
            >>> x: InputConfig = {"kind": "node", "queue_size": 2, "policy": "drop-oldest", "source": "a/o"}
            >>> reader = EventReader(inbox, NodeCounters(["x"], []), {"x": x}, {}, threading.Event())
            >>> reader.switch_format("x", {"name": "arrow"}); reader.codec_of("x") is None
            True
        """
        codec: Codec | None = None
        if format_json and format_json.get("name", "arrow") != "arrow":
            from doradus.codecs import FormatSpec, get_codec

            codec = get_codec(FormatSpec.from_json(format_json))
        old = self._codecs.get(input_id)
        if _tag_of(old) != _tag_of(codec):  # one tag: what is queued cannot be told apart
            self._retired = {**self._retired, input_id: old}
        self._codecs = self._replaced(self._codecs, input_id, codec)

    def codec_of(self, input_id: str) -> Codec | None:
        """The codec ``input_id`` decodes with now (None: Arrow).

        Example:
            >>> reader = EventReader(Inbox({}), NodeCounters([], []), {}, {}, threading.Event())
            >>> reader.codec_of("x") is None
            True
        """
        return self._codecs.get(input_id)

    @staticmethod
    def _replaced(codecs: dict[str, Codec], input_id: str, codec: Codec | None) -> dict[str, Codec]:
        """A copy of ``codecs`` with ``input_id``'s (the message path reads the old dict meanwhile)."""
        new = {k: v for k, v in codecs.items() if k != input_id}
        if codec is not None:
            new[input_id] = codec
        return new

    def _decode_retired(self, input_id: str, item: tuple[Any, ...], refused: DecodeError) -> Input | Error:
        """A message in the format ``input_id`` read before `switch_format`, sent before the switch."""
        old = self._retired.get(input_id)
        try:
            if (item[8] & CODEC_MASK) >> CODEC_SHIFT != _tag_of(old):
                raise refused
            return decode_input(input_id, item, old)
        except DecodeError as exc:
            self._counters.errors += 1
            return Error(f"could not decode a message on input {input_id!r}: {exc}")

    def _input_closed(self, input_id: str) -> None:
        self._open.discard(input_id)
        self._lingering.discard(input_id)
        self.stop_if_all_closed()


def _tag_of(codec: Codec | None) -> int:
    """The format tag of messages ``codec`` decodes (0: Arrow)."""
    return 0 if codec is None else codec.tag


def _format_name(tag: int) -> str:
    from doradus.codecs import tag_name  # built in or registered: only when a message is refused

    return tag_name(tag) or f"format #{tag}"


def decode_input(input_id: str, item: tuple[Any, ...], codec: Codec | None = None) -> Input:
    """The `Input` event of one received message.

    Args:
        input_id: the input it arrived on.
        item: the message as a backend delivers it: ``(data, pos, type_len, layout_len,
            meta_len, stamp_ns, lease, seg_off, flags)``: from ``pos`` in ``data`` come the
            Arrow type, the layout and the metadata; the payload follows (8-aligned), or lies
            in the shared-memory ``lease`` from ``seg_off``. ``flags`` carry the format tag.
        codec: the input's codec (None: Arrow).

    Raises:
        DecodeError: the message is of another format than the input reads, or invalid.

    Example:
        >>> from doradus._wire.values import plan_value
        >>> plan = plan_value(pa.array([1, 2, 3]))
        >>> body = bytearray(plan.size); plan.write_into(memoryview(body), 0)
        >>> head = plan.type_blob + plan.layout
        >>> data = head + bytes(-len(head) % 8) + bytes(body)
        >>> item = (data, 0, len(plan.type_blob), len(plan.layout), 0, 0, None, 0, 0)
        >>> decode_input("x", item).value.to_pylist()
        [1, 2, 3]
    """
    data, pos, type_len, layout_len, meta_len, stamp, lease, seg_off, flags = item
    tag = (flags & CODEC_MASK) >> CODEC_SHIFT
    expected = 0 if codec is None else codec.tag
    if tag != expected:
        raise DecodeError(
            f"the message is {_format_name(tag)} but input {input_id!r} reads {_format_name(expected)}"
        )
    type_end = pos + type_len
    meta_at = type_end + layout_len
    end = meta_at + meta_len
    metadata: dict[str, Any] = decode_metadata(data[meta_at:end]) if meta_len else {}
    metadata[TIMESTAMP] = datetime_from_ns(stamp)  # reserved: always this message's send time
    value = None
    if layout_len == _PLAIN_SIZE and not flags & FLAG_IPC:
        # The common value: a primitive array without a validity buffer. Its layout is read in
        # place and its one buffer sliced once; anything else takes `decode_value`.
        length, nulls, offset, _count, start0, _span0, start, span = _unpack_plain(data, type_end)
        type_ = type_from_blob(data[pos:type_end])
        plain = type_.num_fields == 0  # two buffers and children (a union of nulls): the full path
        if plain and start0 < 0 <= start and span >= 0 and length >= 0 and offset >= 0 and nulls >= -1:
            if lease is not None:
                buffer = lease.buffer(seg_off + start, span)
            else:
                start += end + (-end % 8)
                if start + span > len(data):
                    raise DecodeError(f"buffer 1 ({start}+{span}) lies outside the {len(data)} B message")
                buffer = pa.py_buffer(data).slice(start, span)
            try:
                value = _from_buffers(type_, length, [None, buffer], nulls, offset)
            except (pa.ArrowInvalid, ValueError, TypeError) as exc:
                raise DecodeError(f"cannot rebuild array: {exc}") from exc
    if value is None:
        if lease is not None:
            payload = lease.buffer(seg_off, lease.mapping.size - seg_off)
        else:
            payload = pa.py_buffer(data).slice(end + (-end % 8))
        kind = KIND_IPC if flags & FLAG_IPC else KIND_BUFFERS
        value = decode_value(kind, data[pos:type_end], data[type_end:meta_at], payload)
    if codec is None:
        return Input(input_id, value, metadata)
    body = value.buffers()[1]
    if body is None or value.type != pa.uint8():
        raise DecodeError(f"a {codec.name} message on input {input_id!r} carries no bytes")
    return Input(input_id, codec.decode(body.slice(value.offset, len(value))), metadata, codec.name, codec)
