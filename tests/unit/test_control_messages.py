"""The control channel's typed messages: one shape per ``op``, and each crosses the socket intact."""

from __future__ import annotations

import array
import os
import socket
import typing
from collections.abc import Iterator
from typing import Any

import pytest

from doradus._wire import node_config, node_reports
from doradus._wire.control import (
    ControlMessage,
    ToDaemon,
    ToNode,
    fds_from,
    recv_control,
    recv_json,
    send_control,
    send_json,
)

RECORD: node_reports.RunLogRecord = {
    "timestamp": "2026-01-01T00:00:00.000000Z",
    "level": "WARN",
    "message": "hot",
    "trace_id": None,
    "span_id": None,
    "source": "log",
    "fields": {"celsius": 81},
    "dataflow": "demo",
    "run_id": "r1",
    "node": "cpu",
    "machine": "m1",
}
NODE_RECORD: node_reports.LogRecord = {
    "timestamp": "2026-01-01T00:00:00.000000Z",
    "level": "INFO",
    "message": "loaded",
    "trace_id": "0" * 32,
    "span_id": "1" * 16,
    "source": "log",
    "fields": {"logger": "doradus.node.detector"},
}
CONFIG: node_config.NodeConfig = {
    "node_id": "detector",
    "run_id": "r1",
    "dataflow": "/flows/demo.yml",
    "descriptor": "/run/r1/dataflow.yml",
    "dataflow_name": "demo",
    "machine": "m1",
    "inputs": {
        "tick": {"kind": "timer", "queue_size": 1, "policy": "drop-oldest", "source": "t", "interval_ns": 10},
        "image": {"kind": "node", "queue_size": 2, "policy": "drop-oldest", "source": "camera/image"},
        "logs": {"kind": "logs", "queue_size": 9, "policy": "drop-oldest", "source": "dora/logs"},
    },
    "outputs": ["boxes"],
    "output_formats": {},
    "links": [
        {"peer": "camera", "dir": "in", "routes": {"image": ["image"]}, "backend": "shm"},
        {"peer": "ui", "dir": "out", "outputs": ["boxes"], "backend": "zenoh", "options": {"key": "k"}},
    ],
    "backends": ["shm", "zenoh"],
    "restart_count": 0,
    "stdout_output": None,
}
MESSAGES: list[ControlMessage] = [
    {"op": "register", "node_id": "detector", "pid": 42, "dynamic": False},
    {"op": "config", "config": CONFIG},
    {"op": "error", "message": "no node 'x'"},
    {"op": "ready"},
    {"op": "start"},
    {"op": "stop"},
    {"op": "log", "record": NODE_RECORD},
    {
        "op": "stats",
        "time": 1.5,
        "inputs": {
            "image": {
                "received": 3,
                "dropped": 1,
                "queued": 0,
                "latency_buckets": [2, 1] + [0] * 16,
                "latency_sum_us": 80.5,
                "latency_count": 3,
            }
        },
        "outputs": {"boxes": {"sent": 2, "bytes": 64}},
        "latency_p50_us": 25.0,
        "latency_samples": 3,
        "errors": 0,
    },
    {"op": "peer_gone", "peer": "camera"},
    {"op": "log_input", "input": "logs", "record": RECORD},
    {"op": "logs_closed", "inputs": ["logs"]},
    {"op": "pause"},
    {"op": "resume"},
    {"op": "peer_restarting", "peer": "camera"},
    {"op": "ack", "of": "peer_restarting", "peer": "camera"},
    {
        "op": "peer_links",
        "peer": "camera",
        "links": [{"peer": "camera", "dir": "in", "routes": {"image": ["image"]}, "backend": "shm"}],
    },
    {
        "op": "input_format",
        "input": "image",
        "format": {"name": "avro", "schema": "/s/image.avsc", "type": None, "reader_schema": None},
    },
    {"op": "peer_failed", "peer": "camera", "error": "exit status 1"},
    {"op": "peer_restarted", "peer": "camera"},
    {"op": "param_update", "key": "roi", "value": {"x": [1, 2.5], "on": True, "label": None}},
    {"op": "param_deleted", "key": "roi"},
]


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    yield a, b
    a.close()
    b.close()


def _shapes(union: Any) -> list[type]:
    return list(typing.get_args(union))


def _op(shape: type) -> str:
    (op,) = typing.get_args(typing.get_type_hints(shape)["op"])
    return str(op)


def test_every_op_has_exactly_one_shape_and_each_direction_its_own() -> None:
    to_daemon = {_op(s) for s in _shapes(ToDaemon)}
    to_node = {_op(s) for s in _shapes(ToNode)}
    assert to_daemon == {"register", "ready", "log", "stats", "ack"}
    assert to_node == {
        *("config", "error", "start", "stop", "peer_gone", "log_input", "logs_closed"),
        *("pause", "resume", "peer_restarting", "peer_links", "input_format"),
        *("peer_failed", "peer_restarted"),
        *("param_update", "param_deleted"),
    }
    assert len(_shapes(ControlMessage)) == len(to_daemon | to_node) == 21


def test_the_examples_here_cover_every_op() -> None:
    assert {m["op"] for m in MESSAGES} == {_op(s) for s in _shapes(ControlMessage)}


@pytest.mark.parametrize("message", MESSAGES, ids=[m["op"] for m in MESSAGES])
def test_every_message_crosses_the_socket_intact(
    message: ControlMessage, pair: tuple[socket.socket, socket.socket]
) -> None:
    send_control(pair[0], message)
    assert recv_control(pair[1]) == (message, [])


@pytest.mark.parametrize("message", MESSAGES, ids=[m["op"] for m in MESSAGES])
def test_every_message_has_its_shapes_keys(message: ControlMessage) -> None:
    (shape,) = [s for s in _shapes(ControlMessage) if _op(s) == message["op"]]
    assert _keys_fit(message, shape)


def test_the_configuration_and_its_parts_have_their_shapes_keys() -> None:
    assert _keys_fit(CONFIG, node_config.NodeConfig)
    assert all(_keys_fit(v, node_config.InputConfig) for v in CONFIG["inputs"].values())
    assert all(_keys_fit(link, node_config.LinkConfig) for link in CONFIG["links"])
    assert _keys_fit({k: v for k, v in CONFIG.items() if k != "descriptor"}, node_config.NodeConfig)
    assert not _keys_fit({k: v for k, v in CONFIG.items() if k != "inputs"}, node_config.NodeConfig)


def test_link_ends_ride_along_with_the_config(pair: tuple[socket.socket, socket.socket]) -> None:
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        send_control(pair[0], {"op": "config", "config": CONFIG}, [theirs.fileno()])
        message, fds = recv_control(pair[1])
        assert message == {"op": "config", "config": CONFIG}
        assert len(fds) == 1
        assert fds[0] != theirs.fileno()
        with socket.socket(fileno=fds[0]) as handed:  # the same socket, under a new descriptor
            mine.send(b"ping")
            assert handed.recv(8) == b"ping"
    finally:
        mine.close()
        theirs.close()


def test_a_gone_peer_reads_as_none(pair: tuple[socket.socket, socket.socket]) -> None:
    pair[0].close()
    assert recv_control(pair[1]) == (None, [])


def test_the_untyped_transport_is_the_same_bytes(pair: tuple[socket.socket, socket.socket]) -> None:
    send_json(pair[0], {"op": "stop"})
    send_control(pair[0], {"op": "stop"})
    assert pair[1].recv(64) == pair[1].recv(64) == b'{"op":"stop"}'
    send_control(pair[0], {"op": "peer_gone", "peer": "a"})
    assert recv_json(pair[1]) == ({"op": "peer_gone", "peer": "a"}, [])


def test_fds_from_reads_only_handed_over_descriptors() -> None:
    fd = os.dup(0)
    try:
        # a descriptor and a cut-off rest (as a too-small ancillary buffer leaves it)
        rights = (socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]).tobytes() + b"\x00\x00")
        assert fds_from([rights]) == [fd]
        assert fds_from([(socket.SOL_SOCKET, socket.SCM_CREDENTIALS, b"\x00" * 12)]) == []
    finally:
        os.close(fd)


def _keys_fit(value: Any, shape: type) -> bool:
    """Whether ``value`` has every required key of the TypedDict ``shape`` and no other key."""
    hints = typing.get_type_hints(shape, include_extras=True)
    optional = {k for k, hint in hints.items() if typing.get_origin(hint) is typing.NotRequired}
    return set(hints) - optional <= set(value) <= set(hints)
