"""Files `doradus init` and `doradus new dataflow` write name the dataflow JSON Schema first.

The line is ``# yaml-language-server: $schema=<absolute path of the installed copy>``: editors
complete and check keys offline. The file still passes ``doradus check`` and the schema itself.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import jsonschema
import yaml
from tests.cli.conftest import DORADUS

from doradus._dataflow.json_schema import dataflow_schema, schema_text

MODELINE = re.compile(r"^# yaml-language-server: \$schema=(\S+)$")


def doradus(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*DORADUS, *args], capture_output=True, text=True, cwd=folder, timeout=60)


def assert_names_the_schema(file: Path) -> None:
    first = file.read_text(encoding="utf-8").splitlines()[0]
    match = MODELINE.match(first)
    assert match, f"first line of {file}: {first!r}"
    schema_file = Path(match.group(1))
    assert schema_file.is_absolute()
    assert schema_file.is_file()
    schema = json.loads(schema_file.read_text(encoding="utf-8"))
    assert schema == dataflow_schema()
    jsonschema.Draft202012Validator(schema).validate(yaml.safe_load(file.read_text(encoding="utf-8")))


def test_init_writes_the_schema_line_and_the_file_checks(tmp_path: Path) -> None:
    made = doradus(tmp_path, "init", "--yes", "--node", "camera", "--node", "filter", "--node", "sink")
    assert made.returncode == 0, made.stderr
    assert_names_the_schema(tmp_path / "dataflow.yaml")
    checked = doradus(tmp_path, "check", "dataflow.yaml")
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_new_dataflow_writes_the_schema_line_and_the_file_checks(tmp_path: Path) -> None:
    made = doradus(tmp_path, "new", "dataflow", "robot")
    assert made.returncode == 0, made.stderr
    assert_names_the_schema(tmp_path / "robot" / "dataflow.yaml")
    checked = doradus(tmp_path, "check", "robot/dataflow.yaml")
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_schema_prints_the_schema_and_where_it_is(tmp_path: Path) -> None:
    printed = doradus(tmp_path, "schema")
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout == schema_text()
    where = doradus(tmp_path, "schema", "--path")
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()).read_text(encoding="utf-8") == schema_text()
    made = doradus(tmp_path, "new", "dataflow", "robot")
    assert made.returncode == 0, made.stderr
    first = (tmp_path / "robot" / "dataflow.yaml").read_text(encoding="utf-8").splitlines()[0]
    assert first == f"# yaml-language-server: $schema={where.stdout.strip()}"
