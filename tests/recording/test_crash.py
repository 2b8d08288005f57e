"""A recording cut short stays readable: up to its last complete chunk, or finished on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
from tests.conftest import DORADUS, assert_nothing_left, shm_entries, write_files

FLUSH_INTERVAL = 1.0
"""The recorder writes a chunk at least this often (`doradus._recording.writer`)."""
LONG_RUN = {
    "dataflow.yml": """
    nodes:
      - id: source
        path: source.py
        inputs:
          tick: dora/timer/millis/5
        outputs: [count]
      - id: sink
        path: sink.py
        inputs:
          count: source/count
    """,
    # 2,000 messages at 5 ms: about 10 s, ended early by the tests.
    "source.py": """
    from doradus import Input, Node
    node = Node()
    sent = 0
    for event in node:
        if isinstance(event, Input):
            sent += 1
            node.send_output("count", [sent] * 64)
            if sent == 2000:
                break
    """,
    "sink.py": """
    from doradus import Node
    for event in Node():
        pass
    """,
}
# The plain reader's recovery: read records in order and stop at the cut (no Doradus code).
RECOVER = textwrap.dedent(
    """
    import json, sys
    import pyarrow as pa
    from mcap.reader import NonSeekingReader

    values, stopped = [], None
    with open(sys.argv[1], "rb") as f:
        try:
            for schema, channel, message in NonSeekingReader(f).iter_messages(log_time_order=False):
                values.append(pa.ipc.open_stream(message.data).read_all().column("value")[0].as_py())
        except Exception as exc:  # the cut: a partial record
            stopped = type(exc).__name__
    loaded = any("doradus" in m for m in sys.modules)
    print(json.dumps({"values": values, "stopped": stopped, "doradus": loaded}))
    """
)


def _recover(path: Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", RECOVER, str(path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    found: dict[str, Any] = json.loads(done.stdout)
    assert found["doradus"] is False
    return found


def _start(folder: Path) -> subprocess.Popen[str]:
    write_files(folder, LONG_RUN)
    return subprocess.Popen(
        [*DORADUS, "record", "dataflow.yml", "-o", "run.mcap", "--no-color"],
        cwd=folder,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_for_messages(path: Path, deadline: float) -> int:
    """Wait until the file holds a complete chunk; how many messages the plain reader finds."""
    while time.monotonic() < deadline:
        if path.exists() and (found := _recover(path)["values"]):
            return len(found)
        time.sleep(FLUSH_INTERVAL / 4)
    raise AssertionError(f"no chunk was written to {path}")


def _recorder(record: subprocess.Popen[str]) -> psutil.Process:
    for child in psutil.Process(record.pid).children(recursive=True):
        if "doradus._recording.recorder_node" in " ".join(child.cmdline()):
            return child
    raise AssertionError("no recorder process")


def test_a_recorder_killed_with_sigkill_leaves_a_file_readable_up_to_its_last_chunk(tmp_path: Path) -> None:
    before = shm_entries()
    record = _start(tmp_path)
    try:
        _wait_for_messages(tmp_path / "run.mcap", time.monotonic() + 30)
        _recorder(record).send_signal(signal.SIGKILL)
        # the source is stopped too: the run ends with the recorder's failure
        time.sleep(FLUSH_INTERVAL)
        record.send_signal(signal.SIGINT)
        output, _ = record.communicate(timeout=60)
    finally:
        record.kill()
    assert record.returncode == 1, output
    assert "node 'doradus-recorder' failed" in output
    assert "recording not finished" in output

    found = _recover(tmp_path / "run.mcap")
    assert found["stopped"] is not None, "the cut file read as a finished one"
    assert found["values"] == list(range(1, len(found["values"]) + 1)), "not a prefix of what was sent"
    info = subprocess.run(
        [*DORADUS, "recording", "info", "run.mcap", "--output", "json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    shown = json.loads(info.stdout)
    assert shown["complete"] is False
    assert shown["topics"][0]["messages"] == len(found["values"])
    assert_nothing_left(before, tmp_path)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_ctrl_c_or_sigterm_stops_the_dataflow_and_finishes_the_file(
    tmp_path: Path, sig: signal.Signals
) -> None:
    before = shm_entries()
    record = _start(tmp_path)
    try:
        at_least = _wait_for_messages(tmp_path / "run.mcap", time.monotonic() + 30)
        record.send_signal(sig)
        output, _ = record.communicate(timeout=60)
    finally:
        record.kill()
    assert record.returncode == 0, output
    assert "✓ recorded" in output
    found = _recover(tmp_path / "run.mcap")
    assert found["stopped"] is None, "the file was not finished"
    assert len(found["values"]) >= at_least
    assert found["values"] == list(range(1, len(found["values"]) + 1))
    assert_nothing_left(before, tmp_path)


def test_record_killed_with_sigkill_still_finishes_the_file(tmp_path: Path) -> None:
    before = shm_entries()
    record = _start(tmp_path)
    try:
        at_least = _wait_for_messages(tmp_path / "run.mcap", time.monotonic() + 30)
        os.kill(record.pid, signal.SIGKILL)
        record.communicate(timeout=60)
    finally:
        record.kill()
    # The keeper of the run's nodes outlives `doradus record` and sends them SIGTERM: the recorder
    # finishes the file (summary and footer). The plain reader then reads it to its end.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and _recorder_alive(tmp_path):
        time.sleep(0.1)
    found = _recover(tmp_path / "run.mcap")
    assert found["stopped"] is None, "the recorder did not finish the file"
    assert len(found["values"]) >= at_least
    assert found["values"] == list(range(1, len(found["values"]) + 1))
    assert_nothing_left(before, tmp_path)


def _recorder_alive(folder: Path) -> bool:
    from tests.conftest import processes_mentioning

    return bool(processes_mentioning(str(folder / "out")))
