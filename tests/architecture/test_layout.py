"""The package layout keeps its promises: small units, documented packages, enforced directions."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "doradus"
MAX_MODULE_LINES = 600
"""The hard ceiling; modules aim for 500 (STYLE.md habit 14)."""
MAX_FUNCTION_LINES = 80
FOUNDATION = {
    "_exceptions.py",
    "_files.py",
    "_ids.py",
    "_paths.py",
    "_quantities.py",
    "_registry.py",
    "_retry.py",
    "_secrets.py",
}
"""The only modules beside `__init__.py` at the top: what every part may import."""
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def _sources() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py") if "_pb2" not in p.name)


def _long_functions(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    where = path.relative_to(SRC) if path.is_relative_to(SRC) else path.name
    return [
        f"{where}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno is not None
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]


def test_the_top_level_holds_only_the_foundation_modules_and_packages() -> None:
    modules = {p.name for p in SRC.glob("*.py")} - {"__init__.py"}
    assert modules == FOUNDATION
    packages = {p.name for p in SRC.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert {"_wire", "_dataflow", "_node", "_runtime", "_control", "_observability", "_project"} <= packages
    assert "_recording" in packages
    assert {"backends", "codecs", "cli", "testing"} <= packages


def test_every_package_says_what_it_holds_and_what_it_may_import() -> None:
    undocumented = []
    for init in sorted(SRC.rglob("__init__.py")):
        if init.parent.name in ("_assets", "dora"):
            continue
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        if "may import" not in doc.lower():
            undocumented.append(str(init.relative_to(SRC)))
    assert undocumented == []


def test_no_module_is_too_long() -> None:
    too_long = [
        f"{p.relative_to(SRC)} ({n} lines)"
        for p in _sources()
        if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES
    ]
    assert too_long == []


def test_no_function_is_too_long() -> None:
    assert [f for p in _sources() for f in _long_functions(p)] == []


def test_the_length_checks_catch_a_long_function(tmp_path: Path) -> None:
    body = "\n".join(f"    x = {i}" for i in range(MAX_FUNCTION_LINES))
    sample = tmp_path / "m.py"
    sample.write_text(f"def short():\n    return 1\n\n\ndef long():\n{body}\n")
    assert [f.split(" ")[1] for f in _long_functions(sample)] == ["long"]


def test_the_import_contracts_hold() -> None:
    done = subprocess.run([str(LINT_IMPORTS)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-4000:]
    assert "BROKEN" not in done.stdout


@pytest.mark.parametrize(
    ("module", "forbidden"),
    [
        ("_node/events.py", "doradus._control.client"),
        ("backends/_tcp.py", "doradus.codecs"),
        ("codecs/_arrow.py", "doradus.backends"),
        ("_dataflow/model.py", "doradus._runtime.supervisor"),
        ("_wire/values.py", "doradus.cli"),
        ("_recording/recorder_node.py", "doradus._runtime.supervisor"),
    ],
)
def test_a_forbidden_import_breaks_the_contracts(tmp_path: Path, module: str, forbidden: str) -> None:
    copy = tmp_path / "src"
    shutil.copytree(SRC, copy / "doradus", ignore=shutil.ignore_patterns("__pycache__"))
    target = copy / "doradus" / module
    target.write_text(target.read_text() + f"\nimport {forbidden}  # a deliberate break\n")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(copy)}
    done = subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env
    )
    assert done.returncode == 1, done.stdout[-3000:]
    assert f"{forbidden}" in done.stdout
    assert "BROKEN" in done.stdout
