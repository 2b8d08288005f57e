"""Start, stop, crash, timeouts: how a run begins and ends."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import DORADUS, write_files

IDLE_SENDER = """
from doradus import Node, Stop
node = Node()
for event in node:
    if isinstance(event, Stop):
        print("sender stopping:", event.reason)
"""


def test_next_timeout_returns_none_on_time(dataflow):
    ran = dataflow(
        {
            "dataflow.yml": """
            nodes:
              - id: quiet
                path: quiet.py
                outputs: [never]
              - id: waiter
                path: waiter.py
                inputs:
                  x: quiet/never
            """,
            "quiet.py": """
            import time
            from doradus import Node
            node = Node()
            time.sleep(1.5)
            """,
            "waiter.py": """
            import time
            from doradus import Node
            node = Node()
            start = time.monotonic()
            event = node.next(timeout=0.1)
            print("event", event, "after", round(time.monotonic() - start, 3))
            """,
        }
    )
    assert ran.returncode == 0, ran.output
    (line,) = ran.lines_of("waiter")
    words = line.split()
    assert words[:2] == ["event", "None"]
    # The timeout is 0.1 s; the upstream stays silent for 1.5 s, so anything under 1 s proves it fired.
    assert 0.1 <= float(words[-1]) < 1.0


def _start(tmp_path: Path, files: dict[str, str], *args: str) -> subprocess.Popen[str]:
    write_files(tmp_path, files)
    return subprocess.Popen(
        [*DORADUS, "run", str(tmp_path / "dataflow.yml"), "--no-color", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


TICKING = {
    "dataflow.yml": """
    nodes:
      - id: ticker
        path: ticker.py
        inputs:
          tick: dora/timer/millis/20
        outputs: [count]
      - id: counter
        path: counter.py
        inputs:
          count: ticker/count
    """,
    "ticker.py": """
    from doradus import Input, Node, Stop
    node = Node()
    print("ready", flush=True)
    n = 0
    for event in node:
        if isinstance(event, Input):
            n += 1
            node.send_output("count", [n])
        elif isinstance(event, Stop):
            print("ticker got stop:", event.reason)
    """,
    "counter.py": """
    from doradus import Input, Node, Stop, InputClosed
    node = Node()
    for event in node:
        if isinstance(event, Stop):
            print("counter got stop:", event.reason)
        elif isinstance(event, InputClosed):
            print("counter input closed")
    """,
}


def test_sigint_sends_stop_to_every_node(tmp_path):
    proc = _start(tmp_path, TICKING)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert "ready" in line, line
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, out + err
    assert "ticker  | ticker got stop: manual" in out.splitlines()
    assert "counter | counter got stop: manual" in out.splitlines()


def test_stop_after_ends_a_run_that_would_run_forever(dataflow):
    ran = dataflow(TICKING, "--stop-after", "0.5s")
    assert ran.returncode == 0, ran.output
    assert "ticker got stop: manual" in ran.stdout


def test_node_ignoring_stop_is_terminated_after_grace(dataflow):
    files = dict(TICKING)
    files["counter.py"] = """
    import time
    from doradus import Node
    node = Node()
    time.sleep(600)
    """
    start = time.monotonic()
    ran = dataflow(files, "--stop-after", "0.3s", "--grace-duration", "0.5s")
    assert time.monotonic() - start < 30
    assert ran.returncode == 1
    assert "node 'counter' failed: it was killed" in ran.stderr
    # The ticker may be listed too, when a loaded machine has not let it end within the grace.
    late = re.search(r"still running after the 0\.5s grace: ([\w, ]+); sending SIGTERM", ran.stderr)
    assert late is not None
    assert "counter" in late.group(1).split(", ")


def test_crash_fails_the_run_naming_the_node_and_closes_dependents(dataflow):
    ran = dataflow(
        {
            "dataflow.yml": """
            nodes:
              - id: crasher
                path: crasher.py
                outputs: [out]
              - id: dependent
                path: dependent.py
                inputs:
                  x: crasher/out
            """,
            "crasher.py": """
            from doradus import Node
            node = Node()
            node.send_output("out", [1])
            print("about to fail")
            raise RuntimeError("sensor unplugged")
            """,
            "dependent.py": """
            from doradus import Input, InputClosed, Node
            node = Node()
            for event in node:
                if isinstance(event, Input):
                    print("got", event.value.to_pylist())
                if isinstance(event, InputClosed):
                    print("input closed:", event.id)
            """,
        }
    )
    assert ran.returncode == 1
    assert "node 'crasher' failed" in ran.stderr
    assert "RuntimeError: sensor unplugged" in ran.stderr
    assert ran.lines_of("dependent") == ["got [1]", "input closed: x"]


def test_node_exiting_before_node_api_still_lets_others_finish(dataflow):
    ran = dataflow(
        {
            "dataflow.yml": """
            nodes:
              - id: broken
                path: broken.py
                outputs: [out]
              - id: dependent
                path: dependent.py
                inputs:
                  x: broken/out
            """,
            "broken.py": "import sys\nsys.exit(3)\n",
            "dependent.py": """
            from doradus import InputClosed, Node
            node = Node()
            print([type(e).__name__ for e in node])
            """,
        }
    )
    assert ran.returncode == 1
    assert "node 'broken' failed: it exited with code 3" in ran.stderr
    assert ran.lines_of("dependent") == ["['InputClosed', 'Stop']"]


def test_logs_are_stored_under_out_run_id(dataflow, tmp_path):
    ran = dataflow(
        {
            "dataflow.yml": """
            nodes:
              - id: talker
                path: talker.py
            """,
            "talker.py": "print('hello log')\n",
        }
    )
    assert ran.returncode == 0, ran.output
    logs = list((tmp_path / "out").glob("*/log_talker.txt"))
    assert len(logs) == 1
    assert logs[0].read_text() == "hello log\n"


def test_env_args_and_working_directory(dataflow, tmp_path):
    ran = dataflow(
        {
            "dataflow.yml": """
            env:
              GLOBAL: from-global
              SHARED: global
            nodes:
              - id: probe
                path: nodes/probe.py
                args: --flag "two words"
                env:
                  SHARED: node
                  NUMBER: 3
            """,
            "nodes/probe.py": """
            import os, sys
            print("cwd", os.getcwd())
            print("argv", sys.argv[1:])
            print("env", os.environ["GLOBAL"], os.environ["SHARED"], os.environ["NUMBER"], os.environ["CLI"])
            print("main", __name__)
            print("path0", sys.path[0])
            """,
        },
        "--env",
        "CLI=yes",
    )
    assert ran.returncode == 0, ran.output
    lines = ran.lines_of("probe")
    assert lines[0] == f"cwd {tmp_path}"
    assert lines[1] == "argv ['--flag', 'two words']"
    assert lines[2] == "env from-global node 3 yes"
    assert lines[3] == "main __main__"
    assert lines[4] == f"path0 {tmp_path / 'nodes'}"


def test_two_runs_at_once_do_not_clash(tmp_path):
    procs = []
    for name in ("a", "b"):
        folder = tmp_path / name
        folder.mkdir()
        procs.append(_start(folder, TICKING, "--stop-after", "1s"))
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, out + err
        assert "ticker got stop: manual" in out


def test_node_outside_doradus_gets_a_clear_error(tmp_path):
    script = tmp_path / "lonely.py"
    script.write_text("from doradus import Node\nNode()\n")
    env = {k: v for k, v in os.environ.items() if k != "DORADUS_NODE_CONFIG"}
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 1
    assert "not started by Doradus" in proc.stderr
    assert "doradus run" in proc.stderr
