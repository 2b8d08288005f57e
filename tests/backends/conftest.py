"""Brokers for the backend tests: the machine's Redis and Mosquitto, or private ones.

``redis_url`` / ``mqtt_url`` use the broker at its standard local address when
it answers, else start a private one from the binary on PATH (a free
127.0.0.1 port, a temporary folder), else skip (fail when ``CI=true``).
``private_redis`` / ``private_mosquitto`` always start a private broker that a
test may stop and restart (on the same port, with the same data folder).
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

SHARED_REDIS = ("127.0.0.1", 6379)
SHARED_MQTT = ("127.0.0.1", 1883)


def reachable(address: tuple[str, int], timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection(address, timeout=timeout):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: brokers are required)")
    pytest.skip(reason)


class PrivateBroker:
    """A broker process of this test session, on 127.0.0.1, restartable on its port."""

    def __init__(self, command: list[str], port: int, folder: Path, scheme: str) -> None:
        self.command = command
        self.port = port
        self.folder = folder
        self.url = f"{scheme}://127.0.0.1:{port}" + ("/0" if scheme == "redis" else "")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> None:
        log = (self.folder / "broker.log").open("ab")
        self.process = subprocess.Popen(
            self.command, cwd=self.folder, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        deadline = time.monotonic() + timeout
        while not reachable(("127.0.0.1", self.port), 0.2):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                text = (self.folder / "broker.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{self.command[0]} did not start on port {self.port}:\n{text}")
            time.sleep(0.05)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop the broker (SIGTERM: a clean shutdown; SIGKILL: a crash) and reap it."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(sig)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        else:
            process.wait()

    def restart(self, down: float = 0.0, sig: int = signal.SIGTERM) -> None:
        self.stop(sig)
        time.sleep(down)
        self.start()


def start_private_redis(folder: Path) -> PrivateBroker:
    binary = shutil.which("redis-server")
    if binary is None:
        unavailable("no Redis at 127.0.0.1:6379 and no redis-server on PATH")
    port = free_port()
    command = [
        str(binary),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "yes",  # every acknowledged write survives a restart: the streams' at-least-once story
        "--appendfsync",
        "always",
        "--dir",
        str(folder),
    ]
    broker = PrivateBroker(command, port, folder, "redis")
    broker.start()
    return broker


def start_private_mosquitto(folder: Path) -> PrivateBroker:
    binary = shutil.which("mosquitto")
    if binary is None:
        unavailable("no Mosquitto at 127.0.0.1:1883 and no mosquitto on PATH")
    port = free_port()
    config = folder / "mosquitto.conf"
    config.write_text(
        f"listener {port} 127.0.0.1\n"
        "allow_anonymous true\n"
        f"user {pwd.getpwuid(os.getuid()).pw_name}\n"  # as root it would switch to `mosquitto`
        "persistence true\n"
        f"persistence_location {folder}/\n"
        "max_queued_messages 100000\n"
    )
    broker = PrivateBroker([str(binary), "-c", str(config)], port, folder, "mqtt")
    broker.start()
    return broker


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if reachable(SHARED_REDIS):
        yield "redis://127.0.0.1:6379/0"
        return
    broker = start_private_redis(tmp_path_factory.mktemp("redis"))
    yield broker.url
    broker.stop()


@pytest.fixture(scope="session")
def mqtt_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if reachable(SHARED_MQTT):
        yield "mqtt://127.0.0.1:1883"
        return
    broker = start_private_mosquitto(tmp_path_factory.mktemp("mosquitto"))
    yield broker.url
    broker.stop()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateBroker]:
    broker = start_private_redis(tmp_path)
    yield broker
    broker.stop(signal.SIGKILL)


@pytest.fixture
def private_mosquitto(tmp_path: Path) -> Iterator[PrivateBroker]:
    broker = start_private_mosquitto(tmp_path)
    yield broker
    broker.stop(signal.SIGKILL)
