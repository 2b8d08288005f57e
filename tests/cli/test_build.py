"""``doradus build`` through the real CLI: logs, failures, suggested fixes."""

from __future__ import annotations

from pathlib import Path

from tests.cli.conftest import Control

from doradus._project.build import suggest_fix

TWO_NODES = """
nodes:
  - id: camera
    path: dynamic
    build: |
      echo building camera > built-camera.txt
      echo camera-says-$GREETING
    env:
      GREETING: hi
    outputs: [frame]
  - id: plot
    path: dynamic
    build: echo building plot
    inputs:
      frame: camera/frame
  - id: sink
    path: dynamic
    inputs:
      frame: camera/frame
"""


def test_build_two_nodes_writes_logs(control: Control) -> None:
    control.write("dataflow.yml", TWO_NODES)
    ran = control("build", "dataflow.yml")
    assert ran.returncode == 0, ran.stderr
    out = control.folder / "out"
    assert (control.folder / "built-camera.txt").read_text() == "building camera\n"
    camera_log = (out / "build-camera.txt").read_text()
    assert "camera-says-hi" in camera_log
    assert "$ echo building camera > built-camera.txt" in camera_log
    assert "building plot" in (out / "build-plot.txt").read_text()
    assert not (out / "build-sink.txt").exists()
    assert str(out / "build-<node>.txt") in ran.stderr
    assert "✓ camera done in " in ran.stderr
    assert "sink skipped" in ran.stderr
    assert "2 built, 1 skipped" in ran.stderr


def test_build_one_node(control: Control) -> None:
    control.write("dataflow.yml", TWO_NODES)
    ran = control("build", "dataflow.yml", "--node", "plot")
    assert ran.returncode == 0, ran.stderr
    assert not (control.folder / "built-camera.txt").exists()
    unknown = control("build", "dataflow.yml", "--node", "plto")
    assert unknown.returncode == 2
    assert "did you mean `plot`" in unknown.stderr


def test_build_failure_shows_tail_fix_and_log(control: Control) -> None:
    control.write(
        "dataflow.yml",
        """
        nodes:
          - id: good
            path: dynamic
            build: echo fine
            outputs: [x]
          - id: broken
            path: dynamic
            build: |
              echo step one
              for i in 1 2 3 4 5 6 7 8 9 10 11 12; do echo line-$i; done; no-such-tool-xyz --flag
            inputs:
              x: good/x
        """,
    )
    ran = control("build", "dataflow.yml")
    assert ran.returncode == 1
    assert "Build failed: node broken (command `for i in" in ran.stderr
    assert "exit code 127" in ran.stderr
    assert "line-12" in ran.stderr
    assert "line-1\n" not in ran.stderr  # only the last lines
    assert "Suggested fix: install `for` or fix" not in ran.stderr
    assert "fix the command in `build:` of node broken" in ran.stderr
    log = control.folder / "out" / "build-broken.txt"
    assert f"Full log: {log}" in ran.stderr
    assert "no-such-tool-xyz" in log.read_text()


def test_build_missing_module_hint(control: Control) -> None:
    control.write(
        "dataflow.yml",
        """
        nodes:
          - id: vision
            path: dynamic
            build: python3 -c "import doradus_surely_missing_module"
        """,
    )
    ran = control("build", "dataflow.yml")
    assert ran.returncode == 1
    assert "ModuleNotFoundError: No module named 'doradus_surely_missing_module'" in ran.stderr
    assert "Suggested fix: pip install doradus_surely_missing_module" in ran.stderr


def test_suggest_fix_names_the_program_and_distribution() -> None:
    assert suggest_fix("n", "cmake ..", 127, ["sh: 1: cmake: not found"]).startswith("install `cmake`")
    assert suggest_fix("n", "x", 1, ["ModuleNotFoundError: No module named 'yaml.x'"]) == "pip install pyyaml"
    assert "read the log" in suggest_fix("n", "make", 2, ["error"])


def test_bad_dataflow_exits_2(control: Control, tmp_path: Path) -> None:
    control.write("dataflow.yml", "nodes:\n  - id: a\n    path: dynamic\n    colour: red\n")
    ran = control("build", "dataflow.yml")
    assert ran.returncode == 2
    assert "dataflow.yml:4:5" in ran.stderr
