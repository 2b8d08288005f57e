"""Doradus's exceptions, one tree with one root.

::

    DoradusError
    ├── DescriptorError        a dataflow file is invalid (carries every Problem)
    ├── NodeError              the node API was misused or its runtime failed
    │   └── UnknownOutputError an output id that the dataflow does not declare
    ├── MetadataError          metadata holding a value type that cannot travel
    ├── ResourceLimitError     a system limit was reached (open files, mappings, memory):
    │                          names the limit and how to raise it or use less (an OSError too)
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

import errno as _errno  # `errno` is an attribute of ResourceLimitError
import os
import resource
from collections.abc import Sequence
from typing import Any


class DoradusError(Exception):
    """Root of every error Doradus raises on purpose.

    Example:
        >>> from doradus.testing import MockNode
        >>> try:
        ...     MockNode(outputs=["out"]).send_output("typo", [1])
        ... except DoradusError as exc:
        ...     print(type(exc).__name__)
        UnknownOutputError
    """


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
    """The node API was misused, or the node's runtime failed.

    ``node_id`` names the node when it is known, else None.

    Example:
        >>> from doradus import Node
        >>> Node()  # in a process that `doradus run` did not start
        Traceback (most recent call last):
        ...
        doradus.NodeError: this process was not started by Doradus...
        >>> NodeError("the daemon refused the node", node_id="camera").node_id
        'camera'
    """

    def __init__(self, message: str, *, node_id: str | None = None) -> None:
        self.node_id = node_id
        super().__init__(message)


class UnknownOutputError(NodeError):
    """``send_output`` named an output the dataflow does not declare.

    ``output_id`` is the output named, ``declared`` the node's outputs; the message says
    where to declare it.

    Example:
        >>> from doradus.testing import MockNode
        >>> try:
        ...     MockNode(outputs=["image"], node_id="camera").send_output("imgae", b"")
        ... except UnknownOutputError as exc:
        ...     print(exc.node_id, exc.output_id, exc.declared)
        camera imgae ('image',)
    """

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
    """Metadata held a value type that cannot travel with a message.

    Also a ``TypeError``.

    Example:
        >>> from doradus.testing import MockNode
        >>> MockNode().send_output("out", [1], {"pose": {"x": 1.0}})
        Traceback (most recent call last):
        ...
        doradus.MetadataError: metadata value for 'pose' has type dict; allowed: bool, int, ...
    """


class ResourceLimitError(DoradusError, OSError):
    """A system limit was reached: open files, memory mappings, or memory.

    The message names the limit and the fix (release values, or raise the
    limit); ``limit`` names it for programs (``"RLIMIT_NOFILE"``, ``"fs.file-max"``,
    ``"vm.max_map_count"``...; empty when several are involved), and ``errno`` is
    the failed call's error number. Also an ``OSError``, so code that handled
    the system's error keeps working.

    Example:
        >>> err = ResourceLimitError("out of files: raise `ulimit -n`", limit="RLIMIT_NOFILE", errno=24)
        >>> err.limit, err.errno, isinstance(err, DoradusError)
        ('RLIMIT_NOFILE', 24, True)
    """

    def __init__(self, message: str, *, limit: str = "", errno: int | None = None) -> None:
        super().__init__(message)
        self.limit = limit
        self.errno = errno

    @classmethod
    def from_os_error(cls, exc: OSError, doing: str) -> ResourceLimitError | None:
        """The error for ``exc`` raised while ``doing``, if it is a resource limit, else None.

        Example:
            >>> err = ResourceLimitError.from_os_error(OSError(_errno.EMFILE, "Too many files"), "mapping")
            >>> err.limit, "ulimit -n" in str(err)
            ('RLIMIT_NOFILE', True)
            >>> ResourceLimitError.from_os_error(OSError(_errno.EPIPE, "Broken pipe"), "sending") is None
            True
        """
        known = _LIMITS.get(exc.errno or 0)
        if known is None:
            return None
        limit, fix = known
        try:
            with open("/proc/sys/vm/max_map_count") as maps_file:
                maps = maps_file.read().strip()
        except OSError:  # out of descriptors, most likely: the message does without the figure
            maps = "?"
        nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        text = f"{doing}: {fix.format(nofile=nofile, maps=maps)} [{os.strerror(exc.errno or 0)}]"
        return cls(text, limit=limit, errno=exc.errno)


_LIMITS = {
    _errno.EMFILE: (
        "RLIMIT_NOFILE",
        "this process has reached its limit of open files (RLIMIT_NOFILE = {nofile}). Drop received "
        "values you no longer need (each kept value holds its shared-memory segment), or raise the "
        "limit: `ulimit -n`, or resource.setrlimit(resource.RLIMIT_NOFILE, ...) in the node",
    ),
    _errno.ENFILE: (
        "fs.file-max",
        "the system has reached its limit of open files (fs.file-max): close files in other "
        "processes, or raise it with `sysctl fs.file-max=...`",
    ),
    _errno.ENOMEM: (
        "vm.max_map_count",
        "out of memory or of memory mappings (vm.max_map_count = {maps}). Drop received values "
        "you no longer need, or raise `sysctl vm.max_map_count=...`",
    ),
    _errno.ETOOMANYREFS: (
        "RLIMIT_NOFILE",
        "too many descriptors are in flight to receivers that have not read them yet (at most "
        "RLIMIT_NOFILE = {nofile}): raise `ulimit -n`, or let receivers catch up",
    ),
    _errno.ENOBUFS: (
        "net.core.wmem_max",
        "the kernel is out of socket buffer memory: let receivers catch up, or raise "
        "`sysctl net.core.wmem_max`",
    ),
}
"""Error numbers that mean a system limit: the limit's name, and what to do (formatted)."""


class TransportError(DoradusError):
    """Moving bytes along an edge failed.

    Example:
        >>> from doradus.backends import LinkSpec, get_backend
        >>> from doradus.testing import CollectingReceiver
        >>> tcp = get_backend("tcp")("a", CollectingReceiver())
        >>> options = {"connect": "127.0.0.1:7000", "connect_retries": "many"}
        >>> tcp.open([LinkSpec("b", "out", ("out",), options=options)], [])
        Traceback (most recent call last):
        ...
        doradus.TransportError: invalid connect_retries or retry_interval option: ...
        >>> tcp.close()
    """


class ConnectError(TransportError):
    """A peer or a service could not be reached.

    Example:
        >>> from doradus.backends import LinkSpec, get_backend
        >>> from doradus.testing import CollectingReceiver
        >>> tcp = get_backend("tcp")("a", CollectingReceiver())
        >>> tcp.open([LinkSpec("b", "out", ("out",))], [])  # no `connect` address to reach b at
        Traceback (most recent call last):
        ...
        doradus.ConnectError: link to 'b' has no `connect` address
        >>> tcp.close()
    """


class TransportTimeout(TransportError):
    """An operation exceeded its deadline.

    Example:
        >>> try:
        ...     raise TransportTimeout("node 'a': no answer from 'b' within 5 s")
        ... except TransportError as exc:
        ...     print(type(exc).__name__, "-", exc)
        TransportTimeout - node 'a': no answer from 'b' within 5 s
    """


class ClosedError(TransportError):
    """The link is closed.

    Example:
        >>> try:
        ...     raise ClosedError("node 'a': the Zenoh session is closed")
        ... except TransportError as exc:
        ...     print(type(exc).__name__, "-", exc)
        ClosedError - node 'a': the Zenoh session is closed
    """


class CodecError(DoradusError):
    """Encoding or decoding a value failed.

    Example:
        >>> from doradus.codecs import FormatSpec, get_codec
        >>> try:
        ...     get_codec(FormatSpec("arrow")).encode(object())
        ... except CodecError as exc:
        ...     print(type(exc).__name__)
        EncodeError
    """


class EncodeError(CodecError):
    """A value could not be encoded.

    Example:
        >>> from doradus.testing import MockNode
        >>> MockNode().send_output("out", object())
        Traceback (most recent call last):
        ...
        doradus.EncodeError: cannot send a value of type object; send a pyarrow array, ...
    """


class DecodeError(CodecError):
    """Bytes could not be decoded into a value.

    Example:
        >>> from doradus.codecs import FormatSpec, get_codec
        >>> get_codec(FormatSpec("arrow")).decode(b"not a message")
        Traceback (most recent call last):
        ...
        doradus.DecodeError: not a valid Arrow message: ...
    """


class SchemaError(CodecError):
    """A schema file is missing or invalid, has no such type, or two schemas cannot be reconciled.

    Example:
        >>> issubclass(SchemaError, CodecError)
        True
    """
