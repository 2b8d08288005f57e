"""docs/reference/dataflow-yaml.md: every key of every level is on the page, and every example is checked.

A ``yaml`` block starting ``# dataflow`` is a complete file: it must pass ``check`` (the loader
``doradus check`` runs) and the JSON Schema. One starting ``# fragment: LEVEL`` must be valid
against the schema of that level (``top``: the top-level keys; else a ``$defs`` entry).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from doradus._dataflow import formats, loader, node_fields, nodes, operators
from doradus._dataflow.json_schema import dataflow_schema
from doradus._dataflow.loader import check_dataflow_text

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "reference" / "dataflow-yaml.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
SCHEMA = dataflow_schema()


def page_blocks() -> list[tuple[int, str, str]]:
    text = PAGE.read_text(encoding="utf-8")
    return [(text[: m.start()].count("\n") + 1, m.group(1), m.group(2)) for m in FENCE.finditer(text)]


BLOCKS = page_blocks()
YAML_BLOCKS = [(line, body) for line, lang, body in BLOCKS if lang == "yaml"]


def level_schema(level: str) -> dict[str, Any]:
    if level == "top":  # top-level keys alone: `nodes` may be left out of a fragment
        return {key: value for key, value in SCHEMA.items() if key != "required"}
    assert level in SCHEMA["$defs"], f"unknown level `{level}`; levels: top, {', '.join(SCHEMA['$defs'])}"
    return {"$schema": SCHEMA["$schema"], "$defs": SCHEMA["$defs"], "$ref": f"#/$defs/{level}"}


def test_every_block_is_checked_or_is_the_schema_line() -> None:
    assert len(YAML_BLOCKS) >= 12
    for line, lang, body in BLOCKS:
        if lang == "yaml":
            first = body.splitlines()[0]
            assert first == "# dataflow" or first.startswith("# fragment: "), f"line {line}: no marker"
        else:
            assert lang == "text", f"line {line}: a `{lang}` block is not checked"
            assert re.fullmatch(r"# yaml-language-server: \$schema=/\S+/dataflow\.schema\.json\n", body)


@pytest.mark.parametrize(("line", "body"), YAML_BLOCKS, ids=[f"line{line}" for line, _ in YAML_BLOCKS])
def test_example_is_valid(line: int, body: str, tmp_path: Path) -> None:
    document = yaml.safe_load(body)
    first = body.splitlines()[0]
    if first == "# dataflow":
        dataflow, problems = check_dataflow_text(body, tmp_path / "dataflow.yml")
        assert dataflow is not None, "\n".join(map(str, problems))
        schema = SCHEMA
    else:
        schema = level_schema(first.removeprefix("# fragment: ").strip())
    errors = [
        f"{list(e.absolute_path)}: {e.message}"
        for e in jsonschema.Draft202012Validator(schema).iter_errors(document)
    ]
    assert errors == [], f"{PAGE.name}:{line}"


def test_a_wrong_fragment_would_be_caught() -> None:
    validator = jsonschema.Draft202012Validator(level_schema("input"))
    assert list(validator.iter_errors({"source": "camera/image", "queue_sise": 2}))


def test_every_key_of_every_level_is_on_the_page() -> None:
    text = PAGE.read_text(encoding="utf-8")
    levels = [
        loader.TOP_LEVEL_KEYS, loader.DEBUG_KEYS, nodes.NODE_KEYS, nodes.CUSTOM_KEYS, nodes.DEPLOY_KEYS,
        node_fields.INPUT_KEYS, node_fields.QUEUE_POLICIES, nodes.RESTART_POLICIES, operators.OPERATOR_KEYS,
        operators.PYTHON_KEYS, formats.FORMAT_KEYS, formats.SCHEMA_KEYS, {"format", "type", "local"},
        {"remote"},
        loader.COMMUNICATION_0X,
    ]  # fmt: skip
    missing = sorted({key for keys in levels for key in keys if f"`{key}`" not in text})
    assert missing == []
