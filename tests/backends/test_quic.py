"""The ``quic`` backend through the backend conformance kit, and its certificates."""

from __future__ import annotations

import socket
import stat
from pathlib import Path

import pytest

from doradus import ConnectError
from doradus.backends import LinkSpec, get_backend
from doradus.backends._quic import QuicBackend
from doradus.backends._quic_tls import ensure_certificate, generate_certificate
from doradus.testing import CollectingReceiver, check_backend, check_unreachable, outgoing


@pytest.fixture(autouse=True)
def config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test generates its certificate in its own folder, never in the real ~/.config."""
    home = tmp_path / "config"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home))
    return home


def quic_pair(receiver: CollectingReceiver, **sender_options: object) -> tuple[QuicBackend, QuicBackend]:
    inbound = QuicBackend("b", receiver)
    inbound.open([LinkSpec("a", "in", routes={"out": ["in"]}, options={"listen": "127.0.0.1:0"})], [])
    inbound.start()
    assert inbound.address is not None
    host, port = inbound.address
    sender = QuicBackend("a", CollectingReceiver())
    try:
        sender.open(
            [LinkSpec("b", "out", ("out",), options={"connect": f"{host}:{port}", **sender_options})], []
        )
    except BaseException:
        inbound.close()
        raise
    sender.start()
    return sender, inbound


def test_registered() -> None:
    assert get_backend("quic") is QuicBackend


@pytest.mark.slow  # ~15 s: aioquic is pure Python, and both ends share this process's GIL
def test_conformance() -> None:
    check_backend(quic_pair)


def test_a_sender_that_vanishes_closes_the_input() -> None:
    receiver = CollectingReceiver()
    sender, inbound = quic_pair(receiver)
    try:
        sender.send(outgoing([1], 0))
        assert receiver.wait_for(lambda r: len(r.values) == 1, 10)
        out = sender.out_links[0].handle
        assert sender._loop is not None
        sender._loop.call_soon_threadsafe(out.protocol.close)  # no END frame, no end of stream
        assert receiver.wait_for(lambda r: "in" in r.closed_inputs, 10)
    finally:
        sender.close()
        inbound.close()


def test_the_generated_certificate_is_private_and_reused(config_home: Path) -> None:
    receiver = CollectingReceiver()
    sender, inbound = quic_pair(receiver)
    sender.close()
    inbound.close()
    folder = config_home / "doradus" / "quic"
    cert, key = folder / "cert.pem", folder / "key.pem"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(cert.stat().st_mode) == 0o600
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    before = (cert.read_bytes(), key.read_bytes(), cert.stat().st_mtime_ns)
    assert ensure_certificate() == (cert, key)
    receiver = CollectingReceiver()
    sender, inbound = quic_pair(receiver)
    try:
        sender.send(outgoing([7], 0))
        assert receiver.wait_for(lambda r: len(r.values) == 1, 10)
    finally:
        sender.close()
        inbound.close()
    assert (cert.read_bytes(), key.read_bytes(), cert.stat().st_mtime_ns) == before


def test_a_client_with_another_ca_cannot_connect(tmp_path: Path) -> None:
    other, _key = generate_certificate()
    ca = tmp_path / "other-ca.pem"
    ca.write_bytes(other)
    with pytest.raises(ConnectError, match="after 2 attempts"):
        quic_pair(CollectingReceiver(), ca=str(ca), connect_retries=2, retry_interval=0.05)


def test_explicit_certificate_options(tmp_path: Path) -> None:
    cert_pem, key_pem = generate_certificate()
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    cert.write_bytes(cert_pem)
    key.write_bytes(key_pem)
    receiver = CollectingReceiver()
    inbound = QuicBackend("b", receiver)
    inbound.open(
        [LinkSpec("a", "in", routes={"out": ["in"]}, options={"cert": str(cert), "key": str(key)})], []
    )
    assert inbound.address is not None
    host, port = inbound.address
    sender = QuicBackend("a", CollectingReceiver())
    try:
        sender.open(
            [LinkSpec("b", "out", ("out",), options={"connect": f"{host}:{port}", "ca": str(cert)})], []
        )
        sender.send(outgoing([3], 0))
        assert receiver.wait_for(lambda r: len(r.values) == 1, 10)
    finally:
        sender.close()
        inbound.close()


def test_an_unreachable_peer_fails_within_the_retry_bound() -> None:
    with socket.socket(type=socket.SOCK_DGRAM) as probe:  # a UDP port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    check_unreachable(QuicBackend, f"127.0.0.1:{port}", retries=5, interval=0.05)
