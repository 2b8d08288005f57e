"""The dependency lock agrees with pyproject.toml, and `.venv` holds exactly the lock."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
LOCK_TOOL = ROOT / "tools" / "lock.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("doradus_lock_tool", LOCK_TOOL)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


lock = _load()


def test_the_lock_is_fresh_and_allows_every_pyproject_bound() -> None:
    lock.check_fresh()
    assert lock.check_against_pyproject() == []


def test_the_environment_runs_exactly_the_locked_versions() -> None:
    pins = {**lock.read_pins(lock.LOCK), **lock.read_pins(lock.NO_DEPS)}
    have = lock.installed_versions()
    assert {name: have.get(name) for name in pins} == pins
    assert len(pins) > 50


def test_the_lock_holds_every_dependency_of_what_it_holds() -> None:
    assert lock.check_closed() == []


def test_every_tool_the_suite_runs_is_locked() -> None:
    pins = lock.read_pins(lock.LOCK)
    for tool in ("pytest", "mypy", "ruff", "hypothesis", "import-linter", "pip-tools", "pip", "hatchling"):
        assert tool in pins, tool


def _without(lock_text: str, name: str) -> str:
    return re.sub(rf"^{re.escape(name)}==.*?(?=^\S)", "", lock_text, flags=re.S | re.M)


def test_an_entry_deleted_from_the_lock_is_reported_with_make_lock(tmp_path: Path) -> None:
    broken = tmp_path / "lock.txt"
    broken.write_text(_without(lock.LOCK.read_text(), "idna"))
    assert "idna==" not in broken.read_text()
    problems = lock.check_closed(broken)
    assert any(p.startswith("idna (needed by ") for p in problems), problems


def test_a_direct_requirement_missing_from_the_lock_disagrees_with_pyproject(tmp_path: Path) -> None:
    broken = tmp_path / "lock.txt"
    broken.write_text(_without(lock.LOCK.read_text(), "pyyaml"))
    assert lock.check_against_pyproject(broken) == ["pyyaml>=6.0 (dependencies) is not in the lock"]


def test_a_lower_bound_above_the_locked_version_disagrees(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(lock.PYPROJECT.read_text().replace('"pyyaml>=6.0"', '"pyyaml>=99"'))
    problems = lock.check_against_pyproject(lock.LOCK, pyproject)
    assert len(problems) == 1, problems
    assert problems[0].startswith("pyyaml>=99 (dependencies) does not allow"), problems


def test_a_changed_pyproject_makes_the_lock_stale(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(lock.PYPROJECT.read_text().replace('"rich>=13.7",', '"rich>=13.7",\n    "tqdm>=4",'))
    with pytest.raises(lock.LockError, match=r"stale.*make lock"):
        lock.check_fresh(lock.LOCK, pyproject)


def test_a_missing_lock_names_make_lock(tmp_path: Path) -> None:
    with pytest.raises(lock.LockError, match=r"missing: run `make lock`"):
        lock.check_fresh(tmp_path / "lock.txt")


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_refuses_a_missing_lock_and_names_make_lock(tmp_path: Path) -> None:
    # A copy of the project's make rules in a folder without the lock: nothing is installed.
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    (tmp_path / "tools").mkdir()
    shutil.copy(LOCK_TOOL, tmp_path / "tools" / "lock.py")
    (tmp_path / "requirements").mkdir()
    shutil.copy(lock.NO_DEPS, tmp_path / "requirements" / "no-deps.txt")
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    (tmp_path / ".venv" / "bin" / "python").symlink_to(sys.executable)
    done = subprocess.run(
        ["make", "--no-print-directory", ".venv/.installed"], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode != 0
    assert "requirements/lock.txt is missing: run `make lock`" in done.stderr
