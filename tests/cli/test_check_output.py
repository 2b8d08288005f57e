"""`doradus check --output json|yaml`: problems as records on stdout."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

BAD = Path(__file__).parents[1] / "descriptor" / "bad" / "many_problems.yml"
GOOD = Path(__file__).parents[2] / "examples" / "hello-world" / "dataflow.yml"


def _check(path: Path, output: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "doradus.cli", "check", str(path), "--output", output],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_bad_file_problems_as_json_records():
    done = _check(BAD, "json")
    assert done.returncode == 2
    report = json.loads(done.stdout)
    assert report["valid"] is False
    errors = [p for p in report["problems"] if p["severity"] == "error"]
    assert [(p["line"], p["column"]) for p in errors] == [(7, 5), (10, 17), (11, 17)]
    assert all(p["file"] == str(BAD) and p["fix"] for p in errors)
    assert "ouputs" in errors[0]["message"]


def test_good_file_as_yaml():
    done = _check(GOOD, "yaml")
    assert done.returncode == 0
    report = yaml.safe_load(done.stdout)
    assert report == {"file": str(GOOD), "valid": True, "nodes": 2, "problems": []}


def test_settings_not_applied_yet_are_warnings():
    from tests.descriptor.test_not_applied import EVERY_KEY, expected_warnings

    expected = expected_warnings()
    table = subprocess.run(
        [sys.executable, "-m", "doradus.cli", "check", str(EVERY_KEY), "--no-color"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert table.returncode == 0, table.stderr
    shown = [line for line in table.stderr.splitlines() if ": warning: " in line]
    assert shown == [f"{EVERY_KEY}:{line}:{col}: warning: {message}" for line, col, message in expected]
    assert "valid (6 nodes)" in table.stderr

    done = _check(EVERY_KEY, "json")
    assert done.returncode == 0
    report = json.loads(done.stdout)
    assert report["valid"] is True
    assert [(p["line"], p["column"], p["message"]) for p in report["problems"]] == expected
    assert all(p["severity"] == "warning" and p["file"] == str(EVERY_KEY) for p in report["problems"])
