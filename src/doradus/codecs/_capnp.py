"""Cap'n Proto: values are pycapnp struct readers that read the buffer in place.

The wire form is the standard unpacked Cap'n Proto message (segment table,
then the segments), as ``to_bytes()`` writes it. `CapnpCodec.decode` parses
the segment table itself — so a truncated message, or bytes after the
message, are rejected before Cap'n Proto sees them — and hands the segments, as zero-copy memoryview
slices, to pycapnp's ``from_segments``: that reader pins the buffer for as
long as the returned reader lives (``from_bytes`` is a context manager that
releases a memoryview's buffer on exit, which would leave the reader
pointing at memory it no longer holds). Every pointer the reader follows is
bounds-checked by Cap'n Proto, with the default traversal and nesting limits.

A bad schema makes pycapnp abort the whole process (SIGABRT), so a schema
is first loaded in a child process; only a schema the child loaded is
loaded here. Verdicts are cached per (path, mtime, size).

Example:
    >>> codec = CapnpCodec(FormatSpec("capnp", Path("reading.capnp"), "Reading"))
    >>> codec.to_python(codec.decode(codec.encode({"label": "a"})))["label"]
    'a'
"""

from __future__ import annotations

import importlib
import json
import re
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa

from doradus._exceptions import DecodeError, EncodeError, SchemaError
from doradus._wire.format_spec import FormatSpec
from doradus.codecs._base import Buffer, Codec, Detects

_VALIDATOR = r"""
import json, resource, sys
resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
import capnp
module = capnp.load(sys.argv[1], imports=sys.argv[2:])
structs = {}
def walk(prefix, owner, depth):
    for name in dir(owner):
        if name.startswith("_") or depth > 8:
            continue
        item = getattr(owner, name, None)
        if type(item).__name__ == "_StructModule":
            structs[prefix + name] = list(item.schema.fieldnames)
            walk(prefix + name + ".", item, depth + 1)
walk("", module, 0)
print(json.dumps(structs))
"""
_VERDICTS: dict[tuple[str, int, int], dict[str, list[str]] | str] = {}
"""Per (path, mtime_ns, size): each struct's field names as the child found them, or the error text."""
_MODULES: dict[tuple[str, int, int], Any] = {}
_FILE_ID = re.compile(r"^\s*@0x[0-9a-fA-F]{16}\s*;", re.MULTILINE)
_VALIDATE_TIMEOUT = 60.0


def _capnp() -> Any:
    return importlib.import_module("capnp")


def _strip_comments(text: str) -> str:
    return "\n".join(line.split("#", 1)[0] for line in text.splitlines())


def _child_verdict(path: Path, imports: list[str]) -> dict[str, list[str]] | str:
    """Load the schema in a child process: its struct names, or the error it printed."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", _VALIDATOR, str(path), *imports],
            capture_output=True,
            text=True,
            timeout=_VALIDATE_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return f"loading it took more than {_VALIDATE_TIMEOUT:.0f} s"
    if done.returncode == 0:
        try:
            structs: dict[str, list[str]] = json.loads(done.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            return f"the schema checker printed no result: {done.stdout[-500:]!r}"
        return structs
    text = done.stderr
    what = re.findall(r"what\(\):\s*(.*)", text, re.DOTALL)
    detail: str = what[-1] if what else text
    detail = "\n".join(line for line in detail.strip().splitlines() if not line.startswith("stack:"))
    return detail.strip()[-2000:] or f"the schema loader exited with status {done.returncode}"


def load_schema(path: Path) -> tuple[Any, dict[str, list[str]]]:
    """Load a ``.capnp`` file safely: (the pycapnp module, each struct's field names).

    The file is loaded in a child process first (pycapnp aborts the process
    on a bad schema), then here. Relative imports resolve from the schema's
    folder; absolute ones (``import "/capnp/c++.capnp"``) from the schema's
    folder, pycapnp's bundled schemas and the system include folders.

    Raises:
        SchemaError: missing file, parse error, missing file id, failed import.

    Example:
        >>> module, structs = load_schema(Path("reading.capnp"))
        >>> sorted(structs)
        ['Pose', 'Reading']
    """
    path = Path(path).expanduser().resolve()
    try:
        stat = path.stat()
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SchemaError(
            f"Cap'n Proto schema {path} does not exist; fix the `schema:` path of the data format "
            f"(relative paths are resolved from the dataflow file's folder)"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SchemaError(f"cannot read Cap'n Proto schema {path}: {exc}") from exc
    key = (str(path), stat.st_mtime_ns, stat.st_size)
    if not _FILE_ID.search(_strip_comments(text)):
        raise SchemaError(
            f"Cap'n Proto schema {path} has no file id; add a line such as `@0x{_new_id()};` "
            f"at the top of the file (any random 64-bit number with the top bit set)"
        )
    imports = _import_paths(path)
    verdict = _VERDICTS.get(key)
    if verdict is None:
        verdict = _VERDICTS[key] = _child_verdict(path, imports)
    if isinstance(verdict, str):
        raise SchemaError(f"invalid Cap'n Proto schema {path}: {verdict}; fix the schema and retry")
    module = _MODULES.get(key)
    if module is None:
        try:
            module = _MODULES[key] = _capnp().load(str(path), imports=imports)
        except Exception as exc:  # pycapnp raises KjException and others
            raise SchemaError(f"invalid Cap'n Proto schema {path}: {exc}") from exc
    return module, verdict


def _import_paths(path: Path) -> list[str]:
    """Where ``import "/x.capnp"`` looks: the schema's folder, pycapnp's bundled schemas, system includes."""
    paths = [path.parent, Path(_capnp().__file__).resolve().parent.parent]
    paths += [Path(p) for p in ("/usr/local/include", "/usr/include") if Path(p, "capnp").is_dir()]
    return [str(p) for p in dict.fromkeys(paths)]


def _new_id() -> str:
    import secrets

    return f"{secrets.randbits(64) | (1 << 63):016x}"


class CapnpCodec(Codec):
    """Cap'n Proto messages of one struct of a ``.capnp`` schema.

    ``spec.schema`` is the ``.capnp`` file and ``spec.type`` the struct's name
    (nested structs as ``Outer.Inner``). `encode` accepts a builder or reader
    of that struct, or a dict of its fields (nested dicts and lists too);
    `decode` returns a pycapnp struct reader over the received buffer.

    Raises:
        SchemaError: the schema is missing or invalid, or has no such struct.

    Example:
        >>> spec = FormatSpec("capnp", Path("reading.capnp"), "Reading")
        >>> CapnpCodec(spec).decode(CapnpCodec(spec).encode({"seq": 3})).seq
        3
    """

    name = "capnp"
    tag = 1
    requires = ("capnp",)
    schema_suffix = ".capnp"
    type_kind = "struct"
    # The segment table must account for every byte of the message (see
    # _split_segments), and every pointer is bounds-checked when followed.
    detects = Detects.TRUNCATION | Detects.TRAILING_BYTES | Detects.FOREIGN_FORMAT | Detects.GARBAGE

    def __init__(self, spec: FormatSpec) -> None:
        super().__init__(spec)
        if spec.schema is None:
            raise SchemaError("the capnp data format needs `schema:` (a .capnp file) and `type:` (a struct)")
        if not spec.type:
            raise SchemaError(
                f"the capnp data format needs `type:` naming the struct of {spec.schema.name} to send"
            )
        module, structs = load_schema(spec.schema)
        if spec.type not in structs:
            raise SchemaError(
                f"Cap'n Proto schema {spec.schema} has no struct {spec.type!r}; "
                f"structs in it: {', '.join(sorted(structs)) or 'none'}"
            )
        found: Any = module
        for part in spec.type.split("."):
            found = getattr(found, part)
        self._fields: list[str] = list(found.schema.fieldnames)
        if self._fields != structs[spec.type]:
            raise SchemaError(
                f"Cap'n Proto schema {spec.schema} changed after this process loaded it "
                f"(pycapnp keeps the first version of a file); restart the process to use the new one"
            )
        self._struct: Any = found
        self._struct_id: int = found.schema.node.id
        self._arrow_type: pa.DataType | None = _UNSET

    def encode(self, value: Any) -> Buffer:
        """The unpacked message bytes of ``value`` (a builder, a reader or a dict).

        Raises:
            EncodeError: ``value`` is of another struct or does not fit the schema.

        Example:
            >>> len(codec.encode({"label": "a", "values": [1.0]})) % 8
            0
        """
        kind = type(value).__name__
        try:
            if isinstance(value, dict):
                unknown = [key for key in value if key not in self._fields]
                if unknown:
                    raise EncodeError(
                        f"{self.spec.type} has no field {unknown[0]!r}; its fields: {', '.join(self._fields)}"
                    )
                message = self._struct.new_message(**value)
            elif kind in ("_DynamicStructBuilder", "_DynamicStructReader"):
                if value.schema.node.id != self._struct_id:
                    raise EncodeError(
                        f"cannot encode a {value.schema.node.displayName} as {self.spec.type}: another struct"
                    )
                message = value if kind == "_DynamicStructBuilder" else value.as_builder()
            else:
                raise EncodeError(
                    f"cannot encode {kind} as Cap'n Proto {self.spec.type}; "
                    f"pass a builder (new_message()), a reader or a dict"
                )
            data: bytes = message.to_bytes()
            return data
        except EncodeError:
            raise
        except Exception as exc:  # KjException, ValueError, TypeError, AttributeError, ...
            raise EncodeError(f"cannot encode {kind} as Cap'n Proto {self.spec.type}: {exc}") from exc

    def decode(self, data: Buffer) -> Any:
        """A struct reader over ``data``, without a copy (the reader keeps the buffer alive).

        Raises:
            DecodeError: ``data`` is truncated or not a Cap'n Proto message.

        Example:
            >>> codec.decode(codec.encode({"seq": 3})).seq
            3
        """
        try:
            view = memoryview(data)
            if view.ndim != 1 or view.format != "B":
                view = view.cast("B")
        except (TypeError, ValueError) as exc:
            raise DecodeError(f"cannot read a Cap'n Proto message from {type(data).__name__}: {exc}") from exc
        segments = _split_segments(view)
        try:
            return self._struct.from_segments(segments)
        except Exception as exc:  # KjException and friends
            raise DecodeError(f"not a valid Cap'n Proto {self.spec.type} message: {_short(exc)}") from exc

    def to_python(self, value: Any) -> Any:
        """The struct as a dict (Data as bytes, lists as lists, nested structs as dicts).

        Raises:
            DecodeError: the message is invalid (a bad pointer, invalid UTF-8 text, ...).

        Example:
            >>> codec.to_python(codec.decode(codec.encode({"seq": 3})))["seq"]
            3
        """
        try:
            return value.to_dict()
        except Exception as exc:  # KjException, UnicodeDecodeError, ...
            raise DecodeError(f"invalid Cap'n Proto {self.spec.type} message: {_short(exc)}") from exc

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
            self._arrow_type = _arrow_struct(self._struct.schema, 0)
        try:
            return pa.array([python], type=self._arrow_type)
        except (pa.ArrowException, TypeError, ValueError, OverflowError) as exc:
            raise DecodeError(f"Cap'n Proto {self.spec.type} value does not map to Arrow: {exc}") from exc


_UNSET: Any = object()
_ARROW_PRIMITIVES = {
    "void": pa.null(),
    "bool": pa.bool_(),
    "int8": pa.int8(),
    "int16": pa.int16(),
    "int32": pa.int32(),
    "int64": pa.int64(),
    "uint8": pa.uint8(),
    "uint16": pa.uint16(),
    "uint32": pa.uint32(),
    "uint64": pa.uint64(),
    "float32": pa.float32(),
    "float64": pa.float64(),
    "text": pa.string(),
    "data": pa.binary(),
    "enum": pa.string(),  # to_dict gives enumerant names
}


def _arrow_struct(schema: Any, depth: int) -> pa.DataType | None:
    """The Arrow type of a struct schema; None where a field has no Arrow equivalent."""
    if depth > 32:
        return None
    fields = []
    for name, member in schema.fields.items():
        proto = member.proto
        if proto.which() == "group":
            arrow = _arrow_struct(member.schema, depth + 1)
        else:
            arrow = _arrow_of(proto.slot.type, member, depth)
        if arrow is None:
            return None
        fields.append(pa.field(name, arrow))
    return pa.struct(fields)


def _arrow_of(type_: Any, member: Any, depth: int) -> pa.DataType | None:
    which = type_.which()
    if which in _ARROW_PRIMITIVES:
        return _ARROW_PRIMITIVES[which]
    if which == "struct":
        return _arrow_struct(member.schema, depth + 1)
    if which == "list":
        element = type_.list.elementType
        if element.which() == "struct":
            inner = _arrow_struct(member.schema.elementType, depth + 1)
        elif element.which() in _ARROW_PRIMITIVES:
            inner = _ARROW_PRIMITIVES[element.which()]
        else:
            return None
        return None if inner is None else pa.list_(inner)
    return None  # anyPointer, interface, nested lists: no fixed Arrow type


def _split_segments(view: memoryview) -> list[memoryview]:
    """The segments of an unpacked message, as slices of ``view`` (the framing checked)."""
    size = len(view)
    if size < 8:
        raise DecodeError(f"a Cap'n Proto message has at least 8 bytes; got {size} (truncated?)")
    (count_minus_one,) = struct.unpack_from("<I", view, 0)
    count = count_minus_one + 1
    if count > 512:
        raise DecodeError(f"not a Cap'n Proto message: it claims {count} segments")
    header = 4 + 4 * count
    header += header % 8
    if size < header:
        raise DecodeError("truncated Cap'n Proto message: its segment table is cut off")
    words = struct.unpack_from(f"<{count}I", view, 4)
    total = header + 8 * sum(words)
    if size < total:
        raise DecodeError(f"truncated Cap'n Proto message: {size} bytes of {total}")
    if size > total:
        raise DecodeError(f"not one Cap'n Proto message: {size - total} bytes follow its {total} bytes")
    segments = []
    start = header
    for n in words:
        segments.append(view[start : start + 8 * n])
        start += 8 * n
    return segments


def _short(exc: BaseException) -> str:
    text = str(exc).split("\nstack:", 1)[0].strip()
    return text[:500] or type(exc).__name__
