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
and `_peer_gone` when a link drops. A link transport that sets
`Backend.applies_backpressure` also carries flow messages back from receiver
to sender (`doradus.backends._flow`): it implements `_send_back` and hands
what comes back on an outbound link to `_from_receiver`. Library exceptions must leave as
`doradus.TransportError` subclasses: `ConnectError` when a peer or broker
cannot be reached within the retry bound, which `ConnectBound` reads from the
options, applies (`ConnectBound.connect`) and words (`ConnectBound.unreachable`)
for every backend alike.

Example::

    class Loopback(NetworkBackend):
        name, topics = "loopback", True
        def _publish(self, topic, parts): deliver_somewhere(b"".join(parts))
"""

from __future__ import annotations

import threading
import time
from abc import abstractmethod
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from doradus._exceptions import ConnectError, DecodeError, TransportError
from doradus._retry import retry
from doradus._secrets import redact
from doradus.backends._base import Backend, BackendStatistics, LinkSpec, Outgoing, Receiver
from doradus.backends._flow import (
    KIND_CREDIT,
    KIND_HOLD,
    KIND_SKIP,
    SendGate,
    admit_all,
    decode_flow,
    encode_flow,
    gate_statistics,
    gate_takes,
    is_flow,
)
from doradus.backends._frames import decode_end, decode_frame, encode_end, encode_frame, frame_size, is_end

T = TypeVar("T")

QUIET = 0.5
"""Seconds without a frame from a sender that exited before its inputs close (see `sender_ended`)."""
LINK_OPTIONS = frozenset({"listen", "connect", "connect_retries", "retry_interval"})
"""The options of a backend whose receivers listen and senders connect (`Backend.link_options`)."""
CONNECT_RETRIES = 50
"""Attempts to reach a peer or a broker unless the ``connect_retries`` option says otherwise."""
RETRY_INTERVAL = 0.1
"""Seconds between two attempts unless the ``retry_interval`` option says otherwise."""


@dataclass(frozen=True)
class ConnectBound:
    """How long a backend tries to reach its peer or broker: ``connect_retries`` x ``retry_interval``.

    One bound for every backend, brokers included (50 x 0.1 s by default). It is how long
    a node waits, as it starts, for what it must reach: a receiving node that is still
    starting, or a broker started beside the dataflow (a compose file, a service starting
    at boot), which is in the same position; a broker that is simply absent costs those
    seconds once, at start. Each attempt may also wait for its own connect timeout (at
    least 1 s) when a host does not answer at all. A backend whose library retries by
    itself (gRPC, Zenoh) takes `seconds` as its deadline.

    Example:
        >>> bound = ConnectBound.from_options({"connect_retries": 5, "retry_interval": 0.2})
        >>> bound.attempts, bound.seconds, ConnectBound().seconds
        (5, 1.0, 5.0)
    """

    attempts: int = CONNECT_RETRIES
    interval: float = RETRY_INTERVAL

    def __post_init__(self) -> None:
        # What the options mean at their edges: one attempt at least, never a negative pause.
        object.__setattr__(self, "attempts", max(1, self.attempts))
        object.__setattr__(self, "interval", max(0.0, self.interval))

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> ConnectBound:
        """The bound a link's (or a backend's merged) options set; the defaults for what they omit.

        Raises:
            TransportError: ``connect_retries`` or ``retry_interval`` is not a number.

        Example:
            >>> ConnectBound.from_options({"connect_retries": 0}).attempts  # one attempt at least
            1
        """
        try:
            attempts = int(options.get("connect_retries", CONNECT_RETRIES))
            interval = float(options.get("retry_interval", RETRY_INTERVAL))
        except (TypeError, ValueError) as exc:
            raise TransportError(f"invalid connect_retries or retry_interval option: {exc}") from exc
        return cls(attempts, interval)

    @property
    def seconds(self) -> float:
        """The attempts times the pause between them: the deadline of a library that retries by itself.

        Example:
            >>> ConnectBound(20, 0.1).seconds
            2.0
        """
        return self.attempts * self.interval

    def connect(
        self,
        attempt: Callable[[], T],
        *,
        node_id: str,
        target: str,
        retry_on: tuple[type[BaseException], ...] = (OSError,),
    ) -> T:
        """Call ``attempt`` until it connects, within this bound (`doradus._retry.retry`).

        Args:
            attempt: Makes one connection and returns it.
            node_id: The node connecting, for the error.
            target: What it reaches, for the error (``'b' at 127.0.0.1:7000``, ``redis at ...``).
            retry_on: Failures that mean "not there yet".

        Raises:
            ConnectError: Every attempt failed (`unreachable`; the last failure is its cause).

        Example:
            >>> ConnectBound(2, 0).connect(lambda: "conn", node_id="a", target="'b' at 127.0.0.1:7000")
            'conn'
        """
        return retry(
            attempt,
            attempts=self.attempts,
            interval=self.interval,
            retry_on=retry_on,
            give_up=lambda exc: self.unreachable(node_id, target, exc),
        )

    def unreachable(self, node_id: str, target: str, cause: BaseException | str) -> ConnectError:
        """The error of node ``node_id`` that could not reach ``target`` within this bound.

        Every backend says it this way; ``doradus.testing.check_unreachable`` looks for
        ``after N attempts``.

        Example:
            >>> str(ConnectBound(5, 0.05).unreachable("a", "'b' at 127.0.0.1:9", OSError("refused")))
            "node 'a' could not reach 'b' at 127.0.0.1:9 after 5 attempts, 0.05 s apart: refused"
        """
        reason = cause if isinstance(cause, str) else str(cause) or type(cause).__name__
        # A target or a library's error may quote a URL with its password: never show it.
        return ConnectError(
            redact(
                f"node {node_id!r} could not reach {target} after {self.attempts} attempts, "
                f"{self.interval:g} s apart: {reason}"
            )
        )


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
    gate: SendGate | None = None
    """Room left in the receiver's backpressure inputs (outbound links of `applies_backpressure`)."""


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
        self._malformed = 0
        self._closing = False
        self._last_frame: dict[str, float] = {}
        self._gates: list[SendGate] = []
        self._feeding: dict[str, str] = {}
        """Input id → the peer whose inbound link feeds it (for backpressure credits)."""

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
                if self.applies_backpressure and spec.backpressure:
                    link.gate = SendGate(self.node_id, spec.peer, spec.backpressure)
                    self._gates.append(link.gate)
            else:
                self.in_links[spec.peer] = link
                self._feeding.update({i: spec.peer for ins in link.routes.values() for i in ins})
        self._open_transport()

    def start(self) -> None:
        """Begin receiving (the transport's threads start in `_open_transport`)."""

    def merged_options(self) -> dict[str, Any]:
        """Every link's options merged, inbound links' last (the last link wins): the backend's settings.

        Example::

            backend.merged_options()   # {'url': 'redis://127.0.0.1:6379/0', 'prefix': ...}
        """
        merged: dict[str, Any] = {}
        for link in (*self.out_links, *self.in_links.values()):
            merged.update(link.options)
        return merged

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
            if self._gates:  # a receiver has backpressure inputs: wait for room there
                links, skipped = admit_all(links, message.output)
                for link in skipped:
                    self._send_link(link, [encode_flow(KIND_SKIP, 0, message.output.decode())])
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
        try:
            if is_flow(frame):  # a sender's backpressure wait timed out
                kind, _value, name = decode_flow(frame)
                skipped = link.routes.get(name) if kind == KIND_SKIP else None
                if skipped:
                    self.receiver.timed_out(skipped)
                return
            if is_end(frame):
                output = decode_end(frame)
                self._close_inputs(
                    [i for o, ins in link.routes.items() if not output or o == output for i in ins]
                )
                return
            output, entry = decode_frame(frame)
        except DecodeError as exc:
            self._malformed_input(f"a malformed frame from {peer!r} was dropped: {exc}")
            return
        targets = link.routes.get(output)
        if not targets:
            return
        with self._lock:
            self._received += 1
        self.receiver.deliver(tuple(targets), entry)

    def _malformed_input(self, message: str) -> None:
        """Input that is no Doradus frame was dropped: count it (``details["malformed"]``), tell the node."""
        with self._lock:
            self._malformed += 1
        self.receiver.error(message)

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

    def taken(self, input_id: str) -> None:
        """The node took a message of backpressure input ``input_id``: a credit to its sender."""
        peer = self._feeding.get(input_id)
        if peer is not None:
            self._send_back(peer, encode_flow(KIND_CREDIT, 1, input_id))

    def hold_senders(self, inputs: Collection[str], held: bool) -> None:
        """The node was paused or resumed: the senders of ``inputs`` hear it."""
        for input_id in inputs:
            peer = self._feeding.get(input_id)
            if peer is not None:
                self._send_back(peer, encode_flow(KIND_HOLD, int(held), input_id))

    def _from_receiver(self, link: NetLink, frame: bytes | bytearray | memoryview) -> None:
        """A flow message came back on outbound ``link``: credit or hold its gate."""
        gate_takes(link.gate, frame)

    def _link_failed(self, link: NetLink) -> None:
        """An outbound link broke: stop sending on it."""
        link.alive = False
        if link.gate is not None:
            link.gate.close()
        with self._lock:
            self._failures += 1

    def statistics(self) -> BackendStatistics:
        """Messages and bytes sent and received, failed links; ``details["malformed"]``: frames dropped."""
        with self._lock:
            details = {"malformed": self._malformed, **self._details()}
            if self._gates:
                details["backpressure_timeouts"] = gate_statistics(self._gates)
            return BackendStatistics(
                self.name, self._sent, self._bytes, self._received, self._failures, details
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

    def _send_back(self, peer: str, frame: bytes) -> None:
        """Backpressure transports: write one flow message back to the sender ``peer`` (never raise)."""

    @abstractmethod
    def _close_transport(self) -> None:
        """Release connections and threads (after the ``END`` frames went out)."""
