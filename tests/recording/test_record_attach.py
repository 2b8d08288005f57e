"""``doradus record --attach``: recording dataflows a real coordinator and daemon already run.

The recorder taps the running nodes (as ``doradus topic echo`` does); the files must read
back with the plain ``mcap`` reader and pyarrow, every message of the span recorded (the
nodes number their messages), and be finished whatever ends the recording. The two tests
that record the endless pipeline and leave it running share one run of it; each finds its
source with no tap of the other left open.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.cli.conftest import DORADUS, Control, open_control

FLUSH_INTERVAL = 1.0
"""The writer writes a chunk at least this often (`doradus._recording.writer`)."""
REPORT = 1.0
"""Seconds between two reports of a node's counters (what `status` shows)."""
TIMER_MS = 10
PIPELINE = {
    "dataflow.yml": f"""
    nodes:
      - id: source
        path: source.py
        inputs:
          tick: dora/timer/millis/{TIMER_MS}
        outputs: [count]
      - id: transform
        path: transform.py
        inputs:
          count: source/count
        outputs: [doubled]
      - id: sink
        path: sink.py
        inputs:
          doubled: transform/doubled
    """,
    # Numbers its messages (value and metadata); LIMIT > 0: ends after that many.
    "source.py": """
    import os
    from doradus import Input, Node
    limit = int(os.environ.get("LIMIT", "0"))
    node = Node()
    n = 0
    for event in node:
        if isinstance(event, Input):
            n += 1
            node.send_output("count", [n], {"n": n})
            if n == limit:
                break
    """,
    "transform.py": """
    import pyarrow as pa
    from doradus import Input, Node
    node = Node()
    for event in node:
        if isinstance(event, Input):
            n = event.value[0].as_py()
            node.send_output("doubled", pa.RecordBatch.from_pydict({"x": [2 * n]}), {"n": n})
    """,
    "sink.py": """
    from doradus import Node
    for event in Node():
        pass
    """,
}
# Reads a recording with nothing but mcap and pyarrow (no Doradus code).
PLAIN_READ = textwrap.dedent(
    """
    import json, sys
    import pyarrow as pa
    from mcap.reader import make_reader

    topics, meta = {}, {}
    with open(sys.argv[1], "rb") as f:
        reader = make_reader(f)
        summary = reader.get_summary()
        for schema, channel, message in reader.iter_messages(log_time_order=False):
            if channel.message_encoding == "json":
                meta[channel.topic.removesuffix("#metadata")] = json.loads(message.data)
                continue
            row = pa.ipc.open_stream(message.data).read_all().slice(0, 1).to_pylist()[0]  # first row
            extra = meta.pop(channel.topic, {"sequence": None})
            keys = extra["metadata"] if extra["sequence"] == message.sequence else {}
            empty = {"seq": [], "values": [], "n": [], "schema": schema.name}
            found = topics.setdefault(channel.topic, empty)
            found["seq"].append(message.sequence)
            found["values"].append(row)
            found["n"].append(keys.get("n"))
        attachments = [
            {"name": a.name, "media_type": a.media_type, "text": a.data.decode()}
            for a in reader.iter_attachments()
        ]
        records = {m.name: dict(m.metadata) for m in reader.iter_metadata()}
    print(json.dumps({
        "complete": summary is not None,
        "summary_messages": summary.statistics.message_count if summary else None,
        "topics": topics,
        "attachments": attachments,
        "metadata": records,
        "doradus": any("doradus" in m for m in sys.modules),
    }))
    """
)


@pytest.fixture
def control(tmp_path: Path) -> Iterator[Control]:
    with open_control(tmp_path / "project") as ctl:
        yield ctl


def _eventually(check: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return check()


def _start(control: Control, name: str = "demo", files: dict[str, str] = PIPELINE, **env: str) -> str:
    for file_name, text in files.items():
        control.write(file_name, text)
    assert control("up").returncode == 0
    args = [arg for key, value in env.items() for arg in ("--env", f"{key}={value}")]
    started = control("start", "dataflow.yml", "--detach", "--name", name, *args)
    assert started.returncode == 0, started.stderr
    return str(control.api("GET", f"/dataflows/{name}").json()["id"])


def _node(control: Control, node: str, name: str = "demo") -> dict[str, Any]:
    response = control.api("GET", f"/dataflows/{name}")
    response.raise_for_status()
    return dict(response.json()["nodes"][node])


def _sent(control: Control, node: str, output: str) -> int:
    return int((_node(control, node).get("outputs") or {}).get(output, {}).get("sent", 0))


def _recorder(control: Control, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*DORADUS, "record", "--attach", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=control.env,
        cwd=control.folder,
    )


def _plain_read(path: Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", PLAIN_READ, str(path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    found: dict[str, Any] = json.loads(done.stdout)
    assert found["doradus"] is False
    return found


def _info(control: Control, path: Path) -> dict[str, Any]:
    info = control("recording", "info", str(path), "--output", "json")
    assert info.returncode == 0, info.stderr
    found: dict[str, Any] = json.loads(info.stdout)
    return found


def _socket_fds(pid: int) -> int:
    return sum(
        os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:") for fd in os.listdir(f"/proc/{pid}/fd")
    )


def _consecutive(values: list[int]) -> bool:
    return values == list(range(values[0], values[0] + len(values)))


@dataclass
class Running:
    """The endless pipeline running as ``demo``: its run id, and its source's sockets untapped."""

    control: Control
    run_id: str
    source_pid: int
    untapped: int

    def fresh(self) -> Control:
        """The control, once every tap an earlier test opened is closed again (at most 5 s)."""
        assert _eventually(lambda: _socket_fds(self.source_pid) == self.untapped, 5.0)
        return self.control


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """One coordinator and daemon running PIPELINE (no LIMIT) for the tests that leave it running."""
    with open_control(tmp_path_factory.mktemp("attach") / "project") as control:
        run_id = _start(control)
        assert _eventually(lambda: _sent(control, "transform", "doubled") >= 5, 15 * REPORT)
        pid = int(_node(control, "source")["pid"])
        yield Running(control, run_id, pid, _socket_fds(pid))


def test_attach_ends_with_the_dataflow_having_recorded_its_last_message(control: Control) -> None:
    limit = 300  # 3 s at 10 ms, then the source ends, and the dataflow with it
    _start(control, LIMIT=str(limit))
    recorder = _recorder(control, "-o", "run.mcap")  # no NAME: the one dataflow running
    _stdout, stderr = recorder.communicate(timeout=60)
    assert recorder.returncode == 0, stderr
    # The recorded nodes end first, then the run: whichever it saw first, it ended by itself.
    assert (
        "Recording ended: the dataflow ended" in stderr
        or "Recording ended: every recorded node ended" in stderr
    )

    read = _plain_read(control.folder / "run.mcap")
    assert read["complete"] is True
    numbers = [row["value"] for row in read["topics"]["source/count"]["values"]]
    assert _consecutive(numbers)
    assert numbers[-1] == limit
    doubled = [row["x"] for row in read["topics"]["transform/doubled"]["values"]]
    assert doubled[-1] == 2 * limit  # what was sent until the end, the last message included
    assert len(doubled) >= limit // 2  # tapped while it had most of its 3 s to run


FAST = {
    "dataflow.yml": """
    nodes:
      - id: source
        path: source.py
        inputs:
          tick: dora/timer/millis/1
        outputs: [block]
      - id: sink
        path: sink.py
        inputs:
          block: source/block
    """,
    # 32 KiB messages (they travel inside the datagram) at 1 kHz, numbered in their metadata.
    "source.py": """
    import numpy as np
    import pyarrow as pa
    from doradus import Input, Node
    node = Node()
    block = pa.array(np.zeros(32 * 1024, dtype=np.uint8))
    n = 0
    for event in node:
        if isinstance(event, Input):
            n += 1
            node.send_output("block", block, {"n": n})
    """,
    "sink.py": PIPELINE["sink.py"],
}


def test_a_recorder_that_falls_behind_counts_exactly_what_it_missed(control: Control) -> None:
    _start(control, files=FAST)
    assert _eventually(lambda: _sent(control, "source", "block") >= 100, 15 * REPORT)
    out = control.folder / "run.mcap"
    recorder = _recorder(control, "demo", "-o", "run.mcap", "--compression", "none")
    assert _eventually(lambda: out.exists() and out.stat().st_size > 0, 15.0)
    time.sleep(FLUSH_INTERVAL)
    # Stopped, it reads nothing: the tap's buffer fills and the node skips it, counting.
    recorder.send_signal(signal.SIGSTOP)
    time.sleep(3.0)
    recorder.send_signal(signal.SIGCONT)
    time.sleep(2 * FLUSH_INTERVAL)  # caught up: the skips are told before the next message
    recorder.send_signal(signal.SIGINT)
    _stdout, stderr = recorder.communicate(timeout=30)
    assert recorder.returncode == 0, stderr

    read = _plain_read(out)
    numbers = read["topics"]["source/block"]["n"]
    gaps = sum(b - a - 1 for a, b in itertools.pairwise(numbers))
    dropped = json.loads(read["metadata"]["doradus.recording"]["dropped"])["source/block"]
    assert gaps > 0, "the recorder never fell behind: the test proves nothing"
    assert numbers == sorted(numbers)
    assert dropped == gaps  # every message missed is counted, and nothing else
    assert f"source/block: {dropped} message(s) dropped" in stderr
    info = _info(control, out)
    assert info["topics"][0]["dropped"] == dropped


def test_attach_errors_name_the_cause_and_the_fix(control: Control) -> None:
    alone = control("record", "--attach", "-o", "run.mcap")
    assert alone.returncode == 2
    assert "no dataflow runs on this machine, and no coordinator answers at" in alone.stderr
    assert "doradus up" in alone.stderr

    _start(control, name="first")
    second = control("start", "dataflow.yml", "--detach", "--name", "second")
    assert second.returncode == 0, second.stderr
    several = control("record", "--attach", "-o", "run.mcap")
    assert several.returncode == 2
    assert "2 dataflows run on this machine: first (" in several.stderr
    assert "second (" in several.stderr
    assert "doradus record --attach NAME" in several.stderr

    unknown = control("record", "--attach", "nope", "-o", "run.mcap")
    assert unknown.returncode == 2
    assert "no dataflow 'nope' (running here: first, second)" in unknown.stderr
    assert "doradus list" in unknown.stderr

    stopped = control("stop", "second")
    assert stopped.returncode == 0, stopped.stderr
    assert _eventually(lambda: control.api("GET", "/dataflows/second").json()["status"] != "running", 15.0)
    ended = control("record", "--attach", "second", "-o", "run.mcap")
    assert ended.returncode == 2
    assert "dataflow 'second' is stopped, not running" in ended.stderr

    mixed = control("record", "dataflow.yml", "--attach", "-o", "run.mcap")
    assert mixed.returncode == 2
    assert "not a file" in mixed.stderr
    assert not (control.folder / "run.mcap").exists()
    no_file = control("record", "-o", "run.mcap")
    assert no_file.returncode == 2
    assert "--attach NAME to record one running" in no_file.stderr
    foreground = control("record", "dataflow.yml", "-o", "run.mcap", "--duration", "1s")
    assert foreground.returncode == 2
    assert "--duration goes with --attach" in foreground.stderr


def test_the_run_sends_its_dataflow_text_unless_too_long_for_one_answer(tmp_path: Path) -> None:
    from doradus._dataflow.loader import load_dataflow_text
    from doradus._runtime.state import RunState
    from doradus._runtime.taps import TapServer
    from doradus._runtime.topic_messages import MAX_DATAFLOW_TEXT

    text = textwrap.dedent(PIPELINE["dataflow.yml"])
    for name in ("source.py", "transform.py", "sink.py"):
        (tmp_path / name).write_text(textwrap.dedent(PIPELINE[name]))
    for body, expected in ((text, text), (text + "#" * MAX_DATAFLOW_TEXT + "\n", None)):
        flow = load_dataflow_text(body, tmp_path / "dataflow.yml")
        state = RunState.create(flow, run_id="r1", machine="m1", out_dir=tmp_path / "out")
        server = TapServer(state, tmp_path, placement={})
        answer = server.dataflow()
        server.close()
        assert answer["text"] == expected
        assert answer["path"] == str(tmp_path / "dataflow.yml")
        assert answer["run_id"] == "r1"


def test_nothing_tappable_here_is_refused_with_each_reason(tmp_path: Path) -> None:
    from doradus._recording.attach import choose_topics
    from doradus._recording.errors import RecordingError

    elsewhere = "node 'cam' runs on machine 'm2', not on 'm1'"
    facts: Any = [{"topic": "cam/image", "tappable": elsewhere}, {"topic": "imu/reading", "tappable": None}]
    assert choose_topics(facts, []) == (["imu/reading"], {"cam/image": elsewhere})
    with pytest.raises(RecordingError, match="no output can be recorded here") as refused:
        choose_topics(facts, ["cam"])
    assert elsewhere in str(refused.value)
    assert "doradus record FILE" in str(refused.value)
    with pytest.raises(RecordingError, match="--topics 'gps' names no output"):
        choose_topics(facts, ["gps"])


def test_attach_records_a_running_dataflow_until_ctrl_c(running: Running) -> None:
    control, run_id, source_pid = running.fresh(), running.run_id, running.source_pid
    assert int(_node(control, "source")["pid"]) == source_pid
    before = _socket_fds(source_pid)
    out = control.folder / "run.mcap"

    recorder = _recorder(control, "demo", "-o", "run.mcap")
    # Two chunks' worth of time after the file appears: the taps are open and writing.
    assert _eventually(lambda: out.exists() and out.stat().st_size > 0, 15.0)
    time.sleep(2 * FLUSH_INTERVAL)
    assert recorder.poll() is None
    assert _socket_fds(source_pid) == before + 1  # its tap: one more link end in the source
    recorder.send_signal(signal.SIGINT)
    _stdout, stderr = recorder.communicate(timeout=30)
    assert recorder.returncode == 0, stderr
    assert "Recording ended: stopped" in stderr
    assert "recorded " in stderr
    assert "dropped" not in stderr

    read = _plain_read(out)
    assert read["complete"] is True  # summary and footer written on Ctrl-C
    topics = read["topics"]
    assert set(topics) == {"source/count", "transform/doubled"}
    count, doubled = topics["source/count"], topics["transform/doubled"]
    # 2 s at a 10 ms timer: far more than 20 each, however loaded the machine.
    assert len(count["seq"]) >= 20
    assert len(doubled["seq"]) >= 20
    for found in (count, doubled):
        assert found["seq"] == list(range(1, len(found["seq"]) + 1))  # the file's own numbering
    numbers = [row["value"] for row in count["values"]]
    assert _consecutive(numbers)  # every message the source sent meanwhile: none missed
    assert count["n"] == numbers  # each message's metadata beside it
    assert count["schema"] == "int64"
    assert doubled["schema"] == "record batch"
    halves = [row["x"] // 2 for row in doubled["values"]]
    assert _consecutive(halves)
    assert doubled["n"] == halves
    assert all(row["x"] % 2 == 0 for row in doubled["values"])
    total = len(count["seq"]) + len(doubled["seq"])
    assert read["summary_messages"] == 2 * total  # each with its metadata message

    (attached,) = read["attachments"]
    assert attached["name"] == "dataflow.yml"
    assert attached["media_type"] == "application/yaml"
    assert attached["text"] == (control.folder / "dataflow.yml").read_text()
    assert read["metadata"]["doradus.run"]["run_id"] == run_id
    assert read["metadata"]["doradus.run"]["path"] == str(control.folder / "dataflow.yml")
    assert json.loads(read["metadata"]["doradus.recording"]["dropped"]) == {
        "source/count": 0,
        "transform/doubled": 0,
    }

    info = _info(control, out)
    assert info["complete"] is True
    assert info["run_id"] == run_id
    rows = {t["topic"]: t for t in info["topics"]}
    assert rows["source/count"]["messages"] == len(count["seq"])
    assert rows["transform/doubled"]["messages"] == len(doubled["seq"])
    assert all(t["dropped"] == 0 for t in info["topics"])

    # The dataflow runs on, the source as it was before: its tap dropped, still sending.
    assert _eventually(lambda: _socket_fds(source_pid) == before, 5.0)
    sent = _sent(control, "source", "count")
    assert _eventually(lambda: _sent(control, "source", "count") > sent, 5 * REPORT)
    assert control.api("GET", "/dataflows/demo").json()["status"] == "running"


def test_attach_duration_topics_and_sigterm_finish_the_file(running: Running) -> None:
    control = running.fresh()

    timed = control(
        "record", "--attach", "demo", "-o", "part.mcap", "--topics", "transform", "--duration", "1s"
    )
    assert timed.returncode == 0, timed.stderr
    assert "Recording ended: its duration passed" in timed.stderr
    read = _plain_read(control.folder / "part.mcap")
    assert read["complete"] is True
    assert set(read["topics"]) == {"transform/doubled"}
    halves = [row["x"] // 2 for row in read["topics"]["transform/doubled"]["values"]]
    assert len(halves) >= 10
    assert _consecutive(halves)

    recorder = _recorder(control, "demo", "-o", "term.mcap", "--compression", "lz4")
    out = control.folder / "term.mcap"
    assert _eventually(lambda: out.exists() and out.stat().st_size > 0, 15.0)
    time.sleep(FLUSH_INTERVAL)
    recorder.send_signal(signal.SIGTERM)
    _stdout, stderr = recorder.communicate(timeout=30)
    assert recorder.returncode == 0, stderr
    assert "Recording ended: stopped" in stderr
    info = _info(control, out)
    assert info["complete"] is True
    assert info["compression"] == ["lz4"]
    assert {t["topic"] for t in info["topics"]} == {"source/count", "transform/doubled"}
