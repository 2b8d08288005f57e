"""TLS between machine routers: a dataflow across two machine daemons with zenoh ``tls``.

Real processes on 127.0.0.1: a coordinator (``doradus up``) and two ``doradus daemon
--machine-id`` processes, each the daemon of one "machine", running in a folder of its own so
that the dataflow's relative certificate paths must start from the dataflow file's folder.
A source on machine ``tls-a`` sends numbered messages to a sink on ``tls-b`` through the
machines' Zenoh routers with mutual TLS. Checked: every message arrives in order; each router's
port completes a TLS handshake with the test CA and certificate and presents that certificate,
refuses a client without a certificate and a clear-text ``tcp/`` Zenoh client; the nodes
reach only their own machine's router and listen nowhere. A capture of the loopback traffic
(root only) shows that every connection to a router carries TLS records and never the
messages' text. A CA that did not sign the routers' certificate, or a missing file, fails the
start with an error naming the option, the file and the fix.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest
from tests.backends.tls_pki import Pki, make_pki
from tests.cli.conftest import DORADUS, Control, open_control
from tests.cli.test_control_plane import eventually

from doradus._exceptions import ConnectError
from doradus.backends._tls import TlsFiles

pytest.importorskip("zenoh")

MACHINES = ("tls-a", "tls-b")
TICK_MS = 20
WAIT = 60.0  # seconds for a run to start, deliver or end: generous, the machine is shared
FLOW = """
communication:
  remote: zenoh
  zenoh:
    tls: {TLS}
nodes:
  - id: source
    path: source.py
    deploy: {machine: tls-a}
    inputs:
      tick: dora/timer/millis/TICK
    outputs: [out]
  - id: sink
    path: sink.py
    deploy: {machine: tls-b}
    inputs:
      x: {source: source/out, queue_size: 100000}
"""
SOURCE_PY = """
    import os
    from doradus import Input, Node

    node = Node()
    sent = 0
    for event in node:  # until the test writes `stop`
        if isinstance(event, Input):
            if os.path.exists("stop"):
                break
            node.send_output("out", [f"{os.environ['MARKER']}-{sent:06d}"])
            sent += 1
            with open("sent.tmp", "w") as file:
                file.write(str(sent))
            os.replace("sent.tmp", "sent")
"""
SINK_PY = """
    from doradus import Input, Node

    with open("got.txt", "a") as got:
        for event in Node():
            if isinstance(event, Input):
                got.write(event.value[0].as_py() + "\\n")
                got.flush()
"""


@dataclass
class Cluster:
    control: Control
    pki: Pki
    daemons: dict[str, subprocess.Popen[str]] = field(default_factory=dict)

    def flow(self, name: str, tls: dict[str, Any]) -> Path:
        """A folder with the dataflow (``tls`` as given) and its nodes; the dataflow file's path."""
        folder = self.control.folder / name
        folder.mkdir()
        (folder / "flow.yml").write_text(FLOW.replace("{TLS}", json.dumps(tls)).replace("TICK", str(TICK_MS)))
        (folder / "source.py").write_text(textwrap.dedent(SOURCE_PY).lstrip())
        (folder / "sink.py").write_text(textwrap.dedent(SINK_PY).lstrip())
        return folder / "flow.yml"

    def routers(self) -> dict[str, int]:
        """Each machine's router port: the port its daemon listens on (the router runs inside it)."""
        found: dict[str, int] = {}
        for machine, daemon in self.daemons.items():
            ports = [c.laddr.port for c in _tcp(daemon.pid) if c.status == psutil.CONN_LISTEN]
            if len(ports) == 1:
                found[machine] = ports[0]
        return found


def _tcp(pid: int) -> list[Any]:
    return list(psutil.Process(pid).net_connections(kind="tcp"))


def _nodes(daemon: subprocess.Popen[str]) -> dict[str, int]:
    """Node id → pid of the node processes a daemon started (``source.py``, ``sink.py``)."""
    found: dict[str, int] = {}
    for child in psutil.Process(daemon.pid).children(recursive=True):
        try:
            for part in child.cmdline():
                if part.endswith(("source.py", "sink.py")):
                    found[Path(part).stem] = child.pid
        except psutil.NoSuchProcess:
            pass
    return found


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    base = tmp_path_factory.mktemp("router-tls")
    with open_control(base / "project") as control:
        pki = make_pki(control.folder / "pki", "router")  # the dataflows name them ../pki/...
        up = control("up")
        assert up.returncode == 0, up.stderr
        cluster = Cluster(control, pki)
        try:
            for machine in MACHINES:
                cwd = base / f"daemon-{machine}"  # elsewhere: relative paths must not start here
                cwd.mkdir()
                cluster.daemons[machine] = subprocess.Popen(
                    [*DORADUS, "daemon", "--machine-id", machine, "--retries", "20"],
                    env=control.env,
                    cwd=cwd,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    text=True,
                )

            def connected() -> bool:
                seats = {d["machine_id"]: d["status"] for d in control.api("GET", "/daemons").json()}
                return all(seats.get(m) == "connected" for m in MACHINES)

            assert eventually(connected, WAIT), "the daemons did not connect"
            yield cluster
        finally:
            for daemon in cluster.daemons.values():
                daemon.terminate()
            for daemon in cluster.daemons.values():
                try:
                    daemon.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    daemon.kill()
                    daemon.wait(timeout=10)


def _tls(pki: Pki, **extra: Any) -> dict[str, Any]:
    """Relative paths, as a project keeps its certificates beside its dataflow."""
    return {"ca": "../pki/ca.pem", "cert": "../pki/cert.pem", "key": "../pki/key.pem", **extra}


def _start(cluster: Cluster, flow: Path, marker: str) -> str:
    started = cluster.control("start", str(flow), "--detach", "--env", f"MARKER={marker}", timeout=WAIT)
    assert started.returncode == 0, started.stdout + started.stderr
    return started.stdout.strip().splitlines()[-1]


def _received(folder: Path) -> list[str]:
    got = folder / "got.txt"
    return got.read_text().splitlines() if got.exists() else []


def _finish(cluster: Cluster, folder: Path, run_id: str, marker: str) -> list[str]:
    """Stop the source, wait for the run to finish; the messages it sent, which all arrived in order."""
    (folder / "stop").touch()

    def ended() -> bool:
        return bool(cluster.control.api("GET", f"/dataflows/{run_id}").json()["status"] != "running")

    assert eventually(ended, WAIT)
    run = cluster.control.api("GET", f"/dataflows/{run_id}").json()
    assert run["status"] == "finished", run
    sent = int((folder / "sent").read_text())
    expected = [f"{marker}-{seq:06d}" for seq in range(sent)]
    assert _received(folder) == expected
    assert eventually(lambda: "sink/x" in _edges(folder, run_id), 10)  # each machine merges its own
    assert _edges(folder, run_id)["sink/x"]["backend"] == "zenoh"
    return expected


def _edges(folder: Path, run_id: str) -> dict[str, Any]:
    path = folder / "out" / run_id / "edges.json"
    try:
        return {e["target"]: e for e in json.loads(path.read_text())}
    except (OSError, ValueError):
        return {}


def _peer_certificate(pki: Pki, port: int) -> bytes:
    files = TlsFiles(ca=str(pki.ca), cert=str(pki.cert), key=str(pki.key))
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        files.context().wrap_socket(raw, server_hostname="127.0.0.1") as wrapped,
    ):
        der = wrapped.getpeercert(binary_form=True)
        assert der is not None
        return der


# ------------------------------------------------------------------------------------------ tests
def test_messages_cross_machines_through_routers_that_speak_only_tls(cluster: Cluster) -> None:
    from doradus.backends._zenoh_router import open_session, session_config

    flow = cluster.flow("mutual", _tls(cluster.pki, require_client=True))
    marker = f"m{uuid.uuid4().hex[:10]}"
    run_id = _start(cluster, flow, marker)
    assert eventually(lambda: len(_received(flow.parent)) >= 10, WAIT), "no message crossed the machines"
    routers = cluster.routers()
    assert set(routers) == set(MACHINES), routers
    leaf = ssl.PEM_cert_to_DER_cert(cluster.pki.cert.read_text())
    for machine, port in routers.items():
        # The router presents the dataflow's certificate, checked against its CA ...
        assert _peer_certificate(cluster.pki, port) == leaf, machine
        mutual = TlsFiles(ca=str(cluster.pki.ca), cert=str(cluster.pki.cert), key=str(cluster.pki.key))
        assert mutual.handshake_problem("127.0.0.1", port) is None
        # ... wants a client certificate (require_client) ...
        refused = TlsFiles(ca=str(cluster.pki.ca)).handshake_problem("127.0.0.1", port)
        assert refused is not None
        assert "CERTIFICATE_REQUIRED" in refused, refused
        # ... and no clear-text Zenoh client gets in.
        plain = session_config("client", [], [f"tcp/127.0.0.1:{port}"], connect_timeout=1.0)
        with pytest.raises(ConnectError):
            open_session(plain, "a clear-text client").close()  # type: ignore[no-untyped-call]
    # Each node reaches its own machine's router only, and listens nowhere.
    for machine, daemon in cluster.daemons.items():
        for node, pid in _nodes(daemon).items():
            connections = _tcp(pid)
            assert not [c for c in connections if c.status == psutil.CONN_LISTEN], node
            remote_ports = {c.raddr.port for c in connections if c.status == psutil.CONN_ESTABLISHED}
            assert remote_ports == {routers[machine]}, (node, remote_ports, routers)
    # The routers are connected to each other.
    a_to_b = [c for c in _tcp(cluster.daemons["tls-a"].pid) if c.raddr and c.raddr.port == routers["tls-b"]]
    b_to_a = [c for c in _tcp(cluster.daemons["tls-b"].pid) if c.raddr and c.raddr.port == routers["tls-a"]]
    assert a_to_b or b_to_a
    assert len(_finish(cluster, flow.parent, run_id, marker)) >= 10


def test_a_ca_that_did_not_sign_the_routers_certificate_fails_the_start(
    cluster: Cluster, tmp_path: Path
) -> None:
    other = make_pki(tmp_path / "other", "other")
    flow = cluster.flow("wrong-ca", {**_tls(cluster.pki), "ca": str(other.ca)})
    started = cluster.control("start", str(flow), "--detach", "--env", "MARKER=x", timeout=WAIT)
    assert started.returncode != 0
    error = started.stdout + started.stderr
    assert "CERTIFICATE_VERIFY_FAILED" in error, error
    assert "communication.zenoh.tls" in error, error
    assert "`ca` must have signed `cert`" in error, error
    assert not (flow.parent / "got.txt").exists()


def test_a_missing_file_fails_the_start_naming_it(cluster: Cluster) -> None:
    flow = cluster.flow("missing", {**_tls(cluster.pki), "key": "../pki/no-such-key.pem"})
    started = cluster.control("start", str(flow), "--detach", "--env", "MARKER=x", timeout=WAIT)
    assert started.returncode != 0
    error = started.stdout + started.stderr
    assert "`key` file" in error, error
    assert "no-such-key.pem" in error, error
    assert "communication.zenoh" in error, error  # the fix: where to correct it


# ---------------------------------------------------------------------------------------- capture
class LoopbackCapture:
    """Every TCP segment with a payload on the loopback interface, while it runs (needs CAP_NET_RAW)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(0x0003))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 << 20)
        self.sock.bind(("lo", 0))
        self.sock.settimeout(0.1)
        self.segments: list[tuple[int, int, int, bytes]] = []  # source port, destination port, seq, payload
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="capture", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                frame, address = self.sock.recvfrom(1 << 17)
            except TimeoutError:
                continue
            if address[2] == socket.PACKET_OUTGOING or frame[12:14] != b"\x08\x00":
                continue  # loopback shows each packet twice; IPv4 only (the endpoints are 127.0.0.1)
            ip = frame[14:]
            if ip[9] != 6:  # TCP
                continue
            tcp = ip[(ip[0] & 0x0F) * 4 : int.from_bytes(ip[2:4])]
            payload = bytes(tcp[(tcp[12] >> 4) * 4 :])
            if payload:
                ports = int.from_bytes(tcp[0:2]), int.from_bytes(tcp[2:4])
                self.segments.append((*ports, int.from_bytes(tcp[4:8]), payload))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()

    def streams(self, ports: set[int]) -> dict[tuple[int, int], bytes]:
        """Each direction of each connection to ``ports``, as far as it was captured without a gap."""
        by_flow: dict[tuple[int, int], dict[int, bytes]] = {}
        for source, destination, seq, payload in self.segments:
            if source in ports or destination in ports:
                by_flow.setdefault((source, destination), {}).setdefault(seq, payload)
        streams = {}
        for flow, pieces in by_flow.items():
            data, at = bytearray(), next(iter(pieces))  # the first segment captured: the stream's start
            while at in pieces:
                data += pieces[at]
                at = (at + len(pieces[at])) % (1 << 32)
            streams[flow] = bytes(data)
        return streams


def tls_records(stream: bytes) -> list[tuple[int, int]]:
    """(content type, length) of each TLS record the stream starts with; fails if it is not TLS."""
    records, at = [], 0
    while at + 5 <= len(stream):
        kind, major, length = stream[at], stream[at + 1], int.from_bytes(stream[at + 3 : at + 5])
        assert kind in (20, 21, 22, 23), stream[at : at + 16]  # cipher spec, alert, handshake, data
        assert major == 3, stream[at : at + 16]
        assert length <= (1 << 14) + 256, stream[at : at + 16]
        records.append((kind, length))
        at += 5 + length
    return records


@pytest.fixture
def capture() -> Iterator[LoopbackCapture]:
    try:
        running = LoopbackCapture()
    except PermissionError:
        if os.environ.get("CI") == "true":
            pytest.fail("the capture needs CAP_NET_RAW (root) and CI must run it")
        pytest.skip("capturing loopback traffic needs CAP_NET_RAW (root)")
    try:
        yield running
    finally:
        running.stop()


def test_a_capture_shows_only_tls_on_the_routers_connections(
    cluster: Cluster, capture: LoopbackCapture
) -> None:
    marker = f"m{uuid.uuid4().hex[:10]}"
    # A positive control: the capture sees clear text when there is some.
    with (
        socket.create_server(("127.0.0.1", 0)) as server,
        socket.create_connection(server.getsockname()) as client,
        server.accept()[0] as accepted,
    ):
        client.sendall(f"control {marker}".encode())
        assert accepted.recv(100)
    flow = cluster.flow("captured", _tls(cluster.pki))
    run_id = _start(cluster, flow, marker)
    assert eventually(lambda: len(_received(flow.parent)) >= 20, WAIT), "no message crossed the machines"
    routers = cluster.routers()
    sent = _finish(cluster, flow.parent, run_id, marker)
    time.sleep(0.2)  # the last segments reach the capture
    clear = [p for *_ports, _seq, p in capture.segments if f"control {marker}".encode() in p]
    assert clear, "the capture saw nothing: it cannot prove anything"

    streams = capture.streams(set(routers.values()))
    assert len(streams) >= 6, streams.keys()  # both directions: 2 nodes to their routers, router to router
    application = 0
    for flow_ports, stream in streams.items():
        assert stream[:1] == b"\x16", (flow_ports, stream[:16])  # a TLS handshake record first
        records = tls_records(stream)
        application += sum(length for kind, length in records if kind == 23)
    assert application >= len(sent) * len(marker), application  # the messages went as TLS records
    for *_ports, _seq, payload in (s for s in capture.segments if {s[0], s[1]} & set(routers.values())):
        assert marker.encode() not in payload
        assert b"doradus/" not in payload  # nor Zenoh's key expressions
