"""dora-rs's Python API on top of Doradus: dict events and dora's names.

The ``dora`` module that the daemon puts first on every spawned node's
import path (``doradus/_compat/dora``) re-exports these, so a node written
for dora-rs runs unmodified.

Example:
    >>> to_dora_event(Stop()) ["id"]
    'MANUAL'
"""

from __future__ import annotations

import enum
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractContextManager
from typing import Any

from doradus._exceptions import DecodeError
from doradus._node.events import (
    STOP_ALL_INPUTS_CLOSED,
    Error,
    Event,
    Input,
    InputClosed,
    InputRecovered,
    NodeFailed,
    NodeRestarted,
    ParamDeleted,
    ParamUpdate,
    Stop,
)
from doradus._node.node import Node as _NativeNode


class DoraStatus(enum.IntEnum):
    """What an operator's ``on_event`` returns.

    Example:
        >>> int(DoraStatus.STOP_ALL)
        2
    """

    CONTINUE = 0
    STOP = 1
    STOP_ALL = 2


def to_dora_event(event: Event) -> dict[str, Any]:
    """A native event as dora's event dict.

    Example:
        >>> to_dora_event(InputClosed("image"))["type"]
        'INPUT_CLOSED'
        >>> to_dora_event(InputRecovered("image"))
        {'kind': 'dora', 'type': 'INPUT_RECOVERED', 'id': 'image'}
        >>> to_dora_event(NodeFailed("cam", "exit status 1", ("image",)))["value"]
        {'source_node_id': 'cam', 'error': 'exit status 1', 'affected_input_ids': ['image']}
        >>> to_dora_event(ParamUpdate("roi", {"x": 1}))
        {'kind': 'dora', 'type': 'PARAM_UPDATE', 'id': 'roi', 'value': {'x': 1}}
    """
    if type(event) is Input and event.codec is None:  # the message path: one dict, nothing else
        value, metadata = event.value, event.metadata
        return {"kind": "dora", "type": "INPUT", "id": event.id, "value": value, "metadata": metadata}
    if isinstance(event, Input):
        # dora code expects Arrow: other formats arrive converted (to_arrow), their reader kept aside.
        try:
            value = event.value if event.codec is None else event.to_arrow()
        except DecodeError as exc:
            return {"kind": "dora", "type": "ERROR", "error": f"input {event.id!r}: {exc}"}
        dora_event = {
            "kind": "dora",
            "type": "INPUT",
            "id": event.id,
            "value": value,
            "metadata": event.metadata,
        }
        if event.codec is not None:
            dora_event["data_format"] = event.data_format
            dora_event["reader"] = event.value
        return dora_event
    if isinstance(event, InputClosed):
        return {"kind": "dora", "type": "INPUT_CLOSED", "id": event.id}
    if isinstance(event, InputRecovered):
        return {"kind": "dora", "type": "INPUT_RECOVERED", "id": event.id}
    if isinstance(event, NodeFailed):
        value = {"source_node_id": event.node, "error": event.error, "affected_input_ids": list(event.inputs)}
        return {"kind": "dora", "type": "NODE_FAILED", "id": event.node, "value": value, "error": event.error}
    if isinstance(event, NodeRestarted):
        return {"kind": "dora", "type": "NODE_RESTARTED", "id": event.node}
    if isinstance(event, ParamUpdate):
        return {"kind": "dora", "type": "PARAM_UPDATE", "id": event.key, "value": event.value}
    if isinstance(event, ParamDeleted):
        return {"kind": "dora", "type": "PARAM_DELETED", "id": event.key}
    if isinstance(event, Stop):
        reason = "ALL_INPUTS_CLOSED" if event.reason == STOP_ALL_INPUTS_CLOSED else "MANUAL"
        return {"kind": "dora", "type": "STOP", "id": reason}
    if isinstance(event, Error):
        return {"kind": "dora", "type": "ERROR", "error": event.message}
    raise TypeError(f"unknown event {event!r}")


class Node:
    """dora-rs's ``Node``: events are dicts (``event["type"]``, ``event["value"]``).

    Thread safety: the native `doradus.Node`'s, which it wraps: sending and logging
    from several threads at once, receiving from one.

    Example::

        from dora import Node
        node = Node()
        for event in node:
            if event["type"] == "INPUT":
                node.send_output("out", event["value"], event["metadata"])
    """

    def __init__(self, node_id: str | None = None) -> None:
        self._node = _NativeNode(node_id)
        self._next = self._node.next
        # The native node's own method, bound once: no call through this class per message.
        self.send_output = self._node.send_output  # type: ignore[method-assign]  # same signature
        self._log = logging.getLogger(self._node.id)

    def next(self, timeout: float | None = None) -> dict[str, Any] | None:
        """The next event dict, or ``None`` at the end of the stream or on timeout."""
        event = self._next(timeout)
        return None if event is None else to_dora_event(event)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        next_event = self._next
        while (event := next_event()) is not None:
            yield to_dora_event(event)

    def __next__(self) -> dict[str, Any]:
        event = self.next()
        if event is None:
            raise StopIteration
        return event

    def try_recv(self) -> dict[str, Any] | None:
        """The next event if ready, else ``None``."""
        event = self._node.try_recv()
        return None if event is None else to_dora_event(event)

    def drain(self) -> list[dict[str, Any]]:
        """Every ready event."""
        return [to_dora_event(e) for e in self._node.drain()]

    def is_empty(self) -> bool:
        """True when no event waits."""
        return self._node.is_empty()

    async def recv_async(self, timeout: float | None = None) -> dict[str, Any] | None:  # noqa: ASYNC109 - dora's signature
        """Await the next event dict."""
        event = await self._node.recv_async(timeout)
        return None if event is None else to_dora_event(event)

    async def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        while (event := await self.recv_async()) is not None:
            yield event

    def send_output(self, output_id: str, data: Any, metadata: dict[str, Any] | None = None) -> None:
        """Send ``data`` (bytes, pyarrow array, numpy array, list) on ``output_id``."""
        self._node.send_output(output_id, data, metadata)

    def send_output_raw(
        self, output_id: str, data_length: int, metadata: dict[str, Any] | None = None
    ) -> AbstractContextManager[memoryview]:
        """A writable shared-memory buffer, sent without a copy on exit of the ``with`` block."""
        return self._node.send_output_raw(output_id, data_length, metadata)

    def dataflow_descriptor(self) -> dict[str, Any]:
        """The parsed dataflow file."""
        return self._node.dataflow_descriptor()

    def node_config(self) -> dict[str, Any]:
        """This node's inputs and outputs."""
        return self._node.node_config()

    def dataflow_id(self) -> str:
        """The running dataflow's id."""
        return self._node.dataflow_id()

    def is_restart(self) -> bool:
        """True when this process restarted the node."""
        return self._node.is_restart()

    def restart_count(self) -> int:
        """How many times the node was restarted."""
        return self._node.restart_count()

    def log(
        self, level: str, message: str, target: str | None = None, fields: dict[str, Any] | None = None
    ) -> None:
        """Log ``message`` at ``level`` (error, warn, info, debug, trace) into the run's records."""
        self._node.log(level, message, target=target, fields=fields)

    def log_error(self, message: str) -> None:
        """Log at error level."""
        self.log("error", message)

    def log_warn(self, message: str) -> None:
        """Log at warn level."""
        self.log("warn", message)

    def log_info(self, message: str) -> None:
        """Log at info level."""
        self.log("info", message)

    def log_debug(self, message: str) -> None:
        """Log at debug level."""
        self.log("debug", message)

    def log_trace(self, message: str) -> None:
        """Log at trace level."""
        self.log("trace", message)

    @property
    def native(self) -> _NativeNode:
        """The underlying Doradus node (typed events, ``allocate``, statistics)."""
        return self._node
