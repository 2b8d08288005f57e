"""The ``websocket`` backend through the backend conformance kit."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from doradus import ConnectError
from doradus.backends import LinkSpec, get_backend
from doradus.backends._websocket import WebSocketBackend
from doradus.testing import CollectingReceiver, check_backend, check_unreachable, outgoing


def websocket_pair(receiver: CollectingReceiver) -> tuple[WebSocketBackend, WebSocketBackend]:
    inbound = WebSocketBackend("b", receiver)
    inbound.open([LinkSpec("a", "in", routes={"out": ["in"]}, options={"listen": "127.0.0.1:0"})], [])
    inbound.start()
    assert inbound.address is not None
    host, port = inbound.address
    sender = WebSocketBackend("a", CollectingReceiver())
    sender.open([LinkSpec("b", "out", ("out",), options={"connect": f"{host}:{port}"})], [])
    sender.start()
    return sender, inbound


def test_registered() -> None:
    assert get_backend("websocket") is WebSocketBackend


def test_conformance() -> None:
    check_backend(websocket_pair)


def test_a_sender_that_vanishes_closes_the_input() -> None:
    receiver = CollectingReceiver()
    sender, inbound = websocket_pair(receiver)
    try:
        sender.send(outgoing([1], 0))
        assert receiver.wait_for(lambda r: len(r.values) == 1, 10)
        for link in sender.out_links:  # no END frame: the connection just drops
            link.handle.close()
        assert receiver.wait_for(lambda r: "in" in r.closed_inputs, 10)
    finally:
        sender.close()
        inbound.close()


def test_an_unreachable_peer_fails_within_the_retry_bound() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    check_unreachable(WebSocketBackend, f"127.0.0.1:{port}", retries=5, interval=0.05)


def test_wss_with_a_private_ca(tmp_path: Path) -> None:
    quic = pytest.importorskip("doradus.backends._quic_tls")  # its certificate generator (cryptography)
    cert_pem, key_pem = quic.generate_certificate()
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_bytes(cert_pem)
    key.write_bytes(key_pem)
    receiver = CollectingReceiver()
    inbound = WebSocketBackend("b", receiver)
    tls = {"cert": str(cert), "key": str(key)}
    inbound.open([LinkSpec("a", "in", routes={"out": ["in"]}, options={"tls": tls})], [])
    assert inbound.address is not None
    host, port = inbound.address
    sender = WebSocketBackend("a", CollectingReceiver())
    try:
        options = {"connect": f"{host}:{port}", "tls": {"ca": str(cert)}}
        sender.open([LinkSpec("b", "out", ("out",), options=options)], [])
        sender.send(outgoing(b"x" * 100_000, 0))
        sender.close()
        assert receiver.wait_for(lambda r: len(r.values) == 1 and "in" in r.closed_inputs, 10)
    finally:
        sender.close()
        inbound.close()
    stranger = WebSocketBackend("c", CollectingReceiver())  # no CA: the default store rejects the cert
    with pytest.raises(ConnectError):
        stranger.open(
            [
                LinkSpec(
                    "b",
                    "out",
                    ("out",),
                    options={"connect": f"{host}:{port}", "tls": {}, "connect_retries": 1},
                )
            ],
            [],
        )
