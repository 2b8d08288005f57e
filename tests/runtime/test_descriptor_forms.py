"""Every form a dataflow file may take, run for real."""

from __future__ import annotations

import subprocess
import sys
import time

from tests.conftest import DORADUS, write_files

COLLECT = """
from doradus import Input, Node
node = Node()
counts = {}
for event in node:
    if isinstance(event, Input):
        counts[event.id] = counts.get(event.id, 0) + 1
        if event.value.type.equals(__import__("pyarrow").null()):
            continue
        print(event.id, event.value.to_pylist())
"""


def test_timers_in_every_unit_and_long_input_form(dataflow):
    ran = dataflow(
        {
            "dataflow.yml": """
            nodes:
              - id: clock
                path: clock.py
                inputs:
                  hz: dora/timer/hz/50
                  ms:
                    source: dora/timer/millis/20
                    queue_size: 100
                  us: dora/timer/micros/20000
                  ns: dora/timer/nanos/20000000
                  s: dora/timer/secs/1
            """,
            "clock.py": """
            import time
            from doradus import Input, Node
            node = Node()
            counts = {}
            start = time.monotonic()
            for event in node:
                if isinstance(event, Input):
                    assert len(event.value) == 0 and str(event.value.type) == "null"
                    counts[event.id] = counts.get(event.id, 0) + 1
                if counts.get("s", 0) >= 1:
                    break
            print(sorted(k for k, v in counts.items() if v >= 10))
            """,
        }
    )
    assert ran.returncode == 0, ran.output
    # In the one second before the 1 s timer fires, each 20 ms timer ticks ~50 times.
    assert ran.lines_of("clock") == ["['hz', 'ms', 'ns', 'us']"]


def test_operators_list_with_addressed_outputs(dataflow):
    ran = dataflow(
        {
            "dataflow.yml": """
            nodes:
              - id: src
                path: src.py
                outputs: [text]
              - id: ops
                operators:
                  - id: up
                    python: up_op.py
                    inputs:
                      text: src/text
                    outputs: [upper]
                  - id: count
                    python: count_op.py
                    inputs:
                      text: src/text
                    outputs: [n]
              - id: sink
                path: sink.py
                inputs:
                  upper: ops/up/upper
                  n: ops/count/n
            """,
            "src.py": """
            import pyarrow as pa
            from doradus import Node
            node = Node()
            for word in ["a", "b", "c"]:
                node.send_output("text", pa.array([word]))
            """,
            "up_op.py": """
            import pyarrow as pa
            from dora import DoraStatus
            class Operator:
                def on_event(self, dora_event, send_output):
                    if dora_event["type"] == "INPUT":
                        send_output("upper", pa.array([dora_event["value"][0].as_py().upper()]))
                    return DoraStatus.CONTINUE
            """,
            "count_op.py": """
            import pyarrow as pa
            from dora import DoraStatus
            class Operator:
                def __init__(self):
                    self.n = 0
                def on_event(self, dora_event, send_output):
                    if dora_event["type"] == "INPUT" and dora_event["id"] == "text":
                        self.n += 1
                        send_output("n", pa.array([self.n]), dora_event["metadata"])
                    return DoraStatus.CONTINUE
            """,
            "sink.py": COLLECT,
        }
    )
    assert ran.returncode == 0, ran.output
    lines = ran.lines_of("sink")
    assert [x for x in lines if x.startswith("upper")] == ["upper ['A']", "upper ['B']", "upper ['C']"]
    assert [x for x in lines if x.startswith("n ")] == ["n [1]", "n [2]", "n [3]"]


def test_executable_and_console_script_paths(dataflow):
    ran = dataflow(
        {
            "dataflow.yml": """
            nodes:
              - id: exe
                path: ./bin/sender
                args: hello world
                outputs: [words]
              - id: echo
                path: dora-echo
                inputs:
                  words: exe/words
                outputs: [words]
              - id: sink
                path: sink.py
                inputs:
                  words: echo/words
            """,
            "bin/sender": f"""
            #!{sys.executable}
            import sys
            import pyarrow as pa
            from dora import Node
            node = Node()
            node.send_output("words", pa.array(sys.argv[1:]))
            """,
            "sink.py": COLLECT,
        }
    )
    assert ran.returncode == 0, ran.output
    assert ran.lines_of("sink") == ["words ['hello', 'world']"]


def test_dynamic_node_attaches_by_id(tmp_path):
    write_files(
        tmp_path,
        {
            "dataflow.yml": """
            nodes:
              - id: src
                path: src.py
                outputs: [n]
              - id: dyn
                path: dynamic
                inputs:
                  n: src/n
            """,
            "src.py": """
            from doradus import Node
            node = Node()
            for i in range(3):
                node.send_output("n", [i])
            """,
            "dyn.py": """
            from doradus import Input, Node
            node = Node("dyn")
            print([e.value[0].as_py() for e in node if isinstance(e, Input)])
            """,
        },
    )
    run = subprocess.Popen(
        [*DORADUS, "run", str(tmp_path / "dataflow.yml"), "--no-color"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:  # the run advertises its dynamic node once it has started
            dyn = subprocess.run(
                [sys.executable, str(tmp_path / "dyn.py")], capture_output=True, text=True, timeout=60
            )
            if dyn.returncode == 0 or "no running dataflow" not in dyn.stderr or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert dyn.returncode == 0, dyn.stderr
        assert dyn.stdout.strip() == "[0, 1, 2]"
        out, err = run.communicate(timeout=30)
        assert run.returncode == 0, out + err
    finally:
        run.kill()
        run.wait()


def test_dora_0x_keys_run_with_deprecation_warnings(dataflow):
    ran = dataflow(
        {
            "dataflow.yml": """
            communication:
              _unstable_local: UnixDomain
            nodes:
              - id: old
                custom:
                  source: old.py
                  args: --greeting hi
                  envs:
                    WHO: world
                  outputs:
                    - text
              - id: new
                path: new.py
                _unstable_deploy:
                  machine: local
                inputs:
                  text: old/text
            """,
            "old.py": """
            import os, sys
            from dora import Node
            node = Node()
            node.send_output("text", [f"{sys.argv[2]} {os.environ['WHO']}"])
            """,
            "new.py": COLLECT,
        }
    )
    assert ran.returncode == 0, ran.output
    assert ran.lines_of("new") == ["text ['hi world']"]
    assert "warning" in ran.stderr
    assert "custom" in ran.stderr
    assert "_unstable_local" in ran.stderr
