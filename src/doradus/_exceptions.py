"""Doradus's exceptions, one tree with one root.

::

    DoradusError
    ├── DescriptorError        a dataflow file is invalid (carries every Problem)
    ├── NodeError              the node API was misused or its runtime failed
    │   └── UnknownOutputError an output id that the dataflow does not declare
    ├── MetadataError          metadata holding a value type that cannot travel
    ├── TransportError         moving bytes failed
    │   ├── ConnectError       a peer or service could not be reached
    │   ├── TransportTimeout   an operation exceeded its deadline
    │   └── ClosedError        the link was closed (by us or the peer)
    └── CodecError             encoding or decoding a value failed
        ├── EncodeError        a value does not fit the output's format or schema
        ├── DecodeError        received bytes are not a valid message of the input's format
        └── SchemaError        a schema is missing, invalid, or lacks the named type

Example:
    >>> issubclass(DecodeError, DoradusError)
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class DoradusError(Exception):
    """Root of every error Doradus raises on purpose."""


class DescriptorError(DoradusError):
    """A dataflow file is invalid; ``problems`` lists every error found.

    Example:
        >>> str(DescriptorError([]))
        'invalid dataflow'
    """

    def __init__(self, problems: Sequence[Any]) -> None:
        self.problems = list(problems)
        text = "\n".join(str(p) for p in self.problems) or "invalid dataflow"
        super().__init__(text)


class NodeError(DoradusError):
    """The node API was misused, or the node's runtime failed."""

    def __init__(self, message: str, *, node_id: str | None = None) -> None:
        self.node_id = node_id
        super().__init__(message)


class UnknownOutputError(NodeError):
    """``send_output`` named an output the dataflow does not declare."""

    def __init__(self, output_id: str, *, node_id: str | None, declared: Sequence[str]) -> None:
        self.output_id = output_id
        self.declared = tuple(declared)
        listed = ", ".join(declared) or "none"
        super().__init__(
            f"node {node_id!r} has no output {output_id!r} (declared: {listed}); "
            f"add it under `outputs:` of node {node_id!r} in the dataflow file",
            node_id=node_id,
        )


class MetadataError(DoradusError, TypeError):
    """Metadata held a value type that cannot travel with a message."""


class TransportError(DoradusError):
    """Moving bytes along an edge failed."""


class ConnectError(TransportError):
    """A peer or a service could not be reached."""


class TransportTimeout(TransportError):
    """An operation exceeded its deadline."""


class ClosedError(TransportError):
    """The link is closed."""


class CodecError(DoradusError):
    """Encoding or decoding a value failed."""


class EncodeError(CodecError):
    """A value could not be encoded."""


class DecodeError(CodecError):
    """Bytes could not be decoded into a value."""


class SchemaError(CodecError):
    """A schema file is missing or invalid, has no such type, or two schemas cannot be reconciled.

    Example:
        >>> issubclass(SchemaError, CodecError)
        True
    """
