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

Checks, each reported at the offending key with a fix: an unknown format
(built in or registered through the ``doradus.codecs`` entry-point group); a
format that needs a schema without one, or one that takes none with one; a
schema file that is missing, invalid or lacks the type (the codec loads it,
safely for Cap'n Proto); an input expecting another format than its source
writes; an input schema that cannot read what the source writes (Avro's
schema evolution, another type of a Cap'n Proto or FlatBuffers schema).
What differs between formats is each codec class's hooks (`Codec.needs_schema`,
`Codec.schema_suffix`, `Codec.type_kind`, `Codec.check_readable`).

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

FORMAT_KEYS = frozenset({"data_format", "schema"})
SCHEMA_KEYS = frozenset({"file", "type"})


@dataclasses.dataclass
class _Declared:
    spec: FormatSpec
    path: KeyPath
    """Where to point at problems of this format (its schema key, else its data_format key)."""


def read_format_name(reader: FieldReader, path: KeyPath, value: object) -> str | None:
    """``value`` if it names a registered data format (built in or from an entry point), else reported.

    Example::

        read_format_name(reader, ("default_data_format",), "avro")   # 'avro'
    """
    if value is None:
        return None
    from doradus.codecs import codec_names  # only when a format is named: loading stays light

    return reader.choice(path, value, codec_names())


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
        name = read_format_name(reader, (*where, "format"), raw.get("format"))
        schema, type_name = read_schema(reader, folder, (*where, "schema"), raw.get("schema"))
        type_name = reader.text((*where, "type"), raw.get("type")) or type_name
        if raw.get("schema") is not None:
            where = (*where, "schema")
    elif raw is not None:
        name = read_format_name(reader, where, raw)
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
    if spec == FormatSpec():  # the default format, nothing declared: nothing to check or load
        loaded[spec] = True
        return
    from doradus.codecs import codec_class

    try:
        codec = codec_class(spec.name)
    except (KeyError, ImportError) as exc:  # a registered plug-in whose package is broken
        reader.error(declared.path, str(exc.args[0]), "reinstall the package that provides it")
        return
    if not codec.needs_schema:
        if spec.schema is not None:
            reader.error(
                declared.path,
                f"data format `{spec.name}` takes no schema: its values carry their own types",
                "remove `schema`, or choose a data format that reads one",
            )
            return
    elif _schema_problem(reader, declared, codec.schema_suffix, codec.type_kind):
        return
    problem = codec_problem(spec)
    if problem is not None:
        reader.error(declared.path, problem[0], problem[1])
        return
    loaded[spec] = True


def _schema_problem(reader: FieldReader, declared: _Declared, suffix: str, type_kind: str | None) -> bool:
    """Report a missing schema, type name or schema file; True when one was reported."""
    spec = declared.spec
    if spec.schema is None:
        reader.error(
            declared.path,
            f"data format `{spec.name}` needs a schema",
            f"add `schema: schemas/<file>{suffix}" + (":<Type>`" if type_kind else "`"),
        )
        return True
    if type_kind and not spec.type:
        reader.error(
            declared.path,
            f"name the {type_kind} of `{spec.schema.name}` that messages hold",
            f"write `schema: {spec.schema.name}:<Type>`",
        )
        return True
    if not spec.schema.is_file():
        reader.error(
            declared.path,
            f"schema file `{spec.schema}` does not exist",
            "fix the path (relative to the dataflow file's folder)",
        )
        return True
    return False


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
    except ImportError as exc:  # the message names the ``pip install`` to run
        return str(exc), "install the packages the message names"
    except KeyError as exc:
        return str(exc.args[0]), "use one of the data formats the message lists"
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
    if e.schema is None or not loaded.get(w, False):
        return w
    from doradus._exceptions import SchemaError
    from doradus.codecs import codec_class

    codec = codec_class(w.name)
    if not codec.needs_schema:
        return w
    if not e.schema.is_file():
        reader.error(
            expected.path,
            f"schema file `{e.schema}` does not exist",
            "fix the path (relative to the dataflow file's folder)",
        )
        return w
    try:
        return codec.check_readable(w, e)
    except SchemaError as exc:
        reader.error(
            expected.path,
            f"input `{input_id}` cannot read what its source writes: {exc}",
            "change the input's `schema` so that it reads what the source writes "
            "(for evolving schemas: add defaults, keep types promotable), or remove it",
        )
        return w
