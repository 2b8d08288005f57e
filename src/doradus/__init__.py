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

from doradus._events import Error, Event, Input, InputClosed, Stop
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
from doradus._node import Node

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
