"""Nodes written for dora-rs run unmodified, even beside the real dora-rs package."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from pathlib import Path

from tests.conftest import DORADUS

EXAMPLES = Path(__file__).parents[2] / "examples"


def test_dora_style_example_runs(tmp_path):
    shutil.copytree(EXAMPLES / "dora-style", tmp_path / "example")
    proc = subprocess.run(
        [*DORADUS, "run", str(tmp_path / "example" / "dataflow.yml"), "--no-color"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = [line.split(" | ", 1)[1] for line in proc.stdout.splitlines() if line.startswith("listener")]
    assert [x for x in lines if x.startswith("speech")] == [f"speech: message {i}" for i in range(1, 6)]
    assert [x for x in lines if x.startswith("shout")] == [f"shout: MESSAGE {i}!" for i in range(1, 6)]
    assert lines[-1] == "stop: ALL_INPUTS_CLOSED"


DICT_EVENTS = """
import dora
from dora import DoraStatus, Node
import pyarrow as pa
assert dora.__file__.endswith("doradus/_compat/dora/__init__.py"), dora.__file__
node = Node()
seen = []
for event in node:
    assert event["kind"] == "dora"
    seen.append((event["type"], event["id"]))
    if event["type"] == "INPUT":
        assert isinstance(event["value"], pa.Array)
        assert event["metadata"]["seq"] == len(seen)
        assert "timestamp" in event["metadata"]
print(seen)
print("next after end:", node.next(), node.next(timeout=0.1))
print("status:", int(DoraStatus.CONTINUE), int(DoraStatus.STOP), int(DoraStatus.STOP_ALL))
"""


def test_dict_events_and_end_of_stream(dataflow):
    ran = dataflow(
        {
            "dataflow.yml": """
            nodes:
              - id: src
                path: src.py
                outputs: [data]
              - id: sink
                path: sink.py
                inputs:
                  data: src/data
            """,
            "src.py": """
            from dora import Node
            node = Node()
            node.send_output("data", b"raw bytes", {"seq": 1})
            import pyarrow as pa
            node.send_output("data", pa.array([1, 2]), {"seq": 2})
            """,
            "sink.py": DICT_EVENTS,
        }
    )
    assert ran.returncode == 0, ran.output
    assert ran.lines_of("sink") == [
        "[('INPUT', 'data'), ('INPUT', 'data'), ('INPUT_CLOSED', 'data'), ('STOP', 'ALL_INPUTS_CLOSED')]",
        "next after end: None None",
        "status: 0 1 2",
    ]


def test_hub_node_beside_real_dora_rs(dataflow):
    # dora-rs and dora-echo come from the package registry (test extras); the real `dora`
    # package must be importable here, yet the node must use Doradus's module.
    real = importlib.util.find_spec("dora")
    assert real is not None, "the real dora-rs must be installed for this test"
    assert "site-packages" in str(real.origin)
    ran = dataflow(
        {
            "dataflow.yml": """
            nodes:
              - id: src
                path: src.py
                outputs: [msg]
              - id: myecho
                path: dora-echo
                inputs:
                  msg: src/msg
                outputs: [msg]
              - id: sink
                path: sink.py
                inputs:
                  msg: myecho/msg
            """,
            "src.py": """
            import pyarrow as pa
            from dora import Node
            node = Node()
            for i in range(3):
                node.send_output("msg", pa.array([f"ping {i}"]), {"i": i})
            """,
            "sink.py": """
            from dora import Node
            node = Node()
            for event in node:
                if event["type"] == "INPUT":
                    print(event["value"][0].as_py(), event["metadata"]["i"])
            """,
        }
    )
    assert ran.returncode == 0, ran.output
    assert ran.lines_of("sink") == ["ping 0 0", "ping 1 1", "ping 2 2"]
