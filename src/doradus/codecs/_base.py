"""The codec interface: how a message value is encoded for an edge, and read back.

A codec turns the natural object of its format into bytes on the sending side
and gives the receiving side a reader over the received buffer — without a
copy where the format allows (Arrow, Cap'n Proto and FlatBuffers read in
place; Avro decodes into Python objects). Every codec also converts what it
reads into plain Python (dicts and lists) and, where the schema maps, into
Arrow.

Guarantees every implementation keeps:

- `Codec.encode` never returns a buffer that it will modify later.
- `Codec.decode` never modifies the buffer it is given (it may be read-only
  shared memory) and raises `DecodeError` — never crashes the process — on
  truncated, garbage or wrong-format input.
- A codec is created once per output or input and is then used from one
  thread at a time; creating it validates the schema (`SchemaError`).

Example::

    codec = get_codec(FormatSpec("avro", schema=Path("reading.avsc")))
    data = codec.encode({"label": "x", "values": [1.0]})
    codec.to_python(codec.decode(data))   # {'label': 'x', 'values': [1.0]}
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, TypeAlias

import pyarrow as pa

from doradus._format_spec import FormatSpec

Buffer: TypeAlias = "bytes | bytearray | memoryview | pa.Buffer"
"""What `Codec.encode` returns and `Codec.decode` accepts."""


class Codec(ABC):
    """Encodes and decodes the values of one data format with one schema.

    Subclasses set `name` (the word used in dataflow files) and `tag` (the
    number carried in each message header, 1 to 7; 0 is Arrow), and implement
    the four methods below.

    Example::

        class Json(Codec):
            name, tag = "json", 7
            ...
    """

    name: ClassVar[str]
    tag: ClassVar[int]
    needs_schema: ClassVar[bool] = True

    def __init__(self, spec: FormatSpec) -> None:
        self.spec = spec

    @abstractmethod
    def encode(self, value: Any) -> Buffer:
        """The bytes of ``value`` (the format's natural object, or a dict/list for its schema).

        Raises:
            EncodeError: ``value`` does not fit the schema.
        """

    @abstractmethod
    def decode(self, data: Buffer) -> Any:
        """The format's natural reader over ``data`` (read in place where the format allows).

        Raises:
            DecodeError: ``data`` is not a valid message of this schema.
        """

    @abstractmethod
    def to_python(self, value: Any) -> Any:
        """What `decode` returned, as plain Python (dicts, lists, numbers, str, bytes).

        Raises:
            DecodeError: the message turned out to be invalid while reading it.
        """

    def to_arrow(self, value: Any) -> pa.Array:
        """What `decode` returned, as Arrow (a one-row StructArray for a record by default).

        Raises:
            DecodeError: the value does not map to Arrow.
        """
        from doradus._exceptions import DecodeError

        python = self.to_python(value)
        try:
            return pa.array([python]) if isinstance(python, dict) else pa.array(python)
        except (pa.ArrowException, TypeError, ValueError) as exc:
            raise DecodeError(f"{self.name} value does not map to Arrow: {exc}") from exc


def as_bytes(data: Buffer) -> bytes | memoryview:
    """A bytes-like view of any buffer, without a copy where possible.

    Example:
        >>> bytes(as_bytes(pa.py_buffer(b"ab")))
        b'ab'
    """
    if isinstance(data, pa.Buffer):
        return memoryview(data)
    if isinstance(data, bytearray):
        return memoryview(data)
    return data
