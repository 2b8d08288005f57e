"""The ``websocket`` backend: frames as binary WebSocket messages (``ws://`` or ``wss://``).

Useful where only HTTP(S) gets through (proxies, firewalls, browsers
watching a dataflow). A receiving node runs a WebSocket server on its
``listen`` address (default a free port on 127.0.0.1, exposed as
`WebSocketBackend.address`); each sending node connects to
``ws://<connect>/doradus/<sender-node-id>`` (the path names the sender) and
sends every frame as **one binary message**. Small frames go as a single
WebSocket frame; frames of 64 KiB or more are sent *fragmented* (header
parts, then the payload, as continuation frames) so the payload is never
copied into a joined buffer on the sending side. The receiver reassembles a
message up to ``max_size`` bytes (default 1 GiB, far above the 16 MiB frames
the conformance kit sends); a larger message closes the link (code 1009).

Compression is off (``compression=None``): permessage-deflate costs ~6x on
1 MiB frames and Arrow payloads rarely compress well.

Options (`LinkSpec.options`): ``listen`` (inbound), ``connect``,
``connect_retries`` x ``retry_interval`` (`ConnectBound`, default 50 x 0.1 s),
``max_size`` (bytes, both sides) and ``tls``: ``{"cert": ..., "key": ...}``
on the receiver turns on ``wss://``; ``{"ca": ...}`` on the sender makes it
connect with ``wss://`` and verify the server against that CA file (``{}`` or
``True``: ``wss://`` verified against the system's CAs). Verification is
never turned off.

Delivery guarantee: every message in order while the connection lives (TCP
underneath); the sender's socket writes block when the receiver falls
behind (websockets' receive queue is bounded), so memory stays bounded.

Example::

    backend = WebSocketBackend("camera", receiver)
    backend.open([LinkSpec("detector", "out", ("image",), options={"connect": "127.0.0.1:7000"})], [])
"""

from __future__ import annotations

import functools
import inspect
import ssl
import threading
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from doradus._exceptions import ConnectError
from doradus.backends._network import LINK_OPTIONS, ConnectBound, NetLink, NetworkBackend
from doradus.backends._tcp import parse_host_port

if TYPE_CHECKING:  # websockets is imported when a backend opens (see `WebSocketBackend.requires`)
    from websockets.sync.client import ClientConnection
    from websockets.sync.server import Server, ServerConnection

PATH_PREFIX = "/doradus/"
DEFAULT_MAX_SIZE = 1 << 30
FRAGMENT_FROM = 64 * 1024
"""Frames at least this large are sent fragmented (header, then payload) instead of joined."""


@functools.cache
def _legacy() -> dict[str, Any]:
    """A direct (not context-managed) connection: websockets >= 17.1 warns without ``legacy=True``."""
    from websockets.sync.client import connect

    return {"legacy": True} if "legacy" in inspect.signature(connect).parameters else {}


def _server_tls(options: dict[str, Any]) -> ssl.SSLContext | None:
    tls = options.get("tls")
    if not tls or not tls.get("cert"):
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(tls["cert"]), str(tls["key"]) if tls.get("key") else None)
    return context


def _client_tls(options: dict[str, Any]) -> ssl.SSLContext | None:
    tls = options.get("tls")
    if tls is None or tls is False:
        return None
    ca = tls.get("ca") if isinstance(tls, dict) else None
    return ssl.create_default_context(cafile=str(ca) if ca else None)


class WebSocketBackend(NetworkBackend):
    """Frames as binary messages over one WebSocket connection per (sender, receiver) pair.

    Example::

        receiver_side = WebSocketBackend("b", receiver)
        receiver_side.open([LinkSpec("a", "in", routes={"out": ["in"]})], [])
        host, port = receiver_side.address
    """

    name = "websocket"
    topics = False
    requires = ("websockets",)
    options = LINK_OPTIONS | {"max_size", "tls"}

    def __init__(self, node_id: str, receiver: Any) -> None:
        super().__init__(node_id, receiver)
        self._server: Server | None = None
        self._server_thread: threading.Thread | None = None
        self._conns: list[ServerConnection] = []
        self._conns_lock = threading.Lock()
        self.address: tuple[str, int] | None = None
        """Where this node listens, once open (``None`` without inbound links)."""

    # ------------------------------------------------------------ opening
    def _open_transport(self) -> None:
        from websockets.sync.server import serve

        if self.in_links:
            options: dict[str, Any] = {}
            for link in self.in_links.values():
                if link.options.get("listen") or link.options.get("tls"):
                    options = link.options
                    break
            listen = str(options.get("listen") or "127.0.0.1:0")
            host, port = parse_host_port(listen)
            try:
                self._server = serve(
                    self._handle,
                    host,
                    port,
                    compression=None,
                    max_size=int(options.get("max_size", DEFAULT_MAX_SIZE)),
                    ssl=_server_tls(options),
                )
            except OSError as exc:
                raise ConnectError(f"cannot listen on {listen}: {exc}") from exc
            self.address = self._server.socket.getsockname()[:2]
            self._server_thread = threading.Thread(
                target=self._server.serve_forever, name=f"websocket-{self.node_id}", daemon=True
            )
            self._server_thread.start()
        for link in self.out_links:
            link.handle = self._connect(link)
            link.options["lock"] = threading.Lock()

    def _connect(self, link: NetLink) -> ClientConnection:
        from websockets.sync.client import connect

        target = str(link.options.get("connect") or "")
        if not target:
            raise ConnectError(f"link to {link.peer!r} has no `connect` address")
        host, port = parse_host_port(target)
        context = _client_tls(link.options)
        scheme = "wss" if context is not None else "ws"
        shown = f"[{host}]" if ":" in host else host
        uri = f"{scheme}://{shown}:{port}{PATH_PREFIX}{quote(self.node_id, safe='')}"
        bound = ConnectBound.from_options(link.options)
        max_size = int(link.options.get("max_size", DEFAULT_MAX_SIZE))

        def attempt() -> ClientConnection:
            conn: ClientConnection = connect(
                uri,
                compression=None,
                max_size=max_size,
                open_timeout=max(bound.interval, 1.0),
                ssl=context,
                **_legacy(),
            )
            return conn

        # refused, handshake or TLS failure: retried, then ConnectError
        return bound.connect(
            attempt, node_id=self.node_id, target=f"{link.peer!r} at {uri}", retry_on=(Exception,)
        )

    # ---------------------------------------------------------- receiving
    def _handle(self, conn: ServerConnection) -> None:
        from websockets.exceptions import ConnectionClosed

        path = conn.request.path if conn.request is not None else ""
        if not path.startswith(PATH_PREFIX):
            conn.close(1008, "expected /doradus/<sender-node-id>")
            return
        peer = unquote(path[len(PATH_PREFIX) :])
        with self._conns_lock:
            self._conns.append(conn)
        try:
            for message in conn:
                if isinstance(message, str):
                    self.receiver.error(f"a text message from {peer!r} ignored (frames are binary)")
                    continue
                self._frame(peer, message)
        except ConnectionClosed:
            pass
        except Exception as exc:  # a broken connection must not kill the server thread
            if not self._closing:
                self.receiver.error(f"link from {peer!r} failed: {exc}")
        finally:
            with self._conns_lock:
                if conn in self._conns:
                    self._conns.remove(conn)
            self.peer_gone(peer)  # no-op when an END frame already closed its inputs

    # ------------------------------------------------------------ sending
    def _send_link(self, link: NetLink, parts: list[bytes | memoryview]) -> None:
        conn: ClientConnection = link.handle
        size = sum(len(p) for p in parts)
        try:
            with link.options["lock"]:
                if size < FRAGMENT_FROM or len(parts) == 1:
                    conn.send(b"".join(parts))
                else:
                    head = b"".join(parts[:-1])
                    conn.send([head, parts[-1]] if head else [parts[-1]])
        except Exception as exc:  # ConnectionClosed, OSError: the link is gone
            self._link_failed(link)
            if not self._closing:
                self.receiver.error(f"link to {link.peer!r} broke: {exc}")

    # ------------------------------------------------------------ closing
    def _close_transport(self) -> None:
        for link in self.out_links:
            if link.handle is not None:
                try:
                    link.handle.close()  # the closing handshake waits for what was sent before
                except Exception:
                    pass
        if self._server is not None:
            self._server.shutdown()
            if self._server_thread is not None:
                self._server_thread.join(timeout=5)
        with self._conns_lock:
            conns = list(self._conns)
        for conn in conns:
            try:
                conn.close()
            except Exception:
                pass
