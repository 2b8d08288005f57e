"""The ``redis`` backend: messages through a Redis server, as pub/sub or as streams.

Each output is published on its topic ``<prefix><sender>/<output>`` (the
prefix ``doradus/<run-id>/`` keeps runs sharing a server apart); a receiving
node reads the topics of the outputs routed to it. Two modes (link option
``mode``):

- ``pubsub`` (default): ``PUBLISH`` on the topic as a channel; one subscriber
  thread per receiving node. The subscription is confirmed by the server
  before `RedisBackend.open` returns, so nothing published after the
  receiver's ``start`` is missed.
- ``streams``: ``XADD`` to the topic as a stream key (trimmed to about
  ``maxlen`` entries); one reader thread per receiving node runs ``XREAD
  BLOCK`` from the **start of the stream** (id ``0``), keeping the last id it
  saw in memory. The prefix is per run, so the stream holds only this run's
  messages: a receiver that opens late still gets everything its senders
  published (as long as ``maxlen`` did not trim it). No consumer group: each
  receiving node reads every entry itself, and nothing needs acknowledging.
  The publisher sets an expiry (``expire``, default one hour) on its stream
  keys when it closes, so a shared server does not keep them forever.

Delivery guarantees:

- **pubsub is at-most-once.** Messages published while a subscriber is
  disconnected (a server restart, or Redis dropping a subscriber that fell
  ``client-output-buffer-limit pubsub`` behind, 32 MiB by default) are lost
  for it. Once it has resubscribed, nothing more is lost and order holds. A
  publish retried after a dropped connection may, rarely, arrive twice (the
  first attempt had reached the server); the copy follows the original.
- **streams are at-least-once.** A reader that loses its connection
  reconnects and continues from the last id it saw, so it misses nothing the
  server still holds, in order. Across a server *restart* that holds only if
  the server keeps its data (``appendonly yes`` with ``appendfsync always``,
  or a clean shutdown with RDB/AOF): a server that comes back empty has lost
  what its readers had not read yet. Duplicates: a publish whose connection
  broke before the reply is retried, and if the first attempt had been
  stored the message is stored twice. The receiver sees the same message
  (the same ``seq`` and timestamp) twice, the copy right after the original
  (a repeated fragment of a large frame is dropped by the receiver, so only
  whole frames repeat); drop a message whose ``seq`` is not above the last
  seen on that input to get each once, in order.

Publishing while the server is unreachable retries with a backoff that
starts at ``retry_interval`` and doubles up to 1 s, for at most
``reconnect_timeout`` seconds (default 10), blocking the sending node (back
pressure); past that the message is dropped, counted in
``statistics().send_failures``, and the node hears it through
``Receiver.error``. Until a publish succeeds again, later ones try once. The
receiving thread reconnects (and resubscribes) with the same backoff, for as
long as the backend is open.

Large payloads: a frame above ``fragment`` bytes (default 1 MiB) is split
into fragments published back to back and reassembled by the receiver,
because Redis disconnects a pub/sub subscriber whose output buffer passes
``client-output-buffer-limit pubsub`` (32 MiB hard, 8 MiB for 60 s by
default): whole 16 MiB messages push a subscriber that is a little behind
over it. Fragments keep each server write small; they do not raise the
limit on the total backlog. A frame missing a fragment (lost while
disconnected) is dropped whole and counted (``details["partial_dropped"]``).

Options (link options, defaults in parentheses): ``url``
(``redis://127.0.0.1:6379/0``), ``mode`` (``pubsub``), ``fragment``
(1 MiB), ``connect_retries`` (50), ``retry_interval`` (0.1 s), ``maxlen``
(100000, streams), ``reconnect_timeout`` (10 s), ``expire`` (3600 s,
streams), ``tls`` (files for ``rediss://``: `doradus.backends._tls`). A password in the URL
(``redis://:pw@host`` or ``redis://user:pw@host``) is sent to the server and masked in every
message (`doradus._secrets`). Opening fails with `ConnectError` when the server cannot be reached
within ``connect_retries`` x ``retry_interval`` (`ConnectBound`, the bound of
every backend; plus the connect timeout of each attempt, at least 1 s).

Example::

    backend = RedisBackend("camera", receiver)
    backend.open([LinkSpec("detector", "out", ("image",), options={"prefix": "doradus/run1/"})], [])
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, fields
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from doradus._exceptions import ConnectError, TransportError
from doradus._secrets import redact, redact_url
from doradus.backends._base import Receiver
from doradus.backends._fragments import Reassembler, split_frame
from doradus.backends._network import CONNECT_RETRIES, RETRY_INTERVAL, ConnectBound, NetworkBackend
from doradus.backends._tls import TlsFiles

if TYPE_CHECKING:  # redis is imported when a backend opens (see `RedisBackend.requires`)
    import redis

DEFAULT_URL = "redis://127.0.0.1:6379/0"
MODES = ("pubsub", "streams")
MAX_BACKOFF = 1.0
SOCKET_TIMEOUT = 30.0
"""Seconds a command may wait for its reply (a 16 MiB frame is a few ms locally)."""
POLL = 0.2
"""Seconds the receiving thread blocks before looking at the stop flag."""
HEALTH_CHECK = 10
"""Seconds of silence after which a connection is checked with a PING (finds dead peers)."""
STREAM_FIELD = b"f"


@dataclass(frozen=True)
class RedisSettings:
    """The ``redis`` link options, with their defaults.

    Example:
        >>> RedisSettings.from_options({"mode": "streams"}).maxlen
        100000
    """

    url: str = DEFAULT_URL
    mode: str = "pubsub"
    fragment: int = 1 << 20
    connect_retries: int = CONNECT_RETRIES
    retry_interval: float = RETRY_INTERVAL
    maxlen: int = 100_000
    reconnect_timeout: float = 10.0
    expire: int = 3600
    tls: Any = None

    @property
    def bound(self) -> ConnectBound:
        """How long to try reaching the server: ``connect_retries`` x ``retry_interval``.

        Example:
            >>> RedisSettings().bound.seconds
            5.0
        """
        return ConnectBound(self.connect_retries, self.retry_interval)

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> RedisSettings:
        """Settings from link options (unknown keys are ignored: they belong to other layers).

        Raises:
            TransportError: an option has an invalid value.

        Example:
            >>> RedisSettings.from_options({}).url
            'redis://127.0.0.1:6379/0'
        """
        try:
            settings = cls(
                url=str(options.get("url", DEFAULT_URL)),
                mode=str(options.get("mode", "pubsub")),
                fragment=int(options.get("fragment", 1 << 20)),
                connect_retries=int(options.get("connect_retries", CONNECT_RETRIES)),
                retry_interval=float(options.get("retry_interval", RETRY_INTERVAL)),
                maxlen=int(options.get("maxlen", 100_000)),
                reconnect_timeout=float(options.get("reconnect_timeout", 10.0)),
                expire=int(options.get("expire", 3600)),
                tls=options.get("tls"),
            )
        except (TypeError, ValueError) as exc:
            raise TransportError(redact(f"invalid redis option: {exc}")) from exc
        TlsFiles.from_option(settings.tls, url=settings.url, option="redis")  # refused here, not at connect
        if settings.mode not in MODES:
            raise TransportError(f"redis mode must be one of {', '.join(MODES)}, not {settings.mode!r}")
        if settings.fragment < 1:
            raise TransportError(f"redis fragment must be positive, not {settings.fragment}")
        return settings


class RedisBackend(NetworkBackend):
    """Frames through Redis pub/sub channels or streams; see the module documentation.

    ``send`` may be called from any thread; fragments of one frame are
    published together under a lock. ``close`` publishes ``END`` on every
    output, stops the receiving thread and closes the connections.

    Example::

        backend = RedisBackend("b", receiver)
        backend.open([LinkSpec("a", "in", routes={"out": ["in"]}, options={"mode": "streams"})], [])
    """

    name = "redis"
    topics = True
    requires = ("redis",)
    options = frozenset(f.name for f in fields(RedisSettings))
    option_choices = MappingProxyType({"mode": MODES})

    def __init__(self, node_id: str, receiver: Receiver) -> None:
        super().__init__(node_id, receiver)
        self.settings = RedisSettings()
        self._client: redis.Redis | None = None
        self._reader: redis.Redis | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._open_error: BaseException | None = None
        self._publish_lock = threading.Lock()
        self._frame_number = 0
        self._gave_up = False
        self._peers: dict[bytes, str] = {}
        self._last_ids: dict[bytes, bytes] = {}
        self._reassembler = Reassembler()
        self._reconnects = 0
        self._retries = 0

    # ------------------------------------------------------------ lifecycle
    def _open_transport(self) -> None:
        self.settings = RedisSettings.from_options(self.merged_options())
        for peer, link in self.in_links.items():
            for output in link.routes:
                self._peers[self.topic(output, sender=peer).encode()] = peer
        try:
            self._open_clients()
        except BaseException:
            self._close_transport()  # the caller never sees a half-open backend
            raise

    def _open_clients(self) -> None:
        if self.out_links:
            self._client = self._connect()
        if self._peers:
            self._reader = self._connect()
            self._last_ids = dict.fromkeys(self._peers, b"0-0")
            loop = self._pubsub_loop if self.settings.mode == "pubsub" else self._stream_loop
            self._thread = threading.Thread(target=loop, name=f"redis-{self.node_id}", daemon=True)
            self._thread.start()
            if self.settings.mode == "pubsub":
                wait = max(5.0, self.settings.bound.seconds)
                if not self._ready.wait(wait) or self._open_error is not None:
                    self._stop.set()
                    raise ConnectError(
                        redact(
                            f"node {self.node_id!r} could not subscribe at {self.settings.url}: "
                            f"{self._open_error or 'no confirmation'}"
                        )
                    ) from self._open_error

    def _new_client(self) -> redis.Redis:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        interval = self.settings.retry_interval
        files = TlsFiles.from_option(self.settings.tls, url=self.settings.url, option="redis")
        tls = (
            {}
            if files is None
            else {"ssl_ca_certs": files.ca, "ssl_certfile": files.cert, "ssl_keyfile": files.key}
        )
        try:
            return redis.Redis.from_url(
                self.settings.url,
                **tls,
                socket_connect_timeout=max(interval, 1.0),
                socket_timeout=SOCKET_TIMEOUT,
                retry=Retry(NoBackoff(), 0),  # the backend retries itself, within its own bounds
                health_check_interval=HEALTH_CHECK,
            )
        except ValueError as exc:
            raise TransportError(redact(f"invalid redis url {self.settings.url!r}: {exc}")) from exc

    def _connect(self) -> redis.Redis:
        from redis.exceptions import RedisError

        def attempt() -> redis.Redis:
            client = self._new_client()
            try:
                client.ping()
            except RedisError:
                client.close()
                raise
            return client

        return self.settings.bound.connect(
            attempt,
            node_id=self.node_id,
            target=f"redis at {redact_url(self.settings.url)}",
            retry_on=(RedisError,),
        )

    def _close_transport(self) -> None:
        from redis.exceptions import RedisError

        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=POLL * 10)
        client = self._client
        if client is not None:
            if self.settings.mode == "streams":
                try:
                    for output in self.subscribed_outputs():
                        client.expire(self.topic(output), self.settings.expire)
                except RedisError:
                    pass
            client.close()
        if self._reader is not None:
            self._reader.close()

    # -------------------------------------------------------------- sending
    def _publish(self, topic: str, parts: list[bytes | memoryview]) -> None:
        key = topic.encode()
        with self._publish_lock:
            self._frame_number += 1
            for message in split_frame(parts, self.settings.fragment, self._frame_number):
                if not self._put_retrying(key, message):
                    return  # the receiver drops the partial frame

    def _put(self, key: bytes, message: bytes) -> None:
        assert self._client is not None
        if self.settings.mode == "streams":
            self._client.xadd(key, {STREAM_FIELD: message}, maxlen=self.settings.maxlen, approximate=True)
        else:
            self._client.publish(key, message)

    def _put_retrying(self, key: bytes, message: bytes) -> bool:
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import RedisError
        from redis.exceptions import TimeoutError as RedisTimeoutError

        # A dropped or silent connection is retried within the budget; any other error is final.
        dropped = (RedisConnectionError, RedisTimeoutError, OSError)
        budget = 0.0 if self._gave_up or self._closing else self.settings.reconnect_timeout
        deadline = time.monotonic() + budget
        delay = self.settings.retry_interval
        while True:
            try:
                self._put(key, message)
                self._gave_up = False
                return True
            except dropped as exc:
                left = deadline - time.monotonic()
                if left <= 0:
                    self._gave_up = True
                    self._give_up(key, redact(f"redis at {self.settings.url} unreachable: {exc}"))
                    return False
                with self._lock:
                    self._retries += 1
                time.sleep(min(delay, left))
                delay = min(delay * 2, MAX_BACKOFF)
            except RedisError as exc:
                self._give_up(key, f"redis refused it: {exc}")
                return False

    def _give_up(self, key: bytes, why: str) -> None:
        with self._lock:
            self._failures += 1
        if not self._closing:
            self.receiver.error(f"a message on {key.decode()!r} was dropped: {why}")

    # ------------------------------------------------------------ receiving
    def _arrived(self, topic: bytes, message: bytes) -> None:
        peer = self._peers.get(topic)
        if peer is None:
            return
        frame = self._reassembler.feed(topic, message)
        if frame is not None:
            self._frame(peer, frame)

    def _backoff(self, delay: float) -> float:
        """Sleep ``delay`` (or until closing) after a dropped connection; the next delay."""
        with self._lock:
            self._reconnects += 1
        self._stop.wait(delay)
        return min(delay * 2, MAX_BACKOFF)

    def _pubsub_loop(self) -> None:
        from redis.exceptions import RedisError

        assert self._reader is not None
        client, delay, channels = self._reader, self.settings.retry_interval, list(self._peers)
        while not self._stop.is_set():
            pubsub = client.pubsub()
            try:
                self._subscribed(pubsub, channels)
                delay = self.settings.retry_interval
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=POLL)
                    if message is not None and message["type"] in ("message", b"message"):
                        self._arrived(message["channel"], message["data"])
            except RedisError as exc:
                if not self._ready.is_set():
                    self._open_error = exc
                    self._ready.set()
                    return
                delay = self._backoff(delay)
            finally:
                try:
                    pubsub.close()
                except RedisError:
                    pass

    def _subscribed(self, pubsub: Any, channels: list[bytes]) -> None:
        """Subscribe and wait for the server to confirm every channel (keeping messages that come first)."""
        pubsub.subscribe(*channels)
        waiting = set(channels)
        while waiting and not self._stop.is_set():
            message = pubsub.get_message(timeout=POLL)
            if message is None:
                continue
            if message["type"] in ("subscribe", b"subscribe"):
                waiting.discard(message["channel"])
            elif message["type"] in ("message", b"message"):
                self._arrived(message["channel"], message["data"])
        self._ready.set()

    def _stream_loop(self) -> None:
        from redis.exceptions import RedisError

        assert self._reader is not None
        client, delay = self._reader, self.settings.retry_interval
        while not self._stop.is_set():
            try:
                streams: dict[Any, Any] = dict(self._last_ids)
                reply = client.xread(streams, count=64, block=int(POLL * 1000))
                delay = self.settings.retry_interval
            except RedisError:
                delay = self._backoff(delay)
                continue
            self._stream_entries(reply)

    def _stream_entries(self, reply: Any) -> None:
        streams = reply.items() if isinstance(reply, dict) else (reply or [])
        for key, entries in streams:
            for entry in entries or []:
                entry_id, fields = entry
                self._last_ids[key] = entry_id
                message = fields.get(STREAM_FIELD)
                if message is not None:
                    self._arrived(key, message)

    def _details(self) -> dict[str, Any]:
        return {
            "mode": self.settings.mode,
            "reconnects": self._reconnects,
            "publish_retries": self._retries,
            "partial_dropped": self._reassembler.dropped,
        }
