"""`send_stdout_as`: each stdout line of a node arrives, in order, on that output."""

from __future__ import annotations

import json

READER = """
import json
from doradus import Input, InputClosed, Node

node = Node()
got = {}
for event in node:
    if isinstance(event, Input):
        got.setdefault(event.id, []).append([str(event.value.type), event.value.to_pylist()])
    elif isinstance(event, InputClosed):
        got.setdefault(event.id, []).append("closed")
print(json.dumps(got))
"""


def received(ran) -> dict:
    (line,) = ran.lines_of("reader")
    return json.loads(line)


def test_lines_of_a_print_only_python_file_and_a_shell_command(dataflow, tmp_path):
    ran = dataflow(
        {
            "dataflow.yml": """
            nodes:
              - id: talker
                path: talker.py
                outputs: [out]
                send_stdout_as: out
              - id: shell
                path: sh
                args: -c "echo one; echo 'two  spaced'; echo drei ü"
                outputs: [lines]
                send_stdout_as: lines
              - id: reader
                path: reader.py
                inputs:
                  text: talker/out
                  sh: shell/lines
            """,
            # never creates a Node: nothing is asked of the process but to print
            "talker.py": """
            print("first")
            print("second")
            print("third")
            """,
            "reader.py": READER,
        }
    )
    assert ran.returncode == 0, ran.output
    got = received(ran)
    assert got["text"] == [["string", ["first"]], ["string", ["second"]], ["string", ["third"]], "closed"]
    assert got["sh"] == [["string", ["one"]], ["string", ["two  spaced"]], ["string", ["drei ü"]], "closed"]
    # the lines are still the nodes' log records
    assert ran.lines_of("talker") == ["first", "second", "third"]
    assert ran.lines_of("shell") == ["one", "two  spaced", "drei ü"]
    (out,) = (tmp_path / "out").iterdir()
    records = [json.loads(line) for line in (out / "logs.jsonl").read_text().splitlines()]
    logged = [r["message"] for r in records if r["node"] == "talker" and r["source"] == "stdout"]
    assert logged == ["first", "second", "third"]
    edges = {e["target"]: e for e in json.loads((out / "edges.json").read_text())}
    assert (edges["reader/text"]["backend"], edges["reader/text"]["messages"]) == ("shm", 3)
    assert edges["reader/text"]["bytes"] > 0


def test_a_node_api_user_keeps_its_other_outputs_and_may_not_send_on_it(dataflow):
    ran = dataflow(
        {
            "dataflow.yml": """
            nodes:
              - id: talker
                path: talker.py
                outputs: [said, data]
                send_stdout_as: said
                communication: tcp      # its other edges; stdout lines go from the daemon on shm
              - id: reader
                path: reader.py
                inputs:
                  said: talker/said
                  data: talker/data
            """,
            "talker.py": """
            print("before the node")
            from doradus import Node, NodeError
            node = Node()
            print("x" * 100_000)        # above 64 KiB: through shared memory
            try:
                node.send_output("said", ["sent by hand"])
            except NodeError as exc:
                print("refused:", "send_stdout_as" in str(exc))
            node.send_output("data", [1, 2])
            print("last words")
            """,
            "reader.py": READER,
        }
    )
    assert ran.returncode == 0, ran.output
    got = received(ran)
    said = [entry if entry == "closed" else entry[1][0] for entry in got["said"]]
    assert said == ["before the node", "x" * 100_000, "refused: True", "last words", "closed"]
    assert got["data"] == [["int64", [1, 2]], "closed"]


def test_a_printing_program_that_never_registers_does_not_hold_the_start(dataflow):
    # `ticker` prints, then waits (5 s at most) for the reader to have received that line:
    # if the start waited for `ticker` to exit, the reader would get nothing before that.
    ran = dataflow(
        {
            "dataflow.yml": """
            nodes:
              - id: ticker
                path: sh
                args: ticker.sh
                outputs: [ticks]
                send_stdout_as: ticks
              - id: reader
                path: reader.py
                inputs:
                  t: ticker/ticks
            """,
            "ticker.sh": """
            echo tick
            n=0
            while [ ! -f got ] && [ $n -lt 100 ]; do sleep 0.05; n=$((n+1)); done
            if [ -f got ]; then echo tock; else echo "nobody got tick"; fi
            """,
            "reader.py": """
            from pathlib import Path
            from doradus import Input, Node

            node = Node()
            for event in node:
                if isinstance(event, Input):
                    print("got", event.value.to_pylist())
                    Path("got").touch()
            """,
        },
        timeout=30,
    )
    assert ran.returncode == 0, ran.output
    assert ran.lines_of("reader") == ["got ['tick']", "got ['tock']"]


def test_many_lines_arrive_all_and_in_order(dataflow):
    count = 20_000
    ran = dataflow(
        {
            "dataflow.yml": """
            nodes:
              - id: flood
                path: flood.py
                outputs: [out]
                send_stdout_as: out
              - id: reader
                path: count.py
                inputs:
                  n: {source: flood/out, queue_size: 100000}
            """,
            "flood.py": f"""
            import sys
            sys.stdout.writelines(f"{{i}}\\n" for i in range({count}))
            """,
            "count.py": """
            from doradus import Input, Node

            node = Node()
            lines = [e.value[0].as_py() for e in node if isinstance(e, Input)]
            print(len(lines), lines == [str(i) for i in range(len(lines))])
            """,
        }
    )
    assert ran.returncode == 0, ran.output
    assert ran.lines_of("reader") == [f"{count} True"]
