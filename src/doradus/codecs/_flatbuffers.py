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
    >>> codec = FlatBuffersCodec(FormatSpec("flatbuffers", Path("reading.fbs"), "Reading"))
    >>> codec.to_python(codec.decode(codec.encode({"label": "a"})))["label"]
    'a'
"""

from __future__ import annotations

import hashlib
import importlib
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from doradus._exceptions import DecodeError, EncodeError, SchemaError
from doradus._wire.format_spec import FormatSpec
from doradus.codecs._base import Buffer, Codec, Detects

# reflection.fbs BaseType values
_NONE, _UTYPE, _BOOL, _BYTE, _UBYTE, _SHORT, _USHORT, _INT, _UINT, _LONG, _ULONG = range(11)
_FLOAT, _DOUBLE, _STRING, _VECTOR, _OBJ, _UNION, _ARRAY = range(11, 18)
_SCALAR_SIZE = {
    _UTYPE: 1,
    _BOOL: 1,
    _BYTE: 1,
    _UBYTE: 1,
    _SHORT: 2,
    _USHORT: 2,
    _INT: 4,
    _UINT: 4,
    _LONG: 8,
    _ULONG: 8,
    _FLOAT: 4,
    _DOUBLE: 8,
}
_NUMPY_TYPE = {
    _UTYPE: "uint8",
    _BOOL: "bool",
    _BYTE: "int8",
    _UBYTE: "uint8",
    _SHORT: "int16",
    _USHORT: "uint16",
    _INT: "int32",
    _UINT: "uint32",
    _LONG: "int64",
    _ULONG: "uint64",
    _FLOAT: "float32",
    _DOUBLE: "float64",
}
_UNSET: Any = object()
_MAX_DEPTH = 64
_MAX_OBJECTS = 1_000_000
_FLATC_TIMEOUT = 120.0
_INCLUDE = re.compile(r'^\s*include\s+"([^"]+)"\s*;', re.MULTILINE)
_U8 = struct.Struct("<B")
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_I32 = struct.Struct("<i")


@dataclass(frozen=True)
class _Type:
    base: int
    element: int
    index: int


@dataclass
class _Field:
    name: str
    type: _Type
    slot: int  # vtable offset for a table field, byte offset for a struct field
    required: bool
    attr: str = ""  # attribute name on the object-API class


@dataclass
class _Object:
    name: str
    fields: list[_Field]
    is_struct: bool
    bytesize: int


@dataclass
class _Enum:
    name: str
    is_union: bool
    members: dict[int, int]  # value -> object index (unions)


@dataclass
class _Schema:
    objects: list[_Object]
    enums: list[_Enum]
    root: int  # object index, -1 if the schema declares no root_type
    file_ident: str


# ----------------------------------------------------------------------------- schema loading


def _fb() -> Any:
    return importlib.import_module("flatbuffers")


def _flatc() -> str:
    found = shutil.which("flatc")
    if found is None:
        raise SchemaError(
            "the flatbuffers data format needs the FlatBuffers compiler `flatc`, which is not installed; "
            "run `apt install flatbuffers-compiler` (or `make system-deps`)"
        )
    return found


def _cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "doradus" / "flatc"


def _schema_hash(path: Path, flatc: str) -> str:
    """A hash of the schema's content, the files it includes (recursively) and the flatc binary.

    Not of its path: the same schema in two folders shares generated code
    (two copies under different hashes would clash on their namespace).
    """
    digest = hashlib.sha256()
    digest.update(str(Path(flatc).resolve()).encode() + path.stem.encode())
    seen: set[Path] = set()
    pending = [(path, "")]
    while pending:
        current, written = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        try:
            text = current.read_bytes()
        except OSError:
            digest.update(b"missing:" + written.encode())
            continue
        digest.update(written.encode() + b"\0" + text + b"\0")
        for name in _INCLUDE.findall(text.decode("utf-8", "replace")):
            pending.append(((current.parent / name).resolve(), name))
    return digest.hexdigest()[:32]


def _check_private(folder: Path) -> None:
    """Refuse a cache folder another user could write to: its Python code gets imported."""
    info = folder.stat()
    if info.st_uid != os.getuid() or info.st_mode & 0o022:
        raise SchemaError(
            f"the FlatBuffers code cache {folder} is not private (owner uid {info.st_uid}, "
            f"mode {info.st_mode & 0o777:o}); run `chmod 700 {folder}` or set XDG_CACHE_HOME elsewhere"
        )


def _generate(path: Path, digest: str) -> Path:
    """The cache folder holding the Python code and binary schema of ``path`` (generated if needed)."""
    flatc = _flatc()
    target = _cache_root() / digest
    if (target / "schema.bfbs").is_file():
        _check_private(target.parent)
        return target
    root = target.parent
    for folder in (root.parent, root):
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    _check_private(root)
    work = Path(tempfile.mkdtemp(prefix=".tmp-", dir=root))
    try:
        include = ["-I", str(path.parent)]
        for args in (
            [flatc, "--python", "--gen-object-api", *include, "-o", str(work), str(path)],
            [flatc, "-b", "--schema", *include, "-o", str(work), str(path)],
        ):
            try:
                done = subprocess.run(
                    args, capture_output=True, text=True, timeout=_FLATC_TIMEOUT, check=False
                )
            except subprocess.TimeoutExpired:
                raise SchemaError(f"flatc took more than {_FLATC_TIMEOUT:.0f} s on {path}") from None
            if done.returncode != 0:
                detail = (done.stderr or done.stdout).strip()[-2000:]
                raise SchemaError(f"invalid FlatBuffers schema {path}: {detail}; fix the schema and retry")
        (work / f"{path.stem}.bfbs").rename(work / "schema.bfbs")
        work.chmod(0o700)
        try:
            work.rename(target)
        except OSError:  # another process generated it first
            if not (target / "schema.bfbs").is_file():
                raise
    except OSError as exc:
        raise SchemaError(f"cannot generate code for {path} in {root}: {exc}") from exc
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
    return target


def _read_schema(data: bytes) -> _Schema:
    """Parse a binary schema (``reflection.fbs``; slots are 4 + 2 * field id)."""
    fb = _fb()
    table_cls = fb.table.Table
    n = fb.number_types

    def tab_at(buf: bytes, pos: int) -> Any:
        return table_cls(buf, pos)

    def get(tab: Any, slot: int, flags: Any, default: Any) -> Any:
        o = tab.Offset(slot)
        return tab.Get(flags, o + tab.Pos) if o else default

    def text(tab: Any, slot: int) -> str:
        o = tab.Offset(slot)
        return tab.String(o + tab.Pos).decode("utf-8") if o else ""

    def sub(tab: Any, slot: int) -> Any:
        o = tab.Offset(slot)
        return tab_at(tab.Bytes, tab.Indirect(o + tab.Pos)) if o else None

    def items(tab: Any, slot: int) -> list[Any]:
        o = tab.Offset(slot)
        if not o:
            return []
        start = tab.Vector(o)
        return [tab_at(tab.Bytes, tab.Indirect(start + 4 * i)) for i in range(tab.VectorLen(o))]

    def read_type(tab: Any) -> _Type:
        return _Type(get(tab, 4, n.Int8Flags, 0), get(tab, 6, n.Int8Flags, 0), get(tab, 8, n.Int32Flags, -1))

    root = tab_at(data, _U32.unpack_from(data, 0)[0])
    objects = []
    for obj in items(root, 4):
        fields = []
        for f in items(obj, 6):
            if get(f, 16, n.BoolFlags, False):  # deprecated
                continue
            fields.append(
                _Field(
                    text(f, 4),
                    read_type(sub(f, 6)),
                    get(f, 10, n.Uint16Flags, 0),
                    get(f, 18, n.BoolFlags, False),
                )
            )
        fields.sort(key=lambda f: f.slot)
        made = _Object(
            text(obj, 4), fields, bool(get(obj, 8, n.BoolFlags, False)), get(obj, 12, n.Int32Flags, 0)
        )
        objects.append(made)
    enums = []
    for enum in items(root, 6):
        members = {}
        for val in items(enum, 6):
            union_type = sub(val, 10)
            members[get(val, 6, n.Int64Flags, 0)] = read_type(union_type).index if union_type else -1
        enums.append(_Enum(text(enum, 4), bool(get(enum, 8, n.BoolFlags, False)), members))
    root_obj = sub(root, 12)
    root_name = text(root_obj, 4) if root_obj is not None else ""
    index = next((i for i, o in enumerate(objects) if o.name == root_name), -1) if root_name else -1
    return _Schema(objects, enums, index, text(root, 8))


# ----------------------------------------------------------------------------- verification


class _Bad(Exception):
    pass


class _Verifier:
    """A bounds-checking walk over one buffer (see the module docstring)."""

    def __init__(self, schema: _Schema, buf: memoryview) -> None:
        self.schema = schema
        self.buf = buf
        self.size = len(buf)
        self.objects = 0

    def need(self, pos: int, size: int, what: str) -> None:
        if pos < 0 or size < 0 or pos + size > self.size:
            raise _Bad(f"{what} at {pos} (+{size} B) lies outside the {self.size}-byte buffer")

    def u32(self, pos: int, what: str) -> int:
        self.need(pos, 4, what)
        value: int = _U32.unpack_from(self.buf, pos)[0]
        return value

    def follow(self, pos: int, what: str) -> int:
        return pos + self.u32(pos, what)

    def root(self, index: int) -> None:
        if self.size % 4:
            raise _Bad(f"a FlatBuffer is a multiple of 4 bytes long; this one has {self.size} (truncated?)")
        self.table(self.follow(0, "the root offset"), index, 0)

    def count(self, depth: int) -> None:
        self.objects += 1
        if self.objects > _MAX_OBJECTS:
            raise _Bad(f"more than {_MAX_OBJECTS} objects")
        if depth > _MAX_DEPTH:
            raise _Bad(f"tables nested deeper than {_MAX_DEPTH}")

    def table(self, pos: int, index: int, depth: int) -> None:
        self.count(depth)
        obj = self.schema.objects[index]
        self.need(pos, 4, f"table {obj.name}")
        vtable = pos - _I32.unpack_from(self.buf, pos)[0]
        self.need(vtable, 4, f"the vtable of {obj.name}")
        vsize, tsize = _U16.unpack_from(self.buf, vtable)[0], _U16.unpack_from(self.buf, vtable + 2)[0]
        if vsize < 4 or vsize % 2 or tsize < 4:
            raise _Bad(f"the vtable of {obj.name} is malformed (sizes {vsize}, {tsize})")
        self.need(vtable, vsize, f"the vtable of {obj.name}")
        self.need(pos, tsize, f"table {obj.name}")
        for f in obj.fields:
            at = _U16.unpack_from(self.buf, vtable + f.slot)[0] if f.slot + 2 <= vsize else 0
            if not at:
                if f.required:
                    raise _Bad(f"required field {obj.name}.{f.name} is missing")
                continue
            size = self.inline_size(f.type)
            if at + size > tsize:
                raise _Bad(f"field {obj.name}.{f.name} lies outside its table")
            self.value(pos + at, f, obj, vtable, vsize, depth)

    def inline_size(self, t: _Type) -> int:
        if t.base in _SCALAR_SIZE:
            return _SCALAR_SIZE[t.base]
        if t.base == _OBJ and self.schema.objects[t.index].is_struct:
            return self.schema.objects[t.index].bytesize
        return 4

    def union_type(self, f: _Field, obj: _Object, vtable: int, vsize: int, pos: int) -> int:
        """The value of the ``<name>_type`` field that goes with union field ``f``."""
        type_slot = f.slot - 2
        at = _U16.unpack_from(self.buf, vtable + type_slot)[0] if type_slot + 2 <= vsize else 0
        if not at:
            return 0
        table_start = pos - _U16.unpack_from(self.buf, vtable + f.slot)[0]
        value: int = _U8.unpack_from(self.buf, table_start + at)[0]
        return value

    def value(self, at: int, f: _Field, obj: _Object, vtable: int, vsize: int, depth: int) -> None:
        t = f.type
        what = f"{obj.name}.{f.name}"
        if t.base in _SCALAR_SIZE:
            return
        if t.base == _STRING:
            self.string(self.follow(at, what), what)
        elif t.base == _VECTOR:
            self.vector(self.follow(at, what), t, f, obj, vtable, vsize, at, depth)
        elif t.base == _OBJ:
            if not self.schema.objects[t.index].is_struct:
                self.table(self.follow(at, what), t.index, depth + 1)
        elif t.base == _UNION:
            member = self.union_type(f, obj, vtable, vsize, at)
            self.union(self.follow(at, what), t.index, member, depth, what)

    def union(self, pos: int, enum_index: int, member: int, depth: int, what: str) -> None:
        index = self.schema.enums[enum_index].members.get(member, -1) if enum_index >= 0 else -1
        if member == 0 or index < 0:
            self.need(pos, 4, what)  # unknown member (a newer schema): only check the offset
            return
        if self.schema.objects[index].is_struct:
            self.need(pos, self.schema.objects[index].bytesize, what)
        else:
            self.table(pos, index, depth + 1)

    def string(self, pos: int, what: str) -> None:
        length = self.u32(pos, f"string {what}")
        self.need(pos, 4 + length + 1, f"string {what}")
        if self.buf[pos + 4 + length] != 0:
            raise _Bad(f"string {what} is not zero-terminated")

    def vector(
        self, pos: int, t: _Type, f: _Field, obj: _Object, vtable: int, vsize: int, at: int, depth: int
    ) -> None:
        what = f"vector {obj.name}.{f.name}"
        count = self.u32(pos, what)
        element = _Type(t.element, _NONE, t.index)
        width = self.inline_size(element)
        if count > self.size:
            raise _Bad(f"{what} claims {count} elements")
        self.need(pos + 4, count * width, what)
        first = pos + 4
        if t.element == _STRING:
            for i in range(count):
                self.string(self.follow(first + 4 * i, what), what)
        elif t.element == _OBJ and not self.schema.objects[t.index].is_struct:
            for i in range(count):
                self.table(self.follow(first + 4 * i, what), t.index, depth + 1)
        elif t.element == _UNION:
            type_slot = f.slot - 2
            types_at = _U16.unpack_from(self.buf, vtable + type_slot)[0] if type_slot + 2 <= vsize else 0
            if not types_at:
                raise _Bad(f"{what} has no type vector")
            types = self.follow(at - _U16.unpack_from(self.buf, vtable + f.slot)[0] + types_at, what)
            if self.u32(types, what) != count:
                raise _Bad(f"{what} and its type vector differ in length")
            self.need(types + 4, count, what)
            for i in range(count):
                member = self.buf[types + 4 + i]
                self.union(self.follow(first + 4 * i, what), t.index, member, depth, what)


# ----------------------------------------------------------------------------- the codec


@dataclass
class _Loaded:
    folder: Path
    schema: _Schema
    modules: dict[int, Any]  # object index -> generated module


_LOADED: dict[str, _Loaded] = {}
"""Per schema hash: what this process loaded (one folder per hash, even if the cache folder moves)."""


def _module_for(folder: Path, name: str) -> Any:
    module_name = name  # "ns.sub.Table" is module ns/sub/Table.py
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise SchemaError(f"cannot import the code flatc generated for {name} from {folder}: {exc}") from exc
    where = Path(getattr(module, "__file__", "") or "").resolve()
    if folder.resolve() not in where.parents:
        raise SchemaError(
            f"the module {module_name!r} generated for FlatBuffers type {name} clashes with {where} "
            f"(another schema with the same namespace, or an installed module of that name); "
            f"give the schema its own `namespace`"
        )
    return module


def load_schema(path: Path) -> _Loaded:
    """Generate (or reuse) the code of a ``.fbs`` file and read its binary schema.

    Raises:
        SchemaError: flatc is missing, the schema is missing or invalid.

    Example:
        >>> [o.name for o in load_schema(Path("reading.fbs")).schema.objects]
        ['doradus_test.Pose', 'doradus_test.Reading']
    """
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise SchemaError(
            f"FlatBuffers schema {path} does not exist; fix the `schema:` path of the data format "
            f"(relative paths are resolved from the dataflow file's folder)"
        )
    if path.suffix != ".fbs":
        raise SchemaError(
            f"FlatBuffers schema {path} is not a .fbs file; point `schema:` at the .fbs file "
            f"(Doradus generates the Python code itself)"
        )
    digest = _schema_hash(path, _flatc())
    loaded = _LOADED.get(digest)
    if loaded is None:
        folder = _generate(path, digest)
        try:
            schema = _read_schema((folder / "schema.bfbs").read_bytes())
        except (OSError, IndexError, struct.error, UnicodeDecodeError) as exc:
            raise SchemaError(f"cannot read the binary schema flatc made for {path}: {exc}") from exc
        if str(folder) not in sys.path:
            sys.path.append(str(folder))
        importlib.invalidate_caches()
        loaded = _LOADED[digest] = _Loaded(folder, schema, {})
    return loaded


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
        >>> spec = FormatSpec("flatbuffers", Path("reading.fbs"), "Reading")
        >>> FlatBuffersCodec(spec).decode(FlatBuffersCodec(spec).encode({"seq": 3})).Seq()
        3
    """

    name = "flatbuffers"
    tag = 2
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
            module = loaded.modules[index] = _module_for(loaded.folder, obj.name)
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
            fb = _fb()
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

    def _value_in(self, item: Any, t: _Type, what: str) -> Any:
        if item is None:
            return None
        base = t.base
        if base == _STRING:
            if not isinstance(item, str | bytes):
                raise EncodeError(f"{what} is a string; got {type(item).__name__}")
            return item
        if base == _OBJ:
            if isinstance(item, dict):
                return self._from_dict(item, t.index)
            return item
        if base == _UNION:
            if isinstance(item, dict):
                raise EncodeError(
                    f"{what} is a union: pass its object-API T object (and set the _type field)"
                )
            return item
        if base == _VECTOR:
            np = importlib.import_module("numpy")
            element = t.element
            if element in _NUMPY_TYPE:
                if element in (_UBYTE, _BYTE) and isinstance(item, bytes | bytearray | memoryview):
                    return np.frombuffer(item, dtype=_NUMPY_TYPE[element])
                array = np.asarray(item, dtype=_NUMPY_TYPE[element])
                if array.ndim != 1:
                    raise EncodeError(f"{what} is a vector; got a {array.ndim}-dimensional array")
                return np.ascontiguousarray(array)
            inner = _Type(element, _NONE, t.index)
            if isinstance(item, str | bytes | dict):
                raise EncodeError(f"{what} is a vector; got {type(item).__name__}")
            return [self._value_in(e, inner, what) for e in item]
        return item

    # -- decode

    def _verify(self, view: memoryview) -> None:
        if self._ident is not None and (len(view) < 8 or bytes(view[4:8]) != self._ident):
            raise DecodeError(f"not a {self.table_name} FlatBuffer: file identifier is not {self._ident!r}")
        try:
            _Verifier(self._schema, view).root(self._root)
        except _Bad as exc:
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
        if depth > _MAX_DEPTH:
            return None
        fields = []
        for f in self._schema.objects[index].fields:
            arrow = self._arrow_of(f.type, depth)
            if arrow is None:
                return None
            fields.append(pa.field(f.name, arrow))
        return pa.struct(fields)

    def _arrow_of(self, t: _Type, depth: int) -> pa.DataType | None:
        if t.base in _NUMPY_TYPE:
            return pa.from_numpy_dtype(_NUMPY_TYPE[t.base])
        if t.base == _STRING:
            return pa.string()
        if t.base == _OBJ:
            return self._arrow_object(t.index, depth + 1)
        if t.base in (_VECTOR, _ARRAY):
            if t.base == _VECTOR and t.element == _UBYTE:
                return pa.binary()
            inner = self._arrow_of(_Type(t.element, _NONE, t.index), depth)
            return None if inner is None else pa.list_(inner)
        return None

    def _to_dict(self, unpacked: Any, index: int) -> dict[str, Any]:
        obj = self._schema.objects[index]
        if not any(f.attr for f in obj.fields):
            self._class(index, "T")
        return {f.name: self._value_out(getattr(unpacked, f.attr, None), f.type) for f in obj.fields}

    def _value_out(self, item: Any, t: _Type) -> Any:
        if item is None:
            return None
        base = t.base
        if base == _STRING:
            return item.decode("utf-8") if isinstance(item, bytes | bytearray) else item
        if base == _VECTOR:
            element = t.element
            if element == _UBYTE:
                return item.tobytes() if hasattr(item, "tobytes") else bytes(item)
            if element in _NUMPY_TYPE:
                return item.tolist() if hasattr(item, "tolist") else list(item)
            inner = _Type(element, _NONE, t.index)
            return [self._value_out(e, inner) for e in item]
        if base == _OBJ:
            return self._to_dict(item, t.index)
        if base == _UNION:
            enum = self._schema.enums[t.index] if t.index >= 0 else None
            for member, index in enum.members.items() if enum else []:
                if member and index >= 0 and isinstance(item, self._class(index, "T")):
                    return self._to_dict(item, index)
            return None
        return item
