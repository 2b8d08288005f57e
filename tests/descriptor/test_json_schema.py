"""The dataflow JSON Schema: generated from the loader's tables, committed fresh, and agreeing with
``doradus check`` on every good file of the project and on the structural mistakes of the bad corpus."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from doradus._dataflow import formats, loader, node_fields, nodes, operators
from doradus._dataflow.json_schema import SCHEMA_ID, committed_copies, dataflow_schema, schema_text
from doradus._dataflow.loader import check_dataflow

ROOT = Path(__file__).resolve().parents[2]
BAD = ROOT / "tests" / "descriptor" / "bad"

SEMANTIC = {
    "startup_timeout_zero.yml": "a duration written as text that comes to 0",
    "args_unclosed_quote.yml": "splitting `args` like a shell",
    "custom_conflict.yml": "a key both on the node and under `custom`",
    "duplicate_node_id.yml": "ids unique across nodes",
    "duplicate_operator_id.yml": "ids unique across operators",
    "duplicate_yaml_key.yml": "a YAML-level duplicate: a YAML reader keeps one value",
    "format_avro_reader.yml": "a schema file's contents",
    "format_capnp_struct.yml": "a schema file's contents",
    "format_mismatch.yml": "formats of two nodes",
    "format_needs_schema.yml": "what a codec needs",
    "format_output_unknown.yml": "an output named in the node's `outputs`",
    "format_schema_missing.yml": "a file on disk",
    "log_node.yml": "a node named elsewhere in the file",
    "missing_command.yml": "a command on PATH",
    "missing_file.yml": "a file on disk",
    "not_executable.yml": "file permissions",
    "operator_missing_file.yml": "a file on disk",
    "operator_output_reference.yml": "an output of another node",
    "path_is_folder.yml": "a file on disk",
    "send_stdout_as.yml": "an output named in the node's `outputs`",
    "unknown_node.yml": "a node named elsewhere in the file",
    "unknown_output.yml": "an output of another node",
    "url_path.yml": "what a `path` names (a URL)",
}
"""Bad corpus files whose problem a schema cannot see (what needs the graph or the disk): they pass it."""

NOT_YAML = {"tab_indent.yml", "unknown_tag.yml", "unreadable_date.yml", "yaml_unclosed.yml"}
"""Bad corpus files that are not readable YAML: no schema is applied to them."""


def good_dataflows() -> list[Path]:
    """Every `*.yml`, `*.yaml` under tests/ and examples/ (no run folder, no bad file) that check accepts."""
    found = []
    for top in ("tests", "examples"):
        for file in sorted([*(ROOT / top).rglob("*.yml"), *(ROOT / top).rglob("*.yaml")]):
            parts = file.relative_to(ROOT).parts
            if "out" in parts or "bad" in parts:
                continue
            dataflow, _problems = check_dataflow(file, extra_env={"DORADUS_TEST_HOME": "/h"})
            if dataflow is not None:
                found.append(file)
    return found


GOOD = good_dataflows()
VALIDATOR = jsonschema.Draft202012Validator(dataflow_schema())


def ids(files: list[Path]) -> list[str]:
    return [str(file.relative_to(ROOT)) for file in files]


def test_committed_copies_are_fresh() -> None:
    for copy in committed_copies(ROOT):
        assert copy.is_file(), f"{copy} is missing: run `python -m doradus._dataflow.json_schema --write`"
        assert copy.read_text(encoding="utf-8") == schema_text(), (
            f"{copy} is stale: run `python -m doradus._dataflow.json_schema --write`"
        )


def test_schema_is_valid_draft_2020_12_with_its_site_path_as_id() -> None:
    schema = dataflow_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == SCHEMA_ID == "schema/dataflow.schema.json"
    assert committed_copies(ROOT)[0] == ROOT / "docs" / SCHEMA_ID


def test_keys_are_the_loaders_keys() -> None:
    schema = dataflow_schema()
    defs = schema["$defs"]
    long_input = defs["input"]["anyOf"][1]
    pairs = [
        (schema, loader.TOP_LEVEL_KEYS),
        (schema["properties"]["debug"], loader.DEBUG_KEYS),
        (defs["node"], nodes.NODE_KEYS),
        (defs["custom"], nodes.CUSTOM_KEYS),
        (defs["deploy"], nodes.DEPLOY_KEYS),
        (long_input, node_fields.INPUT_KEYS),
        (defs["single_operator"], operators.OPERATOR_KEYS),
        (defs["operator"], operators.OPERATOR_KEYS | {"id"}),
        (defs["operator"]["properties"]["python"]["anyOf"][1], operators.PYTHON_KEYS),
        (defs["schema"]["anyOf"][1], formats.SCHEMA_KEYS),
        (defs["output_format"]["anyOf"][1], formats.FORMAT_KEYS),
    ]
    for where, keys in pairs:
        assert set(where["properties"]) == set(keys)
        assert where["additionalProperties"] is False
        assert list(where["patternProperties"]) == ["^_unstable_"]


def walk(value: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, item in (value.get("properties") or {}).items():
            yield key, item
        for item in value.values():
            yield from walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from walk(item)


def test_every_key_has_a_description() -> None:
    keys = list(walk(dataflow_schema()))
    assert len(keys) > 100
    missing = [key for key, item in keys if item is not False and not item.get("description")]
    assert missing == []


def test_the_project_has_good_dataflows_to_check() -> None:
    names = {file.name for file in GOOD}
    assert len(GOOD) >= 10
    assert {"full_node.yml", "legacy_0x.yml", "every_key.yml"} <= names


@pytest.mark.parametrize("file", GOOD, ids=ids(GOOD))
def test_every_good_dataflow_is_valid(file: Path) -> None:
    document = yaml.safe_load(file.read_text(encoding="utf-8"))
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in VALIDATOR.iter_errors(document)]
    assert errors == []


BAD_FILES = sorted(BAD.glob("*.yml"))


@pytest.mark.parametrize("file", BAD_FILES, ids=[file.name for file in BAD_FILES])
def test_bad_files_are_rejected_unless_their_problem_is_semantic(file: Path) -> None:
    if file.name in NOT_YAML:
        with pytest.raises((yaml.YAMLError, ValueError)):
            yaml.safe_load(file.read_text(encoding="utf-8"))
        return
    document = yaml.safe_load(file.read_text(encoding="utf-8"))
    errors = list(VALIDATOR.iter_errors(document))
    if file.name in SEMANTIC:
        assert errors == [], f"{file.name} is listed as semantic but the schema rejects it: move it out"
    else:
        assert errors, f"{file.name} is structural but the schema accepts it (or list it in SEMANTIC)"


def test_the_lists_name_existing_files() -> None:
    names = {file.name for file in BAD_FILES}
    assert set(SEMANTIC) <= names
    assert names >= NOT_YAML
    structural = names - set(SEMANTIC) - NOT_YAML
    assert len(structural) >= 40


def test_installed_copy_is_the_package_resource() -> None:
    from importlib.resources import files

    text = files("doradus._assets").joinpath("dataflow.schema.json").read_text(encoding="utf-8")
    assert json.loads(text) == dataflow_schema()
