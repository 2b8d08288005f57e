"""The ``grpc`` backend through the backend conformance kit."""

from __future__ import annotations

import socket

from doradus.backends import LinkSpec, get_backend
from doradus.backends._grpc import GrpcBackend
from doradus.testing import CollectingReceiver, check_backend, check_unreachable, outgoing


def grpc_pair(receiver: CollectingReceiver) -> tuple[GrpcBackend, GrpcBackend]:
    inbound = GrpcBackend("b", receiver)
    inbound.open([LinkSpec("a", "in", routes={"out": ["in"]}, options={"listen": "127.0.0.1:0"})], [])
    inbound.start()
    assert inbound.address is not None
    host, port = inbound.address
    sender = GrpcBackend("a", CollectingReceiver())
    sender.open([LinkSpec("b", "out", ("out",), options={"connect": f"{host}:{port}"})], [])
    sender.start()
    return sender, inbound


def test_registered() -> None:
    assert get_backend("grpc") is GrpcBackend


def test_conformance() -> None:
    check_backend(grpc_pair)


def test_a_sender_that_vanishes_closes_the_input() -> None:
    receiver = CollectingReceiver()
    sender, inbound = grpc_pair(receiver)
    try:
        sender.send(outgoing([1], 0))
        assert receiver.wait_for(lambda r: len(r.values) == 1, 10)
        for link in sender.out_links:  # no END frame: the call is cancelled
            link.handle[2].cancel()
        assert receiver.wait_for(lambda r: "in" in r.closed_inputs, 10)
    finally:
        sender.close()
        inbound.close()


def test_an_unreachable_peer_fails_within_the_retry_bound() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    check_unreachable(GrpcBackend, f"127.0.0.1:{port}", retries=5, interval=0.05)
