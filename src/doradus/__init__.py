"""Doradus: dataflows for robotics and AI pipelines.

The public API lives here (with `doradus.backends`, `doradus.codecs` and `doradus.testing`);
everything else is private. docs/concepts/architecture.md maps the packages.

May import: the node process (lazily, for `Node` and its events) and the exception tree.

Example::

    from doradus import Node, Input

    node = Node()
    for event in node:
        if isinstance(event, Input):
            node.send_output("echo", event.value, event.metadata)
"""

from __future__ import annotations

import importlib as _importlib
import typing as _typing

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
    ResourceLimitError,
    TransportError,
    TransportTimeout,
    UnknownOutputError,
)

if _typing.TYPE_CHECKING:
    from doradus._node.events import (
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
    from doradus._node.node import Node

# The node API pulls in pyarrow and numpy; the CLI and the daemon do not need them, so
# these names load on first use (start-up time is felt on every `doradus run`).
_LAZY = {
    "Node": "doradus._node.node",
    "Error": "doradus._node.events",
    "Event": "doradus._node.events",
    "Input": "doradus._node.events",
    "InputClosed": "doradus._node.events",
    "InputRecovered": "doradus._node.events",
    "NodeFailed": "doradus._node.events",
    "NodeRestarted": "doradus._node.events",
    "ParamDeleted": "doradus._node.events",
    "ParamUpdate": "doradus._node.events",
    "Stop": "doradus._node.events",
}


def __getattr__(name: str) -> _typing.Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'doradus' has no attribute {name!r}")
    value = getattr(_importlib.import_module(module), name)
    if isinstance(value, type):
        value.__module__ = "doradus"
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


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
    "InputRecovered",
    "MetadataError",
    "Node",
    "NodeError",
    "NodeFailed",
    "NodeRestarted",
    "ParamDeleted",
    "ParamUpdate",
    "ResourceLimitError",
    "Stop",
    "TransportError",
    "TransportTimeout",
    "UnknownOutputError",
    "__version__",
]

# Show public classes as `doradus.X` in reprs and tracebacks, not their private modules.
for _name in __all__:
    _value = globals().get(_name)
    if isinstance(_value, type):
        _value.__module__ = "doradus"
