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
