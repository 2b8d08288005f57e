"""Doradus: dataflows for robotics and AI pipelines.

The public API lives here; everything else is private.

Example::

    from doradus import Node, Input

    node = Node()
    for event in node:
        if isinstance(event, Input):
            node.send_output("echo", event.value, event.metadata)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from doradus._exceptions import (
    ClosedError,
    CodecError,
    ConnectError,
    DecodeError,
    DescriptorError,
    DoradusError,
    EncodeError,
    MetadataError,
    NodeError,
    TransportError,
    TransportTimeout,
    UnknownOutputError,
)

if TYPE_CHECKING:
    from doradus._events import Error, Event, Input, InputClosed, Stop
    from doradus._node import Node

# The node API pulls in pyarrow and numpy; the CLI and the daemon do not need them, so
# these names load on first use (start-up time is felt on every `doradus run`).
_LAZY = {
    "Node": "doradus._node",
    "Error": "doradus._events",
    "Event": "doradus._events",
    "Input": "doradus._events",
    "InputClosed": "doradus._events",
    "Stop": "doradus._events",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'doradus' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__version__ = "0.1.0"

__all__ = [
    "ClosedError",
    "CodecError",
    "ConnectError",
    "DecodeError",
    "DescriptorError",
    "DoradusError",
    "EncodeError",
    "Error",
    "Event",
    "Input",
    "InputClosed",
    "MetadataError",
    "Node",
    "NodeError",
    "Stop",
    "TransportError",
    "TransportTimeout",
    "UnknownOutputError",
    "__version__",
]
