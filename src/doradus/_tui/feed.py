"""The stream client: one WebSocket to ``/api/v1/stream``, reconnected a bounded number of times.

`StreamFeed.run` connects with the current `Subscription` (query parameters), hands
every decoded message to a callback, and when the connection drops tries again up to
``retries`` times, ``retry_interval`` seconds apart, announcing each try the way every
Doradus client does::

    Stream lost (connection refused). Reconnecting in 1s... [Attempt 2/10]

A connection that delivered its ``hello`` resets the count. What retrying cannot fix
ends the feed at once with a cause and a fix: a refused token, a coordinator without
the stream endpoint. `StreamFeed.subscribe` replaces the subscription: sent as a
``subscribe`` message on the live connection, and used for the next connection.

The app runs `StreamFeed.run` in a Textual worker, on its own event loop; both
callbacks are called from that loop.

Example::

    feed = StreamFeed("ws://127.0.0.1:6300/api/v1", {"Authorization": "Bearer …"},
                      Subscription(dataflow="demo", interval=1.0))
    await feed.run(print, print)
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal
from urllib.parse import urlencode

from doradus._control.client import FIX_UNREACHABLE, ControlClient

STREAM_PATH = "/stream"
"""The stream's path under the API base (``/api/v1``)."""
RETRIES = 10
"""Reconnections tried after the stream drops, before giving up."""
RETRY_INTERVAL = 1.0
"""Seconds between two reconnections."""
OPEN_TIMEOUT = 5.0
"""Seconds a connection may take to open."""
MAX_MESSAGE_BYTES = 16 * 2**20
"""The largest message read (a ``dataflow`` message of a dataflow with many nodes)."""
GONE_DATAFLOW = 4404
"""The close code of a subscription to a dataflow the coordinator does not know."""


@dataclass(frozen=True)
class Subscription:
    """What the stream sends: one dataflow's details and its logs from ``level`` up, every ``interval``.

    Example:
        >>> Subscription(dataflow="demo", interval=0.5).query()
        'dataflow=demo&level=INFO&logs=true&interval=0.5&tail=200'
    """

    dataflow: str | None = None
    level: str = "INFO"
    interval: float = 1.0
    tail: int = 200
    logs: bool = True

    def query(self) -> str:
        """The connection's query string."""
        params: dict[str, Any] = {"dataflow": self.dataflow} if self.dataflow else {}
        params |= {"level": self.level, "logs": str(self.logs).lower(), "interval": f"{self.interval:g}"}
        return urlencode({**params, "tail": self.tail})

    def message(self) -> dict[str, Any]:
        """The ``subscribe`` message that switches a live connection to this subscription.

        Example:
            >>> Subscription(dataflow="demo").message()["type"]
            'subscribe'
        """
        return {"type": "subscribe", **asdict(self)}


@dataclass(frozen=True)
class FeedStatus:
    """How the connection is: ``connecting``, ``connected``, ``retrying`` or ``gone`` (given up).

    Example:
        >>> FeedStatus("gone", "the coordinator refused the token", "pass --token-file").fix
        'pass --token-file'
    """

    state: Literal["connecting", "connected", "retrying", "gone"]
    text: str
    fix: str | None = None


class Fatal(Exception):
    """A failure that retrying cannot fix (a refused token, no stream endpoint).

    Example:
        >>> Fatal("no stream", "upgrade the coordinator").fix
        'upgrade the coordinator'
    """

    def __init__(self, message: str, fix: str) -> None:
        self.fix = fix
        super().__init__(message)


class StreamFeed:
    """The TUI's connection to the stream.

    Args:
        base: The API's WebSocket base (``ws://HOST:PORT/api/v1``).
        headers: Headers of the handshake (the bearer token).
        subscription: What to ask for first.
        retries: Reconnections tried after a drop before giving up.
        retry_interval: Seconds between them.

    Example::

        feed = StreamFeed(address.ws, client.headers, Subscription())
    """

    def __init__(
        self,
        base: str,
        headers: Mapping[str, str],
        subscription: Subscription,
        *,
        retries: int = RETRIES,
        retry_interval: float = RETRY_INTERVAL,
    ) -> None:
        self.base = base
        self.headers = dict(headers)
        self.subscription = subscription
        self.retries = retries
        self.retry_interval = retry_interval
        self._socket: Any = None

    @property
    def url(self) -> str:
        """The URL the next connection opens."""
        return f"{self.base}{STREAM_PATH}?{self.subscription.query()}"

    async def subscribe(self, subscription: Subscription) -> None:
        """Switch to ``subscription``: on the live connection now, and on the next ones.

        Example::

            await feed.subscribe(replace(feed.subscription, dataflow="other"))
        """
        self.subscription = subscription
        if self._socket is not None:
            try:
                await self._socket.send(json.dumps(subscription.message()))
            except Exception:  # the connection just dropped: the next one uses the new subscription
                pass

    async def run(
        self, on_message: Callable[[dict[str, Any]], None], on_status: Callable[[FeedStatus], None]
    ) -> None:
        """Read the stream until cancelled, or until retrying is over or cannot help.

        Example::

            await feed.run(live.apply, show_status)
        """
        failed = 0
        while True:
            on_status(FeedStatus("connecting", f"Connecting to {self.base}{STREAM_PATH}..."))
            try:
                if await self._read(on_message, on_status):
                    failed = 0
                reason = "the coordinator closed the stream"
            except Fatal as exc:
                on_status(FeedStatus("gone", str(exc), exc.fix))
                return
            except _Retry as exc:
                reason = str(exc)
            failed += 1
            if failed > self.retries:
                on_status(
                    FeedStatus("gone", f"Stream lost ({reason}). Maximum retries reached.", FIX_UNREACHABLE)
                )
                return
            wait = 0.0 if reason.startswith("dataflow") else self.retry_interval
            attempts = f"[Attempt {failed}/{self.retries}]"
            on_status(
                FeedStatus("retrying", f"Stream lost ({reason}). Reconnecting in {wait:g}s... {attempts}")
            )
            await asyncio.sleep(wait)

    async def _read(
        self, on_message: Callable[[dict[str, Any]], None], on_status: Callable[[FeedStatus], None]
    ) -> bool:
        """One connection: True when it got as far as a ``hello``."""
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

        greeted = False
        try:
            async with connect(
                self.url,
                additional_headers=self.headers or None,
                max_size=MAX_MESSAGE_BYTES,
                open_timeout=OPEN_TIMEOUT,
                compression=None,
            ) as socket:
                self._socket = socket
                on_status(FeedStatus("connected", f"Connected to {self.base}{STREAM_PATH}"))
                try:
                    async for raw in socket:
                        message = _decode(raw)
                        if message is not None:
                            greeted = greeted or message.get("type") == "hello"
                            on_message(message)
                except asyncio.CancelledError:
                    socket.transport.abort()  # the app is closing: no close handshake to wait for
                    raise
        except InvalidStatus as exc:
            raise _refused(exc.response.status_code) from exc
        except ConnectionClosed as exc:
            raise self._closed(
                exc.rcvd.code if exc.rcvd else None, exc.rcvd.reason if exc.rcvd else ""
            ) from exc
        except (OSError, InvalidHandshake, TimeoutError) as exc:
            raise _Retry(_describe(exc)) from exc
        finally:
            self._socket = None
        return greeted

    def _closed(self, code: int | None, reason: str) -> Exception:
        if code == GONE_DATAFLOW and self.subscription.dataflow:
            gone = self.subscription.dataflow
            self.subscription = replace(self.subscription, dataflow=None)
            return _Retry(f"dataflow {gone!r} is gone: {reason}" if reason else f"dataflow {gone!r} is gone")
        if code == 4422:
            return Fatal(
                f"The stream refused the subscription: {reason}", "check --refresh and the log level"
            )
        if code == 1008:
            return _refused(403)
        return _Retry(f"closed with code {code}: {reason}" if reason else f"closed with code {code}")


def make_feed(client: ControlClient, dataflow: str | None, interval: float) -> StreamFeed:
    """The feed of the coordinator ``client`` reaches, with its token, for ``dataflow``.

    Example:
        >>> from doradus._control.client import parse_address
        >>> feed = make_feed(ControlClient(parse_address("192.0.2.7:6300", "flag")), "demo", 0.5)
        >>> feed.url
        'ws://192.0.2.7:6300/api/v1/stream?dataflow=demo&level=INFO&logs=true&interval=0.5&tail=200'
    """
    return StreamFeed(client.address.ws, client.headers, Subscription(dataflow=dataflow, interval=interval))


class _Retry(Exception):
    """A failure worth another connection."""


def _refused(status: int) -> Exception:
    if status in (401, 403):
        return Fatal(
            "The coordinator refused the token",
            "pass --token-file with the coordinator's token (doradus up keeps it in the runtime folder)",
        )
    if status == 404:
        return Fatal(
            "This coordinator has no stream endpoint (/api/v1/stream)",
            "upgrade the coordinator to a Doradus that serves the stream (docs/stream.md)",
        )
    return _Retry(f"HTTP {status} at the handshake")


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return "connection refused" if "refused" in text.lower() or "Errno 111" in text else text


def _decode(raw: str | bytes) -> dict[str, Any] | None:
    """A message as a dict; anything else (not JSON, not an object) is None.

    Example:
        >>> _decode('{"type": "hello"}'), _decode("nonsense"), _decode("[1]")
        ({'type': 'hello'}, None, None)
    """
    try:
        found = json.loads(raw)
    except ValueError:
        return None
    return found if isinstance(found, dict) else None
