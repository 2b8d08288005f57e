"""The events a node receives, as typed frozen records.

``match`` dispatches on them::

    for event in node:
        match event:
            case Input(id="image", value=value):
                ...
            case InputClosed(id=input_id):
                ...
            case InputRecovered(id=input_id):
                ...
            case NodeFailed(node=source, inputs=inputs):
                ...
            case NodeRestarted(node=source):
                ...
            case ParamUpdate(key=key, value=value):
                ...
            case Stop():
                break

Example:
    >>> Stop(reason="manual").reason
    'manual'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

STOP_MANUAL = "manual"
STOP_ALL_INPUTS_CLOSED = "all-inputs-closed"


@dataclass(frozen=True, slots=True)
class Input:
    """A message arrived on input ``id``.

    ``value`` is the natural reader of the message's ``data_format``: an
    immutable Arrow array for ``arrow`` (backed by read-only shared memory for
    large messages), a pycapnp struct reader for ``capnp``, the generated
    FlatBuffers table for ``flatbuffers``, a ``dict`` for ``avro``.
    `to_python` and `to_arrow` give every format in the same shapes.
    ``metadata`` always holds ``timestamp`` (send time, UTC) besides the
    sender's own keys.

    Example:
        >>> import pyarrow as pa
        >>> Input("tick", pa.nulls(0), {}).id
        'tick'
    """

    id: str
    value: Any
    metadata: dict[str, Any] = field(default_factory=dict)
    data_format: str = "arrow"
    codec: Any = field(default=None, repr=False, compare=False)
    """The `doradus.codecs.Codec` that decoded ``value`` (None for Arrow)."""

    def to_python(self) -> Any:
        """The value as plain Python: a list for Arrow, a dict for a record.

        Raises:
            DecodeError: the message turned out invalid while reading it.

        Example:
            >>> Input("x", pa.array([1, 2])).to_python()
            [1, 2]
        """
        if self.codec is None:
            return self.value.to_pylist()
        return self.codec.to_python(self.value)

    def to_arrow(self) -> pa.Array:
        """The value as Arrow (the array itself, or a one-row StructArray for a record).

        Raises:
            DecodeError: the value does not map to Arrow.

        Example:
            >>> Input("x", pa.array([1])).to_arrow().type
            DataType(int64)
        """
        if self.codec is None:
            array: pa.Array = self.value
            return array
        converted: pa.Array = self.codec.to_arrow(self.value)
        return converted


@dataclass(frozen=True, slots=True)
class InputClosed:
    """Input ``id`` will receive nothing more (its source node exited).

    Example:
        >>> InputClosed("image").id
        'image'
    """

    id: str


@dataclass(frozen=True, slots=True)
class InputRecovered:
    """Input ``id``, silent past its ``input_timeout`` (an `InputClosed` told so), receives again.

    Comes just before the message that ended the silence; the input's later silences give
    `InputClosed` and `InputRecovered` again. Only inputs with an ``input_timeout`` get it.

    Example:
        >>> InputRecovered("image").id
        'image'
    """

    id: str


@dataclass(frozen=True, slots=True)
class NodeFailed:
    """Node ``node``, which feeds ``inputs`` of this node, failed and will not be restarted.

    ``error`` says how it ended (``exit status 1``, ``killed by SIGKILL``). An `InputClosed`
    for each of ``inputs`` follows, after the last messages it sent (for a sender with
    ``restart_policy: never`` the closes may come first: its links show its end at once).

    Example:
        >>> NodeFailed("camera", "exit status 1", ("image",)).inputs
        ('image',)
    """

    node: str
    error: str
    inputs: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class NodeRestarted:
    """Node ``node``, which feeds inputs of this node, ended and was started again (its restart policy).

    Its inputs stayed open; what it sent before it ended was delivered, and its new process's
    messages follow. Messages sent to a restarting node are dropped and counted by their senders.

    Example:
        >>> NodeRestarted("camera").node
        'camera'
    """

    node: str


@dataclass(frozen=True, slots=True)
class ParamUpdate:
    """The node's parameter ``key`` was set to ``value`` (``doradus param set``): any JSON value.

    A node that starts again (a restart) gets one for each parameter it has, before its first
    input. ``Node.parameters()`` holds the current values. dora nodes get it as a
    ``PARAM_UPDATE`` event (``id`` the key).

    Example:
        >>> ParamUpdate("exposure", 0.02).value
        0.02
    """

    key: str
    value: Any


@dataclass(frozen=True, slots=True)
class ParamDeleted:
    """The node's parameter ``key`` was deleted (``doradus param delete``): fall back to a default.

    dora nodes get it as a ``PARAM_DELETED`` event (``id`` the key).

    Example:
        >>> ParamDeleted("exposure").key
        'exposure'
    """

    key: str


@dataclass(frozen=True, slots=True)
class Stop:
    """The node should stop: asked by the user (``manual``) or all inputs closed.

    Example:
        >>> Stop().reason
        'manual'
    """

    reason: str = STOP_MANUAL


@dataclass(frozen=True, slots=True)
class Error:
    """The runtime reports a problem the node may want to know about.

    Example:
        >>> Error("lost daemon").message
        'lost daemon'
    """

    message: str


Event = (
    Input
    | InputClosed
    | InputRecovered
    | NodeFailed
    | NodeRestarted
    | ParamUpdate
    | ParamDeleted
    | Stop
    | Error
)
"""Any event a node receives: an `Input`, `InputClosed`, `InputRecovered`, `NodeFailed`,
`NodeRestarted`, `ParamUpdate`, `ParamDeleted`, `Stop` or `Error`.

A union of the nine classes, not a base class: what iterating a `doradus.Node` (or its
``next``, ``try_recv``, ``drain``) gives, for annotations; ``isinstance`` or ``match`` tells
which one arrived.

Example:
    >>> event: Event = InputClosed("image")
    >>> isinstance(event, Event), isinstance(event, Input), isinstance("image", Event)
    (True, False, False)
"""
