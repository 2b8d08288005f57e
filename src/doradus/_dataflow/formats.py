"""Reading and checking the data formats of a dataflow (``data_format``, ``schema``, ``output_formats``).

Forms accepted::

    default_data_format: arrow              # top level: the default of every output
    nodes:
      - id: sensor
        data_format: capnp                  # this node's outputs
        schema: schemas/reading.capnp:Reading   # file[:Type], or {file: ..., type: ...}
        output_formats:                     # per output, overriding the node's
          debug: {data_format: avro, schema: schemas/debug.avsc}
      - id: logger
        inputs:
          reading:
            source: sensor/reading
            schema: schemas/reading_v2.avsc # Avro: read with this schema (evolution)
            data_format: capnp              # optional: assert what the input expects

Checks, each reported at the offending key with a fix: a non-Arrow format
without a schema; a schema file that is missing, invalid or lacks the type
(the codec loads it, safely for Cap'n Proto); an input expecting another
format than its source writes; an Avro reader schema that cannot read what
the writer writes; a Cap'n Proto or FlatBuffers input naming another type.

Example::

    drafts = apply_formats(reader, folder, drafts)
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from doradus._dataflow.fields import FieldReader
from doradus._dataflow.model import NodeSource
from doradus._dataflow.yaml_positions import KeyPath
from doradus._wire.format_spec import FormatSpec

DATA_FORMATS = ("arrow", "capnp", "flatbuffers", "avro")
FORMAT_KEYS = frozenset({"data_format", "schema"})
SCHEMA_KEYS = frozenset({"file", "type"})
_SUFFIX = {"capnp": ".capnp", "flatbuffers": ".fbs", "avro": ".avsc"}


@dataclasses.dataclass
class _Declared:
    spec: FormatSpec
    path: KeyPath
    """Where to point at problems of this format (its schema key, else its data_format key)."""


def read_schema(
    reader: FieldReader, folder: Path, path: KeyPath, value: object
) -> tuple[Path | None, str | None]:
    """A schema reference: ``file[:Type]`` or ``{file, type}``; the file resolved against ``folder``.

    Example::

        read_schema(reader, Path("/df"), ("nodes", 0, "schema"), "s/r.capnp:Reading")
        # (PosixPath('/df/s/r.capnp'), 'Reading')
    """
    if value is None:
        return None, None
    if isinstance(value, str) and value.strip():
        text = value.strip()
        file, sep, type_name = text.rpartition(":")
        if not sep or not file or not type_name or "/" in type_name:
            file, type_name = text, ""
        return (folder / file).resolve(), type_name or None
    mapping = reader.mapping(path, value)
    if mapping is None:
        return None, None
    reader.keys(path, mapping, SCHEMA_KEYS, what="schema")
    file_name = reader.text((*path, "file"), mapping.get("file"))
    type_text = reader.text((*path, "type"), mapping.get("type"))
    if file_name is None:
        reader.error(path, "a schema needs a `file`", "write `schema: {file: schemas/x.avsc}`", at_key=True)
        return None, type_text
    return (folder / file_name).resolve(), type_text


def _read_declared(
    reader: FieldReader, folder: Path, path: KeyPath, mapping: dict[Any, Any], default: str | None
) -> _Declared | None:
    """``data_format`` (a name, or ``{format, schema, type}``) and ``schema`` keys of one mapping."""
    raw = mapping.get("data_format")
    name: str | None = None
    schema: Path | None = None
    type_name: str | None = None
    where: KeyPath = (*path, "data_format")
    if isinstance(raw, dict):
        reader.keys(where, raw, {"format", "schema", "type"}, what="data_format")
        name = reader.choice((*where, "format"), raw.get("format"), DATA_FORMATS)
        schema, type_name = read_schema(reader, folder, (*where, "schema"), raw.get("schema"))
        type_name = reader.text((*where, "type"), raw.get("type")) or type_name
        if raw.get("schema") is not None:
            where = (*where, "schema")
    elif raw is not None:
        name = reader.choice(where, raw, DATA_FORMATS)
        if name is None:
            return None
    if mapping.get("schema") is not None:
        schema, type_name = read_schema(reader, folder, (*path, "schema"), mapping["schema"])
        where = (*path, "schema")
    name = name or default or "arrow"
    if raw is None and "data_format" not in mapping and schema is None:
        return None
    return _Declared(FormatSpec(name, schema, type_name), where)


def apply_formats(reader: FieldReader, drafts: list[Any]) -> list[Any]:
    """Read every node's output formats and inputs' expectations, check them, and return new drafts.

    Each returned draft's spec has ``output_formats`` (every output) and
    ``input_formats`` (every node-fed input: the writer's format, plus the
    input's Avro reader schema).

    Example::

        drafts = apply_formats(reader, drafts)
    """
    outputs: dict[tuple[str, str], _Declared] = {}
    for draft in drafts:
        outputs.update(_output_formats(reader, draft))
    loaded: dict[FormatSpec, bool] = {}
    for declared in outputs.values():
        _check_loadable(reader, declared, loaded)
    result = []
    for draft in drafts:
        inputs = _input_formats(reader, draft, outputs, loaded)
        spec = dataclasses.replace(
            draft.spec,
            output_formats={o: outputs[(draft.spec.id, o)].spec for o in draft.spec.outputs},
            input_formats=inputs,
        )
        result.append(dataclasses.replace(draft, spec=spec))
    return result


def _node_path(draft: Any) -> KeyPath:
    path: KeyPath = draft.id_path[:-1]
    return path


def _output_formats(reader: FieldReader, draft: Any) -> dict[tuple[str, str], _Declared]:
    spec = draft.spec
    raw: dict[Any, Any] = spec.raw if isinstance(spec.raw, dict) else {}
    path = _node_path(draft)
    folder = Path(spec.location.file).parent if spec.location is not None else Path.cwd()
    node_default = spec.data_format or "arrow"
    node_level = _read_declared(reader, folder, path, raw, node_default) or _Declared(
        FormatSpec(node_default), (*path, "data_format")
    )
    found = {(spec.id, output): node_level for output in spec.outputs}
    overrides = reader.mapping((*path, "output_formats"), raw.get("output_formats"))
    for output, value in (overrides or {}).items():
        where: KeyPath = (*path, "output_formats", output)
        if output not in spec.outputs:
            listed = ", ".join(spec.outputs) or "none"
            reader.error(
                where,
                f"`{output}` is not an output of node `{spec.id}` (outputs: {listed})",
                "name one of the node's outputs, or add it under `outputs:`",
                at_key=True,
            )
            continue
        if isinstance(value, str):
            value = {"data_format": value}
        mapping = reader.mapping(where, value)
        if mapping is None:
            continue
        reader.keys(where, mapping, FORMAT_KEYS, what="output format")
        declared = _read_declared(reader, folder, where, mapping, node_default)
        if declared is not None:
            found[(spec.id, str(output))] = declared
    return found


def _check_loadable(reader: FieldReader, declared: _Declared, loaded: dict[FormatSpec, bool]) -> None:
    spec = declared.spec
    if spec in loaded:
        return
    loaded[spec] = False
    if spec.name == "arrow":
        if spec.schema is not None:
            reader.error(
                declared.path,
                "Arrow values carry their own types: a schema does not apply",
                "remove `schema`, or choose `data_format: capnp|flatbuffers|avro`",
            )
            return
        loaded[spec] = True
        return
    suffix = _SUFFIX[spec.name]
    if spec.schema is None:
        reader.error(
            declared.path,
            f"data format `{spec.name}` needs a schema",
            f"add `schema: schemas/<file>{suffix}" + (":<Type>`" if spec.name != "avro" else "`"),
        )
        return
    if spec.name in ("capnp", "flatbuffers") and not spec.type:
        kind = "struct" if spec.name == "capnp" else "root table"
        reader.error(
            declared.path,
            f"name the {kind} of `{spec.schema.name}` that messages hold",
            f"write `schema: {spec.schema.name}:<Type>`",
        )
        return
    if not spec.schema.is_file():
        reader.error(
            declared.path,
            f"schema file `{spec.schema}` does not exist",
            "fix the path (relative to the dataflow file's folder)",
        )
        return
    problem = codec_problem(spec)
    if problem is not None:
        reader.error(declared.path, problem[0], problem[1])
        return
    loaded[spec] = True


def codec_problem(spec: FormatSpec) -> tuple[str, str] | None:
    """(message, fix) when a codec cannot be made for ``spec``, else None.

    Example::

        codec_problem(FormatSpec("avro", Path("missing.avsc")))
    """
    from doradus._exceptions import SchemaError
    from doradus.codecs import get_codec

    try:
        get_codec(spec)
    except SchemaError as exc:
        return str(exc), "fix the schema file or the type name"
    except ImportError as exc:
        return str(exc), f"pip install 'doradus[{spec.name}]'"
    except KeyError as exc:
        return str(exc.args[0]), "use one of arrow, capnp, flatbuffers, avro"
    return None


def _input_formats(
    reader: FieldReader,
    draft: Any,
    outputs: dict[tuple[str, str], _Declared],
    loaded: dict[FormatSpec, bool],
) -> dict[str, FormatSpec]:
    spec = draft.spec
    raw_inputs = spec.raw.get("inputs") if isinstance(spec.raw, dict) else None
    path = (*_node_path(draft), "inputs")
    folder = Path(spec.location.file).parent if spec.location is not None else Path.cwd()
    found: dict[str, FormatSpec] = {}
    for input_id, inp in spec.inputs.items():
        if not isinstance(inp.source, NodeSource):
            continue
        writer = outputs.get((inp.source.node, inp.source.output))
        if writer is None:
            continue
        found[input_id] = writer.spec
        raw = raw_inputs.get(input_id) if isinstance(raw_inputs, dict) else None
        if not isinstance(raw, dict) or not ({"schema", "data_format"} & set(raw)):
            continue
        where: KeyPath = (*path, input_id)
        expected = _read_declared(reader, folder, where, raw, writer.spec.name)
        if expected is None:
            continue
        found[input_id] = _reconcile(reader, where, input_id, writer, expected, loaded)
    return found


def _reconcile(
    reader: FieldReader,
    where: KeyPath,
    input_id: str,
    writer: _Declared,
    expected: _Declared,
    loaded: dict[FormatSpec, bool],
) -> FormatSpec:
    """What the input decodes with, reporting an expectation the writer cannot meet."""
    w, e = writer.spec, expected.spec
    if e.name != w.name:
        reader.error(
            expected.path,
            f"input `{input_id}` expects `{e.name}` but its source writes `{w}`",
            f"set `data_format: {e.name}` on the source output, or expect `{w.name}` here",
        )
        return w
    if w.name == "arrow" or e.schema is None or not loaded.get(w, False):
        return w
    if not e.schema.is_file():
        reader.error(
            expected.path,
            f"schema file `{e.schema}` does not exist",
            "fix the path (relative to the dataflow file's folder)",
        )
        return w
    if w.name == "avro" and w.schema is not None:
        from doradus.codecs._avro_compat import schema_problems

        try:
            reasons = schema_problems(w.schema, e.schema, w.type, e.type)
        except Exception as exc:  # an unreadable reader schema: reported like any schema problem
            reasons = [str(exc)]
        if reasons:
            reader.error(
                expected.path,
                f"input `{input_id}` cannot read what its source writes: " + "; ".join(reasons),
                "make the reader schema resolvable (add defaults, keep types promotable) "
                "or read with the writer's schema",
            )
            return w
        return dataclasses.replace(w, reader_schema=e.schema)
    if e.type and e.type != w.type:
        reader.error(
            expected.path,
            f"input `{input_id}` expects `{e.type}` but its source writes `{w}`",
            f"expect `{w.type}`, or change what the source writes",
        )
    return w
