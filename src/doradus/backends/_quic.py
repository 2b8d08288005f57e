"""The ``quic`` backend: frames over QUIC (TLS 1.3, UDP), with aioquic.

For lossy or changing networks (Wi-Fi, cellular, robots that roam): QUIC
recovers losses per connection without TCP's head-of-line stalls across
links and survives address changes. aioquic is pure Python, about 13 MB/s
in bulk on one core: this is the *resilient* link backend, not the fast one
(use ``shm`` on one machine, ``tcp`` on a good network).

Shape: a receiving node runs a QUIC server on its ``listen`` address
(default a free UDP port on 127.0.0.1, exposed as `QuicBackend.address`);
each sending node opens **one QUIC connection per link** and **one
bidirectional stream** on it, which keeps the frames in order. On that
stream the sender writes length-prefixed records (8-byte little-endian
length, then the bytes): first its node id, then one frame per record. ALPN
is ``doradus`` on both sides.

Flow control: the receiver writes back, on the same stream, the number of
stream bytes it has processed (8-byte little-endian, every 1 MiB and at the
end). A sender waits before writing while more than 8 MiB are unacknowledged,
so memory stays bounded (8 MiB plus one frame per link) and a slow receiver
slows its senders. When the sender closes, it ends its side of the stream
and waits (up to 10 s) for the receiver to end its side, i.e. to have
processed everything, before closing the connection.

Threads: one asyncio loop per backend, in its own thread; `QuicBackend.send`
may be called from any thread and hands each frame to the loop
(``run_coroutine_threadsafe``), waiting until it is queued within the
window. Frames are delivered to the node from the loop thread.

Certificates: the receiver uses the ``cert``/``key`` options (PEM files)
when given; the sender verifies the server against the ``ca`` option (a PEM
file). When they are absent, both sides use one self-signed P-256
certificate (SAN ``127.0.0.1``, ``::1``, ``localhost``) generated on first
use in ``$XDG_CONFIG_HOME/doradus/quic/`` (else ``~/.config/doradus/quic/``;
folder 0700, files 0600) and reused afterwards: the sender verifies the
server against that same certificate, so verification stays on (never
``CERT_NONE``). This default only works on one machine (or machines sharing
the folder); across machines, pass ``cert``/``key``/``ca``. The sender checks
the server name against the ``connect`` host, or against ``server_name``.

Other options (`LinkSpec.options`): ``connect``, ``connect_retries`` x
``retry_interval`` (`ConnectBound`, default 50 x 0.1 s; each attempt waits at
least 1 s for the handshake) before `ConnectError`; ``idle_timeout``
(default 60 s; senders ping every third of it so idle links stay up).

Example::

    backend = QuicBackend("camera", receiver)
    backend.open([LinkSpec("detector", "out", ("image",), options={"connect": "127.0.0.1:7000"})], [])
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from doradus._exceptions import ConnectError
from doradus.backends._network import LINK_OPTIONS, ConnectBound, NetLink, NetworkBackend
from doradus.backends._tcp import parse_host_port

if TYPE_CHECKING:  # aioquic is imported when a backend opens (see `QuicBackend.requires`)
    from aioquic.asyncio.server import QuicServer
    from aioquic.quic.configuration import QuicConfiguration

    from doradus.backends._quic_link import Outbound

ALPN = "doradus"
LENGTH = struct.Struct("<Q")
HELLO_MAX = 4096
WINDOW = 8 << 20
"""Unacknowledged stream bytes a sender allows before it waits."""
ACK_EVERY = 1 << 20
"""The receiver acknowledges after processing this many more bytes."""
CLOSE_TIMEOUT = 10.0
DEFAULT_IDLE_TIMEOUT = 60.0

T = TypeVar("T")


class QuicBackend(NetworkBackend):
    """Length-prefixed frames on one QUIC stream per (sender, receiver) pair.

    Example::

        receiver_side = QuicBackend("b", receiver)
        receiver_side.open([LinkSpec("a", "in", routes={"out": ["in"]})], [])
        host, port = receiver_side.address
    """

    name = "quic"
    topics = False
    # aioquic and cryptography are imported when a backend opens (`_quic_link`, `_quic_tls`).
    requires = ("aioquic", "cryptography")
    options = LINK_OPTIONS | {"cert", "key", "ca", "server_name", "idle_timeout"}

    def __init__(self, node_id: str, receiver: Any) -> None:
        super().__init__(node_id, receiver)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: QuicServer | None = None
        self._keepalive: asyncio.Task[None] | None = None
        self.address: tuple[str, int] | None = None
        """Where this node listens, once open (``None`` without inbound links)."""

    # ------------------------------------------------------------ the loop
    def _run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def _start_loop(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name=f"quic-{self.node_id}", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------ opening
    def _open_transport(self) -> None:
        self._start_loop()
        try:
            self._open_links()
        except BaseException:
            self._close_transport()  # stops the loop thread; the node never sees a half-open backend
            raise

    def _open_links(self) -> None:
        if self.in_links:
            options: dict[str, Any] = {}
            for link in self.in_links.values():
                if link.options.get("listen") or link.options.get("cert"):
                    options = link.options
                    break
            listen = str(options.get("listen") or "127.0.0.1:0")
            try:
                self._run(self._serve(listen, options))
            except Exception as exc:
                raise ConnectError(f"cannot listen on {listen}: {exc}") from exc
        idle = DEFAULT_IDLE_TIMEOUT
        for link in self.out_links:
            link.handle = self._connect(link)
            idle = min(idle, float(link.options.get("idle_timeout", DEFAULT_IDLE_TIMEOUT)))
        if self.out_links:
            self._run(self._start_keepalive(idle / 3))

    async def _serve(self, listen: str, options: dict[str, Any]) -> None:
        from aioquic.asyncio.server import serve as quic_serve
        from aioquic.quic.configuration import QuicConfiguration

        from doradus.backends._quic_link import LinkProtocol
        from doradus.backends._quic_tls import ensure_certificate

        host, port = parse_host_port(listen)
        config = QuicConfiguration(
            is_client=False,
            alpn_protocols=[ALPN],
            max_data=4 * WINDOW,
            max_stream_data=2 * WINDOW,
            idle_timeout=float(options.get("idle_timeout", DEFAULT_IDLE_TIMEOUT)),
        )
        if options.get("cert"):
            config.load_cert_chain(str(options["cert"]), str(options["key"]) if options.get("key") else None)
        else:
            cert, key = ensure_certificate()
            config.load_cert_chain(str(cert), str(key))
        self._server = await quic_serve(
            host,
            port,
            configuration=config,
            create_protocol=lambda *a, **kw: LinkProtocol(*a, backend=self, **kw),
        )
        assert self._server._transport is not None
        self.address = self._server._transport.get_extra_info("sockname")[:2]

    def _connect(self, link: NetLink) -> Outbound:
        from aioquic.quic.configuration import QuicConfiguration

        from doradus.backends._quic_tls import ensure_certificate

        target = str(link.options.get("connect") or "")
        if not target:
            raise ConnectError(f"link to {link.peer!r} has no `connect` address")
        host, port = parse_host_port(target)
        config = QuicConfiguration(
            is_client=True,
            alpn_protocols=[ALPN],
            max_data=4 * WINDOW,
            max_stream_data=2 * WINDOW,
            idle_timeout=float(link.options.get("idle_timeout", DEFAULT_IDLE_TIMEOUT)),
            server_name=str(link.options.get("server_name") or host),
        )
        config.load_verify_locations(cafile=str(link.options.get("ca") or ensure_certificate()[0]))
        bound = ConnectBound.from_options(link.options)
        handshake = max(bound.interval, 1.0)
        # Each attempt runs on the backend's loop; the pauses between attempts are this thread's.
        # Refused, timed out, TLS failure: retried, then ConnectError.
        return bound.connect(
            lambda: self._run(asyncio.wait_for(self._dial(host, port, config), timeout=handshake)),
            node_id=self.node_id,
            target=f"{link.peer!r} at {target}",
            retry_on=(Exception,),
        )

    async def _dial(self, host: str, port: int, config: QuicConfiguration) -> Outbound:
        from aioquic.quic.connection import QuicConnection

        from doradus.backends._quic_link import LinkProtocol, Outbound

        loop = asyncio.get_running_loop()
        info = (await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM))[0]
        sock = socket.socket(info[0], socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            sock.connect(info[4])  # binds the route's own source address, never a wildcard
        except OSError:
            sock.close()
            raise
        connection = QuicConnection(configuration=config)
        transport, protocol = await loop.create_datagram_endpoint(
            lambda: LinkProtocol(connection, backend=self), sock=sock
        )
        try:
            protocol.connect(info[4])
            await protocol.wait_connected()
            stream_id = connection.get_next_available_stream_id()
            out = Outbound(protocol, transport, stream_id)
            protocol.outbound = out
            hello = self.node_id.encode()
            connection.send_stream_data(stream_id, LENGTH.pack(len(hello)) + hello)
            out.written = LENGTH.size + len(hello)
            protocol.transmit()
            return out
        except BaseException:
            protocol.close()
            transport.close()
            raise

    async def _start_keepalive(self, every: float) -> None:
        self._keepalive = asyncio.get_running_loop().create_task(self._ping_loop(every))

    async def _ping_loop(self, every: float) -> None:
        while True:
            await asyncio.sleep(every)
            for link in self.out_links:
                out: Outbound | None = link.handle
                if out is not None and out.broken is None:
                    out.protocol._quic.send_ping(0)
                    out.protocol.transmit()

    # ------------------------------------------------------------ sending
    def _send_link(self, link: NetLink, parts: list[bytes | memoryview]) -> None:
        out: Outbound = link.handle
        size = sum(len(p) for p in parts)
        record = b"".join([LENGTH.pack(size), *parts])
        with out.cond:
            while out.broken is None and out.pending and out.pending_bytes + len(record) > WINDOW:
                out.cond.wait(0.5)  # the loop has a window's worth to write: wait for it
            broken = out.broken
            if broken is None:
                out.pending.append(record)
                out.pending_bytes += len(record)
                schedule, out.scheduled = not out.scheduled, True
        if broken is not None:
            self._link_failed(link)
            if not self._closing:
                self.receiver.error(f"link to {link.peer!r} broke: {broken}")
            return
        if schedule:
            assert self._loop is not None
            try:
                self._loop.call_soon_threadsafe(self._flush, out)
            except RuntimeError:  # the loop is closed: the backend is closing
                self._link_failed(link)

    def _flush(self, out: Outbound) -> None:
        """Loop thread: move pending records to the stream while the window allows, then transmit."""
        quic = out.protocol._quic
        wrote = False
        with out.cond:
            out.scheduled = False
            while out.pending and out.broken is None and out.written - out.acked <= WINDOW:
                record = out.pending.popleft()
                out.pending_bytes -= len(record)
                quic.send_stream_data(out.stream_id, record)
                out.written += len(record)
                wrote = True
            out.cond.notify_all()
        if wrote:
            out.protocol.transmit()

    # ------------------------------------------------------------ closing
    async def _finish(self, out: Outbound) -> None:
        if out.broken is None:
            try:
                while out.broken is None:  # write what senders queued (the window may hold some back)
                    self._flush(out)
                    if not out.pending:
                        break
                    out.progress.clear()
                    await asyncio.wait_for(out.progress.wait(), CLOSE_TIMEOUT)
                out.protocol._quic.send_stream_data(out.stream_id, b"", end_stream=True)
                out.protocol.transmit()
                # the receiver ends its side once it processed everything before
                await asyncio.wait_for(out.finished.wait(), CLOSE_TIMEOUT)
            except Exception:  # TimeoutError included: close anyway
                pass
        out.protocol.close()
        try:
            await asyncio.wait_for(out.protocol.wait_closed(), 1.0)
        except Exception:
            pass
        out.transport.close()

    async def _shutdown(self) -> None:
        if self._keepalive is not None:
            self._keepalive.cancel()
        for link in self.out_links:
            if link.handle is not None:
                await self._finish(link.handle)
        if self._server is not None:
            self._server.close()
            await asyncio.sleep(0.05)  # lets the CONNECTION_CLOSE frames leave

    def _close_transport(self) -> None:
        loop = self._loop
        if loop is None:
            return
        try:
            self._run(self._shutdown(), timeout=CLOSE_TIMEOUT + 5)
        except Exception:
            pass
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=5)
        if not loop.is_running():
            loop.close()
