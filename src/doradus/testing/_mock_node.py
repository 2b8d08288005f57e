"""`MockNode`: unit-test a node's logic in-process, with no daemon and no other process.

It offers the `doradus.Node` API. The events it yields are the given inputs as the real node
would deliver them: Arrow values, metadata with a UTC ``timestamp``, then each input closing
and a final ``Stop``. What the node sends is checked as the real node checks it (declared
outputs, convertible values, metadata types, the reserved ``timestamp``) and kept, in order,
in `MockNode.sent`.

Write the node's logic as a function of its node, run it on a `MockNode` in the test, on a
`Node` in the dataflow::

    def run(node):
        for event in node:
            if isinstance(event, Input):
                node.send_output("doubled", pc.multiply(event.value, 2))

    if __name__ == "__main__":
        run(Node())

Example:
    >>> from doradus import Input
    >>> node = MockNode([("numbers", [1, 2, 3])], outputs=["doubled"])
    >>> for event in node:
    ...     if isinstance(event, Input):
    ...         node.send_output("doubled", [2 * v for v in event.value.to_pylist()], {"seq": 1})
    >>> node.outputs["doubled"][0].to_pylist(), node.sent[0].metadata["seq"]
    ([2, 4, 6], 1)
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from doradus._exceptions import MetadataError, UnknownOutputError
from doradus._node.events import (
    STOP_ALL_INPUTS_CLOSED,
    Event,
    Input,
    InputClosed,
    InputRecovered,
    ParamDeleted,
    ParamUpdate,
    Stop,
)
from doradus._wire.metadata import TIMESTAMP, datetime_from_ns, decode_metadata, encode_metadata
from doradus._wire.protocol import MAX_METADATA
from doradus._wire.values import to_arrow

InputItem = Event | tuple[str, Any] | tuple[str, Any, dict[str, Any]]
"""What `MockNode` takes as one input: an event, or ``(input_id, value[, metadata])``."""


@dataclass(frozen=True)
class Sent:
    """One message the node sent: its output, value (as it would travel) and metadata."""

    output: str
    value: pa.Array
    metadata: dict[str, Any] = field(default_factory=dict)


class MockNode:
    """A stand-in for `doradus.Node` that runs in the test's own process.

    Args:
        inputs: The events to deliver, in order: events (`Input`, `InputClosed`, `Stop`,
            `Error`) as they are, or ``(input_id, value)`` / ``(input_id, value, metadata)``
            tuples, whose value becomes an Arrow array as a sent value would (lists, numpy
            arrays, bytes, pyarrow arrays).
        outputs: The node's declared outputs; sending on another raises
            `UnknownOutputError`, as the real node does. None accepts any output.
        node_id: What `id` says.
        close_inputs: After the inputs, close each input that was not closed yet and end
            with ``Stop("all-inputs-closed")``, as the runtime does when the sources are
            gone. A ``Stop`` among the inputs ends the stream there either way. An input's
            silence past its ``input_timeout`` is ``InputClosed(id)`` then, when it receives
            again, ``InputRecovered(id)``: it is closed at the end like any open input.
        descriptor: What `dataflow_descriptor` returns (default: one node, this one).
        dataflow_id: What `dataflow_id` returns.
        restart_count: What `restart_count` returns (`is_restart` is true above 0).
        parameters: The node's parameters at the start (`parameters`); a `ParamUpdate` or
            `ParamDeleted` among the inputs changes them as it is handed out.

    Guarantees: `send_output` is thread-safe and keeps the order of each thread's sends;
    `sent` lists every message in sending order. Nothing here starts a process, a thread
    or a socket.

    Example:
        >>> node = MockNode([("tick", [])], node_id="timer-user")
        >>> [type(e).__name__ for e in node]
        ['Input', 'InputClosed', 'Stop']
        >>> timed_out = [("x", [1]), InputClosed("x"), InputRecovered("x"), ("x", [2])]
        >>> [type(e).__name__ for e in MockNode(timed_out)][2:]
        ['InputRecovered', 'Input', 'InputClosed', 'Stop']
        >>> tuned = MockNode([ParamUpdate("gain", 2)], parameters={"gain": 1, "mode": "a"})
        >>> tuned.parameters()["gain"], tuned.next(), tuned.parameters()["gain"]
        (1, ParamUpdate(key='gain', value=2), 2)
    """

    def __init__(
        self,
        inputs: Iterable[InputItem] = (),
        *,
        outputs: Sequence[str] | None = None,
        node_id: str = "node",
        close_inputs: bool = True,
        descriptor: dict[str, Any] | None = None,
        dataflow_id: str = "",
        restart_count: int = 0,
        parameters: dict[str, Any] | None = None,
    ) -> None:
        self.id = node_id
        self._outputs = None if outputs is None else tuple(outputs)
        self._events: deque[Event] = deque(_events(inputs, close_inputs))
        self._ended = False
        self._lock = threading.Lock()
        self._descriptor = descriptor
        self._dataflow_id = dataflow_id
        self._restart_count = restart_count
        self._parameters = dict(parameters or {})
        self.sent: list[Sent] = []
        """Every message sent, in order."""
        self.logs: list[tuple[str, str, dict[str, Any]]] = []
        """Every ``(level, message, fields)`` logged through `log`."""
        self.closed = False

    # ---------------------------------------------------------------- receiving
    def next(self, timeout: float | None = None) -> Event | None:
        """The next event, or None once the stream has ended (``timeout`` is never waited).

        Example:
            >>> node = MockNode([("x", [1])], close_inputs=False)
            >>> node.next().id, node.next()
            ('x', None)
        """
        if self._ended or not self._events:
            self._ended = True
            return None
        event = self._events.popleft()
        if isinstance(event, Stop):
            self._ended = True
        elif isinstance(event, ParamUpdate):
            self._parameters[event.key] = event.value
        elif isinstance(event, ParamDeleted):
            self._parameters.pop(event.key, None)
        return event

    def try_recv(self) -> Event | None:
        """The next event if there is one (the mock never waits).

        Example:
            >>> MockNode([], close_inputs=False).try_recv() is None
            True
        """
        return self.next()

    def drain(self) -> list[Event]:
        """Every event still to come, at once.

        Example:
            >>> len(MockNode([("x", [1]), ("x", [2])]).drain())
            4
        """
        return list(iter(self.next, None))

    def is_empty(self) -> bool:
        """True when no event is left.

        Example:
            >>> MockNode([], close_inputs=False).is_empty()
            True
        """
        return self._ended or not self._events

    def __iter__(self) -> Iterator[Event]:
        """Every event, the final ``Stop`` included."""
        while (event := self.next()) is not None:
            yield event

    async def recv_async(self, timeout: float | None = None) -> Event | None:  # noqa: ASYNC109 - Node's signature
        """`next`, for ``async`` code.

        Example::

            event = await node.recv_async()
        """
        return self.next()

    async def __aiter__(self) -> AsyncIterator[Event]:
        """``async for event in node``."""
        while (event := self.next()) is not None:
            yield event

    # ---------------------------------------------------------------- sending
    def send_output(self, output_id: str, data: Any, metadata: dict[str, Any] | None = None) -> None:
        """Check and keep a message, as `doradus.Node.send_output` would send it.

        Raises:
            UnknownOutputError: ``output_id`` is not among the declared ``outputs``.
            MetadataError: metadata holds a value that cannot travel.
            EncodeError: ``data`` cannot become an Arrow array.

        Example:
            >>> node = MockNode(outputs=["out"])
            >>> node.send_output("out", b"ab")
            >>> node.outputs["out"][0].type
            DataType(uint8)
        """
        if self._outputs is not None and output_id not in self._outputs:
            raise UnknownOutputError(output_id, node_id=self.id, declared=list(self._outputs))
        value = to_arrow(data)
        # Metadata travels as the real node sends it: checked, encoded, bounded, and stamped.
        encoded = encode_metadata(metadata)
        if len(encoded) > MAX_METADATA:
            raise MetadataError(f"metadata of {len(encoded)} B exceeds {MAX_METADATA} B")
        received = decode_metadata(encoded) if encoded else {}
        received[TIMESTAMP] = datetime_from_ns(time.time_ns())
        with self._lock:
            self.sent.append(Sent(output_id, value, dict(received)))

    @property
    def outputs(self) -> dict[str, list[pa.Array]]:
        """The values sent, per output, in order.

        Example:
            >>> node = MockNode(); node.send_output("a", [1]); node.send_output("a", [2])
            >>> [v.to_pylist() for v in node.outputs["a"]]
            [[1], [2]]
        """
        found: dict[str, list[pa.Array]] = {}
        with self._lock:
            for message in self.sent:
                found.setdefault(message.output, []).append(message.value)
        return found

    def allocate(self, nbytes: int) -> np.ndarray:
        """A writable ``uint8`` array of ``nbytes`` (ordinary memory here).

        Example:
            >>> MockNode().allocate(4).nbytes
            4
        """
        return np.zeros(nbytes, dtype=np.uint8)

    @contextmanager
    def send_output_raw(
        self, output_id: str, data_length: int, metadata: dict[str, Any] | None = None
    ) -> Iterator[memoryview]:
        """A buffer to fill, sent as a ``UInt8Array`` when the block ends.

        Example:
            >>> node = MockNode()
            >>> with node.send_output_raw("blob", 2) as buf:
            ...     buf[:] = b"hi"
            >>> bytes(node.outputs["blob"][0].to_numpy())
            b'hi'
        """
        buffer = bytearray(data_length)
        yield memoryview(buffer)
        self.send_output(output_id, np.frombuffer(bytes(buffer), dtype=np.uint8), metadata)

    # ---------------------------------------------------------------- the rest of Node
    def log(self, level: str, message: str, fields: dict[str, Any] | None = None, **more: Any) -> None:
        """Keep a log record in `logs`.

        Example:
            >>> node = MockNode(); node.log("warn", "hot", temp=90)
            >>> node.logs
            [('WARN', 'hot', {'temp': 90})]
        """
        self.logs.append((level.upper(), message, {**(fields or {}), **more}))

    def log_error(self, message: str, **fields: Any) -> None:
        """`log` at ERROR."""
        self.log("ERROR", message, **fields)

    def log_warn(self, message: str, **fields: Any) -> None:
        """`log` at WARN."""
        self.log("WARN", message, **fields)

    def log_info(self, message: str, **fields: Any) -> None:
        """`log` at INFO."""
        self.log("INFO", message, **fields)

    def log_debug(self, message: str, **fields: Any) -> None:
        """`log` at DEBUG."""
        self.log("DEBUG", message, **fields)

    def log_trace(self, message: str, **fields: Any) -> None:
        """`log` at TRACE."""
        self.log("TRACE", message, **fields)

    def dataflow_id(self) -> str:
        """The ``dataflow_id`` given."""
        return self._dataflow_id

    def dataflow_descriptor(self) -> dict[str, Any]:
        """The ``descriptor`` given, or a dataflow of this one node.

        Example:
            >>> MockNode(node_id="a", outputs=["x"]).dataflow_descriptor()
            {'nodes': [{'id': 'a', 'outputs': ['x']}]}
        """
        if self._descriptor is not None:
            return self._descriptor
        return {"nodes": [{"id": self.id, "outputs": list(self._outputs or ())}]}

    def node_config(self) -> dict[str, Any]:
        """This node's ``inputs`` (the ids it receives) and ``outputs``.

        Example:
            >>> MockNode([("tick", [])], outputs=["out"]).node_config()
            {'inputs': ['tick'], 'outputs': ['out']}
        """
        inputs = sorted({e.id for e in self._events if isinstance(e, Input | InputClosed)})
        return {"inputs": inputs, "outputs": list(self._outputs or ())}

    def parameters(self) -> dict[str, Any]:
        """The node's current parameters: those given, changed by the events handed out so far.

        Example:
            >>> MockNode(parameters={"gain": 1}).parameters()
            {'gain': 1}
        """
        return dict(self._parameters)

    def restart_count(self) -> int:
        """The ``restart_count`` given."""
        return self._restart_count

    def is_restart(self) -> bool:
        """True when ``restart_count`` is above 0."""
        return self._restart_count > 0

    def close(self) -> None:
        """End the stream; what was sent stays in `sent`."""
        self._ended = True
        self.closed = True

    def __enter__(self) -> MockNode:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _events(inputs: Iterable[InputItem], close_inputs: bool) -> Iterator[Event]:
    """The stream the runtime would deliver for ``inputs``."""
    seen: list[str] = []
    closed: set[str] = set()
    for item in inputs:
        event = item if not isinstance(item, tuple) else _input(*item)
        if isinstance(event, Input) and event.id not in seen:
            seen.append(event.id)
        if isinstance(event, InputClosed):
            closed.add(event.id)
        elif isinstance(event, InputRecovered):  # the InputClosed was an `input_timeout`'s
            closed.discard(event.id)
        yield event
        if isinstance(event, Stop):
            return
    if close_inputs:
        for input_id in seen:
            if input_id not in closed:
                yield InputClosed(input_id)
        yield Stop(STOP_ALL_INPUTS_CLOSED)


def _input(input_id: str, value: Any, metadata: dict[str, Any] | None = None) -> Input:
    received = decode_metadata(encode_metadata(metadata)) if metadata else {}
    received[TIMESTAMP] = datetime_from_ns(time.time_ns())
    array = value if isinstance(value, pa.Array) else to_arrow(value)
    return Input(input_id, array, received)
