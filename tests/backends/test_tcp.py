"""The ``tcp`` backend through the backend conformance kit."""

from __future__ import annotations

import socket

from doradus.backends import LinkSpec
from doradus.backends._tcp import TcpBackend
from doradus.testing import CollectingReceiver, check_backend, check_unreachable


def tcp_pair(receiver: CollectingReceiver) -> tuple[TcpBackend, TcpBackend]:
    inbound = TcpBackend("b", receiver)
    inbound.open([LinkSpec("a", "in", routes={"out": ["in"]}, options={"listen": "127.0.0.1:0"})], [])
    inbound.start()
    assert inbound.address is not None
    host, port = inbound.address
    sender = TcpBackend("a", CollectingReceiver())
    sender.open([LinkSpec("b", "out", ("out",), options={"connect": f"{host}:{port}"})], [])
    sender.start()
    return sender, inbound


def test_conformance() -> None:
    check_backend(tcp_pair)


def test_an_unreachable_peer_fails_within_the_retry_bound() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    check_unreachable(TcpBackend, f"127.0.0.1:{port}", retries=5, interval=0.05)
