r"""The JSON Schema of dataflow files, generated from the loader's own tables.

Editors (through ``# yaml-language-server: $schema=...``) complete and check keys with it.
Every key set comes from the module that reads it (`loader.TOP_LEVEL_KEYS`,
`nodes.NODE_KEYS`, `node_fields.INPUT_KEYS`, `operators.OPERATOR_KEYS`...); the names of
backends and data formats from their registries; the descriptions live here, and building
the schema fails when they name other keys than the loader reads, so the two cannot drift.

The schema checks structure: keys, types, allowed values, the shape of sources and
durations. What needs the files or the whole graph (a schema file that exists, a source that
names a real node, cycles of formats) only ``doradus check`` knows.

Regenerate the committed copies (``docs/schema/`` and the package's ``_assets/``)::

    python -m doradus._dataflow.json_schema --write

Example:
    >>> schema = dataflow_schema()
    >>> schema["$id"], schema["required"]
    ('schema/dataflow.schema.json', ['nodes'])
    >>> schema["$defs"]["node"]["properties"]["restart_policy"]["enum"]
    ['never', 'on-failure', 'always', None]
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from doradus._dataflow import formats, loader, model, node_fields, nodes, operators, sources
from doradus._dataflow.json_schema_text import (
    CUSTOM,
    DEBUG,
    DEPLOY,
    FORMAT_OBJECT,
    INPUT,
    NODE,
    OPERATOR,
    OUTPUT_FORMAT,
    PYTHON,
    SCHEMA_OBJECT,
    TOP,
)
from doradus._quantities import BYTE_UNITS, DURATION_UNITS

__all__ = ["SCHEMA_FILE", "SCHEMA_ID", "committed_copies", "dataflow_schema", "schema_text"]

SCHEMA_ID = "schema/dataflow.schema.json"
"""The schema's ``$id``: its path on the documentation site, relative to the site's root.

The site has no fixed address yet, so the ``$id`` is that path; it resolves against wherever
the site is served."""

SCHEMA_FILE = "dataflow.schema.json"
"""The file name of the committed copies and of the one shipped in the package."""

_NUMBER = r"[0-9]{1,30}(?:\.[0-9]{0,30})?|\.[0-9]{1,30}"
_UNSTABLE = {"^_unstable_": {"description": "Experimental dora key: accepted with a warning, ignored."}}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """Also accept null: the loader treats an empty value as an absent optional key."""
    if "enum" in schema:
        return {**schema, "enum": [*schema["enum"], None]}
    kind = schema.get("type")
    if isinstance(kind, str):
        return {**schema, "type": [kind, "null"]}
    if isinstance(kind, list):
        return {**schema, "type": [*kind, "null"]}
    if "anyOf" in schema:
        return {**schema, "anyOf": [*schema["anyOf"], {"type": "null"}]}
    return {"anyOf": [schema, {"type": "null"}]}


def _text_pattern(units: Collection[str], *, ignore_case: bool) -> str:
    def spell(unit: str) -> str:
        if not ignore_case:
            return re.escape(unit)
        return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else re.escape(c) for c in unit)

    alternatives = "|".join(spell(unit) for unit in sorted(units, key=lambda u: (-len(u), u)))
    return rf"^\s*(?:{_NUMBER})\s*(?:{alternatives})?\s*$"


def _duration(*, positive: bool) -> dict[str, Any]:
    number: dict[str, Any] = {"type": "number", ("exclusiveMinimum" if positive else "minimum"): 0}
    text = {"type": "string", "pattern": _text_pattern(DURATION_UNITS, ignore_case=False)}
    return _nullable({"anyOf": [number, text]})


def _byte_size() -> dict[str, Any]:
    text = {"type": "string", "pattern": _text_pattern(BYTE_UNITS, ignore_case=True)}
    return _nullable({"anyOf": [{"type": "integer", "minimum": 1}, text]})


def _source() -> dict[str, Any]:
    units = "|".join(sources.TIMER_UNITS)
    levels = "|".join(sources.LOG_LEVELS)
    whole = r"0*[1-9][0-9]*"
    rate = r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?"
    pattern = (
        rf"^(?:(?!dora/)[^/]+/.+|dora/timer/(?:{units})/{whole}|dora/timer/hz/{rate}"
        rf"|dora/logs(?:/(?:{levels})(?:/[^/]+)?)?)$"
    )
    return {"type": "string", "pattern": pattern, "examples": ["camera/image", "dora/timer/millis/20"]}


def _closed(
    allowed: Collection[str], described: Mapping[str, str], shapes: Mapping[str, dict[str, Any]], level: str
) -> dict[str, Any]:
    """A mapping whose keys are exactly the loader's ``allowed`` (plus ``_unstable_*``)."""
    if set(allowed) != set(described) or set(shapes) != set(described):
        missing = sorted(set(allowed) ^ set(described) | set(shapes) ^ set(described))
        raise ValueError(f"the {level} keys of the JSON Schema differ from the loader's: {missing}")
    properties = {key: {"description": described[key], **shapes[key]} for key in sorted(allowed)}
    return {
        "type": "object",
        "properties": properties,
        "patternProperties": _UNSTABLE,
        "additionalProperties": False,
    }


def _env() -> dict[str, Any]:
    value = {"type": ["string", "number", "boolean"]}
    return _nullable(
        {"type": "object", "propertyNames": {"pattern": "^[^=\\u0000]+$"}, "additionalProperties": value}
    )


def _deploy() -> dict[str, Any]:
    label = {"type": ["string", "number", "boolean", "null"]}
    shapes: dict[str, dict[str, Any]] = {
        "machine": {"type": ["string", "null"]},
        "working_dir": {"type": ["string", "null"]},
        "labels": {"type": ["object", "null"], "additionalProperties": label},
    }
    return _nullable(_closed(nodes.DEPLOY_KEYS, DEPLOY, shapes, "deploy"))


def _schema_reference() -> dict[str, Any]:
    shapes: dict[str, dict[str, Any]] = {"file": {"type": "string"}, "type": {"type": ["string", "null"]}}
    mapping = {**_closed(formats.SCHEMA_KEYS, SCHEMA_OBJECT, shapes, "schema"), "required": ["file"]}
    text = {"type": "string", "pattern": r"\S", "examples": ["schemas/reading.capnp:Reading"]}
    return _nullable({"anyOf": [text, mapping]})


def _data_format(names: list[str]) -> dict[str, Any]:
    shapes: dict[str, dict[str, Any]] = {
        "format": _nullable({"enum": names}),
        "schema": {"$ref": "#/$defs/schema"},
        "type": {"type": ["string", "null"]},
    }
    mapping = _closed(("format", "schema", "type"), FORMAT_OBJECT, shapes, "data_format")
    return _nullable({"anyOf": [{"enum": names}, mapping]})


def _input() -> dict[str, Any]:
    shapes: dict[str, dict[str, Any]] = {
        "source": {"$ref": "#/$defs/source"},
        "queue_size": _nullable({"type": "integer", "minimum": 1, "default": model.DEFAULT_QUEUE_SIZE}),
        "queue_policy": _nullable({"enum": list(node_fields.QUEUE_POLICIES), "default": "drop_oldest"}),
        "input_timeout": _duration(positive=True),
        "backpressure_timeout": {**_duration(positive=True), "default": model.DEFAULT_BACKPRESSURE_TIMEOUT},
        "schema": {"$ref": "#/$defs/schema"},
        "data_format": {"$ref": "#/$defs/data_format"},
    }
    long_form = {**_closed(node_fields.INPUT_KEYS, INPUT, shapes, "input"), "required": ["source"]}
    return {"anyOf": [{"$ref": "#/$defs/source"}, long_form]}


def _ports() -> dict[str, dict[str, Any]]:
    """The keys a node, a ``custom:`` block and an operator share."""
    return {
        "inputs": _nullable(
            {
                "type": "object",
                "propertyNames": {"minLength": 1},
                "additionalProperties": {"$ref": "#/$defs/input"},
            }
        ),
        "outputs": _nullable(
            {"type": "array", "items": {"type": "string", "pattern": r"\S"}, "uniqueItems": True}
        ),
        "send_stdout_as": {"type": ["string", "null"]},
        "build": {"type": ["string", "null"]},
    }


def _args() -> dict[str, Any]:
    return _nullable({"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]})


def _operator(*, with_id: bool) -> dict[str, Any]:
    python_shapes: dict[str, dict[str, Any]] = {
        "source": {"type": "string", "minLength": 1},
        "conda_env": {"type": ["string", "null"]},
    }
    python_mapping = {
        **_closed(operators.PYTHON_KEYS, PYTHON, python_shapes, "python"),
        "required": ["source"],
    }
    only_python = {"not": {}, "$comment": "only Python operators are supported"}
    shapes: dict[str, dict[str, Any]] = {
        **_ports(),
        "python": {"anyOf": [{"type": "string", "minLength": 1}, python_mapping]},
        "shared-library": only_python,
        "wasm": only_python,
        "name": {"type": ["string", "null"]},
        "description": {"type": ["string", "null"]},
    }
    allowed, described = set(operators.OPERATOR_KEYS), dict(OPERATOR)
    if with_id:
        shapes["id"] = {"type": "string", "pattern": nodes.NODE_ID.pattern.join("^$")}
        allowed.add("id")
    else:
        described.pop("id")
    schema = _closed(allowed, described, shapes, "operator")
    return {**schema, "required": ["id", "python"] if with_id else ["python"]}


def _communication(backends: list[str], *, node: bool) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "local": {
            "enum": [*backends, None],
            "default": "shm",
            "description": "Backend of edges within a machine.",
        },
        "remote": {
            "enum": [*backends, None],
            "default": "zenoh",
            "description": "Backend of edges across machines.",
        },
    }
    if node:  # the documented form; the loader does not check a node's mapping yet (the run fails)
        pair = {"type": "object", "properties": properties, "additionalProperties": False}
        return _nullable({"anyOf": [{"enum": backends}, pair]})
    from doradus.backends import backend_class

    zero_x = {
        "anyOf": [
            {"type": "string", "minLength": 1},
            {"type": "object", "minProperties": 1, "maxProperties": 1},
        ]
    }
    for key, new in loader.COMMUNICATION_0X.items():
        properties[key] = {
            **zero_x,
            "deprecated": True,
            "description": f"dora 0.x: maps onto `{new}` (warning).",
        }
    for name in backends:
        declared = backend_class(name)
        options: dict[str, Any] = {"type": "object", "description": f"Options of the `{name}` backend."}
        if declared.options is not None:
            choices = declared.option_choices
            options["properties"] = {
                o: {"description": f"`{name}` option (see the backends page)", **_choices(choices, o)}
                for o in sorted(declared.options)
            }
            options["additionalProperties"] = False
        properties[name] = options
    return _nullable({"type": "object", "properties": properties, "additionalProperties": False})


def _choices(choices: Mapping[str, tuple[Any, ...]], option: str) -> dict[str, Any]:
    return {"enum": list(choices[option])} if option in choices else {}


def _node_shapes(backends: list[str], names: list[str]) -> dict[str, dict[str, Any]]:
    text = {"type": ["string", "null"]}
    shapes: dict[str, dict[str, Any]] = {
        **_ports(),
        "id": {"type": "string", "pattern": nodes.NODE_ID.pattern.join("^$"), "not": {"const": "dora"}},
        "name": text,
        "description": text,
        "path": {"type": "string", "examples": ["node.py", "dynamic", "./bin/camera"]},
        "custom": {"$ref": "#/$defs/custom"},
        "operator": {"$ref": "#/$defs/single_operator"},
        "operators": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/operator"}},
        "git": {"type": "null"},
        "branch": text,
        "tag": text,
        "rev": text,
        "args": _args(),
        "env": {"$ref": "#/$defs/env"},
        "restart_policy": _nullable({"enum": list(nodes.RESTART_POLICIES), "default": "never"}),
        "max_restarts": _nullable({"type": "integer", "minimum": 0, "default": 0}),
        "shared_memory_pool_size": _byte_size(),
        "cpu_affinity": _nullable({"type": "array", "items": {"type": "integer", "minimum": 0}}),
        "deploy": {"$ref": "#/$defs/deploy"},
        "_unstable_deploy": {"$ref": "#/$defs/deploy", "deprecated": True},
        "data_format": {"$ref": "#/$defs/data_format"},
        "schema": {"$ref": "#/$defs/schema"},
        "output_formats": _nullable(
            {"type": "object", "additionalProperties": {"$ref": "#/$defs/output_format"}}
        ),
        "communication": _communication(backends, node=True),
    }
    shapes.update({key: _duration(positive=key in nodes.POSITIVE_DURATIONS) for key in nodes.DURATION_KEYS})
    return shapes


def _node(backends: list[str], names: list[str]) -> dict[str, Any]:
    schema = _closed(nodes.NODE_KEYS, NODE, _node_shapes(backends, names), "node")
    not_with_operators = {key: False for key in ("args", "inputs", "outputs", "send_stdout_as")}
    programs = [
        {"required": ["path"]},
        {"required": ["custom"]},
        {"required": ["operator"], "properties": not_with_operators},
        {"required": ["operators"], "properties": not_with_operators},
    ]
    one_ref = {
        "not": {
            "anyOf": [
                {"required": list(pair)} for pair in (("branch", "tag"), ("branch", "rev"), ("tag", "rev"))
            ]
        }
    }
    return {
        **schema,
        "required": ["id"],
        "oneOf": programs,
        "allOf": [one_ref],
        "dependentRequired": {ref: ["git"] for ref in ("branch", "tag", "rev")},
    }


def _custom() -> dict[str, Any]:
    shapes = {**_ports(), "source": {"type": "string"}, "args": _args(), "envs": {"$ref": "#/$defs/env"}}
    return {
        **_closed(nodes.CUSTOM_KEYS, CUSTOM, shapes, "custom"),
        "required": ["source"],
        "deprecated": True,
    }


def _top(backends: list[str], names: list[str]) -> dict[str, dict[str, Any]]:
    debug = _closed(
        loader.DEBUG_KEYS, DEBUG, {"enable_debug_inspection": {"type": ["boolean", "null"]}}, "debug"
    )
    return {
        "nodes": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/node"}},
        "env": {"$ref": "#/$defs/env"},
        "deploy": {"$ref": "#/$defs/deploy"},
        "_unstable_deploy": {"$ref": "#/$defs/deploy", "deprecated": True},
        "debug": _nullable(debug),
        "health_check_interval": {
            **_duration(positive=True),
            "default": loader.DEFAULT_HEALTH_CHECK_INTERVAL,
        },
        "exit_when_nodes_finish": {"type": ["boolean", "null"]},
        "strict_types": {"type": ["boolean", "null"]},
        "type_rules": {"type": ["object", "array", "null"]},
        "communication": _communication(backends, node=False),
        "default_data_format": _nullable({"enum": names, "default": "arrow"}),
    }


def dataflow_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a dataflow file, as a dict.

    Example:
        >>> sorted(dataflow_schema()["$defs"]["input"]["anyOf"][1]["properties"])
        ['backpressure_timeout', 'data_format', 'input_timeout', 'queue_policy', 'queue_size', 'schema',
         'source']
    """
    from doradus.backends import backend_names
    from doradus.codecs import codec_names

    backends, names = list(backend_names()), list(codec_names())
    defs = {
        "node": _node(backends, names),
        "custom": _custom(),
        "single_operator": _operator(with_id=False),
        "operator": _operator(with_id=True),
        "input": _input(),
        "source": _source(),
        "env": _env(),
        "deploy": _deploy(),
        "schema": _schema_reference(),
        "data_format": _data_format(names),
        "output_format": {
            "anyOf": [
                {"enum": names},
                _closed(
                    formats.FORMAT_KEYS,
                    OUTPUT_FORMAT,
                    {"data_format": {"$ref": "#/$defs/data_format"}, "schema": {"$ref": "#/$defs/schema"}},
                    "output format",
                ),
            ]
        },
    }
    top = _closed(loader.TOP_LEVEL_KEYS, TOP, _top(backends, names), "top-level")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "Doradus dataflow",
        "description": "A Doradus (dora-rs compatible) dataflow file. `doradus check` checks the rest.",
        **top,
        "required": ["nodes"],
        "$defs": defs,
    }


def schema_text() -> str:
    r"""The schema as the committed JSON text (two-space indent, a final newline).

    Example:
        >>> schema_text().startswith('{\n  "$schema"')
        True
    """
    return json.dumps(dataflow_schema(), indent=2, ensure_ascii=False) + "\n"


def committed_copies(root: Path) -> tuple[Path, Path]:
    """Where the schema is committed below the project ``root``: the docs site's copy, the package's.

    Example:
        >>> [str(p) for p in committed_copies(Path("/repo"))]
        ['/repo/docs/schema/dataflow.schema.json', '/repo/src/doradus/_assets/dataflow.schema.json']
    """
    return root / "docs" / "schema" / SCHEMA_FILE, root / "src" / "doradus" / "_assets" / SCHEMA_FILE


def _main(argv: list[str]) -> int:
    if argv != ["--write"]:
        sys.stdout.write(schema_text())
        return 0
    root = Path(__file__).resolve().parents[3]
    for copy in committed_copies(root):
        copy.parent.mkdir(parents=True, exist_ok=True)
        copy.write_text(schema_text(), encoding="utf-8")
        print(f"wrote {copy}")
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
