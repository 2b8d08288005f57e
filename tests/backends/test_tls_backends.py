"""TLS on the ``grpc`` and ``zenoh`` backends, with a CA and certificates made for the test.

A real sender and receiver per backend: frames arrive over TLS; a plain sender cannot reach a
TLS receiver; a sender that trusts another CA is refused with an error that says why (the
certificate), and nothing arrives; mutual TLS refuses a sender without a client certificate.
"""

from __future__ import annotations

import json
import socket
import uuid
from pathlib import Path
from typing import Any

import pytest
from tests.backends.tls_pki import Pki, make_pki

from doradus import ConnectError, TransportError
from doradus._dataflow.loader import check_dataflow
from doradus.backends import LinkSpec
from doradus.backends._grpc import GrpcBackend
from doradus.backends._tls import TlsFiles
from doradus.testing import CollectingReceiver, outgoing

COUNT = 5
WAIT = 20.0  # seconds for frames to arrive: generous, the machine is shared
FAST_FAIL = {"connect_retries": 5, "retry_interval": 0.1}  # the bound for a refused sender: 0.5 s


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
