"""Every backend carries a real dataflow's edges, and edges.json says which one did."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.conftest import Ran

from doradus.backends import backend_names

BACKENDS = [
    b for b in ("shm", "tcp", "websocket", "redis", "mqtt", "zenoh", "grpc", "quic") if b in backend_names()
]

FILES = {
    "source.py": """
        from doradus import Node
        node = Node()
        for seq in range(200):
            node.send_output("out", [seq], {"seq": seq})
        node.send_output("big", bytes(range(256)) * 8192)  # 2 MiB
    """,
    "sink.py": """
        import json
        from doradus import Input, Node
        got, big = [], None
        for event in Node():
            if isinstance(event, Input):
                if event.id == "x":
                    got.append(event.value[0].as_py())
                else:
                    big = event.value.to_numpy().tobytes()
        ok = big == bytes(range(256)) * 8192
        json.dump({"got": got, "big_ok": ok}, open("sink.json", "w"))
    """,
}


def _flow(backend: str, node_level: bool) -> str:
    top = "" if node_level else f"communication:\n  local: {backend}\n"
    node = f"\n    communication: {backend}" if node_level else ""
    return (
        top
        + f"""nodes:
  - id: source
    path: source.py
    outputs: [out, big]{node}
  - id: sink
    path: sink.py
    inputs:
      x: {{source: source/out, queue_size: 1000}}
      big: source/big
"""
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_dataflow_runs_on_the_backend(dataflow: Callable[..., Ran], tmp_path: Path, backend: str) -> None:
    ran = dataflow({"dataflow.yml": _flow(backend, node_level=False), **FILES}, timeout=90)
    assert ran.returncode == 0, ran.output
    result = json.loads((tmp_path / "sink.json").read_text())
    assert result["got"] == list(range(200))
    assert result["big_ok"]
    (run_dir,) = (tmp_path / "out").iterdir()
    edges = {e["target"]: e for e in json.loads((run_dir / "edges.json").read_text())}
    assert edges["sink/x"]["backend"] == backend
    assert edges["sink/x"]["source"] == "source/out"
    assert edges["sink/x"]["messages"] == 200
    assert edges["sink/x"]["dropped"] == 0
    assert edges["sink/big"]["bytes"] >= 2 << 20


def test_a_node_can_choose_its_own_backend(dataflow: Callable[..., Ran], tmp_path: Path) -> None:
    ran = dataflow({"dataflow.yml": _flow("tcp", node_level=True), **FILES})
    assert ran.returncode == 0, ran.output
    (run_dir,) = (tmp_path / "out").iterdir()
    edges = json.loads((run_dir / "edges.json").read_text())
    assert {e["backend"] for e in edges} == {"tcp"}


def test_run_says_placed_nodes_all_run_here(dataflow: Callable[..., Ran], tmp_path: Path) -> None:
    ran = dataflow(
        {
            "dataflow.yml": """
                nodes:
                  - id: a
                    path: a.py
                    deploy: {machine: robot}
                    outputs: [x]
                  - id: b
                    path: b.py
                    deploy: {machine: gpu}
                    inputs: {x: a/x}
            """,
            "a.py": "from doradus import Node\nNode().send_output('x', [1])\n",
            "b.py": "from doradus import Node\nfor e in Node():\n    print(type(e).__name__)\n",
        }
    )
    assert ran.returncode == 0, ran.output
    assert "placed on machines gpu, robot" in ran.stderr
    assert "doradus start" in ran.stderr
    assert "Input" in ran.lines_of("b")
