"""Broker passwords and TLS, through real dataflows on real Redis and Mosquitto servers.

A password in a broker URL logs in and never shows: not in the run's output, its log
records or an error message (the URL is quoted with ``***`` in its place). ``rediss://``
and ``mqtts://`` carry the edges over TLS, verified against a certificate made for the test.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from tests.backends.conftest import PrivateBroker, free_port, reachable, unavailable
from tests.conftest import Ran

from doradus.backends._quic_tls import generate_certificate

PASSWORD = "pw-7Kq2-never-shown"
WRONG = "pw-wrong-9Zx4-never-shown"
COUNT = 20
FILES = {
    "source.py": f"""
        from doradus import Node
        node = Node()
        for i in range({COUNT}):
            node.send_output("out", [i])
    """,
    "sink.py": """
        from doradus import Input, Node
        print("received", sum(isinstance(event, Input) for event in Node()))
    """,
}


def _flow(backend: str, url: str, extra: str = "") -> str:
    return f"""
communication:
  local: {backend}
  {backend}:
    url: "{url}"
    connect_retries: 3{extra}
nodes:
  - id: source
    path: source.py
    outputs: [out]
  - id: sink
    path: sink.py
    inputs:
      x: {{source: source/out, queue_size: {COUNT}}}
"""


def _everything_shown(ran: Ran, folder: Path) -> str:
    """What the run printed and recorded (its copy of the dataflow file aside)."""
    records = [p.read_text() for p in (folder / "out").rglob("*") if p.is_file() and p.name != "dataflow.yml"]
    return "\n".join([ran.output, *records])


def _run(dataflow: Callable[..., Ran], flow: str) -> Ran:
    return dataflow({"dataflow.yml": flow, **FILES}, timeout=90)


@pytest.fixture
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, made now, and its key."""
    folder = tmp_path_factory.mktemp("tls")
    cert_pem, key_pem = generate_certificate(days=1)
    (folder / "cert.pem").write_bytes(cert_pem)
    (folder / "key.pem").write_bytes(key_pem)
    (folder / "key.pem").chmod(0o600)
    return folder / "cert.pem", folder / "key.pem"


def _start(command: list[str], folder: Path, scheme: str, port: int) -> PrivateBroker:
    broker = PrivateBroker(command, port, folder, scheme)
    broker.start()
    return broker


@pytest.fixture
def broker_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("broker")


@contextmanager
def _redis(folder: Path, *args: str) -> Iterator[PrivateBroker]:
    binary = shutil.which("redis-server")
    if binary is None:
        unavailable("no redis-server on PATH")
    port = free_port()
    tls = "--tls-port" in args
    base = [
        str(binary),
        "--port",
        "0" if tls else str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--dir",
        str(folder),
    ]
    broker = _start([*base, *(a.replace("PORT", str(port)) for a in args)], folder, "redis", port)
    try:
        yield broker
    finally:
        broker.stop(signal.SIGKILL)


@contextmanager
def _mosquitto(folder: Path, config: str) -> Iterator[PrivateBroker]:
    binary = shutil.which("mosquitto")
    if binary is None:
        unavailable("no mosquitto on PATH")
    port = free_port()
    user = pwd.getpwuid(os.getuid()).pw_name  # as root it would switch to `mosquitto`
    (folder / "mosquitto.conf").write_text(f"listener {port} 127.0.0.1\nuser {user}\n{config}")
    broker = _start([str(binary), "-c", str(folder / "mosquitto.conf")], folder, "mqtt", port)
    try:
        yield broker
    finally:
        broker.stop(signal.SIGKILL)


# ------------------------------------------------------------------------------ passwords
def test_a_redis_password_logs_in_and_never_shows(dataflow, tmp_path, broker_folder):
    with _redis(broker_folder, "--requirepass", PASSWORD) as broker:
        ran = _run(dataflow, _flow("redis", f"redis://:{PASSWORD}@127.0.0.1:{broker.port}/0"))
        assert ran.returncode == 0, ran.output
        assert ran.lines_of("sink") == [f"received {COUNT}"]
        assert PASSWORD not in _everything_shown(ran, tmp_path)


def test_a_wrong_redis_password_fails_with_the_url_masked(dataflow, tmp_path, broker_folder):
    with _redis(broker_folder, "--requirepass", PASSWORD) as broker:
        ran = _run(dataflow, _flow("redis", f"redis://:{WRONG}@127.0.0.1:{broker.port}/0"))
        assert ran.returncode != 0
        assert f"could not reach redis at redis://:***@127.0.0.1:{broker.port}/0" in ran.output
        assert WRONG not in _everything_shown(ran, tmp_path)


def test_the_shared_redis_server_takes_a_password_url_and_never_shows_it(dataflow, tmp_path):
    if not reachable(("127.0.0.1", 6379)):
        unavailable("no Redis at 127.0.0.1:6379")
    # Its default user has no password, so it accepts any: the run works, the password stays hidden.
    ran = _run(dataflow, _flow("redis", f"redis://:{PASSWORD}@127.0.0.1:6379/0"))
    assert ran.returncode == 0, ran.output
    assert ran.lines_of("sink") == [f"received {COUNT}"]
    assert PASSWORD not in _everything_shown(ran, tmp_path)


def test_an_mqtt_user_logs_in_and_a_wrong_password_fails_masked(dataflow, tmp_path, broker_folder):
    passwords = broker_folder / "passwords"
    made = subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwords), "robot", PASSWORD], check=False)
    if made.returncode != 0:
        unavailable("mosquitto_passwd could not make a password file")
    passwords.chmod(0o600)
    with _mosquitto(broker_folder, f"allow_anonymous false\npassword_file {passwords}\n") as broker:
        ran = _run(dataflow, _flow("mqtt", f"mqtt://robot:{PASSWORD}@127.0.0.1:{broker.port}"))
        assert ran.returncode == 0, ran.output
        assert ran.lines_of("sink") == [f"received {COUNT}"]
        assert PASSWORD not in _everything_shown(ran, tmp_path)

        shutil.rmtree(tmp_path / "out")
        ran = _run(dataflow, _flow("mqtt", f"mqtt://robot:{WRONG}@127.0.0.1:{broker.port}"))
        assert ran.returncode != 0
        assert f"mqtt://robot:***@127.0.0.1:{broker.port}" in ran.output
        assert "did not accept the connection" in ran.output
        assert WRONG not in _everything_shown(ran, tmp_path)


# ------------------------------------------------------------------------------------ TLS
def test_rediss_carries_a_dataflow_over_verified_tls(dataflow, tmp_path, broker_folder, cert):
    crt, key = cert
    files = ["--tls-cert-file", str(crt), "--tls-key-file", str(key), "--tls-ca-cert-file", str(crt)]
    with _redis(broker_folder, "--tls-port", "PORT", *files, "--tls-auth-clients", "no") as broker:
        url = f"rediss://127.0.0.1:{broker.port}/0"
        ran = _run(dataflow, _flow("redis", url, f"\n    tls: {{ca: {crt}}}"))
        assert ran.returncode == 0, ran.output
        assert ran.lines_of("sink") == [f"received {COUNT}"]

        shutil.rmtree(tmp_path / "out")  # without the CA the self-signed server is refused
        ran = _run(dataflow, _flow("redis", url))
        assert ran.returncode != 0
        assert "CERTIFICATE_VERIFY_FAILED" in ran.output or "certificate verify failed" in ran.output


def test_mqtts_carries_a_dataflow_over_verified_tls(dataflow, tmp_path, broker_folder, cert):
    crt, key = cert
    config = f"allow_anonymous true\ncertfile {crt}\nkeyfile {key}\n"
    with _mosquitto(broker_folder, config) as broker:
        url = f"mqtts://127.0.0.1:{broker.port}"
        ran = _run(dataflow, _flow("mqtt", url, f"\n    tls: {{ca: {crt}}}"))
        assert ran.returncode == 0, ran.output
        assert ran.lines_of("sink") == [f"received {COUNT}"]

        shutil.rmtree(tmp_path / "out")
        ran = _run(dataflow, _flow("mqtt", url))
        assert ran.returncode != 0
        assert "certificate verify failed" in ran.output.lower()
