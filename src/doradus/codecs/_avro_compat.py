"""Avro schema loading and schema resolution: can data written with one schema be read with another?

`check_resolvable` applies the Avro specification's schema resolution rules
(https://avro.apache.org/docs/current/specification/#schema-resolution) to a
writer and a reader schema and returns every reason the reader cannot read
the writer's data, each naming the field path (``Reading.values[]``, map
values as ``Reading.attrs{}``). `schema_problems` does the same for two
``.avsc`` files; the dataflow checker calls it for every edge whose input
declares a ``reader_schema``. `load_schema` reads and validates one ``.avsc``
file (the Avro codec uses it too).

One file holds one schema: named types are resolved within that file only
(a type defined in another ``.avsc`` beside it cannot be referenced).

Example:
    >>> writer = {"type": "record", "name": "R", "fields": [{"name": "n", "type": "int"}]}
    >>> reader = {"type": "record", "name": "R", "fields": [{"name": "n", "type": "string"}]}
    >>> check_resolvable(writer, reader)
    ['R.n: the writer writes int, which the reader cannot read as string']
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from doradus._exceptions import SchemaError

PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
"""The Avro primitive type names."""

NAMED = frozenset({"record", "error", "enum", "fixed"})
"""The Avro complex types that carry a name."""

PROMOTIONS: dict[str, frozenset[str]] = {
    "int": frozenset({"long", "float", "double"}),
    "long": frozenset({"float", "double"}),
    "float": frozenset({"double"}),
    "string": frozenset({"bytes"}),
    "bytes": frozenset({"string"}),
}
"""Writer type → reader types it is promoted to (the specification's list)."""

_FIX = "see https://avro.apache.org/docs/current/specification/"


def parse(schema: Any) -> tuple[Any, dict[str, Any]]:
    """A schema parsed by fastavro (full names expanded) and its named types by full name.

    Accepts a raw JSON schema (dict, list or type name) or one fastavro
    already parsed.

    Raises:
        SchemaError: the schema is not valid Avro (fastavro's message).

    Example:
        >>> parse({"type": "enum", "name": "E", "namespace": "n", "symbols": ["A"]})[1].keys()
        dict_keys(['n.E'])
    """
    import fastavro

    named: dict[str, Any] = {}
    if isinstance(schema, dict) and schema.get("__fastavro_parsed"):
        named.update(schema.get("__named_schemas") or {})
        return schema, named
    try:
        _check_structure(schema)
        parsed = fastavro.parse_schema(schema, named_schemas=named)
    except SchemaError:
        raise
    except Exception as exc:  # fastavro raises UnknownType, SchemaParseException, ValueError, TypeError…
        raise SchemaError(f"not a valid Avro schema: {_describe(exc)}; {_FIX}") from exc
    return parsed, named


def load_schema(path: Path, type_name: str | None = None) -> tuple[Any, dict[str, Any]]:
    """Read an ``.avsc`` file: its parsed schema (or the named type ``type_name`` in it) and its named types.

    ``type_name`` is a full name (``ns.Reading``) or, when unambiguous, a
    short one (``Reading``).

    Raises:
        SchemaError: the file is missing or unreadable, is not JSON (the message
            gives line and column), is not a valid Avro schema, or has no type
            ``type_name`` (the message lists the named types it has).

    Example::

        schema, named = load_schema(Path("reading.avsc"), "Reading")
    """
    import fastavro

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise SchemaError(
            f"Avro schema file {path} does not exist; fix the `schema:`/`reader_schema:` path "
            "in the dataflow file or create the file"
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise SchemaError(
            f"cannot read Avro schema file {path}: {exc}; make it a readable UTF-8 file"
        ) from exc
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SchemaError(
            f"{path}:{exc.lineno}:{exc.colno}: not valid JSON ({exc.msg}); "
            "an .avsc file holds one Avro schema written as JSON"
        ) from exc
    try:
        parsed, named = parse(raw)
    except SchemaError as exc:
        raise SchemaError(f"{path}: {exc}") from exc
    if type_name is None:
        return parsed, named
    full = _find_named(named, type_name)
    if full is None:
        known = ", ".join(sorted(named)) or "none (the file defines no named type)"
        raise SchemaError(
            f"{path} has no named type {type_name!r}; named types: {known}; "
            "fix `type:` in the dataflow file or leave it out to use the file's top-level schema"
        )
    try:
        chosen = fastavro.parse_schema(named[full], named_schemas=dict(named))
    except Exception as exc:
        raise SchemaError(f"{path}: type {full!r} is not a valid Avro schema: {_describe(exc)}") from exc
    return chosen, named


def check_resolvable(writer: Any, reader: Any) -> list[str]:
    """Why data written with ``writer`` cannot be read with ``reader`` (empty when it can).

    Follows the Avro specification's schema resolution: records match by
    (unqualified or full) name or a reader alias; each reader field must be in
    the writer (by name or a reader field alias) with a resolvable type, or
    have a default; writer fields the reader lacks are skipped; enum symbols
    the writer has must be in the reader unless the reader has a ``default``;
    arrays and maps resolve their items and values; fixed types need the same
    name and size; every branch of a writer union must resolve to a reader
    branch, and a non-union writer must resolve to a branch of a reader union;
    ``int`` promotes to ``long``/``float``/``double``, ``long`` to
    ``float``/``double``, ``float`` to ``double``, ``string`` and ``bytes`` to
    each other. Each reason starts with the field path.

    Both schemas may be raw JSON or parsed by fastavro.

    Raises:
        SchemaError: one of the schemas is itself not valid Avro.

    Example:
        >>> check_resolvable("int", ["null", "long"])
        []
        >>> check_resolvable({"type": "array", "items": "long"}, {"type": "array", "items": "int"})
        ['[]: the writer writes long, which the reader cannot read as int']
    """
    w_schema, w_named = parse(writer)
    r_schema, r_named = parse(reader)
    resolver = _Resolver(w_named, r_named)
    resolver.resolve(w_schema, r_schema, "")
    return resolver.reasons


def schema_problems(
    writer_path: Path | str,
    reader_path: Path | str,
    writer_type: str | None = None,
    reader_type: str | None = None,
) -> list[str]:
    """Problems reading data written with the writer ``.avsc`` using the reader ``.avsc`` (empty when none).

    A file that cannot be loaded (missing, not JSON, not Avro, no such type)
    gives one problem with the `load_schema` message; otherwise each reason
    from `check_resolvable` becomes a problem naming both files.

    Example::

        for problem in schema_problems("reading.avsc", "reading_v2.avsc"):
            print(problem)
    """
    problems: list[str] = []
    loaded: list[Any] = []
    for path, type_name in ((writer_path, writer_type), (reader_path, reader_type)):
        try:
            loaded.append(load_schema(Path(path), type_name)[0])
        except SchemaError as exc:
            problems.append(str(exc))
    if problems:
        return problems
    writer_name, reader_name = Path(writer_path).name, Path(reader_path).name
    return [
        f"{reason} (writer {writer_name}, reader {reader_name})"
        for reason in check_resolvable(loaded[0], loaded[1])
    ]


def describe_reasons(reasons: list[str], writer: str, reader: str) -> str:
    """One message for a `SchemaError` about an unresolvable reader schema, with a fix.

    Example:
        >>> describe_reasons(["R.n: no default"], "w.avsc", "r.avsc").splitlines()[1]
        '  R.n: no default'
    """
    lines = "\n".join(f"  {reason}" for reason in reasons)
    return (
        f"data written with {writer} cannot be read with reader schema {reader}:\n{lines}\n"
        "fix: give new reader fields a default, keep field types the same or promotable "
        "(int→long→float→double, string↔bytes), or add aliases for renamed fields and records"
    )


class _Resolver:
    def __init__(self, w_named: dict[str, Any], r_named: dict[str, Any]) -> None:
        self.w_named = w_named
        self.r_named = r_named
        self.reasons: list[str] = []
        self._seen: set[tuple[str, str]] = set()

    def resolve(self, w: Any, r: Any, path: str) -> None:
        w = _deref(w, self.w_named)
        r = _deref(r, self.r_named)
        if isinstance(r, list):
            branches = w if isinstance(w, list) else [w]
            for branch in branches:
                branch = _deref(branch, self.w_named)
                target = self._pick(branch, r)
                if target is None:
                    options = ", ".join(_label(_deref(b, self.r_named)) for b in r)
                    self.reasons.append(
                        f"{path or '<root>'}: the writer writes {_label(branch)}, which matches "
                        f"no branch of the reader union [{options}]"
                    )
                else:
                    self.resolve(branch, target, path)
            return
        if isinstance(w, list):
            for branch in w:
                self.resolve(branch, r, path)
            return
        self._resolve_single(w, r, path)

    def _pick(self, w: Any, union: list[Any]) -> Any:
        branches = [_deref(b, self.r_named) for b in union]
        for exact in (True, False):
            for branch in branches:
                if _matches(w, branch, exact=exact):
                    return branch
        return None

    def _resolve_single(self, w: Any, r: Any, path: str) -> None:
        where = path or "<root>"
        w_type = _kind(w)
        if not _matches(w, r, exact=False):
            self.reasons.append(
                f"{where}: the writer writes {_label(w)}, which the reader cannot read as {_label(r)}"
            )
            return
        if w_type in ("record", "error"):
            key = (w["name"], r["name"])
            if key in self._seen:
                return
            self._seen.add(key)
            self._resolve_record(w, r, path)
        elif w_type == "enum":
            missing = [s for s in w.get("symbols", []) if s not in r.get("symbols", [])]
            if missing and "default" not in r:
                self.reasons.append(
                    f"{where}: the reader enum {r['name']} lacks the writer's symbols "
                    f"{', '.join(missing)} and has no default"
                )
        elif w_type == "fixed":
            if w.get("size") != r.get("size"):
                self.reasons.append(
                    f"{where}: fixed {w['name']} has size {w.get('size')} in the writer "
                    f"but {r.get('size')} in the reader"
                )
        elif w_type == "array":
            self.resolve(w["items"], r["items"], f"{path}[]")
        elif w_type == "map":
            self.resolve(w["values"], r["values"], f"{path}{{}}")

    def _resolve_record(self, w: dict[str, Any], r: dict[str, Any], path: str) -> None:
        w_fields = {f["name"]: f for f in w.get("fields", [])}
        path = path or _short(str(r.get("name", "")))
        for field in r.get("fields", []):
            names = [field["name"], *field.get("aliases", [])]
            found = next((w_fields[n] for n in names if n in w_fields), None)
            field_path = f"{path}.{field['name']}"
            if found is not None:
                self.resolve(found["type"], field["type"], field_path)
            elif "default" not in field:
                self.reasons.append(
                    f"{field_path}: the reader field has no default and the writer has no such field"
                )


def _kind(schema: Any) -> str:
    if isinstance(schema, str):
        return schema
    if isinstance(schema, list):
        return "union"
    kind = schema.get("type")
    return kind if isinstance(kind, str) else "union"


def _deref(schema: Any, named: dict[str, Any]) -> Any:
    # A named reference becomes its definition; {"type": "int", ...} (a primitive, maybe
    # with a logical type) becomes "int": logical types resolve through their underlying type.
    for _ in range(64):
        if isinstance(schema, str):
            return named.get(schema, schema)
        if isinstance(schema, dict) and not isinstance(schema.get("type"), str | type(None)):
            schema = schema["type"]
            continue
        if isinstance(schema, dict) and schema.get("type") in PRIMITIVES:
            return schema["type"]
        if isinstance(schema, dict) and schema.get("type") in named and schema["type"] not in NAMED:
            schema = schema["type"]
            continue
        return schema
    return schema


def _short(name: str) -> str:
    return name.rpartition(".")[2]


def _namespace(name: str) -> str:
    return name.rpartition(".")[0]


def _names_match(w: dict[str, Any], r: dict[str, Any]) -> bool:
    w_name, r_name = str(w.get("name", "")), str(r.get("name", ""))
    if w_name == r_name or _short(w_name) == _short(r_name):
        return True
    namespace = _namespace(r_name)
    for alias in r.get("aliases", []):
        full = alias if "." in alias or not namespace else f"{namespace}.{alias}"
        if w_name in (alias, full) or _short(w_name) == alias:
            return True
    return False


def _matches(w: Any, r: Any, *, exact: bool) -> bool:
    w_type, r_type = _kind(w), _kind(r)
    if w_type in PRIMITIVES and r_type in PRIMITIVES:
        return w_type == r_type or (not exact and r_type in PROMOTIONS.get(w_type, frozenset()))
    if w_type != r_type and {w_type, r_type} != {"record", "error"}:
        return False
    if w_type in NAMED:
        return _names_match(w, r)
    return w_type in ("array", "map")


def _label(schema: Any) -> str:
    kind = _kind(schema)
    if kind in NAMED and isinstance(schema, dict):
        return f"{kind} {schema.get('name')}"
    if kind == "union":
        return "a union"
    return kind


def _find_named(named: dict[str, Any], type_name: str) -> str | None:
    if type_name in named:
        return type_name
    matches = [full for full in named if _short(full) == type_name]
    return matches[0] if len(matches) == 1 else None


def _check_structure(schema: Any) -> None:
    # What fastavro lets through but the specification forbids: records without a list of fields.
    todo = [schema]
    while todo:
        node = todo.pop()
        if isinstance(node, list):
            todo.extend(node)
        elif isinstance(node, dict):
            if node.get("type") in ("record", "error") and not isinstance(node.get("fields"), list):
                raise SchemaError(
                    f"not a valid Avro schema: record {node.get('name')!r} has no 'fields' list"
                )
            todo.extend(v for k, v in node.items() if k in ("type", "fields", "items", "values"))


def _describe(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    if type(exc).__name__ == "UnknownType":
        return f"unknown type {text!r} (not a primitive and not a named type defined in this file)"
    return text
