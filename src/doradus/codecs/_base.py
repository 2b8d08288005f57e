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
  shared memory).
- Bad input never crashes the process and never raises anything but
  `DecodeError`. What a codec *recognises* as bad is its declaration,
  `Codec.detects` (a `Detects` flag set): each declared kind of bad input —
  truncated, with trailing bytes, another format's, garbage — raises
  `DecodeError` from `decode` or, at the latest, from `to_python`. Bad input of
  a kind it does not declare may instead decode to some value, which
  `to_python` then reads fully, again raising nothing but `DecodeError`.
  `doradus.testing.check_codec` asserts exactly this.
- A codec is created once per output or input and is then used from one
  thread at a time; creating it validates the schema (`SchemaError`).

Example::

    codec = get_codec(FormatSpec("avro", schema=Path("reading.avsc")))
    data = codec.encode({"label": "x", "values": [1.0]})
    codec.to_python(codec.decode(data))   # {'label': 'x', 'values': [1.0]}
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar, TypeAlias

from doradus._wire.format_spec import FormatSpec

if TYPE_CHECKING:
    # Only for annotations: `doradus check` reads codecs' hooks without needing pyarrow.
    import pyarrow as pa

Buffer: TypeAlias = "bytes | bytearray | memoryview | pa.Buffer"
"""What `Codec.encode` returns and `Codec.decode` accepts.

Example:
    >>> import pyarrow as pa
    >>> from doradus.codecs import FormatSpec, get_codec
    >>> codec = get_codec(FormatSpec("arrow"))
    >>> data = codec.encode([1, 2])  # Arrow writes a pa.Buffer; decode takes any of the four
    >>> isinstance(data, pa.Buffer), codec.to_python(codec.decode(memoryview(data)))
    (True, [1, 2])
"""


class Detects(enum.Flag):
    """The kinds of bad input a codec recognises: each one it declares raises `DecodeError`.

    A codec declares them in `Codec.detects`; "detects X" means that for every
    input of kind X, `Codec.decode` — or, at the latest, `Codec.to_python`
    reading the value — raises `DecodeError`:

    - ``TRUNCATION``: any strict prefix of a message `Codec.encode` wrote.
    - ``TRAILING_BYTES``: a message `Codec.encode` wrote, followed by one or
      more bytes (another message included).
    - ``FOREIGN_FORMAT``: a message another format wrote. The codec checks a
      frame of its own before reading — a magic number, or a header that must
      account for every byte — which other formats do not write. A frame
      check is not a proof: bytes that happen to form a valid frame (by
      chance, or because another format carries them verbatim) are read as a
      message of this format.
    - ``GARBAGE``: bytes that are no message: empty, a few bytes, runs of one
      byte value, text, random bytes (`doradus.testing.GARBAGE`). Valid
      messages with some bytes changed are not garbage: no built-in format
      has a checksum, so a corrupted message may read as another value.

    Input of a kind a codec does not declare may decode to some value; what
    every codec guarantees for it is the weaker promise that ``decode`` and
    ``to_python`` raise nothing but `DecodeError` (see the module docstring).

    Example:
        >>> framed = Detects.TRUNCATION | Detects.TRAILING_BYTES
        >>> Detects.TRUNCATION in framed, Detects.GARBAGE in framed
        (True, False)
    """

    TRUNCATION = enum.auto()
    TRAILING_BYTES = enum.auto()
    FOREIGN_FORMAT = enum.auto()
    GARBAGE = enum.auto()


class Codec(ABC):
    """Encodes and decodes the values of one data format with one schema.

    Subclasses set `name` (the word used in dataflow files), `tag` (the
    number carried in each message header, 1 to 7; 0 is Arrow) and `detects`
    (what their ``decode`` rejects), and implement the four methods below.

    ``detects`` is a class attribute; an instance may widen it when its
    schema adds a check (a FlatBuffers schema with a ``file_identifier``
    detects other formats). The default, ``Detects.TRUNCATION``, is what the
    conformance kit held every codec to before codecs declared anything.

    The other class attributes and `check_readable` are hooks that
    ``doradus check`` reads (through `doradus.codecs.codec_class`, before any
    codec is made): each has a default that suits a third-party codec, and
    the built-in codecs set their own. A codec's module imports its library
    inside methods and names it in `requires`.

    Example::

        class Json(Codec):
            name, tag = "json", 7
            needs_schema = False
            detects = Detects.TRUNCATION | Detects.TRAILING_BYTES
            ...
    """

    name: ClassVar[str]
    tag: ClassVar[int]
    """The number in each message header saying how its value was written: 0 is Arrow, 1 to 3
    the other built-in codecs, 4 to 7 free for third-party codecs. A receiver refuses a message
    whose tag is not its input's codec's."""

    requires: ClassVar[tuple[str, ...]] = ()
    """Modules this codec imports when it runs (its library), imported by `get_codec` first.

    A missing one makes `get_codec` raise ImportError naming the ``pip install`` to run.
    """

    needs_schema: ClassVar[bool] = True
    """True: ``check`` requires a schema file; False: the format takes none, and ``check``
    reports one given."""

    schema_suffix: ClassVar[str] = ""
    """The suffix of this format's schema files (``".avsc"``), for the fix ``check`` suggests;
    "" when it has none."""

    type_kind: ClassVar[str | None] = None
    """What the ``Type`` of ``schema: file:Type`` names (``"struct"``), when messages hold one
    type of the schema and ``check`` must require it; None (the default) when no type name is
    needed (the file's top-level schema)."""

    detects: Detects = Detects.TRUNCATION
    """The kinds of bad input ``decode`` rejects (see `Detects`); the kit asserts exactly these."""

    @classmethod
    def check_readable(cls, writer: FormatSpec, reader: FormatSpec) -> FormatSpec:
        """The format an input that declares ``reader`` decodes what an output writes as ``writer`` with.

        ``doradus check`` calls it when an input declares a schema of its source's format
        (both schema files exist). The default reads with the writer's schema: the input
        may only name the writer's type. A format with schema evolution returns the
        writer's spec with ``reader_schema`` set.

        Raises:
            SchemaError: ``reader`` cannot read what ``writer`` writes (the message says why).

        Example:
            >>> from pathlib import Path
            >>> w = FormatSpec("x", Path("r.fbs"), "Reading")
            >>> Codec.check_readable(w, FormatSpec("x", Path("r.fbs"))) == w
            True
        """
        if reader.type and reader.type != writer.type:
            from doradus._exceptions import SchemaError

            raise SchemaError(f"it expects `{reader.type}` but its source writes `{writer}`")
        return writer

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
        import pyarrow as pa

        from doradus._exceptions import DecodeError

        python = self.to_python(value)
        try:
            return pa.array([python]) if isinstance(python, dict) else pa.array(python)
        except (pa.ArrowException, TypeError, ValueError) as exc:
            raise DecodeError(f"{self.name} value does not map to Arrow: {exc}") from exc


def as_bytes(data: Buffer) -> bytes | memoryview:
    """A bytes-like view of any buffer, without a copy where possible.

    Example:
        >>> import pyarrow as pa
        >>> bytes(as_bytes(pa.py_buffer(b"ab")))
        b'ab'
    """
    import pyarrow as pa

    if isinstance(data, pa.Buffer):
        return memoryview(data)
    if isinstance(data, bytearray):
        return memoryview(data)
    return data
