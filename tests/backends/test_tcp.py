"""The ``tcp`` backend through the backend conformance kit."""

from __future__ import annotations

import socket
import time

import pytest

from doradus import ConnectError
from doradus.backends import LinkSpec
from doradus.backends._tcp import TcpBackend
from doradus.testing import CollectingReceiver, check_backend


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
    sender = TcpBackend("a", CollectingReceiver())
    retries, interval = 5, 0.05
    began = time.monotonic()
    with pytest.raises(ConnectError, match="after 5 attempts"):
        sender.open(
            [
                LinkSpec(
                    "b",
                    "out",
                    ("out",),
                    options={
                        "connect": f"127.0.0.1:{port}",
                        "connect_retries": retries,
                        "retry_interval": interval,
                    },
                )
            ],
            [],
        )
    assert time.monotonic() - began < retries * (interval + 1.0) + 2.0
