"""Avro: values are Python dicts encoded with an ``.avsc`` schema (fastavro, schemaless binary).

A message is one datum in Avro's binary encoding, without a container-file
header: both sides know the schema from the dataflow. ``FormatSpec.schema``
is the writer's ``.avsc`` file; ``FormatSpec.type`` optionally picks a named
type in it (default: the file's top-level schema); ``FormatSpec.reader_schema``
is the ``.avsc`` a receiving input reads with (Avro schema resolution: new
reader fields get their defaults, ``int`` values read as ``long``, …). The
reader schema's top-level schema is used (or its type named like
``FormatSpec.type``, when it defines one).

Decoding never trusts a length: fastavro reads strings and bytes from a
`io.BytesIO`, which never allocates more than is left in the buffer; for
schemas where a count alone could make the reader loop without consuming
bytes (arrays of ``null``) or recurse without bound (recursive records) every
message is first scanned against the writer schema, with limits on nesting
(`MAX_DEPTH`) and on items that take no bytes (`MAX_EMPTY_ITEMS`).

What it detects (`AvroCodec.detects`): a datum's encoding is prefix-free,
so every strict prefix runs out of bytes, and the whole buffer must be one
datum, so trailing bytes are an error. Having no frame of its own, it may
read another format's bytes or garbage as some datum of the schema. With a
reader schema, fastavro's C reader skips a writer field the reader drops
with a read whose length it does not check; `decode` then reads from a copy
one byte longer than the message, so a skip cut short ends past the message
and the message is still found truncated.

Example::

    codec = AvroCodec(FormatSpec("avro", Path("reading.avsc")))
    codec.to_python(codec.decode(codec.encode({"label": "a", ...})))
"""

from __future__ import annotations

import dataclasses
import io
from typing import Any

import pyarrow as pa

from doradus._exceptions import DecodeError, EncodeError, SchemaError
from doradus._wire.format_spec import FormatSpec
from doradus.codecs._avro_compat import (
    _deref,
    _find_named,
    _kind,
    check_resolvable,
    describe_reasons,
    load_schema,
    schema_problems,
)
from doradus.codecs._base import Buffer, Codec, Detects, as_bytes

MAX_DEPTH = 200
"""Deepest nesting a message of a recursive schema may have (deeper would overflow fastavro's C stack)."""

MAX_EMPTY_ITEMS = 1 << 24
"""Most items that encode to no bytes (``null``) one message may hold in its arrays."""

_LOGICAL_ARROW: dict[str, pa.DataType] = {
    "date": pa.date32(),
    "time-millis": pa.time32("ms"),
    "time-micros": pa.time64("us"),
    "timestamp-millis": pa.timestamp("ms", tz="UTC"),
    "timestamp-micros": pa.timestamp("us", tz="UTC"),
    "local-timestamp-millis": pa.timestamp("ms"),
    "local-timestamp-micros": pa.timestamp("us"),
}

_PRIMITIVE_ARROW: dict[str, pa.DataType] = {
    "null": pa.null(),
    "boolean": pa.bool_(),
    "int": pa.int32(),
    "long": pa.int64(),
    "float": pa.float32(),
    "double": pa.float64(),
    "bytes": pa.binary(),
    "string": pa.string(),
}


class AvroCodec(Codec):
    """Avro binary datums of one schema (writer) read with an optional reader schema.

    Creating it loads and checks both schemas: a missing file, invalid JSON,
    invalid Avro, an unknown ``type`` or a reader schema that cannot read the
    writer's data raise `SchemaError` with the reason and a fix.

    Example::

        codec = AvroCodec(FormatSpec("avro", Path("reading.avsc"), "Reading"))
        codec.decode(codec.encode(record)) == record   # True
    """

    name = "avro"
    tag = 3
    requires = ("fastavro",)
    schema_suffix = ".avsc"
    # Prefix-free with an exact length check; no magic number, and short
    # garbage can be a datum (an empty record, a small int).
    detects = Detects.TRUNCATION | Detects.TRAILING_BYTES

    @classmethod
    def check_readable(cls, writer: FormatSpec, reader: FormatSpec) -> FormatSpec:
        """Schema evolution: the writer's format read with ``reader``'s schema, when it resolves.

        Raises:
            SchemaError: the reader schema cannot read what the writer writes (every reason).

        Example::

            AvroCodec.check_readable(writer, FormatSpec("avro", Path("reading_v2.avsc"))).reader_schema
        """
        if writer.schema is None or reader.schema is None:
            return writer
        try:
            reasons = schema_problems(writer.schema, reader.schema, writer.type, reader.type)
        except Exception as exc:  # an unreadable reader schema: reported like any schema problem
            reasons = [str(exc)]
        if reasons:
            raise SchemaError("; ".join(reasons))
        return dataclasses.replace(writer, reader_schema=reader.schema)

    def __init__(self, spec: FormatSpec) -> None:
        super().__init__(spec)
        if spec.schema is None:
            raise SchemaError(
                "the avro data format needs a schema: add `schema: <file>.avsc` to the output's "
                "`data_format:` in the dataflow file"
            )
        self._writer, self._writer_named = load_schema(spec.schema, spec.type)
        self._reader: Any = None
        reader_named = self._writer_named
        if spec.reader_schema is not None:
            reader, reader_named = load_schema(spec.reader_schema)
            if spec.type is not None and _find_named(reader_named, spec.type) is not None:
                reader, reader_named = load_schema(spec.reader_schema, spec.type)
            reasons = check_resolvable(self._writer, reader)
            if reasons:
                raise SchemaError(describe_reasons(reasons, str(spec.schema), str(spec.reader_schema)))
            self._reader = reader
        self._read_schema = self._reader if self._reader is not None else self._writer
        self._read_named = reader_named
        recursive = _is_recursive(self._writer, self._writer_named)
        self._recursive = recursive or (
            self._reader is not None and _is_recursive(self._reader, self._read_named)
        )
        self._scan = self._recursive or _has_empty_items(self._writer, self._writer_named)
        self._arrow_type: pa.DataType | None = None
        self._arrow_error: str | None = None

    def encode(self, value: Any) -> Buffer:
        r"""The Avro binary encoding of ``value`` (a dict for a record schema).

        Fields with a default may be left out; keys the schema does not
        have are an error (they would be lost).

        Raises:
            EncodeError: ``value`` does not fit the schema (the message names the field).

        Example::

            codec.encode({"label": "a", "seq": 1, ...})   # b'\\x02a\\x02...'
        """
        import fastavro

        if self._recursive and _too_deep(value):
            raise EncodeError(f"avro value nests deeper than {MAX_DEPTH} levels ({self.spec})")
        out = io.BytesIO()
        try:
            fastavro.schemaless_writer(out, self._writer, value, strict_allow_default=True)
        except Exception as exc:  # fastavro raises TypeError, ValueError, AttributeError, KeyError…
            raise EncodeError(
                f"value does not fit avro schema {self.spec}: {_explain(value, self._writer, exc)}"
            ) from exc
        return out.getvalue()

    def decode(self, data: Buffer) -> Any:
        """The datum in ``data`` as Python (a dict for a record), read with the reader schema if any.

        The whole buffer must be one datum: trailing bytes are an error.

        Raises:
            DecodeError: ``data`` is truncated, has trailing bytes or is not a datum of the schema.

        Example::

            codec.decode(codec.encode(record))["label"]   # 'a'
        """
        import fastavro

        view = as_bytes(data)
        if isinstance(view, memoryview) and (view.format != "B" or view.ndim != 1):
            view = view.cast("B")
        size = len(view) if isinstance(view, bytes) else view.nbytes
        if self._scan:
            _Scanner(view, self._writer_named).check(self._writer)
        # fastavro's C reader skips a field the reader schema drops with a read
        # whose length it does not check: a skip cut short would end exactly at the
        # end. One byte more (one copy, which BytesIO makes of a memoryview anyway)
        # makes such a skip end past it.
        stream = io.BytesIO(view if self._reader is None else b"".join((view, b"\x00")))
        try:
            value = fastavro.schemaless_reader(stream, self._writer, self._reader)
        except Exception as exc:  # EOFError, IndexError, ValueError, UnicodeDecodeError, MemoryError…
            raise DecodeError(
                f"not a valid avro message of {self.spec}: {type(exc).__name__}: {exc}"
            ) from exc
        if stream.tell() > size:
            raise DecodeError(
                f"truncated avro message of {self.spec}: a field it skips runs past its {size} bytes"
            )
        if stream.tell() != size:
            raise DecodeError(
                f"not a valid avro message of {self.spec}: {size - stream.tell()} trailing bytes "
                f"after a {stream.tell()}-byte datum"
            )
        return value

    def to_python(self, value: Any) -> Any:
        """The decoded value itself (dicts, lists, str, bytes, numbers).

        Example::

            codec.to_python(codec.decode(data))["blob"]   # b"ab" (bytes stay bytes)
        """
        return value

    def to_arrow(self, value: Any) -> pa.Array:
        """A one-row Arrow array of the value; a StructArray for a record.

        The Arrow type comes from the (reader) schema: ``int`` → int32,
        ``long`` → int64, ``float`` → float32, ``double`` → float64, ``bytes``
        → binary, ``string`` and ``enum`` → string, ``fixed`` → fixed-size
        binary, ``array`` → list, ``map`` → map<string, …>, ``record`` →
        struct, a union of ``null`` and one type → that type, nullable.

        Raises:
            DecodeError: the schema has another union or is recursive, or the value does not fit.

        Example::

            codec.to_arrow(codec.decode(data)).type   # StructType(struct<label: string, ...>)
        """
        arrow_type = self.arrow_type()
        try:
            return pa.array([value], type=arrow_type)
        except (pa.ArrowException, TypeError, ValueError, OverflowError) as exc:
            raise DecodeError(f"avro value of {self.spec} does not map to Arrow: {exc}") from exc

    def arrow_type(self) -> pa.DataType:
        """The Arrow type `to_arrow` builds (derived from the reader schema once).

        Raises:
            DecodeError: the schema does not map to Arrow.

        Example::

            codec.arrow_type().field("seq").type   # DataType(int64)
        """
        if self._arrow_type is None and self._arrow_error is None:
            try:
                self._arrow_type = _arrow_type(self._read_schema, self._read_named, ())
            except _NoArrow as exc:
                self._arrow_error = str(exc)
        if self._arrow_type is None:
            raise DecodeError(f"avro schema {self.spec} does not map to Arrow: {self._arrow_error}")
        return self._arrow_type


class _NoArrow(Exception):
    pass


def _arrow_type(schema: Any, named: dict[str, Any], stack: tuple[str, ...]) -> pa.DataType:
    schema = _deref(schema, named) if not _has_logical(schema) else schema
    if isinstance(schema, dict) and _has_logical(schema):
        logical = schema["logicalType"]
        if logical == "decimal" and "precision" in schema:
            precision, scale = int(schema["precision"]), int(schema.get("scale", 0))
            return pa.decimal128(precision, scale) if precision <= 38 else pa.decimal256(precision, scale)
        if logical in _LOGICAL_ARROW:
            return _LOGICAL_ARROW[logical]
        if logical == "uuid":
            raise _NoArrow("logical type uuid (values are uuid.UUID) does not map to Arrow")
        return _arrow_type({k: v for k, v in schema.items() if k != "logicalType"}, named, stack)
    kind = _kind(schema)
    if isinstance(schema, str) and kind in _PRIMITIVE_ARROW:
        return _PRIMITIVE_ARROW[kind]
    if kind == "union":
        others = [b for b in schema if _kind(_deref(b, named)) != "null"]
        if len(others) == 1 and len(schema) == 2:
            return _arrow_type(others[0], named, stack)
        if not others:
            return pa.null()
        raise _NoArrow("a union of several non-null types does not map to Arrow")
    if kind in ("record", "error"):
        name = str(schema["name"])
        if name in stack:
            raise _NoArrow(f"recursive record {name} does not map to Arrow")
        fields = []
        for field in schema.get("fields", []):
            field_type = _arrow_type(field["type"], named, (*stack, name))
            fields.append(pa.field(field["name"], field_type, nullable=_nullable(field["type"], named)))
        return pa.struct(fields)
    if kind == "enum":
        return pa.string()
    if kind == "fixed":
        return pa.binary(int(schema["size"]))
    if kind == "array":
        return pa.list_(_arrow_type(schema["items"], named, stack))
    if kind == "map":
        return pa.map_(pa.string(), _arrow_type(schema["values"], named, stack))
    raise _NoArrow(f"avro type {kind!r} does not map to Arrow")


def _has_logical(schema: Any) -> bool:
    return isinstance(schema, dict) and isinstance(schema.get("logicalType"), str)


def _nullable(schema: Any, named: dict[str, Any]) -> bool:
    schema = _deref(schema, named)
    kind = _kind(schema)
    return kind == "null" or (kind == "union" and any(_kind(_deref(b, named)) == "null" for b in schema))


def _children(schema: Any) -> list[Any]:
    kind = _kind(schema)
    if kind == "union":
        return list(schema)
    if kind in ("record", "error"):
        return [f["type"] for f in schema.get("fields", [])]
    if kind == "array":
        return [schema["items"]]
    if kind == "map":
        return [schema["values"]]
    return []


def _is_recursive(schema: Any, named: dict[str, Any]) -> bool:
    # A named type reachable from itself.
    def visit(node: Any, path: frozenset[str]) -> bool:
        node = _deref(node, named)
        name = node.get("name") if isinstance(node, dict) and _kind(node) in ("record", "error") else None
        if isinstance(name, str):
            if name in path:
                return True
            path = path | {name}
        return any(visit(child, path) for child in _children(node))

    return visit(schema, frozenset())


def _is_empty(schema: Any, named: dict[str, Any], seen: frozenset[str] = frozenset()) -> bool:
    # Whether every value of the type encodes to zero bytes.
    schema = _deref(schema, named)
    kind = _kind(schema)
    if kind == "null":
        return True
    if kind == "fixed":
        return int(schema.get("size", 0)) == 0
    if kind in ("record", "error"):
        name = str(schema.get("name"))
        if name in seen:
            return False
        return all(_is_empty(f["type"], named, seen | {name}) for f in schema.get("fields", []))
    return False


def _has_empty_items(schema: Any, named: dict[str, Any]) -> bool:
    seen: set[int] = set()
    todo = [schema]
    while todo:
        node = _deref(todo.pop(), named)
        if id(node) in seen:
            continue
        seen.add(id(node))
        if _kind(node) == "array" and _is_empty(node["items"], named):
            return True
        todo.extend(_children(node))
    return False


def _too_deep(value: Any) -> bool:
    todo: list[tuple[Any, int]] = [(value, 0)]
    while todo:
        item, depth = todo.pop()
        if depth > MAX_DEPTH:
            return True
        if isinstance(item, dict):
            todo.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list | tuple):
            todo.extend((v, depth + 1) for v in item)
    return False


class _Scanner:
    """Walks a buffer against the writer schema without building values, checking every length."""

    def __init__(self, data: bytes | memoryview, named: dict[str, Any]) -> None:
        self.data = data
        self.size = len(data) if isinstance(data, bytes) else data.nbytes
        self.pos = 0
        self.named = named
        self.empty_items = 0

    def check(self, schema: Any) -> None:
        self.skip(schema, 0)

    def fail(self, why: str) -> DecodeError:
        return DecodeError(f"not a valid avro message: {why} at byte {self.pos}")

    def long(self) -> int:
        result = shift = 0
        for _ in range(10):
            if self.pos >= self.size:
                raise self.fail("truncated number")
            byte = self.data[self.pos]
            self.pos += 1
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return (result >> 1) ^ -(result & 1)
            shift += 7
        raise self.fail("a number longer than 10 bytes")

    def advance(self, count: int) -> None:
        if count < 0 or count > self.size - self.pos:
            raise self.fail(f"length {count} but {self.size - self.pos} bytes left")
        self.pos += count

    def skip(self, schema: Any, depth: int) -> None:
        if depth > MAX_DEPTH:
            raise self.fail(f"nesting deeper than {MAX_DEPTH} levels")
        schema = _deref(schema, self.named)
        kind = _kind(schema)
        if kind == "null":
            return
        if kind == "boolean":
            self.advance(1)
        elif kind in ("int", "long", "enum"):
            self.long()
        elif kind == "float":
            self.advance(4)
        elif kind == "double":
            self.advance(8)
        elif kind in ("bytes", "string"):
            self.advance(self.long())
        elif kind == "fixed":
            self.advance(int(schema["size"]))
        elif kind == "union":
            index = self.long()
            if not 0 <= index < len(schema):
                raise self.fail(f"union branch {index} of {len(schema)}")
            self.skip(schema[index], depth + 1)
        elif kind in ("record", "error"):
            for field in schema.get("fields", []):
                self.skip(field["type"], depth + 1)
        elif kind in ("array", "map"):
            self._blocks(schema, depth)

    def _blocks(self, schema: Any, depth: int) -> None:
        is_map = _kind(schema) == "map"
        item = schema["values"] if is_map else schema["items"]
        empty = not is_map and _is_empty(item, self.named)
        while True:
            count = self.long()
            if count == 0:
                return
            if count < 0:
                count = -count
                self.long()  # the block's byte size
            if empty:
                self.empty_items += count
                if self.empty_items > MAX_EMPTY_ITEMS:
                    raise self.fail(f"more than {MAX_EMPTY_ITEMS} empty array items")
                continue
            for _ in range(count):  # each item takes at least one byte: bounded by the buffer
                if is_map:
                    self.advance(self.long())
                self.skip(item, depth + 1)


def _explain(value: Any, schema: Any, exc: Exception) -> str:
    # fastavro's writer says little ("an integer is required on field x"); its validator names the path.
    try:
        from fastavro.validation import ValidationError, validate

        validate(value, schema, raise_errors=True, strict=True)
    except ValidationError as invalid:
        problems = "; ".join(str(p) for p in invalid.errors) if invalid.errors else str(invalid)
        return f"{problems} ({type(exc).__name__}: {exc})"
    except Exception:
        pass
    return f"{type(exc).__name__}: {exc}"


__all__ = ["MAX_DEPTH", "MAX_EMPTY_ITEMS", "AvroCodec"]
