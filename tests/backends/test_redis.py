"""The ``redis`` backend: the conformance kit in both modes, failures, restarts, namespacing."""

from __future__ import annotations

import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from doradus import ConnectError
from doradus.backends import LinkSpec, get_backend
from doradus.backends._redis import RedisBackend
from doradus.testing import CollectingReceiver, check_backend, outgoing

MODES = ["pubsub", "streams"]
Pair = Callable[[CollectingReceiver], tuple[RedisBackend, RedisBackend]]


@pytest.fixture
def prefix(redis_url: str) -> Iterator[str]:
    """A fresh run prefix; its stream keys are deleted afterwards (the shared server stays clean)."""
    value = f"doradus/test-{uuid.uuid4().hex}/"
    yield value
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{value}*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def redis_pair(url: str, prefix: str, **options: Any) -> Pair:
    def make(receiver: CollectingReceiver) -> tuple[RedisBackend, RedisBackend]:
        opts = {"url": url, "prefix": prefix, **options}
        inbound = RedisBackend("b", receiver)
        inbound.open([LinkSpec("a", "in", routes={"out": ["in"]}, options=opts)], [])
        inbound.start()
        sender = RedisBackend("a", CollectingReceiver())
        sender.open([LinkSpec("b", "out", ("out",), options=opts)], [])
        sender.start()
        return sender, inbound

    return make


def seqs(receiver: CollectingReceiver) -> list[int]:
    return [v.to_pylist()[0] for _inputs, v in receiver.values]


def deduplicated(values: list[int]) -> list[int]:
    """What a receiver keeps when it drops every message whose seq is not above the last one."""
    kept: list[int] = []
    for value in values:
        if not kept or value > kept[-1]:
            kept.append(value)
    return kept


def test_registered() -> None:
    assert get_backend("redis") is RedisBackend


@pytest.mark.parametrize("mode", MODES)
def test_conformance(redis_url: str, prefix: str, mode: str) -> None:
    check_backend(redis_pair(redis_url, prefix, mode=mode))


@pytest.mark.parametrize("mode", MODES)
def test_small_fragments_reassemble(redis_url: str, prefix: str, mode: str) -> None:
    check_backend(redis_pair(redis_url, prefix, mode=mode, fragment=64 * 1024), messages=100)


def test_an_unreachable_server_fails_within_the_retry_bound() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sender = RedisBackend("a", CollectingReceiver())
    retries, interval = 5, 0.05
    options = {"url": f"redis://127.0.0.1:{port}/0", "connect_retries": retries, "retry_interval": interval}
    began = time.monotonic()
    with pytest.raises(ConnectError, match="after 5 attempts") as caught:
        sender.open([LinkSpec("b", "out", ("out",), options=options)], [])
    assert time.monotonic() - began < retries * interval + 2.0
    assert isinstance(caught.value.__cause__, redis.RedisError)


@pytest.mark.parametrize("mode", MODES)
def test_runs_sharing_a_server_never_mix(redis_url: str, mode: str) -> None:
    first, second = CollectingReceiver(), CollectingReceiver()
    prefixes = [f"doradus/test-{uuid.uuid4().hex}/" for _ in range(2)]
    pairs = [
        redis_pair(redis_url, p, mode=mode, expire=5)(r)
        for p, r in zip(prefixes, (first, second), strict=True)
    ]
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


def subscribers(url: str, channel: str) -> int:
    client = redis.Redis.from_url(url)
    try:
        counts = client.pubsub_numsub(channel)
        return int(counts[0][1]) if counts else 0
    except redis.RedisError:
        return 0
    finally:
        client.close()


def restart_while_sending(broker: Any, mode: str) -> tuple[CollectingReceiver, CollectingReceiver]:
    """Send 0-199, crash the server, send 200-299 while it is down and coming back, then 300-499.

    Returns (the receiving node's receiver, the sending node's receiver).
    """
    receiver = CollectingReceiver()
    sender, inbound = redis_pair(broker.url, "doradus/restart/", mode=mode, reconnect_timeout=20)(receiver)
    try:
        for k in range(200):
            sender.send(outgoing([k], k))
        assert receiver.wait_for(lambda r: len(r.values) >= 200, 10)
        broker.stop(signal.SIGKILL)
        back = threading.Timer(1.0, broker.start)
        back.start()
        for k in range(200, 300):  # the first of these waits in the publisher's retries
            sender.send(outgoing([k], k))
            time.sleep(0.002)
        back.join()
        if mode == "pubsub":  # at-most-once: the guarantee starts again once resubscribed
            deadline = time.monotonic() + 10
            while subscribers(broker.url, "doradus/restart/a/out") < 1:
                assert time.monotonic() < deadline, "the subscriber did not resubscribe"
                time.sleep(0.05)
        for k in range(300, 500):
            sender.send(outgoing([k], k))
        assert receiver.wait_for(lambda r: 499 in seqs(r), 15), f"got {seqs(receiver)[-5:]}"
        return receiver, sender.receiver  # type: ignore[return-value]
    finally:
        sender.close()
        inbound.close()


def test_pubsub_survives_a_server_restart(private_redis: Any) -> None:
    receiver, sender_side = restart_while_sending(private_redis, "pubsub")
    got = seqs(receiver)
    assert got == sorted(got), "order broke across the restart"
    assert set(range(200)) <= set(got), "a message sent before the restart was lost"
    assert set(range(300, 500)) <= set(got), "a message sent after resubscribing was lost"
    assert not sender_side.errors, sender_side.errors  # the publisher's retries bridged the restart
    assert receiver.errors == []


def test_streams_survive_a_server_restart(private_redis: Any) -> None:
    receiver, sender_side = restart_while_sending(private_redis, "streams")
    got = seqs(receiver)
    assert deduplicated(got) == list(range(500)), "a message was lost, or order broke, across the restart"
    assert not sender_side.errors, sender_side.errors
    assert receiver.errors == []


def test_a_publish_gives_up_after_its_bound(private_redis: Any) -> None:
    receiver = CollectingReceiver()
    sender, inbound = redis_pair(private_redis.url, "doradus/down/", mode="streams", reconnect_timeout=0.5)(
        receiver
    )
    try:
        private_redis.stop(signal.SIGKILL)
        began = time.monotonic()
        sender.send(outgoing([1], 1))
        assert time.monotonic() - began < 0.5 + 2.0
        assert sender.statistics().send_failures == 1
        assert any("dropped" in e for e in sender.receiver.errors)  # type: ignore[attr-defined]
    finally:
        sender.close()
        inbound.close()
