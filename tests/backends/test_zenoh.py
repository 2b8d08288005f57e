"""The ``zenoh`` backend through the backend conformance kit, peer to peer and through a router."""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import psutil
import pytest

pytest.importorskip("zenoh")

from doradus import ConnectError
from doradus.backends import LinkSpec, get_backend
from doradus.backends._zenoh import ZenohBackend
from doradus.backends._zenoh_router import ZenohRouter, open_router, session_config
from doradus.testing import CollectingReceiver, check_backend, outgoing


def free_endpoint() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"tcp/127.0.0.1:{probe.getsockname()[1]}"


def run_prefix() -> str:
    return f"doradus/{uuid.uuid4().hex[:12]}/"


def open_pair(
    receiver: CollectingReceiver,
    receiver_options: dict[str, Any],
    sender_options: dict[str, Any],
) -> tuple[ZenohBackend, ZenohBackend]:
    inbound = ZenohBackend("b", receiver)
    inbound.open([LinkSpec("a", "in", routes={"out": ["in"]}, options=receiver_options)], [])
    inbound.start()
    sender = ZenohBackend("a", CollectingReceiver())
    try:
        sender.open([LinkSpec("b", "out", ("out",), options=sender_options)], [])
    except BaseException:
        inbound.close()
        raise
    sender.start()
    return sender, inbound


def peer_pair(receiver: CollectingReceiver) -> tuple[ZenohBackend, ZenohBackend]:
    """The receiver listens on a loopback port, the sender connects to it."""
    prefix, endpoint = run_prefix(), free_endpoint()
    return open_pair(
        receiver,
        {"prefix": prefix, "listen": [endpoint]},
        {"prefix": prefix, "connect": [endpoint], "listen": []},
    )


@pytest.fixture
def router() -> Iterator[ZenohRouter]:
    endpoint = free_endpoint()
    with open_router([endpoint], []) as started:
        yield started


def routed_pair(
    router: ZenohRouter, receiver: CollectingReceiver, prefix: str | None = None
) -> tuple[ZenohBackend, ZenohBackend]:
    """Both nodes connect to the router as Zenoh clients (they listen nowhere)."""
    options = {"prefix": prefix or run_prefix(), "connect": router.listen, "mode": "client"}
    return open_pair(receiver, dict(options), dict(options))


def test_registered() -> None:
    assert get_backend("zenoh") is ZenohBackend


def test_conformance_peer_to_peer() -> None:
    check_backend(peer_pair)


def test_conformance_through_a_router(router: ZenohRouter) -> None:
    check_backend(lambda r: routed_pair(router, r))


def test_conformance_without_shared_memory() -> None:
    def pair(receiver: CollectingReceiver) -> tuple[ZenohBackend, ZenohBackend]:
        prefix, endpoint = run_prefix(), free_endpoint()
        return open_pair(
            receiver,
            {"prefix": prefix, "listen": [endpoint], "shm": False},
            {"prefix": prefix, "connect": [endpoint], "shm": False},
        )

    check_backend(pair, messages=1000)


def test_the_sender_may_listen_and_the_receiver_connect() -> None:
    prefix, endpoint = run_prefix(), free_endpoint()
    receiver = CollectingReceiver()
    sender = ZenohBackend("a", CollectingReceiver())
    inbound = ZenohBackend("b", receiver)
    # the sender opens first (it waits for its receiver), so open it from a thread
    errors: list[BaseException] = []

    def open_sender() -> None:
        try:
            sender.open(
                [LinkSpec("b", "out", ("out",), options={"prefix": prefix, "listen": [endpoint]})], []
            )
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=open_sender)
    thread.start()
    try:
        time.sleep(0.2)
        inbound.open(
            [LinkSpec("a", "in", routes={"out": ["in"]}, options={"prefix": prefix, "connect": [endpoint]})],
            [],
        )
        thread.join(15)
        assert not errors, errors
        sender.send(outgoing([42], 0))  # the first message right after open is not lost
        assert receiver.wait_for(lambda r: len(r.values) == 1, 10)
        assert receiver.values[0][1].to_pylist() == [42]
    finally:
        thread.join(15)
        sender.close()
        inbound.close()


def test_an_unreachable_endpoint_fails_within_the_bound() -> None:
    sender = ZenohBackend("a", CollectingReceiver())
    began = time.monotonic()
    with pytest.raises(ConnectError):
        sender.open(
            [LinkSpec("b", "out", ("out",), options={"connect": [free_endpoint()], "connect_timeout": 1.0})],
            [],
        )
    assert time.monotonic() - began < 4.0


def test_peers_behind_a_router_are_told_to_be_clients(router: ZenohRouter) -> None:
    options = {"prefix": run_prefix(), "connect": router.listen, "connect_timeout": 1.0}
    with pytest.raises(ConnectError, match="mode: client"):
        open_pair(CollectingReceiver(), dict(options), dict(options))


def test_a_receiver_that_never_subscribes_fails_within_the_bound(router: ZenohRouter) -> None:
    sender = ZenohBackend("a", CollectingReceiver())
    began = time.monotonic()
    with pytest.raises(ConnectError, match="did not subscribe"):
        sender.open(
            [
                LinkSpec(
                    "b",
                    "out",
                    ("out",),
                    options={
                        "connect": router.listen,
                        "mode": "client",
                        "connect_retries": 5,
                        "retry_interval": 0.2,
                    },
                )
            ],
            [],
        )
    assert time.monotonic() - began < 4.0


def test_two_runs_on_one_router_never_mix(router: ZenohRouter) -> None:
    first, second = CollectingReceiver(), CollectingReceiver()
    pair1 = routed_pair(router, first, "doradus/run-one/")
    pair2 = routed_pair(router, second, "doradus/run-two/")
    try:
        for seq in range(50):
            pair1[0].send(outgoing([seq], seq))
            pair2[0].send(outgoing([1000 + seq], seq))
        assert first.wait_for(lambda r: len(r.values) >= 50, 10)
        assert second.wait_for(lambda r: len(r.values) >= 50, 10)
        time.sleep(0.2)
        assert [v.to_pylist()[0] for _i, v in first.values] == list(range(50))
        assert [v.to_pylist()[0] for _i, v in second.values] == list(range(1000, 1050))
    finally:
        for backend in (*pair1, *pair2):
            backend.close()


def test_a_vanished_sender_closes_its_receivers_inputs(router: ZenohRouter) -> None:
    receiver = CollectingReceiver()
    sender, inbound = routed_pair(router, receiver)
    try:
        sender.send(outgoing([1], 0))
        assert receiver.wait_for(lambda r: len(r.values) == 1, 10)
        sender._close_transport()  # like a crash: no END frame
        assert receiver.wait_for(lambda r: "in" in r.closed_inputs, 10)
    finally:
        sender.close()
        inbound.close()


def test_only_loopback_listeners_and_no_scouting(router: ZenohRouter) -> None:
    receiver = CollectingReceiver()
    pairs = [peer_pair(receiver), routed_pair(router, CollectingReceiver())]
    default = ZenohBackend("c", CollectingReceiver())  # no options at all: the loopback default
    try:
        default.open([LinkSpec("d", "in", routes={"out": ["in"]})], [])
        backends = [*(b for pair in pairs for b in pair), default]
        listening = [
            c.laddr.ip
            for c in psutil.Process().net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN
        ]
        assert listening, "the test should have listening sockets"
        assert all(ip in ("127.0.0.1", "::1") for ip in listening), listening
        for backend in backends:
            assert backend.config is not None
            assert json.loads(backend.config.get_json("scouting/multicast/enabled")) is False
            assert json.loads(backend.config.get_json("scouting/gossip/enabled")) is False
        assert default.config is not None
        assert json.loads(default.config.get_json("listen/endpoints")) == ["tcp/127.0.0.1:0"]
        router_config = session_config("router", router.listen)
        assert json.loads(router_config.get_json("scouting/multicast/enabled")) is False
    finally:
        for pair in pairs:
            for backend in pair:
                backend.close()
        default.close()
