"""The ``tcp`` backend: plain TCP connections, on one machine or across machines.

A receiving node listens on its ``listen`` address (default a free port on
127.0.0.1); each sending node connects to it (``connect``), says who it is
and proves it belongs to the run (the run's ``link_key``, which the daemon gives
both ends: a connection without it is closed and counted as malformed, so no
other process can pose as a sender and close its inputs), then writes
length-prefixed frames. The receiver reads them as they come, and
the node's input queue policy applies on arrival. For ``queue_policy:
backpressure`` inputs the receiver writes flow messages back on the same
connection (`doradus.backends._flow`), which the sender reads on a thread of
its own.

Delivery guarantee: every message in order, as long as the connection lives
(TCP's guarantee); a sender that cannot connect within ``connect_retries``
x ``retry_interval`` (`ConnectBound`, default 50 x 0.1 s) raises `ConnectError`.

Example::

    backend = TcpBackend("camera", receiver)
    backend.open([LinkSpec("detector", "out", ("image",), options={"connect": "127.0.0.1:7000"})], [])
"""

from __future__ import annotations

import hmac
import socket
import struct
import threading
from typing import Any

from doradus._exceptions import ConnectError
from doradus.backends._network import LINK_OPTIONS, ConnectBound, NetLink, NetworkBackend

LENGTH = struct.Struct("<Q")
HELLO_MAX = 4096
FRAME_MAX = 1 << 40
"""A declared frame length above this is not a Doradus sender's: the connection is closed, counted."""
CHUNK = 64 << 20


def parse_host_port(text: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port`` too) as a tuple.

    Example:
        >>> parse_host_port("127.0.0.1:7000"), parse_host_port("[::1]:80")
        (('127.0.0.1', 7000), ('::1', 80))
    """
    host, _, port = text.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


def _recv_exact(sock: socket.socket, size: int) -> bytearray | None:
    if size > CHUNK:  # grows as bytes arrive: a declared length alone reserves no memory
        buffer = bytearray()
        while len(buffer) < size:
            part = _recv_exact(sock, min(CHUNK, size - len(buffer)))
            if part is None:
                return None
            buffer += part
        return buffer
    buffer = bytearray(size)
    view = memoryview(buffer)
    got = 0
    while got < size:
        n = sock.recv_into(view[got:], size - got)
        if n == 0:
            return None
        got += n
    return buffer


class TcpBackend(NetworkBackend):
    """Length-prefixed frames over one TCP connection per (sender, receiver) pair."""

    name = "tcp"
    topics = False
    options = LINK_OPTIONS
    applies_backpressure = True

    def __init__(self, node_id: str, receiver: Any) -> None:
        super().__init__(node_id, receiver)
        self._server: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._conns: list[socket.socket] = []
        self._back: dict[str, socket.socket] = {}
        """Sender id → its connection to this node, for the flow messages going back."""
        self._back_lock = threading.Lock()
        self.address: tuple[str, int] | None = None
        """Where this node listens, once open (``None`` without inbound links)."""

    def _open_transport(self) -> None:
        if self.in_links:
            given = [
                str(link.options["listen"]) for link in self.in_links.values() if link.options.get("listen")
            ]
            listen = given[0] if given else "127.0.0.1:0"
            host, port = parse_host_port(listen)
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            try:
                self._server = socket.create_server((host, port), family=family, backlog=64)
            except OSError as exc:
                raise ConnectError(f"cannot listen on {listen}: {exc}") from exc
            self.address = self._server.getsockname()[:2]
            self._spawn(self._accept_loop)
        for link in self.out_links:
            link.handle = self._connect(link)
            link.options["lock"] = threading.Lock()
            if link.gate is not None:
                self._spawn(self._read_back, link)

    def _connect(self, link: NetLink) -> socket.socket:
        target = str(link.options.get("connect") or "")
        if not target:
            raise ConnectError(f"link to {link.peer!r} has no `connect` address")
        host, port = parse_host_port(target)
        bound = ConnectBound.from_options(link.options)
        sock = bound.connect(
            lambda: socket.create_connection((host, port), timeout=max(bound.interval, 1.0)),
            node_id=self.node_id,
            target=f"{link.peer!r} at {target}",
        )
        sock.settimeout(None)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # The greeting: who we are, and the run's link key proving we belong to the run.
        hello = f"{self.node_id}\n{link.options.get('link_key', '')}".encode()
        sock.sendall(LENGTH.pack(len(hello)) + hello)
        return sock

    def _spawn(self, target: Any, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name=f"tcp-{self.node_id}", daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        assert self._server is not None
        while True:
            try:
                conn, _addr = self._server.accept()
            except OSError:
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._conns.append(conn)
            self._spawn(self._read_loop, conn)

    def _read_loop(self, conn: socket.socket) -> None:
        peer = None
        try:
            head = _recv_exact(conn, LENGTH.size)
            size = LENGTH.unpack(head)[0] if head else 0
            if size > HELLO_MAX:
                self._malformed_input(
                    f"a connection's greeting declares {size} B: not a Doradus node, closed"
                )
            if not head or size > HELLO_MAX:
                return
            raw = _recv_exact(conn, size)
            if raw is None:
                return
            claimed, _, key = raw.decode().partition("\n")
            if not self._proves(claimed, key):
                self._malformed_input(
                    f"a connection greeted as {claimed[:64]!r} without this run's link key: "
                    "not a node of this dataflow, closed"
                )
                return
            peer = claimed
            with self._back_lock:
                self._back[peer] = conn
            while True:
                head = _recv_exact(conn, LENGTH.size)
                if head is None:
                    break
                declared = LENGTH.unpack(head)[0]
                if declared > FRAME_MAX:
                    self._malformed_input(f"a frame from {peer!r} declares {declared} B: connection closed")
                    peer = None  # not the peer's own end: its inputs stay open
                    break
                frame = _recv_exact(conn, declared)
                if frame is None:
                    break
                self._frame(peer, frame)
        except UnicodeDecodeError:
            self._malformed_input("a connection's greeting is not a UTF-8 node id: connection closed")
        except OSError:
            pass
        finally:
            conn.close()
            if peer is not None:
                self.peer_gone(peer)  # no-op when an END frame already closed its inputs

    def _proves(self, peer: str, key: str) -> bool:
        """Whether a greeting names a sender of ours and carries the run's link key (constant time)."""
        link = self.in_links.get(peer)
        expected = str(link.options.get("link_key", "")) if link is not None else ""
        return link is not None and hmac.compare_digest(key.encode(), expected.encode())

    def _send_link(self, link: NetLink, parts: list[bytes | memoryview]) -> None:
        sock: socket.socket = link.handle
        size = sum(len(p) for p in parts)
        try:
            with link.options["lock"]:
                sock.sendall(LENGTH.pack(size))
                for part in parts:
                    sock.sendall(part)
        except OSError as exc:
            self._link_failed(link)  # like a receiver that exited: later messages skip it
            if not self._closing:
                self.receiver.error(f"link to {link.peer!r} broke: {exc}")

    def _send_back(self, peer: str, frame: bytes) -> None:
        with self._back_lock:
            conn = self._back.get(peer)
            if conn is None:
                return
            try:
                conn.sendall(LENGTH.pack(len(frame)) + frame)
            except OSError:
                pass  # the sender is gone: nobody waits for this

    def _read_back(self, link: NetLink) -> None:
        """Read the flow messages the receiver writes back on ``link``'s connection, until it closes."""
        sock: socket.socket = link.handle
        try:
            while True:
                head = _recv_exact(sock, LENGTH.size)
                size = LENGTH.unpack(head)[0] if head else HELLO_MAX + 1
                frame = _recv_exact(sock, size) if size <= HELLO_MAX else None
                if frame is None:
                    break
                self._from_receiver(link, frame)
        except OSError:
            pass
        finally:
            if link.gate is not None:
                link.gate.close()  # the receiver is gone: a sender waiting for room waits no more

    def _close_transport(self) -> None:
        for link in self.out_links:
            if link.handle is not None:
                try:
                    link.handle.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                link.handle.close()
        if self._server is not None:
            self._server.close()
        for conn in self._conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
