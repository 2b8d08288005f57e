"""The stream client on real sockets: bounded, announced reconnection; what ends it; live resubscription.

The servers here are small real WebSocket servers (``websockets``) that behave as a
coordinator does at the edges: closing, refusing the token, closing with 4404.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from tests.cli.conftest import free_port
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from doradus._tui.feed import FeedStatus, StreamFeed, Subscription

HELLO = {
    "type": "hello",
    "time": "2026-12-04T13:00:00.000Z",
    "version": "0",
    "interval": 1.0,
    "subscription": {},
}


class Recorder:
    """Collects what the feed hands out."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.statuses: list[FeedStatus] = []
        self.arrived = asyncio.Event()

    def message(self, message: dict[str, Any]) -> None:
        self.messages.append(message)
        self.arrived.set()

    async def wait_for(self, count: int) -> None:
        """Until ``count`` messages arrived."""
        while len(self.messages) < count:
            self.arrived.clear()
            await self.arrived.wait()

    def status(self, status: FeedStatus) -> None:
        self.statuses.append(status)

    @property
    def states(self) -> list[str]:
        return [status.state for status in self.statuses]


@asynccontextmanager
async def server(handler: Any, process_request: Any = None) -> AsyncIterator[str]:
    port = free_port()
    async with serve(handler, "127.0.0.1", port, process_request=process_request):
        yield f"ws://127.0.0.1:{port}/api/v1"


def test_an_absent_coordinator_is_retried_as_announced_then_given_up() -> None:
    record = Recorder()
    feed = StreamFeed(f"ws://127.0.0.1:{free_port()}/api/v1", {}, Subscription(), retries=2, retry_interval=0)
    asyncio.run(asyncio.wait_for(feed.run(record.message, record.status), 30))
    assert record.states == ["connecting", "retrying", "connecting", "retrying", "connecting", "gone"]
    assert record.statuses[1].text.endswith("Reconnecting in 0s... [Attempt 1/2]")
    assert "connection refused" in record.statuses[1].text
    assert record.statuses[3].text.endswith("[Attempt 2/2]")
    assert "Maximum retries reached" in record.statuses[-1].text
    assert "doradus up" in str(record.statuses[-1].fix)
    assert record.messages == []


def test_a_dropped_stream_reconnects_and_a_hello_resets_the_count() -> None:
    connections: list[str] = []

    async def handler(socket: ServerConnection) -> None:
        connections.append(socket.request.path if socket.request else "")
        await socket.send(json.dumps({**HELLO, "n": len(connections)}))
        if len(connections) < 4:
            await socket.close()  # the coordinator went away; the next try finds it again
        else:
            await socket.wait_closed()

    async def main() -> Recorder:
        record = Recorder()
        async with server(handler) as base:
            feed = StreamFeed(
                base, {}, Subscription(dataflow="demo", interval=0.5), retries=1, retry_interval=0
            )
            task = asyncio.create_task(feed.run(record.message, record.status))
            await record.wait_for(4)
            task.cancel()
        return record

    record = asyncio.run(asyncio.wait_for(main(), 30))
    # Three drops with a single retry allowed: each hello reset the count.
    assert [m["n"] for m in record.messages] == [1, 2, 3, 4]
    assert record.states.count("retrying") == 3
    assert "gone" not in record.states
    assert all(path.startswith("/api/v1/stream?dataflow=demo&") for path in connections)
    assert "interval=0.5" in connections[0]


def test_a_refused_token_ends_the_feed_at_once_with_its_fix() -> None:
    def refuse(connection: ServerConnection, request: Request) -> Response:
        return connection.respond(403, "missing or wrong token\n")

    async def handler(socket: ServerConnection) -> None:  # never reached
        await socket.close()

    async def main() -> Recorder:
        record = Recorder()
        async with server(handler, process_request=refuse) as base:
            feed = StreamFeed(
                base, {"Authorization": "Bearer wrong"}, Subscription(), retries=5, retry_interval=0
            )
            await feed.run(record.message, record.status)
        return record

    record = asyncio.run(asyncio.wait_for(main(), 30))
    assert record.states == ["connecting", "gone"]
    assert "refused the token" in record.statuses[-1].text
    assert "--token-file" in str(record.statuses[-1].fix)


def test_the_token_is_sent_on_the_handshake() -> None:
    seen: list[Headers] = []

    async def handler(socket: ServerConnection) -> None:
        assert socket.request is not None
        seen.append(socket.request.headers)
        await socket.send(json.dumps(HELLO))
        await socket.wait_closed()

    async def main() -> None:
        record = Recorder()
        async with server(handler) as base:
            feed = StreamFeed(base, {"Authorization": "Bearer s3cret"}, Subscription())
            task = asyncio.create_task(feed.run(record.message, record.status))
            await record.wait_for(1)
            task.cancel()

    asyncio.run(asyncio.wait_for(main(), 30))
    assert seen[0]["Authorization"] == "Bearer s3cret"


def test_a_gone_dataflow_is_dropped_from_the_subscription_and_the_feed_goes_on() -> None:
    paths: list[str] = []

    async def handler(socket: ServerConnection) -> None:
        path = socket.request.path if socket.request else ""
        paths.append(path)
        if "dataflow=" in path:
            await socket.close(4404, "no dataflow named 'old'")
            return
        await socket.send(json.dumps(HELLO))
        await socket.wait_closed()

    async def main() -> Recorder:
        record = Recorder()
        async with server(handler) as base:
            feed = StreamFeed(base, {}, Subscription(dataflow="old"), retries=3, retry_interval=5)
            task = asyncio.create_task(feed.run(record.message, record.status))
            await record.wait_for(1)
            task.cancel()
        return record

    record = asyncio.run(asyncio.wait_for(main(), 30))  # well under the 5 s retry interval
    assert "dataflow=old" in paths[0]
    assert "dataflow=" not in paths[1]
    retrying = next(s for s in record.statuses if s.state == "retrying")
    assert "dataflow 'old' is gone" in retrying.text
    assert "Reconnecting in 0s" in retrying.text


def test_subscribe_switches_the_live_connection() -> None:
    received: list[dict[str, Any]] = []

    async def handler(socket: ServerConnection) -> None:
        await socket.send(json.dumps(HELLO))
        async for raw in socket:
            received.append(json.loads(raw))
            await socket.send(json.dumps({**HELLO, "again": True}))

    async def main() -> Recorder:
        record = Recorder()
        async with server(handler) as base:
            feed = StreamFeed(base, {}, Subscription())
            task = asyncio.create_task(feed.run(record.message, record.status))
            await record.wait_for(1)
            await feed.subscribe(Subscription(dataflow="other", level="WARN", tail=50))
            await record.wait_for(2)
            task.cancel()
            assert "dataflow=other" in feed.url  # and the next connection asks for it too
        return record

    record = asyncio.run(asyncio.wait_for(main(), 30))
    assert received == [
        {"type": "subscribe", "dataflow": "other", "level": "WARN", "interval": 1.0, "tail": 50, "logs": True}
    ]
    assert record.messages[-1].get("again") is True
