"""The supervisor's parts on their own: counters, wiring, configuration, log inputs, the barrier."""

from __future__ import annotations

import socket
import typing
from collections.abc import Iterator
from pathlib import Path

import pytest

from doradus._dataflow.model import Dataflow, InputSpec, LogSource, NodeSource, NodeSpec
from doradus._observability.records import make_record
from doradus._observability.store import LogStore
from doradus._runtime import metrics
from doradus._runtime.config import node_config
from doradus._runtime.control_socket import ControlSocket
from doradus._runtime.links import LinkWiring
from doradus._runtime.log_inputs import LogInputs
from doradus._runtime.run_log import RunLog
from doradus._runtime.state import RunState
from doradus._runtime.stats import next_stats
from doradus._wire.control import StatsMessage, recv_control
from doradus._wire.node_config import LinkConfig, NodeConfig


def _flow(*nodes: NodeSpec, **communication: object) -> Dataflow:
    return Dataflow(path=Path("/tmp/df.yml"), nodes=nodes, communication=dict(communication))


def _reads(node_id: str, source: str) -> NodeSpec:
    return NodeSpec(id=node_id, kind="python", inputs={"x": InputSpec("x", NodeSource(source, "out"))})


def _report(received: int, sent: int, dropped: int = 0) -> StatsMessage:
    return {
        "op": "stats",
        "time": 0.0,
        "inputs": {
            "x": {
                "received": received,
                "dropped": dropped,
                "queued": 1,
                "latency_buckets": [received] + [0] * 17,
                "latency_sum_us": 10.0 * received,
                "latency_count": received,
            }
        },
        "outputs": {"out": {"sent": sent, "bytes": 8 * sent}},
        "latency_p50_us": 10.0,
        "latency_samples": received,
        "errors": 0,
    }


def _misfit(value: typing.Mapping[str, object], shape: type) -> list[list[str]]:
    hints = typing.get_type_hints(shape, include_extras=True)
    optional = {k for k, hint in hints.items() if typing.get_origin(hint) is typing.NotRequired}
    return [sorted(set(value) - set(hints)), sorted(set(hints) - optional - set(value))]


@pytest.fixture
def close_later() -> Iterator[list[socket.socket]]:
    socks: list[socket.socket] = []
    yield socks
    for sock in socks:
        sock.close()


def test_rates_come_from_reports_far_enough_apart() -> None:
    spec = _reads("b", "a")
    first = next_stats(spec, _report(10, 5), None, now=100.0)
    assert (first.input_rate, first.output_rate) == (None, None)
    second = next_stats(spec, _report(30, 25), first, now=102.0)
    assert (second.input_rate, second.output_rate) == (10.0, 10.0)
    # the last report, at exit, comes right after the one before: the rates stay
    last = next_stats(spec, _report(31, 26), second, now=102.01)
    assert (last.input_rate, last.output_rate, last.counted) == (10.0, 10.0, second.counted)
    assert last.inputs["x"]["source"] == "a/out"
    assert len(last.inputs["x"]["latency_bounds_us"]) == 17


def test_local_links_are_socket_pairs_and_network_links_share_the_receivers_port(
    tmp_path: Path, close_later: list[socket.socket]
) -> None:
    flow = _flow(
        NodeSpec(id="a", kind="python", outputs=("out",)),
        NodeSpec(id="n", kind="python", outputs=("out",), communication="tcp"),
        NodeSpec(id="m", kind="python", outputs=("out",), communication="tcp"),
        _reads("b", "a"),
        NodeSpec(
            id="c",
            kind="python",
            inputs={"x": InputSpec("x", NodeSource("n", "out")), "y": InputSpec("y", NodeSource("m", "out"))},
        ),
    )
    state = RunState.create(flow, run_id="r1", machine="m1", out_dir=tmp_path)
    LinkWiring(state, {}, {}).wire(on_relay_error=lambda _node, _message: None)
    close_later.extend(sock for proc in state.nodes.values() for _link, sock in proc.links if sock)
    (a_out, a_end), (b_in, b_end) = state.nodes["a"].links[0], state.nodes["b"].links[0]
    assert a_out == {"peer": "b", "dir": "out", "outputs": ["out"], "backend": "shm"}
    assert b_in == {"peer": "a", "dir": "in", "routes": {"out": ["x"]}, "backend": "shm"}
    assert a_end is not None
    assert b_end is not None
    listens = {link["options"]["listen"] for link, sock in state.nodes["c"].links if sock is None}
    assert len(listens) == 1  # one port per receiver and backend
    assert state.nodes["n"].links[0][0]["options"]["connect"] == listens.pop()
    assert state.edge_backends == {("a", "out"): "shm", ("n", "out"): "tcp", ("m", "out"): "tcp"}
    config = node_config(state, state.nodes["c"])
    assert _misfit(config, NodeConfig) == [[], []]
    assert [_misfit(link, LinkConfig) for link in config["links"]] == [[[], []], [[], []]]
    assert config["backends"] == ["tcp"]


def test_log_records_wait_for_the_start_then_reach_the_inputs_that_read_them(
    tmp_path: Path, close_later: list[socket.socket]
) -> None:
    monitor = NodeSpec(
        id="mon", kind="python", inputs={"logs": InputSpec("logs", LogSource("dora/logs/warn", "warn", None))}
    )
    flow = _flow(NodeSpec(id="cam", kind="python"), monitor)
    state = RunState.create(flow, run_id="r1", machine="m1", out_dir=tmp_path)
    inputs = LogInputs(state)
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    close_later.extend([ours, theirs])
    state.nodes["mon"].conn = ours
    inputs.deliver(make_record("WARN", "early", node="cam"))
    inputs.deliver(make_record("INFO", "too low", node="cam"))
    with state.lock:
        state.started = True
        inputs.dataflow_started()
    message, _fds = recv_control(theirs)
    assert message is not None
    assert message["op"] == "log_input"
    assert (message["input"], message["record"]["message"]) == ("logs", "early")
    with state.lock:
        state.nodes["cam"].exited = True
        inputs.close_finished()
    theirs.settimeout(5)
    message, _fds = recv_control(theirs)
    if message is not None and message["op"] == "log_input":  # "too low" is below WARN: never sent
        pytest.fail(f"unexpected record {message['record']}")
    assert message == {"op": "logs_closed", "inputs": ["logs"]}


def test_closing_one_nodes_log_input_leaves_another_nodes_input_of_the_same_name_open(
    tmp_path: Path, close_later: list[socket.socket]
) -> None:
    # `early` reads only the records of `cam`, which ends; `late` reads every node's records.
    early = NodeSpec(
        id="early",
        kind="python",
        inputs={"logs": InputSpec("logs", LogSource("dora/logs/warn/cam", "warn", "cam"))},
    )
    late = NodeSpec(
        id="late",
        kind="python",
        inputs={"logs": InputSpec("logs", LogSource("dora/logs/warn", "warn", None))},
    )
    flow = _flow(NodeSpec(id="cam", kind="python"), NodeSpec(id="other", kind="python"), early, late)
    state = RunState.create(flow, run_id="r1", machine="m1", out_dir=tmp_path)
    inputs = LogInputs(state)
    ends = {}
    for node in ("early", "late"):
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        close_later.extend([ours, theirs])
        state.nodes[node].conn = ours
        theirs.settimeout(5)
        ends[node] = theirs
    with state.lock:
        state.started = True
        state.nodes["cam"].exited = True
        inputs.close_finished()
    assert recv_control(ends["early"])[0] == {"op": "logs_closed", "inputs": ["logs"]}
    inputs.deliver(make_record("WARN", "still heard", node="other"))
    message, _fds = recv_control(ends["late"])
    assert message is not None
    assert message["op"] == "log_input"
    assert message["record"]["message"] == "still heard"


def test_the_barrier_starts_every_connected_node_once_all_are_ready(
    tmp_path: Path, close_later: list[socket.socket]
) -> None:
    flow = _flow(NodeSpec(id="a", kind="python", outputs=("out",)), _reads("b", "a"))
    state = RunState.create(flow, run_id="r1", machine="m1", out_dir=tmp_path)
    inputs = LogInputs(state)
    with LogStore(tmp_path) as store:
        run_log = RunLog(state, store, log_level=None, on_record=None, log_inputs=inputs)
        sockets = ControlSocket(state, run_log, inputs, tmp_path)
        theirs = []
        for proc in state.nodes.values():
            proc.conn, other = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            close_later.extend([proc.conn, other])
            theirs.append(other)
        with state.lock:
            state.nodes["a"].ready = True
            sockets.check_barrier()
            assert not state.started
            state.nodes["b"].ready = True
            sockets.check_barrier()
        assert state.started
        assert [recv_control(sock)[0] for sock in theirs] == [{"op": "start"}, {"op": "start"}]
        sockets.close()


def test_edges_and_drops_come_from_the_last_reports(tmp_path: Path) -> None:
    flow = _flow(NodeSpec(id="a", kind="python", outputs=("out",)), _reads("b", "a"))
    state = RunState.create(flow, run_id="r1", machine="m1", out_dir=tmp_path)
    state.nodes["a"].record_stats(_report(0, 4))
    state.nodes["b"].record_stats(_report(3, 0, dropped=1))
    assert metrics.edges(state) == [
        {
            "source": "a/out",
            "target": "b/x",
            "backend": "shm",
            "messages": 3,
            "bytes": 32,
            "dropped": 1,
            "backpressure_timeouts": 0,
            "data_format": "arrow",
        }
    ]
    (drops,) = metrics.dropped_inputs(state)
    assert (drops.node, drops.input, drops.source, drops.dropped) == ("b", "x", "a/out", 1)
    node = metrics.node_metrics(state, metrics.ProcessSampler())["b"]
    assert (node["state"], node["dropped"], node["inputs"]["x"]["source"]) == ("starting", 1, "a/out")
    path = metrics.write_edges(tmp_path, metrics.edges(state), merge=False)
    assert path.name == "edges.json"
