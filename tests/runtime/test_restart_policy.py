"""Restart policies on real runs: a crashed node starts again and its edges stay wired.

A timer-driven source sends 1, 2, 3… every `TICK` seconds; ``middle`` forwards each value to
``sink``, which prints every event it gets. ``middle`` crashes as its policy's test needs; the
sink's events say what its inputs saw. No deadline here depends on speed: each run ends when
the source has sent `COUNT` values (the run's own timeout is a generous bound).
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

TICK_MS = 20
COUNT = 60

DATAFLOW = """
nodes:
  - id: source
    path: source.py
    inputs:
      tick: dora/timer/millis/{tick}
    outputs: [out]
  - id: middle
    path: middle.py
    inputs:
      x: source/out
    outputs: [out]
{policy}
  - id: sink
    path: {sink}
    inputs:
      x: {{source: middle/out, queue_size: 100}}
"""

SOURCE = """
from doradus import Input, Node
node = Node()
n = 0
for event in node:
    if isinstance(event, Input):
        n += 1
        node.send_output("out", [n])
        if n == {count}:
            break
"""

# Crashes (exit status 3) on its CRASH_AT-th message of each process, while CRASHES > restarts.
MIDDLE = """
import os, sys
from doradus import Input, Node
node = Node()
print(f"middle is_restart={{node.is_restart()}} count={{node.restart_count()}}", flush=True)
seen = 0
for event in node:
    if isinstance(event, Input):
        seen += 1
        if seen == {crash_at} and node.restart_count() < {crashes}:
            os._exit(3)
        node.send_output("out", event.value)
"""

NATIVE_SINK = """
from doradus import Input, Node
seen = []
for event in Node():
    if isinstance(event, Input):
        seen.append(("Input", event.value.to_pylist()[0]))
    else:
        seen.append((type(event).__name__, *[str(v) for v in (getattr(event, f) for f in event.__slots__)]))
print(seen)
"""

DORA_SINK = """
from dora import Node
seen = []
for event in Node():
    if event["type"] == "INPUT":
        seen.append(("INPUT", event["value"].to_pylist()[0]))
    elif event["type"] == "NODE_FAILED":
        seen.append(("NODE_FAILED", event["id"], event["value"]))
    else:
        seen.append((event["type"], event["id"]))
print(seen)
"""


def _files(
    policy: str, *, crash_at: int, crashes: int, sink: str = NATIVE_SINK, count: int = COUNT
) -> dict[str, str]:
    indented = "\n".join(f"    {line}" for line in policy.strip().splitlines())
    return {
        "dataflow.yml": DATAFLOW.format(tick=TICK_MS, policy=indented, sink="sink.py"),
        "source.py": SOURCE.format(count=count),
        "middle.py": MIDDLE.format(crash_at=crash_at, crashes=crashes),
        "sink.py": sink,
    }


def _ending_after_three(middle: str) -> str:
    """``middle.py`` exiting with status 0 after forwarding its third message (each process)."""
    send = 'node.send_output("out", event.value)'
    return middle.replace(send, send + "\n        if seen == 3: break")


def _events(ran: Any) -> list[tuple[Any, ...]]:
    return list(ast.literal_eval(ran.lines_of("sink")[-1]))


def _records(tmp_path: Path, node: str) -> list[dict[str, Any]]:
    """The run's runtime records about ``node`` (its ``logs.jsonl``)."""
    (log,) = tmp_path.glob("out/*/logs.jsonl")
    records = [json.loads(line) for line in log.read_text().splitlines()]
    return [r for r in records if r.get("node") == node and r.get("fields", {}).get("event")]


def test_a_node_crashing_on_its_fifth_message_is_restarted_and_the_chain_goes_on(dataflow, tmp_path):
    ran = dataflow(_files("restart_policy: on-failure", crash_at=5, crashes=1), timeout=120)
    assert ran.returncode == 0, ran.output
    events = _events(ran)
    values = [e[1] for e in events if e[0] == "Input"]
    assert values[:4] == [1, 2, 3, 4]  # the 5th took middle down with it
    assert values[-1] == COUNT  # later messages flow through the new process
    assert values == sorted(values)
    others = [e for e in events if e[0] != "Input"]
    # The input stayed open across the restart: one NodeRestarted, one InputClosed at the very end.
    assert others == [("NodeRestarted", "middle"), ("InputClosed", "x"), ("Stop", "all-inputs-closed")]
    assert events.index(("NodeRestarted", "middle")) == 4
    printed = [line for line in ran.lines_of("middle") if line.startswith("middle ")]
    assert printed == ["middle is_restart=False count=0", "middle is_restart=True count=1"]
    kinds = [r["fields"]["event"] for r in _records(tmp_path, "middle")]
    assert kinds[:4] == ["started", "failed", "restart_scheduled", "started"]
    # 0 s, or the 0.1 s back-off of a node that failed within a second of its start.
    assert re.search(
        r"restarting in (0|0\.1)s \(exit status 3; restart_policy on-failure, restart 1\)", ran.output
    )


def test_past_max_restarts_the_receivers_get_node_failed_then_their_inputs_close(dataflow, tmp_path):
    policy = "restart_policy: on-failure\nmax_restarts: 1"
    ran = dataflow(_files(policy, crash_at=3, crashes=5), timeout=120)
    assert ran.returncode != 0  # middle failed for good
    events = _events(ran)
    others = [e for e in events if e[0] != "Input"]
    assert others == [
        ("NodeRestarted", "middle"),
        ("NodeFailed", "middle", "exit status 3", "('x',)"),
        ("InputClosed", "x"),
        ("Stop", "all-inputs-closed"),
    ]
    values = [e[1] for e in events if e[0] == "Input"]
    assert values[:2] == [1, 2]
    assert len(values) == 4
    assert "not restarted: 1 restarts already (max_restarts)" in ran.output
    kinds = [r["fields"]["event"] for r in _records(tmp_path, "middle")]
    assert kinds.count("failed") == 2
    assert kinds.count("restart_gave_up") == 1


def test_a_dora_node_sees_node_restarted_and_node_failed(dataflow):
    policy = "restart_policy: on-failure\nmax_restarts: 1"
    ran = dataflow(_files(policy, crash_at=3, crashes=5, sink=DORA_SINK), timeout=120)
    events = _events(ran)
    others = [e for e in events if e[0] != "INPUT"]
    assert others == [
        ("NODE_RESTARTED", "middle"),
        (
            "NODE_FAILED",
            "middle",
            {"source_node_id": "middle", "error": "exit status 3", "affected_input_ids": ["x"]},
        ),
        ("INPUT_CLOSED", "x"),
        ("STOP", "ALL_INPUTS_CLOSED"),
    ]


def test_always_restarts_a_node_that_exits_cleanly_with_a_doubling_delay(dataflow, tmp_path):
    policy = "restart_policy: always\nmax_restarts: 2\nrestart_delay: 0.2"
    # crashes=0: middle never crashes; it exits with status 0 after 3 messages instead. The
    # source runs long enough (5 s) for three processes of middle, 0.6 s of delays among them.
    files = _files(policy, crash_at=3, crashes=0, count=250)
    files["middle.py"] = _ending_after_three(files["middle.py"])
    ran = dataflow(files, timeout=120)
    assert ran.returncode == 0, ran.output
    delays = [
        r["fields"]["delay"]
        for r in _records(tmp_path, "middle")
        if r["fields"]["event"] == "restart_scheduled"
    ]
    assert delays == [0.2, 0.4]
    assert "not restarted: 2 restarts already (max_restarts)" in ran.output
    events = _events(ran)
    assert [e[1] for e in events if e[0] == "Input"] == sorted(e[1] for e in events if e[0] == "Input")
    assert [e for e in events if e[0] != "Input"] == [
        ("NodeRestarted", "middle"),
        ("NodeRestarted", "middle"),
        ("InputClosed", "x"),
        ("Stop", "all-inputs-closed"),
    ]


def test_a_stopped_run_does_not_restart_its_nodes(dataflow):
    """``--stop-after`` stops the run: a node ended by the stop is not started again."""
    ran = dataflow(
        _files("restart_policy: always", crash_at=10_000, crashes=0), "--stop-after", "1", timeout=60
    )
    assert "restarting in" not in ran.output
    assert [line for line in ran.lines_of("middle") if line.startswith("middle ")] == [
        "middle is_restart=False count=0"
    ]


def test_a_node_stuck_on_a_message_past_health_check_timeout_is_ended_and_restarted(dataflow, tmp_path):
    """``health_check_timeout: 1``: the node reports how long it holds a message every second and
    the watchdog looks twice a second, so the stuck process is ended 1 to 3 s after it got stuck; the
    source runs 5 s."""
    files = _files("restart_policy: on-failure\nhealth_check_timeout: 1", crash_at=5, crashes=1, count=250)
    files["middle.py"] = files["middle.py"].replace("os._exit(3)", "import time; time.sleep(3600)")
    ran = dataflow(files, timeout=120)
    assert ran.returncode == 0, ran.output
    assert "(health_check_timeout 1s)" in ran.output
    kinds = [r["fields"]["event"] for r in _records(tmp_path, "middle") if r["fields"]["event"] != "dropped"]
    assert kinds[:5] == ["started", "unresponsive", "failed", "restart_scheduled", "started"]
    events = _events(ran)
    assert next(e for e in events if e[0] != "Input") == ("NodeRestarted", "middle")
    assert [e[1] for e in events if e[0] == "Input"][-1] == 250


def test_a_node_not_ready_by_its_startup_timeout_is_ended_as_failed(dataflow):
    files = _files("startup_timeout: 1", crash_at=10_000, crashes=0, count=20)
    files["middle.py"] = "import time\ntime.sleep(3600)\n" + files["middle.py"]
    ran = dataflow(files, timeout=120)
    assert ran.returncode != 0
    assert "(startup_timeout 1s)" in ran.output
    assert "middle | ERROR failed: killed by SIGTERM (not ready" in ran.output


def test_a_node_that_ignores_its_inputs_closing_is_stopped_after_finish_grace_secs(dataflow):
    files = _files("", crash_at=10_000, crashes=0, count=20)
    files["dataflow.yml"] = files["dataflow.yml"].replace(
        "      x: {source: middle/out, queue_size: 100}",
        "      x: {source: middle/out, queue_size: 100}\n    finish_grace_secs: 1",
    )
    files["sink.py"] = NATIVE_SINK + "import time\ntime.sleep(3600)\n"
    ran = dataflow(files, timeout=120)
    assert "sink   | ERROR ending it: still running" in ran.output
    assert "(finish_grace_secs 1s)" in ran.output
    assert ran.returncode == 1  # the node did not finish: a failure the summary names
    assert "node 'sink' failed: it was ended: still running" in ran.output


def test_restarts_leave_no_descriptor_behind_in_the_peers(dataflow):
    """Five restarts of ``middle``: the source and the sink hold as many descriptors (and the sink
    as many shared-memory mappings) after the last as after the first (each closes the old link
    of a restarted peer and drops its mappings). Counting every
    restart, not the first and last alone, shows the count does not grow with them."""
    files = _files("restart_policy: always\nmax_restarts: 5", crash_at=3, crashes=0, count=400)
    files["middle.py"] = _ending_after_three(files["middle.py"])
    # Counted at the 2nd message after each restart: by then the sink has waited for messages
    # (20 ms apart) at least once since the old link ended, and closes ended links before a wait.
    files["sink.py"] = """
import os
from doradus import Input, Node, NodeRestarted
counts = []
since = None
for event in Node():
    if isinstance(event, NodeRestarted):
        since = 0
    elif isinstance(event, Input) and since is not None:
        since += 1
        if since == 2:
            maps = sum("memfd:" in line for line in open("/proc/self/maps"))
            counts.append((len(os.listdir("/proc/self/fd")), maps))
print("fds", counts)
"""
    # 160 KB messages: they travel in shared-memory segments the sink maps. The source counts its
    # sockets apart: its link to middle exists only while middle runs, so a sample may see it or not.
    count_fds = (
        "kinds = [os.path.realpath(f'/proc/self/fd/{f}').startswith('socket:') "
        "for f in os.listdir('/proc/self/fd')]; "
        "print('fds', sum(kinds), len(kinds) - sum(kinds), flush=True)"
    )
    files["source.py"] = (
        files["source.py"]
        .replace("            break", f"            break\n        if n % 50 == 0: {count_fds}")
        .replace("from doradus import", "import os\nimport numpy as np\nfrom doradus import")
        .replace('node.send_output("out", [n])', 'node.send_output("out", np.full(20_000, n))')
    )
    ran = dataflow(files, timeout=120)
    assert ran.returncode == 0, ran.output
    (sink,) = [line for line in ran.lines_of("sink") if line.startswith("fds")]
    counts = ast.literal_eval(sink.removeprefix("fds "))
    assert len(counts) == 5, counts
    assert len(set(counts)) == 1, counts
    source = [tuple(map(int, line.split()[1:])) for line in ran.lines_of("source") if line.startswith("fds")]
    assert all(sockets <= 2 for sockets, _others in source), source  # its control channel, one link
    others = [n for _sockets, n in source]
    assert len(set(others[-3:])) == 1, source
    assert others[-1] <= others[0], source


def test_a_receiver_with_links_on_two_backends_rejoins_a_restarted_sender(dataflow):
    """The sink reads ``middle`` over shm and ``side`` over tcp: taking the restarted middle's new
    link must not open its tcp side again (which would fail: its port is taken)."""
    files = _files("restart_policy: always\nmax_restarts: 2", crash_at=3, crashes=0, count=150)
    files["middle.py"] = _ending_after_three(files["middle.py"])
    files["dataflow.yml"] = (
        files["dataflow.yml"].replace(
            "  - id: sink\n",
            "  - id: side\n    path: source.py\n    communication: tcp\n    inputs:\n"
            "      tick: dora/timer/millis/20\n    outputs: [out]\n  - id: sink\n",
        )
        + "      y: side/out\n"
    )
    files["sink.py"] = """
from doradus import Error, Input, Node, NodeRestarted
seen = {"x": 0, "y": 0}
after = {"x": 0, "y": 0}
restarts = 0
for event in Node():
    if isinstance(event, Error):
        print("error", event.message, flush=True)
    elif isinstance(event, NodeRestarted):
        restarts += 1
    elif isinstance(event, Input):
        seen[event.id] += 1
        if restarts == 2:
            after[event.id] += 1
print("restarts", restarts, "after", after)
"""
    ran = dataflow(files, timeout=120)
    assert ran.returncode == 0, ran.output
    assert "could not rejoin" not in ran.output
    assert [line for line in ran.lines_of("sink") if line.startswith("error")] == []
    (summary,) = [line for line in ran.lines_of("sink") if line.startswith("restarts")]
    assert summary.startswith("restarts 2 after")
    after = ast.literal_eval(summary.split("after ", 1)[1])
    assert after["x"] == 3  # the last middle process's three messages
    assert after["y"] > 0  # the tcp side went on after both restarts
