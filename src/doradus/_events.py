"""The events a node receives, as typed frozen records.

``match`` dispatches on them::

    for event in node:
        match event:
            case Input(id="image", value=value):
                ...
            case InputClosed(id=input_id):
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

    ``value`` is an immutable Arrow array (backed by read-only shared memory
    for large messages); ``metadata`` always holds ``timestamp`` (send time,
    UTC) besides the sender's own keys.

    Example:
        >>> Input("tick", pa.nulls(0), {}).id
        'tick'
    """

    id: str
    value: pa.Array
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class InputClosed:
    """Input ``id`` will receive nothing more (its source node exited).

    Example:
        >>> InputClosed("image").id
        'image'
    """

    id: str


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


Event = Input | InputClosed | Stop | Error
