"""The live stream ``/api/v1/stream`` read by a plain `websockets` client (not the TUI).

A real coordinator and daemon (`doradus up`) run real dataflows: a sender paced by a 20 Hz
timer and a receiver that prints a line and logs a warning every tenth message; for the slow
client, a node that prints 3000 long lines.
"""

from __future__ import annotations

import functools
import itertools
import json
import queue
import re
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from tests.cli.conftest import Control
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from doradus._control.stream_models import schema_text

SCHEMA_FILE = Path(__file__).parents[2] / "docs" / "stream-schema.json"
SENDER_HZ = 20
REPORT_PERIOD = 1.0
"""Nodes report their counters once a second."""
MARGIN = 15.0
"""Seconds added to every wait: processes start, the machine is shared."""

FLOW = f"""
    nodes:
      - id: sender
        path: sender.py
        inputs:
          tick: dora/timer/millis/{1000 // SENDER_HZ}
        outputs: [n]
      - id: receiver
        path: receiver.py
        inputs:
          n: sender/n
"""
SENDER_PY = """
    from doradus import Input, Node

    node = Node()
    for event in node:
        if isinstance(event, Input):
            node.send_output("n", [1, 2, 3])
"""
RECEIVER_PY = """
    from doradus import Input, Node

    node = Node()
    count = 0
    for event in node:
        if isinstance(event, Input):
            count += 1
            if count % 10 == 0:
                print(f"received {count}", flush=True)
                node.log("warn", f"late {count}")
"""
Message = dict[str, Any]


# ----------------------------------------------------------------------------- helpers
@functools.cache
def _schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(SCHEMA_FILE.read_text())
    return schema


def _assert_documented(message: Message) -> None:
    """The message has a documented type, and every key its schema requires."""
    defs = _schema()["$defs"]
    mapping = defs["ServerMessage"]["discriminator"]["mapping"]
    assert message["type"] in mapping, message
    model = defs[mapping[message["type"]].rpartition("/")[2]]
    missing = set(model["required"]) - set(message)
    assert not missing, (missing, message)
    assert message["time"].endswith("Z"), message
    assert len(message["time"]) == len("2026-12-04T13:07:44.862Z"), message


class Stream:
    """A plain client of the stream: every message it receives is kept and checked against the schema."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.seen: list[Message] = []

    def next(self, seconds: float) -> Message:
        message: Message = json.loads(self.ws.recv(timeout=seconds))
        _assert_documented(message)
        self.seen.append(message)
        return message

    def until(self, check: Callable[[Message], bool], seconds: float) -> list[Message]:
        """Messages up to and including the first that passes ``check`` (fails after ``seconds``)."""
        deadline = time.monotonic() + seconds
        taken: list[Message] = []
        while True:
            left = deadline - time.monotonic()
            try:
                taken.append(self.next(max(left, 0.001)))
            except TimeoutError:
                pytest.fail(f"no such message in {seconds:g}s; got {[m['type'] for m in taken]}")
            if check(taken[-1]):
                return taken

    def count(self, kind: str, since: int = 0) -> int:
        """How many messages of type ``kind`` came (from the ``since``-th on)."""
        return sum(m["type"] == kind for m in self.seen[since:])

    def send(self, message: Message) -> None:
        self.ws.send(json.dumps(message))


@contextmanager
def _stream(control: Control, **params: Any) -> Iterator[Stream]:
    query = urlencode({k: v for k, v in params.items() if v is not None}, doseq=True)
    url = f"ws://{control.address}/api/v1/stream?{query}"
    with connect(url, additional_headers=control.headers, max_size=None, open_timeout=10) as ws:
        yield Stream(ws)


def _typed(kind: str, **fields: Any) -> Callable[[Message], bool]:
    return lambda m: m["type"] == kind and all(m.get(k) == v for k, v in fields.items())


def _start(control: Control, name: str) -> str:
    started = control("start", "flow.yml", "--name", name, "--detach")
    assert started.returncode == 0, started.stderr
    listed = control.api("GET", f"/dataflows/{name}").json()
    run_id: str = listed["id"]
    return run_id


@pytest.fixture
def running(control: Control) -> Control:
    """``doradus up`` with the sender → receiver dataflow written (not started)."""
    control.write("flow.yml", FLOW)
    control.write("sender.py", SENDER_PY)
    control.write("receiver.py", RECEIVER_PY)
    up = control("up")
    assert up.returncode == 0, up.stderr
    return control


# ------------------------------------------------------------------------------- tests
def test_the_stream_shows_a_running_dataflow(running: Control) -> None:
    run_id = _start(running, "first")
    interval = 0.2
    with _stream(running, dataflow="first", interval=interval) as stream:
        hello = stream.next(MARGIN)
        assert hello["type"] == "hello"
        assert hello["interval"] == interval
        assert hello["subscription"] == {
            "dataflow": run_id,
            "name": "first",
            "node": [],
            "level": "INFO",
            "logs": True,
        }
        assert hello["version"]

        # Updates come every interval: several dataflows lists in a few intervals' time.
        stream.until(lambda m: stream.count("dataflows") >= 5, 5 * interval + MARGIN)
        listed = next(m for m in reversed(stream.seen) if m["type"] == "dataflows")
        assert [(d["name"], d["status"]) for d in listed["dataflows"]] == [("first", "running")]

        # Once nodes reported twice, the receiver's edge has a backend, a format and a rate.
        def measured(m: Message) -> bool:
            return m["type"] == "dataflow" and any(e["rate"] for e in m["edges"])

        stream.until(measured, 3 * REPORT_PERIOD + MARGIN)
        updates = [stream.until(measured, 2 * interval + MARGIN)[-1] for _ in range(10)]
        last = updates[-1]
        assert last["dataflow"]["id"] == run_id
        assert last["nodes"]["receiver"]["state"] == "running"
        assert last["nodes"]["receiver"]["input_rate"] > 0
        assert last["rate_window_s"] == 2 * REPORT_PERIOD
        (edge,) = last["edges"]
        assert (edge["source"], edge["target"]) == ("sender/n", "receiver/n")
        assert (edge["backend"], edge["data_format"]) == ("shm", "arrow")
        assert edge["received"] > 0
        assert edge["p50_latency_us"] is not None
        assert 0 < edge["p50_latency_us"] < 1_000_000  # one machine: positive, well under a second
        # The sender ticks at 20 Hz: the edge's rate is near it (loosely: reports come each second).
        rate = statistics.median(u["edges"][0]["rate"] for u in updates)
        assert 0.5 * SENDER_HZ <= rate <= 1.5 * SENDER_HZ, [u["edges"][0]["rate"] for u in updates]
        assert last["rates"]["sender"]["outputs"]["n"] > 0
        assert last["rates"]["sender"]["bytes_out"]["n"] > 0
        assert last["rates"]["receiver"]["inputs"]["n"] > 0
        assert last["rates"]["sender"]["inputs"]["tick"] > 0
        # Several updates come between two reports of the receiver (a second apart): the interval
        # is the client's, not the reports'.
        received = [m["edges"][0]["received"] for m in stream.seen if m["type"] == "dataflow" and m["edges"]]
        runs = [len(list(group)) for _, group in itertools.groupby(received)]
        assert max(runs[1:-1]) >= 3, received

        # What the receiver prints arrives as a log message, and so does its warning.
        printed = stream.until(
            lambda m: m["type"] == "log" and m["record"]["message"].startswith("received "),
            10 / SENDER_HZ + MARGIN,
        )[-1]["record"]
        assert (printed["node"], printed["source"], printed["level"]) == ("receiver", "stdout", "INFO")
        assert printed["run_id"] == run_id
        stream.until(lambda m: m["type"] == "log" and m["record"]["level"] == "WARN", 10 / SENDER_HZ + MARGIN)


def test_level_node_and_tail_choose_the_log_records(running: Control) -> None:
    _start(running, "first")
    with _stream(running, dataflow="first", level="warn", interval=0.5) as stream:
        assert stream.next(MARGIN)["subscription"]["level"] == "WARN"
        logs = []
        while len(logs) < 3:
            logs += [m for m in stream.until(_typed("log"), 10 / SENDER_HZ + MARGIN) if m["type"] == "log"]
        assert {m["record"]["level"] for m in logs} == {"WARN"}
        assert all(m["record"]["message"].startswith("late ") for m in logs)
    # Only the sender's records: it logs none, so the receiver's never come.
    with _stream(running, dataflow="first", node="sender", interval=0.2) as stream:
        assert stream.next(MARGIN)["subscription"]["node"] == ["sender"]
        # Enough updates for the receiver to have logged several lines meanwhile.
        stream.until(lambda m: stream.count("dataflows") >= 10, 10 * 0.2 + MARGIN)
        assert not [m for m in stream.seen if m["type"] == "log"]
    # `tail` sends the last records first, before any update.
    with _stream(running, dataflow="first", level="WARN", tail=2) as stream:
        first = [stream.next(MARGIN) for _ in range(3)]
        assert [m["type"] for m in first] == ["hello", "log", "log"]
        numbers = [int(m["record"]["message"].split()[1]) for m in first[1:]]
        assert numbers[1] == numbers[0] + 10


def test_subscribe_switches_dataflow_and_state_changes_arrive(running: Control) -> None:
    first_id = _start(running, "first")
    with _stream(running, dataflow="first", interval=0.2) as stream:
        stream.until(_typed("dataflow"), MARGIN)
        # A second dataflow: every client hears of it as it starts.
        second_id = _start(running, "second")
        stream.until(_typed("state", dataflow=second_id, status="running", previous=None), MARGIN)

        stream.send({"type": "subscribe", "dataflow": "second", "level": "warn"})
        hello = stream.until(_typed("hello"), MARGIN)[-1]
        assert hello["subscription"]["dataflow"] == second_id
        assert hello["subscription"]["level"] == "WARN"
        assert hello["interval"] == 0.2  # what the subscribe left out is kept
        after = stream.until(lambda m: m["type"] == "dataflow", MARGIN)
        assert after[-1]["dataflow"]["id"] == second_id
        # After the hello, nothing more of the first dataflow's nodes or logs.
        since = stream.seen.index(hello)
        stream.until(lambda m: stream.count("dataflow", since) >= 5, 5 * 0.2 + MARGIN)
        later = stream.seen[since:]
        assert all(m["dataflow"]["id"] == second_id for m in later if m["type"] == "dataflow")
        assert all(m["record"]["run_id"] == second_id for m in later if m["type"] == "log")

        # A bad subscribe: an error, and the stream goes on with the old subscription.
        stream.send({"type": "subscribe", "interval": 0})
        error = stream.until(_typed("error"), MARGIN)[-1]
        assert "interval" in error["error"]
        assert "0.1" in error["fix"]
        stream.send({"type": "subscribe", "dataflow": "no-such-flow"})
        assert "no-such-flow" in stream.until(_typed("error"), MARGIN)[-1]["error"]
        stream.send({"type": "hello"})
        assert stream.until(_typed("error"), MARGIN)[-1]["fix"]
        stream.until(_typed("dataflow"), MARGIN)
        assert [m for m in stream.seen if m["type"] == "hello"] == [stream.seen[0], hello]

        # Stopping it: its nodes' and its own state changes arrive as they happen.
        assert running("stop", "second").returncode == 0
        ended = stream.until(_typed("state", dataflow=second_id, status="stopped"), MARGIN)
        assert ended[-1]["previous"] == "running"
        changes = [m for m in stream.seen if m["type"] == "node_state" and m["dataflow"] == second_id]
        assert {m["node"] for m in changes} == {"sender", "receiver"}
        assert all(m["previous"] == "running" for m in changes)
        assert {m["state"] for m in changes} <= {"stopped", "finished"}
        # The first one goes on, unsubscribed: no node states of it, but its status in every list.
        listed = stream.until(_typed("dataflows"), MARGIN)[-1]["dataflows"]
        assert {d["id"]: d["status"] for d in listed} == {first_id: "running", second_id: "stopped"}

        # Forgotten by `clean`: the client is told, and follows no dataflow any more.
        assert running("clean").returncode == 0
        assert second_id in stream.until(_typed("error"), MARGIN)[-1]["error"]
        assert stream.until(_typed("hello"), MARGIN)[-1]["subscription"]["dataflow"] is None


def test_the_stream_refuses_what_it_cannot_serve(running: Control) -> None:
    url = f"ws://{running.address}/api/v1/stream"
    with pytest.raises(InvalidStatus) as refused:
        connect(url, open_timeout=10)
    assert refused.value.response.status_code == 403
    with pytest.raises(InvalidStatus):
        connect(url, additional_headers={"Authorization": "Bearer wrong"}, open_timeout=10)
    for query, code, words in [
        ("dataflow=no-such-flow", 4404, "no-such-flow"),
        ("interval=0.01", 4422, "interval"),
        ("level=loud", 4422, "level"),
        ("logs=maybe", 4422, "logs"),
        ("levle=warn", 4422, "levle"),
    ]:
        with (
            connect(f"{url}?{query}", additional_headers=running.headers) as ws,
            pytest.raises(ConnectionClosed) as closed,
        ):
            ws.recv(timeout=MARGIN)
        assert closed.value.rcvd is not None
        assert (closed.value.rcvd.code, words in closed.value.rcvd.reason) == (code, True), closed.value.rcvd
    # Without a dataflow: the list of dataflows only.
    with _stream(running, interval=0.2) as stream:
        assert stream.next(MARGIN)["subscription"]["dataflow"] is None
        stream.until(lambda m: stream.count("dataflows") >= 3, 3 * 0.2 + MARGIN)
        assert {m["type"] for m in stream.seen} == {"hello", "dataflows"}


def test_the_committed_schema_is_current() -> None:
    assert SCHEMA_FILE.read_text() == schema_text(), (
        "docs/stream-schema.json is stale: run "
        "`python -m doradus._control.stream_models > docs/stream-schema.json`"
    )


def _documented_client() -> str:
    """The Python example of docs/stream.md's "A client in 15 lines"."""
    page = (Path(__file__).parents[2] / "docs" / "stream.md").read_text()
    section = page.split("## A client in 15 lines", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_the_documented_client_works(running: Control) -> None:
    code = _documented_client()
    assert len([line for line in code.splitlines() if line.strip()]) <= 15
    _start(running, "demo")
    script = running.folder / "watch.py"
    script.write_text(code)
    port = running.address.rpartition(":")[2]
    token_file = running.runtime / "doradus" / f"coordinator-{port}.token"
    env = {**running.env, "DORADUS_TOKEN_FILE": str(token_file)}
    with subprocess.Popen(
        [sys.executable, str(script)], env=env, cwd=running.folder, stdout=subprocess.PIPE, text=True
    ) as proc:
        try:
            _watch_the_client(running, proc)
        finally:
            proc.kill()


def _watch_the_client(running: Control, proc: subprocess.Popen[str]) -> None:
    """The client prints the edge's rate and the receiver's warnings, then ends with the dataflow."""
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout or ()], daemon=True)
    reader.start()
    seen: list[str] = []
    deadline = time.monotonic() + 3 * REPORT_PERIOD + MARGIN
    edge = re.compile(r"sender/n -> receiver/n: \d+\.\d+ msg/s over shm")
    while not (any(edge.fullmatch(x.strip()) for x in seen) and any("receiver WARN late" in x for x in seen)):
        seen.append(lines.get(timeout=max(0.1, deadline - time.monotonic())))
    assert running("stop", "demo").returncode == 0
    # It ends by itself once an update shows the dataflow stopped.
    assert proc.wait(timeout=MARGIN) == 0
    reader.join(MARGIN)  # it read to the end before the pipe is closed


CHATTY_LINES = 3000
"""Lines of 4 KB the chatty node prints: 12 MB, more than a client's queue (1000 messages) and the
sockets' buffers (a few MB) hold."""
CHATTY = """
    nodes:
      - id: chatty
        path: chatty.py
        inputs:
          tick: dora/timer/millis/500
"""
CHATTY_PY = f"""
    import time
    from pathlib import Path

    from doradus import Input, Node

    node = Node()
    printed = False
    for event in node:  # it prints once the test says go, when both its clients follow it
        if isinstance(event, Input) and not printed and Path("go").exists():
            for n in range({CHATTY_LINES}):
                print(f"line {{n}} " + "x" * 4000, flush=True)
                if n % 20 == 19:
                    time.sleep(0.02)  # 1000 lines a second: a client that reads keeps up
            printed = True
"""


def test_a_slow_client_loses_old_logs_and_holds_nothing_up(running: Control) -> None:
    running.write("chatty.yml", CHATTY)
    running.write("chatty.py", CHATTY_PY)
    started = running("start", "chatty.yml", "--name", "chatty", "--detach")
    assert started.returncode == 0, started.stderr
    # A client that does not read for now (and whose library queues no frames for it meanwhile).
    url = f"ws://{running.address}/api/v1/stream?dataflow=chatty"
    with (
        connect(
            url, additional_headers=running.headers, compression=None, max_queue=1, max_size=None
        ) as slow,
        _stream(running, dataflow="chatty", interval=0.2) as brisk,
    ):
        brisk.until(_typed("hello"), MARGIN)
        (running.folder / "go").touch()
        # The brisk client gets every line and its updates meanwhile: the slow one holds nothing up.
        brisk.until(
            lambda m: m["type"] == "log" and m["record"]["message"].startswith(f"line {CHATTY_LINES - 1} "),
            MARGIN,
        )
        lines = [m for m in brisk.seen if m["type"] == "log" and m["record"]["message"].startswith("line ")]
        assert len(lines) == CHATTY_LINES
        assert not [m for m in brisk.seen if m["type"] == "dropped"]
        brisk.until(_typed("dataflow"), MARGIN)
        assert running.api("GET", "/health").status_code == 200

        # The slow client now reads: the oldest records were dropped and counted, the newest kept.
        slow_stream = Stream(slow)
        slow_stream.until(
            lambda m: m["type"] == "log" and m["record"]["message"].startswith(f"line {CHATTY_LINES - 1} "),
            MARGIN,
        )
        dropped = sum(m["logs"] for m in slow_stream.seen if m["type"] == "dropped")
        got = [
            m for m in slow_stream.seen if m["type"] == "log" and m["record"]["message"].startswith("line ")
        ]
        assert dropped > 0
        assert len(got) < CHATTY_LINES
        numbers = [int(m["record"]["message"].split()[1]) for m in got]
        assert numbers == sorted(numbers)  # in order, with a gap where records were dropped
        assert len(got) + dropped >= CHATTY_LINES  # each line was either sent or counted as dropped
