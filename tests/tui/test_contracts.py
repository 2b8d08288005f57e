"""The TUI's import contracts hold, and break when a forbidden import appears.

Only the CLI imports the TUI; the TUI knows the coordinator only through its API (the client,
the models, profiles), never the runtime, the node process or the coordinator's server side.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "doradus"
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


@pytest.mark.parametrize(
    ("module", "forbidden", "contract"),
    [
        ("_control/state.py", "doradus._tui.app", "Only the CLI imports the terminal UI"),
        (
            "_tui/feed.py",
            "doradus._control.state",
            "The terminal UI knows the coordinator only through its API",
        ),
        (
            "_tui/live.py",
            "doradus._runtime.supervisor",
            "The terminal UI knows the coordinator only through its API",
        ),
    ],
)
def test_a_forbidden_import_breaks_a_tui_contract(
    tmp_path: Path, module: str, forbidden: str, contract: str
) -> None:
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
    broken = [line for line in done.stdout.splitlines() if "BROKEN" in line]
    assert any(contract[:40] in line for line in broken) or contract in done.stdout.replace("\n", " ")
    assert forbidden in done.stdout
