"""The shared part of every backend that carries frames (TCP, WebSocket, brokers, Zenoh, gRPC, QUIC).

A subclass moves bytes; this base turns messages into frames
(`doradus.backends._frames`), routes what arrives to the node's inputs,
closes inputs on ``END`` frames or when the daemon says a sender is gone,
and counts.

Two shapes of transport:

- **topics** (``topics = True``: Redis, MQTT, Zenoh): a message is published
  once per output, on ``<prefix><sender>/<output>``, and receivers subscribe
  to the outputs they read. ``prefix`` is ``doradus/<run-id>/`` so runs that
  share a broker never mix.
- **links** (``topics = False``: TCP, WebSocket, gRPC, QUIC): the sender
  writes each message to every receiver link subscribed to its output.

What a link needs is in `LinkSpec.options`, filled by the daemon: for link
transports, ``listen`` (``host:port`` an inbound link's receiver serves on,
the same for every inbound link of a node) or ``connect`` (where an outbound
link's receiver listens); for topic transports, ``prefix`` and the broker
settings (``url``, ``qos``…). Every option has a default, so a backend works
with none: brokers at their standard local address, servers on free
loopback ports.

Subclasses implement `_open_transport`, `_publish` (topics) or `_send_link`
(links), and `_close_transport`; they call `_frame` for each frame received
and `_peer_gone` when a link drops. Library exceptions must leave as
`doradus.TransportError` subclasses (`ConnectError` when a peer or broker
cannot be reached within the retry bound).

Example::

    class Loopback(NetworkBackend):
        name, topics = "loopback", True
        def _publish(self, topic, parts): deliver_somewhere(b"".join(parts))
"""

from __future__ import annotations

import threading
import time
from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from doradus._exceptions import DecodeError
from doradus.backends._base import Backend, BackendStatistics, LinkSpec, Outgoing, Receiver
from doradus.backends._frames import decode_end, decode_frame, encode_end, encode_frame, frame_size, is_end

QUIET = 0.5
"""Seconds without a frame from a sender that exited before its inputs close (see `sender_ended`)."""
LINK_OPTIONS = frozenset({"listen", "connect", "connect_retries", "retry_interval"})
"""The options of a backend whose receivers listen and senders connect (`Backend.link_options`)."""


@dataclass
class NetLink:
    """One link as a network backend sees it.

    Example:
        >>> NetLink("camera", "out", ("image",)).alive
        True
    """

    peer: str
    direction: str
    outputs: tuple[str, ...] = ()
    routes: dict[str, list[str]] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    alive: bool = True
    handle: Any = None
    """The transport's own object for this link (a socket, a stream…)."""


class NetworkBackend(Backend):
    """Base of the backends that carry frames; see the module documentation."""

    topics: ClassVar[bool] = True

    def __init__(self, node_id: str, receiver: Receiver) -> None:
        super().__init__(node_id, receiver)
        self.out_links: list[NetLink] = []
        self.in_links: dict[str, NetLink] = {}
        self._routes: dict[bytes, list[NetLink]] = {}
        self._closed_inputs: set[str] = set()
        self._lock = threading.Lock()
        self._sent = 0
        self._bytes = 0
        self._received = 0
        self._failures = 0
        self._closing = False
        self._last_frame: dict[str, float] = {}

    # ------------------------------------------------------------ lifecycle
    def open(self, links: Sequence[LinkSpec], fds: Sequence[int]) -> None:
        """Record the links (network links have no descriptors), then open the transport."""
        for spec in links:
            link = NetLink(
                spec.peer, spec.direction, tuple(spec.outputs), dict(spec.routes), dict(spec.options)
            )
            if spec.direction == "out":
                self.out_links.append(link)
                for output in link.outputs:
                    self._routes.setdefault(output.encode(), []).append(link)
            else:
                self.in_links[spec.peer] = link
        self._open_transport()

    def start(self) -> None:
        """Begin receiving (the transport's threads start in `_open_transport`)."""

    def close(self) -> None:
        """Tell receivers every output ended (``END``), then close the transport; never raises."""
        if self._closing:
            return
        self._closing = True
        end = encode_end()
        try:
            if self.topics:
                for output in self.subscribed_outputs():
                    self._publish(self.topic(output), [encode_end(output)])
            else:
                for link in self.out_links:
                    if link.alive:
                        self._send_link(link, [end])
        except Exception:  # the transport may already be broken: closing must still finish
            pass
        try:
            self._close_transport()
        except Exception:
            pass

    # -------------------------------------------------------------- sending
    def subscribed_outputs(self) -> list[str]:
        """Outputs of this node that at least one receiver reads.

        Example::

            backend.subscribed_outputs()   # ['image']
        """
        return sorted({o for link in self.out_links for o in link.outputs})

    def topic(self, output: str, sender: str | None = None) -> str:
        """The topic of ``sender``'s (this node's by default) ``output``: ``<prefix><sender>/<output>``.

        Example::

            backend.topic("image")   # 'doradus/01J.../camera/image'
        """
        prefix = ""
        for link in (*self.out_links, *self.in_links.values()):
            prefix = str(link.options.get("prefix", ""))
            if prefix:
                break
        return f"{prefix}{sender or self.node_id}/{output}"

    def send(self, message: Outgoing) -> int:
        """Frame ``message`` once and hand it to the transport; returns the receivers it was meant for."""
        links = self._routes.get(message.output)
        if not links:
            return 0
        parts = encode_frame(message)
        reached = 0
        if self.topics:
            self._publish(self.topic(message.output.decode()), parts)
            reached = len(links)
        else:
            for link in links:
                if link.alive:
                    self._send_link(link, parts)
                    reached += 1
        with self._lock:
            self._sent += 1
            self._bytes += frame_size(parts)
        return reached

    # ------------------------------------------------------------ receiving
    def _frame(self, peer: str, frame: bytes | bytearray | memoryview) -> None:
        """A frame arrived from ``peer``: deliver it to the inputs it routes to, or close them on ``END``."""
        link = self.in_links.get(peer)
        if link is None:
            return
        self._last_frame[peer] = time.monotonic()
        if is_end(frame):
            output = decode_end(frame)
            inputs = [i for o, ins in link.routes.items() if not output or o == output for i in ins]
            self._close_inputs(inputs)
            return
        try:
            output, entry = decode_frame(frame)
        except DecodeError as exc:
            self.receiver.error(f"a malformed frame from {peer!r}: {exc}")
            return
        targets = link.routes.get(output)
        if not targets:
            return
        with self._lock:
            self._received += 1
        self.receiver.deliver(tuple(targets), entry)

    def _close_inputs(self, inputs: Sequence[str]) -> None:
        with self._lock:
            fresh = [i for i in inputs if i not in self._closed_inputs]
            self._closed_inputs.update(fresh)
        if fresh:
            self.receiver.closed(fresh)

    def peer_gone(self, peer: str) -> None:
        """``peer`` ended (its link dropped, or the daemon says it exited): its inputs close.

        Example::

            backend.peer_gone("camera")
        """
        link = self.in_links.get(peer)
        if link is not None:
            self._close_inputs([i for ins in link.routes.values() for i in ins])

    def sender_ended(self, peer: str) -> None:
        """The daemon says ``peer`` exited: close its inputs once nothing more arrives from it.

        What it sent before exiting may still be in flight (in a socket, a broker, a
        router), so the inputs close after `QUIET` seconds without a frame from it — at
        once when its ``END`` frame or the end of its connection comes first.

        Example::

            backend.sender_ended("camera")
        """
        if peer not in self.in_links:
            return

        def check() -> None:
            quiet = time.monotonic() - self._last_frame.get(peer, 0.0)
            if quiet < QUIET and not self._closing:
                timer = threading.Timer(QUIET - quiet, check)
                timer.daemon = True
                timer.start()
                return
            self.peer_gone(peer)

        timer = threading.Timer(QUIET, check)
        timer.daemon = True
        timer.start()

    def _link_failed(self, link: NetLink) -> None:
        """An outbound link broke: stop sending on it."""
        link.alive = False
        with self._lock:
            self._failures += 1

    def statistics(self) -> BackendStatistics:
        """Messages and bytes sent and received, failed links."""
        with self._lock:
            return BackendStatistics(
                self.name, self._sent, self._bytes, self._received, self._failures, self._details()
            )

    def _details(self) -> dict[str, Any]:
        return {}

    # ------------------------------------------------------ for subclasses
    @abstractmethod
    def _open_transport(self) -> None:
        """Connect, listen and subscribe as the links need (raise `ConnectError` past the retry bound)."""

    def _publish(self, topic: str, parts: list[bytes | memoryview]) -> None:
        """Topic transports: publish one frame on ``topic``."""
        raise NotImplementedError

    def _send_link(self, link: NetLink, parts: list[bytes | memoryview]) -> None:
        """Link transports: write one frame to ``link`` (call `_link_failed` if it broke)."""
        raise NotImplementedError

    @abstractmethod
    def _close_transport(self) -> None:
        """Release connections and threads (after the ``END`` frames went out)."""
