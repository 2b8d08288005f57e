"""FlatBuffers: values are the generated table accessors, reading the buffer in place.

The schema is a ``.fbs`` file. On first use ``flatc`` turns it into Python
(``--python --gen-object-api``) and into a binary schema (``-b --schema``,
FlatBuffers' own reflection format) in a cache folder keyed by the hash of
the schema and the files it includes:
``$XDG_CACHE_HOME/doradus/flatc/<hash>/`` (``~/.cache/...`` by default,
created 0700). The generated modules are imported from there, under the
package names of the schema's ``namespace`` — two different schemas with
the same namespace cannot be loaded in one process (a `SchemaError` says
so). A generated Python module given instead of a ``.fbs`` file is not
supported: the codec needs the schema itself to verify buffers.

**Verification.** The FlatBuffers Python runtime trusts the buffer: it has
no verifier, a string cut short reads as a shorter string, and a bad offset
raises whatever ``struct`` or numpy raises. So `FlatBuffersCodec.decode`
runs a verifier driven by the binary schema, like the C++ ``Verifier``:
starting at the root offset it follows every table, vtable, string, vector
and nested table or union the schema declares, and checks that each lies
inside the buffer (vtable sizes, table sizes, strings' terminating zero,
vector lengths, required fields), with a depth limit (64) and an object
limit (1 000 000) so garbage cannot make it loop or blow up. The walk costs
one step per object, not per byte: a vector of numbers is checked by its
length alone.

Truncation: the walk rejects a buffer cut anywhere inside the data it
reaches. What a walk cannot see is the alignment padding a builder leaves
after the first object it wrote (the end of the buffer): up to 3 bytes
after a string or a byte vector. Every finished FlatBuffer is a multiple of
4 bytes long (the builder aligns the whole buffer to at least the 4-byte
alignment of its offsets), so `decode` also requires ``len(buffer) % 4 ==
0``: a cut that removes only padding leaves a length that is not a multiple
of 4. Together these reject every strict prefix of a message built by a
FlatBuffers builder. (A buffer whose unreachable tail holds objects the
root never refers to can lose that tail undetected — nothing reads it.)

What the verifier cannot detect, for the same reason: bytes appended after
a buffer (a multiple of 4 of them reads as the same message: a FlatBuffer
carries no length of its own), and — unless the schema declares a
``file_identifier``, which `decode` then checks — another format's bytes that
happen to form a valid table (12 bytes ``08 00 00 00 04 00 04 00 04 00 00
00`` are an empty table; an Avro record of twelve small ints writes them).
`FlatBuffersCodec.detects` says so.

Example:
    >>> from pathlib import Path
    >>> codec = FlatBuffersCodec(FormatSpec("flatbuffers", Path("reading.fbs"), "Reading"))
    >>> codec.to_python(codec.decode(codec.encode({"label": "a"})))["label"]
    'a'
"""

from __future__ import annotations

import importlib
import re
import struct
from typing import Any

import pyarrow as pa

from doradus._exceptions import DecodeError, EncodeError, SchemaError
from doradus._wire.format_spec import FormatSpec
from doradus.codecs._base import Buffer, Codec, Detects
from doradus.codecs._flatbuffers_schema import (
    ARRAY,
    BYTE,
    MAX_DEPTH,
    NONE,
    NUMPY_TYPE,
    OBJ,
    STRING,
    UBYTE,
    UNION,
    VECTOR,
    TypeInfo,
    flatbuffers_runtime,
    load_schema,
    module_for,
)
from doradus.codecs._flatbuffers_verifier import Invalid, Verifier

_UNSET: Any = object()


class FlatBuffersCodec(Codec):
    """FlatBuffers messages whose root is one table of a ``.fbs`` schema.

    ``spec.schema`` is the ``.fbs`` file; ``spec.type`` names the root table
    (``Reading`` or ``my.namespace.Reading``; the schema's ``root_type`` if
    omitted). `encode` accepts a finished buffer (bytes), a finished
    ``flatbuffers.Builder``, an object-API ``ReadingT``, an accessor of the
    table, or a dict of fields; `decode` verifies the buffer and returns the
    generated accessor (``Reading.GetRootAs``).

    It detects truncation and garbage; other formats' bytes only when the
    schema declares a ``file_identifier`` (then in `detects`); never bytes
    after the buffer (see `Detects`).

    Raises:
        SchemaError: flatc is missing, the schema is invalid, or it has no such table.

    Example:
        >>> from pathlib import Path
        >>> spec = FormatSpec("flatbuffers", Path("reading.fbs"), "Reading")
        >>> FlatBuffersCodec(spec).decode(FlatBuffersCodec(spec).encode({"seq": 3})).Seq()
        3
    """

    name = "flatbuffers"
    tag = 2
    requires = ("flatbuffers",)
    schema_suffix = ".fbs"
    type_kind = "root table"
    # A FlatBuffer has no length of its own: bytes after it are never read, so
    # they cannot be told from its end. Without a file_identifier it has no
    # magic either: small integers of another format can form a valid table.
    detects = Detects.TRUNCATION | Detects.GARBAGE

    def __init__(self, spec: FormatSpec) -> None:
        super().__init__(spec)
        if spec.schema is None:
            raise SchemaError(
                "the flatbuffers data format needs `schema:` (a .fbs file) and `type:` (a table)"
            )
        loaded = load_schema(spec.schema)
        self._loaded = loaded
        self._schema = loaded.schema
        tables = [o.name for o in self._schema.objects if not o.is_struct]
        wanted = spec.type
        if not wanted:
            if self._schema.root < 0:
                raise SchemaError(
                    f"{spec.schema.name} declares no root_type; set `type:` to one of: {tables}"
                )
            self._root = self._schema.root
        else:
            matches = [
                i
                for i, o in enumerate(self._schema.objects)
                if not o.is_struct and (o.name == wanted or o.name.rsplit(".", 1)[-1] == wanted)
            ]
            if len(matches) != 1:
                problem = "has no table" if not matches else "has more than one table named"
                raise SchemaError(
                    f"FlatBuffers schema {spec.schema} {problem} {wanted!r}; "
                    f"tables in it: {', '.join(tables) or 'none'}"
                )
            self._root = matches[0]
        root = self._schema.objects[self._root]
        self._accessor = self._class(self._root, "")
        self._object_class = self._class(self._root, "T")
        self._ident = self._schema.file_ident.encode() if self._schema.file_ident else None
        if self._ident is not None:
            self.detects = type(self).detects | Detects.FOREIGN_FORMAT  # the identifier is a magic number
        self.table_name = root.name
        self._arrow_type: pa.DataType | None = _UNSET

    def _class(self, index: int, suffix: str) -> Any:
        """The generated class (``suffix`` "" for the accessor, "T" for the object API) of an object."""
        loaded = self._loaded
        module = loaded.modules.get(index)
        obj = self._schema.objects[index]
        if module is None:
            module = loaded.modules[index] = module_for(loaded.folder, obj.name)
        short = obj.name.rsplit(".", 1)[-1]
        found = getattr(module, short + suffix, None)
        if found is None:
            raise SchemaError(f"the code flatc generated has no class {short + suffix} for {obj.name}")
        if suffix == "T" and not any(f.attr for f in obj.fields):
            names = {re.sub(r"_", "", a).lower(): a for a in vars(found())}
            for f in obj.fields:
                f.attr = names.get(re.sub(r"_", "", f.name).lower(), f.name)
        return found

    # -- encode

    def encode(self, value: Any) -> Buffer:
        """The bytes of ``value``: a buffer, a finished Builder, a ``T`` object, an accessor or a dict.

        A buffer or a finished Builder is verified, not rebuilt; what this method
        builds is verified too (the Python builder does not check ``required``).

        Raises:
            EncodeError: ``value`` is of another type or does not fit the schema.

        Example:
            >>> len(codec.encode({"label": "a", "values": [1.0, 2.0]})) % 4
            0
        """
        kind = type(value).__name__
        try:
            if isinstance(value, bytes | bytearray | memoryview):
                data = bytes(value)
                self._verify_for_encode(data)
                return data
            fb = flatbuffers_runtime()
            if isinstance(value, fb.Builder):
                if not value.finished:
                    raise EncodeError(
                        "the flatbuffers.Builder is not finished; call builder.Finish(root) first"
                    )
                out = bytes(value.Output())
                self._verify_for_encode(out)
                return out
            if isinstance(value, self._accessor):
                value = self._object_class.InitFromObj(value)
            if isinstance(value, dict):
                value = self._from_dict(value, self._root)
            if not isinstance(value, self._object_class):
                raise EncodeError(
                    f"cannot encode {kind} as FlatBuffers {self.table_name}; pass a dict, a "
                    f"{self._object_class.__name__}, a finished Builder or bytes"
                )
            builder = fb.Builder(1024)
            builder.Finish(value.Pack(builder), file_identifier=self._ident)
            built: bytearray = builder.Output()
            self._verify_for_encode(built)  # the builder does not check required fields
            return built
        except EncodeError:
            raise
        except Exception as exc:  # struct.error, OverflowError, TypeError, ValueError, ...
            raise EncodeError(f"cannot encode {kind} as FlatBuffers {self.table_name}: {exc}") from exc

    def _verify_for_encode(self, data: bytes | bytearray) -> None:
        try:
            self._verify(memoryview(data))
        except DecodeError as exc:
            raise EncodeError(f"the buffer is not a valid {self.table_name}: {exc}") from exc

    def _from_dict(self, values: dict[str, Any], index: int) -> Any:
        obj = self._schema.objects[index]
        made = self._class(index, "T")()
        by_name = {f.name: f for f in obj.fields}
        for key, item in values.items():
            f = by_name.get(key)
            if f is None:
                known = ", ".join(f.name for f in obj.fields)
                raise EncodeError(f"{obj.name} has no field {key!r}; its fields: {known}")
            setattr(made, f.attr, self._value_in(item, f.type, f"{obj.name}.{key}"))
        return made

    def _value_in(self, item: Any, t: TypeInfo, what: str) -> Any:
        if item is None:
            return None
        base = t.base
        if base == STRING:
            if not isinstance(item, str | bytes):
                raise EncodeError(f"{what} is a string; got {type(item).__name__}")
            return item
        if base == OBJ:
            if isinstance(item, dict):
                return self._from_dict(item, t.index)
            return item
        if base == UNION:
            if isinstance(item, dict):
                raise EncodeError(
                    f"{what} is a union: pass its object-API T object (and set the _type field)"
                )
            return item
        if base == VECTOR:
            np = importlib.import_module("numpy")
            element = t.element
            if element in NUMPY_TYPE:
                if element in (UBYTE, BYTE) and isinstance(item, bytes | bytearray | memoryview):
                    return np.frombuffer(item, dtype=NUMPY_TYPE[element])
                array = np.asarray(item, dtype=NUMPY_TYPE[element])
                if array.ndim != 1:
                    raise EncodeError(f"{what} is a vector; got a {array.ndim}-dimensional array")
                return np.ascontiguousarray(array)
            inner = TypeInfo(element, NONE, t.index)
            if isinstance(item, str | bytes | dict):
                raise EncodeError(f"{what} is a vector; got {type(item).__name__}")
            return [self._value_in(e, inner, what) for e in item]
        return item

    # -- decode

    def _verify(self, view: memoryview) -> None:
        if self._ident is not None and (len(view) < 8 or bytes(view[4:8]) != self._ident):
            raise DecodeError(f"not a {self.table_name} FlatBuffer: file identifier is not {self._ident!r}")
        try:
            Verifier(self._schema, view).root(self._root)
        except Invalid as exc:
            raise DecodeError(f"invalid {self.table_name} FlatBuffer: {exc}") from None
        except (struct.error, IndexError, ValueError, RecursionError) as exc:
            raise DecodeError(f"invalid {self.table_name} FlatBuffer: {exc}") from exc

    def decode(self, data: Buffer) -> Any:
        """The verified root accessor (``Reading.GetRootAs``) over ``data``, read in place.

        Raises:
            DecodeError: the buffer is truncated or not a FlatBuffer of this table.

        Example:
            >>> codec.decode(codec.encode({"seq": 3})).Seq()
            3
        """
        try:
            view = memoryview(data)
            if view.ndim != 1 or view.format != "B":
                view = view.cast("B")
        except (TypeError, ValueError) as exc:
            raise DecodeError(f"cannot read a FlatBuffer from {type(data).__name__}: {exc}") from exc
        self._verify(view)
        try:
            return self._accessor.GetRootAs(view, 0)
        except (struct.error, IndexError, ValueError) as exc:
            raise DecodeError(f"invalid {self.table_name} FlatBuffer: {exc}") from exc

    def to_python(self, value: Any) -> Any:
        """The table as a dict (the object-API unpack; vectors as lists, ``[ubyte]`` as bytes).

        Absent strings, vectors and tables are None; absent scalars their defaults.

        Raises:
            DecodeError: the buffer turned out to be invalid (bad offsets, invalid UTF-8, ...).

        Example:
            >>> codec.to_python(codec.decode(codec.encode({"seq": 3})))["seq"]
            3
        """
        try:
            unpacked = self._object_class.InitFromObj(value)
            return self._to_dict(unpacked, self._root)
        except DecodeError:
            raise
        except Exception as exc:  # struct.error, IndexError, UnicodeDecodeError, ValueError, ...
            raise DecodeError(f"invalid {self.table_name} FlatBuffer: {type(exc).__name__}: {exc}") from exc

    def to_arrow(self, value: Any) -> pa.Array:
        """A one-row StructArray typed from the schema (absent fields are null).

        Raises:
            DecodeError: the message is invalid or a value does not fit its Arrow type.

        Example:
            >>> array = codec.to_arrow(codec.decode(codec.encode({"seq": 3})))
            >>> array.type.field("seq").type
            DataType(int64)
        """
        python = self.to_python(value)
        if self._arrow_type is _UNSET:
            self._arrow_type = self._arrow_object(self._root, 0)
        try:
            return pa.array([python], type=self._arrow_type)
        except (pa.ArrowException, TypeError, ValueError, OverflowError) as exc:
            raise DecodeError(f"FlatBuffers {self.table_name} value does not map to Arrow: {exc}") from exc

    def _arrow_object(self, index: int, depth: int) -> pa.DataType | None:
        """The Arrow type of a table or struct; None where a field has no Arrow equivalent (unions)."""
        if depth > MAX_DEPTH:
            return None
        fields = []
        for f in self._schema.objects[index].fields:
            arrow = self._arrow_of(f.type, depth)
            if arrow is None:
                return None
            fields.append(pa.field(f.name, arrow))
        return pa.struct(fields)

    def _arrow_of(self, t: TypeInfo, depth: int) -> pa.DataType | None:
        if t.base in NUMPY_TYPE:
            return pa.from_numpy_dtype(NUMPY_TYPE[t.base])
        if t.base == STRING:
            return pa.string()
        if t.base == OBJ:
            return self._arrow_object(t.index, depth + 1)
        if t.base in (VECTOR, ARRAY):
            if t.base == VECTOR and t.element == UBYTE:
                return pa.binary()
            inner = self._arrow_of(TypeInfo(t.element, NONE, t.index), depth)
            return None if inner is None else pa.list_(inner)
        return None

    def _to_dict(self, unpacked: Any, index: int) -> dict[str, Any]:
        obj = self._schema.objects[index]
        if not any(f.attr for f in obj.fields):
            self._class(index, "T")
        return {f.name: self._value_out(getattr(unpacked, f.attr, None), f.type) for f in obj.fields}

    def _value_out(self, item: Any, t: TypeInfo) -> Any:
        if item is None:
            return None
        base = t.base
        if base == STRING:
            return item.decode("utf-8") if isinstance(item, bytes | bytearray) else item
        if base == VECTOR:
            element = t.element
            if element == UBYTE:
                return item.tobytes() if hasattr(item, "tobytes") else bytes(item)
            if element in NUMPY_TYPE:
                return item.tolist() if hasattr(item, "tolist") else list(item)
            inner = TypeInfo(element, NONE, t.index)
            return [self._value_out(e, inner) for e in item]
        if base == OBJ:
            return self._to_dict(item, t.index)
        if base == UNION:
            enum = self._schema.enums[t.index] if t.index >= 0 else None
            for member, index in enum.members.items() if enum else []:
                if member and index >= 0 and isinstance(item, self._class(index, "T")):
                    return self._to_dict(item, index)
            return None
        return item
