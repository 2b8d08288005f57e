"""The ``mqtt`` backend: the conformance kit by QoS, failures, broker restarts, namespacing."""

from __future__ import annotations

import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from doradus import ConnectError
from doradus.backends import LinkSpec, get_backend
from doradus.backends._mqtt import MqttBackend
from doradus.testing import CollectingReceiver, check_backend, outgoing

Pair = Callable[[CollectingReceiver], tuple[MqttBackend, MqttBackend]]


def new_prefix() -> str:
    return f"doradus/test-{uuid.uuid4().hex}/"


def mqtt_pair(url: str, prefix: str, receiver_options: dict[str, Any] | None = None, **options: Any) -> Pair:
    def make(receiver: CollectingReceiver) -> tuple[MqttBackend, MqttBackend]:
        opts = {"url": url, "prefix": prefix, **options}
        inbound = MqttBackend("b", receiver)
        inbound_opts = {**opts, **(receiver_options or {})}
        inbound.open([LinkSpec("a", "in", routes={"out": ["in"]}, options=inbound_opts)], [])
        inbound.start()
        sender = MqttBackend("a", CollectingReceiver())
        sender.open([LinkSpec("b", "out", ("out",), options=opts)], [])
        sender.start()
        return sender, inbound

    return make


def seqs(receiver: CollectingReceiver) -> list[int]:
    return [v.to_pylist()[0] for _inputs, v in receiver.values]


def first_seen(values: list[int]) -> list[int]:
    """The values without their repeats (QoS 1 re-sends), in the order each first arrived."""
    return list(dict.fromkeys(values))


def test_registered() -> None:
    assert get_backend("mqtt") is MqttBackend


def test_conformance_qos1(mqtt_url: str) -> None:
    check_backend(mqtt_pair(mqtt_url, new_prefix(), qos=1))


def test_conformance_qos2(mqtt_url: str) -> None:
    check_backend(mqtt_pair(mqtt_url, new_prefix(), qos=2), messages=1000)


def test_conformance_qos0(mqtt_url: str) -> None:
    # QoS 0 may lose messages when the broker or the subscriber falls behind: fewer messages,
    # which a local broker keeps up with.
    check_backend(mqtt_pair(mqtt_url, new_prefix(), qos=0), messages=2000)


def test_conformance_persistent_session(mqtt_url: str) -> None:
    check_backend(mqtt_pair(mqtt_url, new_prefix(), qos=1, session="persistent"), messages=1000)


def test_small_fragments_reassemble(mqtt_url: str) -> None:
    check_backend(mqtt_pair(mqtt_url, new_prefix(), fragment=64 * 1024), messages=100)


def test_an_unreachable_broker_fails_within_the_retry_bound() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sender = MqttBackend("a", CollectingReceiver())
    retries, interval = 5, 0.05
    options = {"url": f"mqtt://127.0.0.1:{port}", "connect_retries": retries, "retry_interval": interval}
    began = time.monotonic()
    with pytest.raises(ConnectError, match="after 5 attempts") as caught:
        sender.open([LinkSpec("b", "out", ("out",), options=options)], [])
    assert time.monotonic() - began < retries * interval + 2.0
    assert isinstance(caught.value.__cause__, OSError)


def test_runs_sharing_a_broker_never_mix(mqtt_url: str) -> None:
    first, second = CollectingReceiver(), CollectingReceiver()
    pairs = [mqtt_pair(mqtt_url, new_prefix())(r) for r in (first, second)]
    try:
        for k in range(100):
            pairs[0][0].send(outgoing([k], k))
            pairs[1][0].send(outgoing([1000 + k], k))
        assert first.wait_for(lambda r: len(r.values) >= 100, 10)
        assert second.wait_for(lambda r: len(r.values) >= 100, 10)
        time.sleep(0.2)  # room for a stray message to show up
        assert seqs(first) == list(range(100))
        assert seqs(second) == list(range(1000, 1100))
    finally:
        for sender, inbound in pairs:
            sender.close()
            inbound.close()


def restart_while_sending(
    broker: Any, session: str, sig: int
) -> tuple[CollectingReceiver, MqttBackend, CollectingReceiver]:
    """Send 0-199, stop the broker, send 200-299 while it is down and coming back, then 300-499.

    Returns (the receiving node's receiver, the receiving backend, the sending node's receiver).
    """
    receiver = CollectingReceiver()
    # The broker is back after 0.3 s; the publisher reconnects after 1 s, the subscriber after
    # 3 s: what is published in between reaches the subscriber only through its session.
    make = mqtt_pair(
        broker.url,
        "doradus/restart/",
        receiver_options={"reconnect_min": 3},
        qos=1,
        session=session,
        reconnect_timeout=20,
    )
    sender, inbound = make(receiver)
    sender_side: CollectingReceiver = sender.receiver  # type: ignore[assignment]
    try:
        for k in range(200):
            sender.send(outgoing([k], k))
        assert receiver.wait_for(lambda r: len(r.values) >= 200, 10)
        broker.stop(sig)
        back = threading.Timer(0.3, broker.start)
        back.start()
        for k in range(200, 300):  # the first of these waits for the publisher's reconnection
            sender.send(outgoing([k], k))
            time.sleep(0.002)
        back.join()
        deadline = time.monotonic() + 15
        while inbound.statistics().details["subscriptions"] < 2:  # resubscribed after the restart
            assert time.monotonic() < deadline, "the subscriber did not resubscribe"
            time.sleep(0.05)
        for k in range(300, 500):
            sender.send(outgoing([k], k))
        assert receiver.wait_for(lambda r: 499 in seqs(r), 15), f"got {seqs(receiver)[-5:]}"
        return receiver, inbound, sender_side
    finally:
        sender.close()
        inbound.close()


def test_persistent_qos1_loses_nothing_across_a_clean_broker_restart(private_mosquitto: Any) -> None:
    # The private broker has `persistence true`; SIGTERM lets it save sessions and queued messages.
    receiver, inbound, sender_side = restart_while_sending(private_mosquitto, "persistent", signal.SIGTERM)
    got = seqs(receiver)
    assert first_seen(got) == list(range(500)), "a message was lost, or order broke, across the restart"
    assert inbound.statistics().details["session_present"], "the broker did not keep the session"
    assert not sender_side.errors, sender_side.errors
    assert receiver.errors == []


def test_clean_session_resumes_after_a_broker_crash(private_mosquitto: Any) -> None:
    receiver, _inbound, sender_side = restart_while_sending(private_mosquitto, "clean", signal.SIGKILL)
    got = first_seen(seqs(receiver))
    assert got == sorted(got), "order broke across the restart"
    assert set(range(200)) <= set(got), "a message sent before the restart was lost"
    assert set(range(300, 500)) <= set(got), "a message sent after resubscribing was lost"
    assert not sender_side.errors, sender_side.errors
    assert receiver.errors == []


def test_a_publish_gives_up_after_its_bound(private_mosquitto: Any) -> None:
    receiver = CollectingReceiver()
    sender, inbound = mqtt_pair(private_mosquitto.url, new_prefix(), reconnect_timeout=0.5)(receiver)
    try:
        private_mosquitto.stop(signal.SIGKILL)
        time.sleep(0.2)  # paho notices the dropped connection
        began = time.monotonic()
        sender.send(outgoing([1], 1))
        assert time.monotonic() - began < 0.5 + 2.0
        assert sender.statistics().send_failures == 1
        assert any("dropped" in e for e in sender.receiver.errors)  # type: ignore[attr-defined]
    finally:
        sender.close()
        inbound.close()
