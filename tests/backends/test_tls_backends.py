"""TLS on the ``grpc`` and ``zenoh`` backends, with a CA and certificates made for the test.

A real sender and receiver per backend: frames arrive over TLS; a plain sender cannot reach a
TLS receiver; a sender that trusts another CA is refused with an error that says why (the
certificate), and nothing arrives; mutual TLS refuses a sender without a client certificate.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import socket
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from doradus import ConnectError, TransportError
from doradus._dataflow.loader import check_dataflow
from doradus.backends import LinkSpec
from doradus.backends._grpc import GrpcBackend
from doradus.backends._tls import TlsFiles
from doradus.testing import CollectingReceiver, outgoing

x509 = pytest.importorskip("cryptography.x509")
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402  (after the skip)
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID  # noqa: E402

COUNT = 5
WAIT = 20.0  # seconds for frames to arrive: generous, the machine is shared
FAST_FAIL = {"connect_retries": 5, "retry_interval": 0.1}  # the bound for a refused sender: 0.5 s


@dataclass(frozen=True)
class Pki:
    """A CA's certificate, and a certificate and key it signed for 127.0.0.1 and localhost."""

    ca: Path
    cert: Path
    key: Path

    def server(self, **extra: Any) -> dict[str, Any]:
        return {"cert": str(self.cert), "key": str(self.key), **extra}

    def client(self, **extra: Any) -> dict[str, Any]:
        return {"ca": str(self.ca), **extra}


def _pem(key: Any) -> bytes:
    return bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )


def make_pki(folder: Path, tag: str) -> Pki:
    """A fresh CA named ``tag`` and a leaf certificate it signed, written under ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"doradus test CA {tag}")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    usages = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pki = Pki(folder / "ca.pem", folder / "cert.pem", folder / "key.pem")
    pki.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    pki.cert.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    pki.key.write_bytes(_pem(key))
    pki.key.chmod(0o600)
    return pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"), "trusted")


@pytest.fixture(scope="module")
def other_pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("other-pki"), "other")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def send_and_count(sender: Any, receiver: CollectingReceiver) -> None:
    for seq in range(COUNT):
        sender.send(outgoing([seq], seq))
    assert receiver.wait_for(lambda r: len(r.values) == COUNT, WAIT), receiver.errors
    assert [value.to_pylist() for _inputs, value in receiver.values] == [[seq] for seq in range(COUNT)]


# ----------------------------------------------------------------------------------------- gRPC
def grpc_receiver(receiver: CollectingReceiver, tls: dict[str, Any]) -> GrpcBackend:
    inbound = GrpcBackend("b", receiver)
    options = {"listen": "127.0.0.1:0", "tls": tls}
    inbound.open([LinkSpec("a", "in", routes={"out": ["in"]}, options=options)], [])
    inbound.start()
    return inbound


def grpc_sender(inbound: GrpcBackend, tls: dict[str, Any] | None, **extra: Any) -> GrpcBackend:
    assert inbound.address is not None
    host, port = inbound.address
    sender = GrpcBackend("a", CollectingReceiver())
    options = {"connect": f"{host}:{port}", **extra} | ({"tls": tls} if tls is not None else {})
    sender.open([LinkSpec("b", "out", ("out",), options=options)], [])
    sender.start()
    return sender


def test_grpc_carries_frames_over_tls(pki: Pki) -> None:
    receiver = CollectingReceiver()
    inbound = grpc_receiver(receiver, pki.server())
    try:
        sender = grpc_sender(inbound, pki.client())
        try:
            send_and_count(sender, receiver)
            assert inbound.address is not None  # the refusal diagnosis finds nothing wrong here:
            assert TlsFiles(ca=str(pki.ca)).handshake_problem(*inbound.address, alpn=("h2",)) is None
        finally:
            sender.close()
    finally:
        inbound.close()


@pytest.mark.parametrize("tls", ["other CA", "no TLS"])
def test_grpc_refuses_a_sender_that_does_not_trust_the_receiver(pki: Pki, other_pki: Pki, tls: str) -> None:
    receiver = CollectingReceiver()
    inbound = grpc_receiver(receiver, pki.server())
    try:
        with pytest.raises(ConnectError) as raised:
            grpc_sender(inbound, other_pki.client() if tls == "other CA" else None, **FAST_FAIL)
        if tls == "other CA":
            assert "CERTIFICATE_VERIFY_FAILED" in str(raised.value)
        assert receiver.values == []
    finally:
        inbound.close()


def test_grpc_mutual_tls_wants_a_client_certificate(pki: Pki) -> None:
    receiver = CollectingReceiver()
    inbound = grpc_receiver(receiver, pki.server(ca=str(pki.ca), require_client=True))
    try:
        with pytest.raises(ConnectError, match="client certificate"):
            grpc_sender(inbound, pki.client(), **FAST_FAIL)
        sender = grpc_sender(inbound, pki.client(cert=str(pki.cert), key=str(pki.key)))
        try:
            send_and_count(sender, receiver)
        finally:
            sender.close()
    finally:
        inbound.close()


def test_a_grpc_receiver_with_tls_needs_its_certificate(pki: Pki) -> None:
    with pytest.raises(TransportError, match="needs `cert` and `key`"):
        grpc_receiver(CollectingReceiver(), pki.client())


# ---------------------------------------------------------------------------------------- Zenoh
def zenoh_pair(
    receiver: CollectingReceiver, receiver_tls: dict[str, Any], sender_tls: dict[str, Any], **extra: Any
) -> tuple[Any, Any]:
    from doradus.backends._zenoh import ZenohBackend

    prefix, endpoint = f"doradus/{uuid.uuid4().hex[:12]}/", f"tls/127.0.0.1:{free_port()}"
    inbound = ZenohBackend("b", receiver)
    options = {"prefix": prefix, "listen": [endpoint], "tls": receiver_tls}
    inbound.open([LinkSpec("a", "in", routes={"out": ["in"]}, options=options)], [])
    inbound.start()
    sender = ZenohBackend("a", CollectingReceiver())
    try:
        options = {"prefix": prefix, "connect": [endpoint], "listen": [], "tls": sender_tls, **extra}
        sender.open([LinkSpec("b", "out", ("out",), options=options)], [])
    except BaseException:
        inbound.close()
        raise
    sender.start()
    return sender, inbound


def test_zenoh_carries_frames_over_tls(pki: Pki) -> None:
    pytest.importorskip("zenoh")
    receiver = CollectingReceiver()
    sender, inbound = zenoh_pair(receiver, pki.server(ca=str(pki.ca)), pki.client())
    try:
        assert sender.config is not None
        endpoint = json.loads(sender.config.get_json("connect/endpoints"))[0]
        assert endpoint.startswith("tls/127.0.0.1:")
        send_and_count(sender, receiver)
        port = int(endpoint.rpartition(":")[2])  # the refusal diagnosis finds nothing wrong here:
        assert TlsFiles(ca=str(pki.ca)).handshake_problem("127.0.0.1", port) is None
    finally:
        sender.close()
        inbound.close()


def test_zenoh_refuses_a_sender_that_trusts_another_ca(pki: Pki, other_pki: Pki) -> None:
    pytest.importorskip("zenoh")
    receiver = CollectingReceiver()
    with pytest.raises(ConnectError) as raised:
        zenoh_pair(receiver, pki.server(), other_pki.client(), connect_timeout=1.0)
    assert "CERTIFICATE_VERIFY_FAILED" in str(raised.value)
    assert receiver.values == []


def test_zenoh_mutual_tls(pki: Pki) -> None:
    pytest.importorskip("zenoh")
    receiver = CollectingReceiver()
    both = pki.server(ca=str(pki.ca), require_client=True)
    with pytest.raises(ConnectError, match="CERTIFICATE_REQUIRED"):
        zenoh_pair(receiver, both, pki.client(), connect_timeout=1.0)
    sender, inbound = zenoh_pair(receiver, both, both)
    try:
        send_and_count(sender, receiver)
    finally:
        sender.close()
        inbound.close()


def test_zenoh_tls_refuses_a_clear_text_endpoint(pki: Pki) -> None:
    pytest.importorskip("zenoh")
    from doradus.backends._zenoh_router import session_config

    with pytest.raises(TransportError, match="needs `tls/` endpoints"):
        session_config(listen=["tcp/127.0.0.1:0"], tls=TlsFiles(cert=str(pki.cert), key=str(pki.key)))


# -------------------------------------------------------------------------------- dataflow files
def test_a_dataflow_file_accepts_tls_for_grpc_and_zenoh(tmp_path: Path) -> None:
    (tmp_path / "dataflow.yml").write_text(
        """
communication:
  remote: grpc
  grpc:
    tls: {ca: ca.pem, cert: cert.pem, key: key.pem, require_client: true}
  zenoh:
    tls: {ca: ca.pem}
nodes:
  - id: a
    path: dynamic
"""
    )
    dataflow, problems = check_dataflow(tmp_path / "dataflow.yml")
    assert dataflow is not None, "\n".join(map(str, problems))
    assert not [p for p in problems if p.severity == "error"]
