"""FlatBuffers schemas: ``flatc`` turns a ``.fbs`` file into Python and a binary schema, cached.

On first use ``flatc`` turns the schema into Python (``--python
--gen-object-api``) and into a binary schema (``-b --schema``, FlatBuffers'
own reflection format) in a cache folder keyed by the hash of the schema and
the files it includes: ``$XDG_CACHE_HOME/doradus/flatc/<hash>/``
(``~/.cache/...`` by default, created 0700; a folder another user could write
to is refused, since its code gets imported). `read_schema` reads the binary
schema into the plain records below (`Schema`), which the verifier
(`doradus.codecs._flatbuffers_verifier`) and the codec walk.

Example:
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> text = "namespace doradus_point; table Point { x: int; } root_type Point;"
    >>> _ = (folder / "point.fbs").write_text(text)
    >>> [o.name for o in load_schema(folder / "point.fbs").schema.objects]
    ['doradus_point.Point']
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

from doradus._exceptions import SchemaError

# reflection.fbs BaseType values
NONE, UTYPE, BOOL, BYTE, UBYTE, SHORT, USHORT, INT, UINT, LONG, ULONG = range(11)
FLOAT, DOUBLE, STRING, VECTOR, OBJ, UNION, ARRAY = range(11, 18)
SCALAR_SIZE = {
    UTYPE: 1,
    BOOL: 1,
    BYTE: 1,
    UBYTE: 1,
    SHORT: 2,
    USHORT: 2,
    INT: 4,
    UINT: 4,
    LONG: 8,
    ULONG: 8,
    FLOAT: 4,
    DOUBLE: 8,
}
NUMPY_TYPE = {
    UTYPE: "uint8",
    BOOL: "bool",
    BYTE: "int8",
    UBYTE: "uint8",
    SHORT: "int16",
    USHORT: "uint16",
    INT: "int32",
    UINT: "uint32",
    LONG: "int64",
    ULONG: "uint64",
    FLOAT: "float32",
    DOUBLE: "float64",
}
MAX_DEPTH = 64
"""Deepest nesting of tables the verifier follows (and of Arrow types the codec builds)."""
_FLATC_TIMEOUT = 120.0
_INCLUDE = re.compile(r'^\s*include\s+"([^"]+)"\s*;', re.MULTILINE)
_ROOT_OFFSET = struct.Struct("<I")


@dataclass(frozen=True)
class TypeInfo:
    base: int
    element: int
    index: int


@dataclass
class FieldInfo:
    name: str
    type: TypeInfo
    slot: int  # vtable offset for a table field, byte offset for a struct field
    required: bool
    attr: str = ""  # attribute name on the object-API class


@dataclass
class ObjectInfo:
    name: str
    fields: list[FieldInfo]
    is_struct: bool
    bytesize: int


@dataclass
class EnumInfo:
    name: str
    is_union: bool
    members: dict[int, int]  # value -> object index (unions)


@dataclass
class Schema:
    objects: list[ObjectInfo]
    enums: list[EnumInfo]
    root: int  # object index, -1 if the schema declares no root_type
    file_ident: str


def flatbuffers_runtime() -> Any:
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


def read_schema(data: bytes) -> Schema:
    """Parse a binary schema (``reflection.fbs``; slots are 4 + 2 * field id)."""
    fb = flatbuffers_runtime()
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

    def read_type(tab: Any) -> TypeInfo:
        base, element = get(tab, 4, n.Int8Flags, 0), get(tab, 6, n.Int8Flags, 0)
        return TypeInfo(base, element, get(tab, 8, n.Int32Flags, -1))

    root = tab_at(data, _ROOT_OFFSET.unpack_from(data, 0)[0])
    objects = []
    for obj in items(root, 4):
        fields = []
        for f in items(obj, 6):
            if get(f, 16, n.BoolFlags, False):  # deprecated
                continue
            fields.append(
                FieldInfo(
                    text(f, 4),
                    read_type(sub(f, 6)),
                    get(f, 10, n.Uint16Flags, 0),
                    get(f, 18, n.BoolFlags, False),
                )
            )
        fields.sort(key=lambda f: f.slot)
        made = ObjectInfo(
            text(obj, 4), fields, bool(get(obj, 8, n.BoolFlags, False)), get(obj, 12, n.Int32Flags, 0)
        )
        objects.append(made)
    enums = []
    for enum in items(root, 6):
        members = {}
        for val in items(enum, 6):
            union_type = sub(val, 10)
            members[get(val, 6, n.Int64Flags, 0)] = read_type(union_type).index if union_type else -1
        enums.append(EnumInfo(text(enum, 4), bool(get(enum, 8, n.BoolFlags, False)), members))
    root_obj = sub(root, 12)
    root_name = text(root_obj, 4) if root_obj is not None else ""
    index = next((i for i, o in enumerate(objects) if o.name == root_name), -1) if root_name else -1
    return Schema(objects, enums, index, text(root, 8))


@dataclass
class LoadedSchema:
    folder: Path
    schema: Schema
    modules: dict[int, Any]  # object index -> generated module


_LOADED: dict[str, LoadedSchema] = {}
"""Per schema hash: what this process loaded (one folder per hash, even if the cache folder moves)."""


def module_for(folder: Path, name: str) -> Any:
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


def load_schema(path: Path) -> LoadedSchema:
    """Generate (or reuse) the code of a ``.fbs`` file and read its binary schema.

    Raises:
        SchemaError: flatc is missing, the schema is missing or invalid.

    Example:
        >>> import tempfile
        >>> schema = Path(tempfile.mkdtemp()) / "seen.fbs"
        >>> _ = schema.write_text("namespace doradus_doc; struct At { x: float; } table Seen { at: At; }")
        >>> loaded = load_schema(schema).schema
        >>> [(o.name, o.is_struct) for o in loaded.objects], loaded.root   # no root_type: -1
        ([('doradus_doc.At', True), ('doradus_doc.Seen', False)], -1)
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
            schema = read_schema((folder / "schema.bfbs").read_bytes())
        except (OSError, IndexError, struct.error, UnicodeDecodeError) as exc:
            raise SchemaError(f"cannot read the binary schema flatc made for {path}: {exc}") from exc
        if str(folder) not in sys.path:
            sys.path.append(str(folder))
        importlib.invalidate_caches()
        loaded = _LOADED[digest] = LoadedSchema(folder, schema, {})
    return loaded
