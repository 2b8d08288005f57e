"""``doradus run`` shows its stages on stderr before the nodes' output."""

from __future__ import annotations

import io

from tests.cli.conftest import Control

from doradus.cli._render import StageDisplay

DATAFLOW = """
nodes:
  - id: hello
    path: hello.py
"""


def test_run_progress_lines_in_order(control: Control) -> None:
    control.write("hello.py", "print('hi from the node', flush=True)\n")
    control.write("dataflow.yml", DATAFLOW)
    ran = control("run", "dataflow.yml", "--stop-after", "10s")
    assert ran.returncode == 0, ran.stderr
    lines = ran.stderr.splitlines()
    wanted = ["Loading dataflow… ✓ done in ", "Validating… ✓ done in ", "Spawning 1 nodes… ✓ done in "]
    positions = [next(i for i, line in enumerate(lines) if line.startswith(w)) for w in wanted]
    assert positions == sorted(positions)
    assert "\x1b[" not in ran.stderr  # plain: NO_COLOR and not a terminal
    assert any(line.startswith("✓ dataflow finished in ") for line in lines)
    assert "hi from the node" in ran.stdout


def test_run_bad_dataflow_marks_validation_failed(control: Control) -> None:
    control.write("dataflow.yml", "nodes:\n  - id: a\n    path: dynamic\n    colour: red\n")
    ran = control("run", "dataflow.yml")
    assert ran.returncode == 2
    assert "Validating… ✗ failed after " in ran.stderr
    assert "Spawning" not in ran.stderr


def test_stage_display_spinner_clears_its_line() -> None:
    out = io.StringIO()
    stages = StageDisplay(color=True, stream=out)
    with stages.stage("Spawning 2 nodes"):
        pass
    text = out.getvalue()
    assert "\r\x1b[2K" in text
    assert text.endswith("done in 0.00s\n") or "done in" in text.splitlines()[-1]
