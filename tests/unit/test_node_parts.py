"""The node's parts without a daemon: counters, the event reader, timers, the channel, registering."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from doradus import DecodeError, NodeError
from doradus._node import attach as attach_module
from doradus._node import channel as channel_module
from doradus._node.attach import attach
from doradus._node.channel import DaemonChannel
from doradus._node.events import Error, Input, InputClosed, Stop
from doradus._node.inbox import Inbox
from doradus._node.receive import LOG, TIMER, EventReader
from doradus._node.statistics import NodeCounters
from doradus._node.timers import start_timers
from doradus._observability.latency import LATENCY_BOUNDS_NS
from doradus._wire import control, node_config, node_reports
from doradus._wire.control import recv_control, send_control
from doradus._wire.node_config import ENV_CONFIG
from doradus._wire.values import plan_value

DEADLINE = 10.0  # seconds; generous, for loaded machines


def _input(kind: str, **extra: Any) -> node_config.InputConfig:
    return typing.cast(
        "node_config.InputConfig",
        {"kind": kind, "queue_size": 8, "policy": "drop-oldest", "source": "s", **extra},
    )


def _message(values: list[int], stamp_ns: int) -> tuple[Any, ...]:
    """A received Arrow message as a backend delivers it (inline payload, no metadata)."""
    plan = plan_value(pa.array(values, pa.int64()))
    body = bytearray(plan.size)
    plan.write_into(memoryview(body), 0)
    head = plan.type_blob + plan.layout
    data = head + bytes(-len(head) % 8) + bytes(body)
    return (data, 0, len(plan.type_blob), len(plan.layout), 0, stamp_ns, None, 0, 0)


# --------------------------------------------------------------------- counters
def test_a_stats_report_has_the_typed_shape_and_copies_the_histograms() -> None:
    counters = NodeCounters(["image"], ["boxes"])
    counters.histograms["image"][0] += 2
    counters.latency_sums["image"] += 30_000
    counters.latencies.extend([10_000, 20_000])
    counters.sent["boxes"] += 1
    counters.sent_bytes["boxes"] += 8
    inbox = Inbox({"image": 4})
    inbox.push("image", "x")
    report = counters.report(inbox, now=12.5)
    hints = typing.get_type_hints(control.StatsMessage)
    # only once a peer restarted; only from the node's channel, while its code holds a message
    assert set(report) == set(hints) - {"peer_restart_drops", "busy_ms"}
    assert report["time"] == 12.5
    assert report["inputs"]["image"] == {
        "received": 1,
        "delivered": 0,
        "dropped": 0,
        "shed": 0,
        "backpressure_timeouts": 0,
        "queued": 1,
        "latency_buckets": [2] + [0] * len(LATENCY_BOUNDS_NS),
        "latency_sum_us": 30.0,
        "latency_count": 2,
    }
    assert report["outputs"] == {"boxes": {"sent": 1, "bytes": 8}}
    assert (report["latency_p50_us"], report["latency_samples"], report["errors"]) == (20.0, 2, 0)
    counters.histograms["image"][0] += 1
    assert report["inputs"]["image"]["latency_buckets"][0] == 2  # the report holds a copy


def test_the_statistics_snapshot_shows_counts_only() -> None:
    counters = NodeCounters(["a"], ["out"])
    counters.sent["out"] = 3
    assert counters.snapshot(Inbox({"a": 1})) == {
        "inputs": {
            "a": {"received": 0, "delivered": 0, "dropped": 0, "backpressure_timeouts": 0, "queued": 0}
        },
        "outputs": {"out": {"sent": 3, "bytes": 0}},
    }


# ----------------------------------------------------------------------- reader
def _reader(
    inputs: dict[str, node_config.InputConfig], **kwargs: Any
) -> tuple[EventReader, Inbox, NodeCounters]:
    inbox = Inbox({k: 8 for k in inputs})
    counters = NodeCounters(inputs, [])
    return EventReader(inbox, counters, inputs, kwargs.get("codecs", {}), threading.Event()), inbox, counters


def test_a_message_is_decoded_and_its_latency_counted_in_its_bucket() -> None:
    reader, _inbox, counters = _reader({"n": _input("node")})
    event = reader.event(("n", _message([1, 2], time.time_ns() - 30_000)))  # sent 30 µs ago
    assert isinstance(event, Input)
    assert event.value.to_pylist() == [1, 2]
    assert "timestamp" in event.metadata
    (latency,) = counters.latencies
    assert latency >= 30_000
    bucket = next(i for i, bound in enumerate(LATENCY_BOUNDS_NS) if latency <= bound)
    assert counters.histograms["n"][bucket] == 1
    assert counters.latency_sums["n"] == latency


def test_a_message_that_does_not_decode_is_an_error_event_and_counted() -> None:
    class Refusing:
        tag, name = 3, "avro"

        def decode(self, body: Any) -> Any:
            raise DecodeError("bad bytes")

    reader, _inbox, counters = _reader({"n": _input("node")}, codecs={"n": Refusing()})
    event = reader.event(("n", _message([1], time.time_ns())))
    assert isinstance(event, Error)
    assert "input 'n'" in event.message
    assert counters.errors == 1


def test_ticks_and_log_records_are_inputs_and_uncounted() -> None:
    reader, _inbox, counters = _reader({"t": _input("timer", interval_ns=1), "l": _input("logs")})
    tick = reader.event(("t", (TIMER, 0)))
    record = reader.event(("l", (LOG, '{"message": "hi"}', 0)))
    assert isinstance(tick, Input)
    assert len(tick.value) == 0
    assert isinstance(record, Input)
    assert json.loads(record.value[0].as_py()) == {"message": "hi"}
    assert not counters.latencies


def test_the_stream_stops_once_the_last_input_closes_and_timers_keep_it_open() -> None:
    reader, inbox, _counters = _reader({"a": _input("node"), "l": _input("logs")})
    reader.event((None, InputClosed("a")))
    assert inbox.pop(0) is None
    reader.event((None, InputClosed("l")))
    stop = inbox.pop(0)
    assert stop == (None, Stop("all-inputs-closed"))
    assert reader.event(stop) == Stop("all-inputs-closed")
    assert reader.ended
    timed, timed_inbox, _counters = _reader({"a": _input("node"), "t": _input("timer", interval_ns=1)})
    timed.event((None, InputClosed("a")))
    assert timed_inbox.pop(0) is None
    assert not timed.ended


def test_a_node_without_inputs_stops_at_once() -> None:
    reader, inbox, _counters = _reader({})
    reader.stop_if_all_closed()
    assert inbox.pop(0) == (None, Stop("all-inputs-closed"))


def test_timers_tick_until_stopped() -> None:
    inbox, stop = Inbox({"fast": 100, "slow": 100}), threading.Event()
    thread = start_timers(inbox, [("fast", 1_000_000), ("slow", 3_600 * 10**9)], stop)
    got = inbox.pop(DEADLINE)
    assert got is not None
    assert got[0] == "fast"
    assert got[1][0] is TIMER
    stop.set()
    thread.join(DEADLINE)
    assert not thread.is_alive()


# ---------------------------------------------------------------------- channel
class _Backend:
    def __init__(self) -> None:
        self.ended: list[str] = []

    def sender_ended(self, peer: str) -> None:
        self.ended.append(peer)

    def peer_restarting(self, peer: str) -> None:
        self.ended.append(f"restarting {peer}")

    def restart_drops(self) -> dict[str, int]:
        return {}


@pytest.fixture
def daemon() -> Iterator[tuple[socket.socket, DaemonChannel, Inbox, _Backend]]:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    inbox, backend = Inbox({"logs": 8}), _Backend()
    channel = DaemonChannel(ours, "n", inbox, backend, NodeCounters(["logs"], ["out"]))
    yield theirs, channel, inbox, backend
    channel.close()
    theirs.close()


def test_the_node_waits_for_start_and_acts_on_what_comes_before(daemon: Any) -> None:
    theirs, channel, inbox, backend = daemon
    send_control(theirs, {"op": "peer_gone", "peer": "camera"})
    send_control(theirs, {"op": "start"})
    channel.await_start()
    assert backend.ended == ["camera"]
    assert inbox.pop(0) is None


def test_a_stop_before_start_is_the_first_event(daemon: Any) -> None:
    theirs, channel, inbox, _backend = daemon
    send_control(theirs, {"op": "stop"})
    channel.await_start()
    assert inbox.pop(0) == (None, Stop("manual"))


def test_a_daemon_gone_before_start_is_a_node_error(daemon: Any) -> None:
    theirs, channel, _inbox, _backend = daemon
    theirs.close()
    with pytest.raises(NodeError, match="went away before the dataflow started"):
        channel.await_start()


def test_the_watcher_queues_the_daemons_word_and_reports(
    daemon: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    theirs, channel, inbox, backend = daemon
    monkeypatch.setattr(channel_module, "STATS_INTERVAL", 0.02)
    channel.start_watching()
    send_control(theirs, {"op": "log_input", "input": "logs", "record": {"message": "hi"}})
    send_control(theirs, {"op": "logs_closed", "inputs": ["logs"]})
    send_control(theirs, {"op": "peer_gone", "peer": "camera"})
    send_control(theirs, {"op": "stop"})
    report, _fds = recv_control(theirs)
    assert report is not None
    assert report["op"] == "stats"
    assert set(report["inputs"]) == {"logs"}
    assert set(report["outputs"]) == {"out"}
    input_id, (mark, text, _stamp) = inbox.pop(DEADLINE)
    assert (input_id, mark, json.loads(text)) == ("logs", LOG, {"message": "hi"})
    assert inbox.pop(DEADLINE) == (None, InputClosed("logs"))
    assert inbox.pop(DEADLINE) == (None, Stop("manual"))
    assert backend.ended == ["camera"]
    theirs.close()
    assert inbox.pop(DEADLINE) == (None, Error("lost the connection to the Doradus daemon"))
    assert inbox.pop(DEADLINE) == (None, Stop("manual"))


def test_the_watcher_pauses_the_inbox_and_acknowledges_a_restarting_peer(daemon: Any) -> None:
    theirs, channel, inbox, backend = daemon
    channel.start_watching()
    send_control(theirs, {"op": "pause"})
    send_control(theirs, {"op": "peer_restarting", "peer": "camera"})
    ack, _fds = recv_control(theirs)
    while ack is not None and ack["op"] == "stats":  # a report may come first
        ack, _fds = recv_control(theirs)
    assert ack == {"op": "ack", "of": "peer_restarting", "peer": "camera"}
    assert backend.ended == ["restarting camera"]
    assert inbox.paused  # the pause came before the acknowledged message
    send_control(theirs, {"op": "resume"})
    deadline = time.monotonic() + DEADLINE
    while inbox.paused:
        assert time.monotonic() < deadline, "resume was never taken"
        time.sleep(0.01)


def test_log_records_go_to_the_daemon(daemon: Any) -> None:
    theirs, channel, _inbox, _backend = daemon
    record: node_reports.LogRecord = {
        "timestamp": "2026-01-01T00:00:00.000000Z",
        "level": "INFO",
        "message": "m",
        "trace_id": None,
        "span_id": None,
        "source": "log",
        "fields": {},
    }
    channel.send_log(record)
    assert recv_control(theirs) == ({"op": "log", "record": record}, [])


# ----------------------------------------------------------------------- attach
class _Daemon:
    """A control socket that answers one ``register`` with ``answer`` (and a link end)."""

    def __init__(self, path: Path, answer: control.ControlMessage) -> None:
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.listener.bind(str(path))
        self.listener.listen(1)
        self.registered: list[control.ControlMessage | None] = []
        self.link, self.end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.thread = threading.Thread(target=self._serve, args=(answer,), daemon=True)
        self.thread.start()

    def _serve(self, answer: control.ControlMessage) -> None:
        conn, _addr = self.listener.accept()
        with conn:
            self.registered.append(recv_control(conn)[0])
            send_control(conn, answer, [self.end.fileno()])

    def close(self) -> None:
        self.thread.join(DEADLINE)
        for sock in (self.listener, self.link, self.end):
            sock.close()


def _config(node_id: str) -> node_config.NodeConfig:
    return {
        "node_id": node_id,
        "run_id": "r",
        "dataflow": "f.yml",
        "dataflow_name": "f",
        "machine": "m",
        "inputs": {},
        "outputs": [],
        "output_formats": {},
        "links": [],
        "backends": [],
        "restart_count": 0,
        "stdout_output": None,
    }


def test_a_spawned_node_registers_where_its_environment_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    daemon = _Daemon(tmp_path / "c.sock", {"op": "config", "config": _config("echo")})
    env: node_config.NodeEnvironment = {"control": str(tmp_path / "c.sock"), "node_id": "echo", "run_id": "r"}
    monkeypatch.setenv(ENV_CONFIG, json.dumps(env))
    sock, config, fds = attach("what-it-passes")  # a spawned node is whom the daemon started
    try:
        assert config == _config("echo")
        assert len(fds) == 1
        assert daemon.registered == [
            {"op": "register", "node_id": "echo", "pid": os.getpid(), "dynamic": False}
        ]
    finally:
        for fd in fds:
            os.close(fd)
        sock.close()
        daemon.close()


def test_a_dynamic_node_finds_its_dataflow_and_a_refusal_is_a_node_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ENV_CONFIG, raising=False)
    runs = tmp_path / "runs"
    (runs / "r1").mkdir(parents=True)
    monkeypatch.setattr(attach_module, "runs_dir", lambda: runs)
    waiting: node_config.DynamicNodes = {
        "dataflow": "f.yml",
        "nodes": ["ui"],
        "control": str(tmp_path / "c.sock"),
    }
    (runs / "r1" / "dynamic.json").write_text(json.dumps(waiting))
    daemon = _Daemon(tmp_path / "c.sock", {"op": "error", "message": "node 'ui' is already running"})
    try:
        with pytest.raises(NodeError, match="already running"):
            attach("ui")
        assert daemon.registered == [{"op": "register", "node_id": "ui", "pid": os.getpid(), "dynamic": True}]
    finally:
        daemon.close()
    with pytest.raises(NodeError, match="no running dataflow has a dynamic node 'other'"):
        attach("other")
    with pytest.raises(NodeError, match="not started by Doradus"):
        attach(None)
