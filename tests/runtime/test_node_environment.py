"""What a node finds in its environment: the run's variables and the defaults it can override."""

from __future__ import annotations

import pytest

from doradus._dataflow.model import NodeSpec
from doradus._runtime.spawn import NODE_ENV_DEFAULTS, environment

FLOW = """
nodes:
  - id: plain
    path: show.py
  - id: tuned
    path: show.py
    env:
      OPENBLAS_THREAD_TIMEOUT: 28
"""

NODE = NodeSpec(id="n", kind="python")

SHOW = """
import os

print(os.environ.get("OPENBLAS_THREAD_TIMEOUT"), os.environ["DORADUS_NODE_ID"])
"""


def test_nodes_get_the_default_unless_their_dataflow_sets_it(
    dataflow, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENBLAS_THREAD_TIMEOUT", raising=False)
    ran = dataflow({"dataflow.yml": FLOW, "show.py": SHOW})
    assert ran.returncode == 0, ran.output
    assert ran.lines_of("plain") == ["18 plain"]
    assert ran.lines_of("tuned") == ["28 tuned"]


def test_the_process_environment_wins_over_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENBLAS_THREAD_TIMEOUT", "30")
    env = environment(NODE, run_id="r", control_path="/c", level="INFO", extra_env={})
    assert env["OPENBLAS_THREAD_TIMEOUT"] == "30"
    monkeypatch.delenv("OPENBLAS_THREAD_TIMEOUT")
    env = environment(NODE, run_id="r", control_path="/c", level="INFO", extra_env={})
    assert env["OPENBLAS_THREAD_TIMEOUT"] == NODE_ENV_DEFAULTS["OPENBLAS_THREAD_TIMEOUT"] == "18"
