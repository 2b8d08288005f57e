"""The ``zenoh`` backend: messages as Zenoh publications, on one machine or across machines.

Each node opens one Zenoh session. A sender declares one publisher per
output that a receiver reads, on the key expression
``doradus/<run-id>/<sender>/<output>`` (`NetworkBackend.topic`); a receiver
declares one subscriber per routed output of each of its senders. Runs that
share a Zenoh network never mix: their prefixes differ.

Who listens, who connects (link options, set by the daemon):

- ``listen`` (list of endpoints, default ``["tcp/127.0.0.1:0"]``): where
  this node's session accepts Zenoh connections. Never all interfaces by
  default (Zenoh's own default, ``tcp/[::]:0``, is overridden).
- ``connect`` (list of endpoints, default none): the Zenoh peers or routers
  this node connects to; the lists of all the node's links are merged.
  Two layouts. *Peer to peer* (``mode: peer``), like ``tcp``: **receivers
  listen, senders connect** to their receivers' endpoints. Connections are
  two-way, so either side may be the one that listens: with only
  ``connect`` on one side and ``listen`` on the other, it works. *Through a
  router* (``mode: client``): every node connects to its machine's router
  (`open_router`, run by the daemon) and listens nowhere; routers of
  different machines connect to each other.
- ``mode`` (default ``"peer"``). A Zenoh 1.x router does not forward between
  *peers* (they are expected to find each other by gossip and connect
  directly, and gossip is off here): nodes that meet at a router must be
  ``"client"``; the error of a peer stuck behind a router says so.
- ``shm`` (default true): keep Zenoh's shared memory for same-host payloads
  above 3 KiB (Zenoh chooses it by itself); false sends every byte over the
  socket.
- ``connect_timeout`` (seconds), or ``connect_retries`` x ``retry_interval``
  (`ConnectBound`, default 50 x 0.1 s = 5 s; Zenoh retries by itself): the
  bound for reaching the ``connect`` endpoints and for every receiver to be
  subscribed; past it, `open` raises `ConnectError`.
- ``prefix``: ``doradus/<run-id>/``.
- ``tls`` (`doradus.backends._tls.TlsFiles.for_link`): ``{ca, cert, key,
  require_client}``; the endpoints become ``tls/host:port``, a listening
  node presents ``cert``/``key``, a connecting one checks it against ``ca``
  (`doradus.backends._zenoh_router`). Across machines the machine routers
  do the same with the same files (relative paths from the dataflow file's
  folder), so every hop is TLS: node to its router, router to router. A
  connection refused by the TLS handshake is explained by one of Python's
  own (Zenoh only reports a timeout).

Scouting is always off (multicast and gossip): a session talks only to the
endpoints it was given.

Readiness: Zenoh drops a publication that no subscriber matches at the time
of ``put``, so a sender must not publish before its receivers subscribed.
Each receiver declares its subscribers, then a liveliness token
``<prefix>_ready/<receiver>/<sender>`` per sender; Zenoh propagates
declarations in order, so a sender that sees the token also sees the
subscribers. A sender's `open` waits (within the bound) for the token of
every receiver it has a link to, then for each publisher's matching status.

Delivery: publishers are ``RELIABLE`` with ``CongestionControl.BLOCK``: a
slow receiver slows its senders, nothing is dropped on the way (only the
receiving node's queue policy drops, and counts). Order per edge is Zenoh's
per-publisher order. Zenoh fragments large payloads itself (16 MiB frames
are tested). A sender also declares ``<prefix>_alive/<sender>``; when it
disappears without an ``END`` frame (a crash, a lost link), its receivers'
inputs close once no frame of it arrived for `GONE_GRACE` seconds.

Other systems through Zenoh's bridges. Every message is an ordinary Zenoh
publication (the payload is a Doradus frame, `doradus.backends._frames`), so
Zenoh's bridges carry it to other protocols. The bridges are separate
binaries from the Eclipse Zenoh project, **not installed here**:

- MQTT: ``zenoh-bridge-mqtt`` (or ``zenoh-plugin-mqtt`` loaded by a
  ``zenohd`` router) maps MQTT topics to key expressions one-to-one. Run it
  connected to the machine's router (``-e tcp/127.0.0.1:7447``, in router
  or client mode, multicast scouting off) and an MQTT client subscribes to
  ``doradus/<run-id>/<node>/<output>`` (or ``doradus/<run-id>/#``); what an
  MQTT client publishes on such a topic reaches the dataflow's subscribers
  if it is a valid frame.
- DDS / ROS 2: ``zenoh-bridge-ros2dds`` (or the older
  ``zenoh-bridge-dds``) maps DDS topics to key expressions; configure its
  allowances or namespace so that DDS topics map onto
  ``doradus/<run-id>/<node>/<output>``.

Either way the payload stays a Doradus frame: the other side decodes it
with `doradus.backends._frames.decode_frame` (or sends frames it built with
`encode_frame`).

Example::

    backend = ZenohBackend("camera", receiver)
    backend.open([LinkSpec("detector", "out", ("image",),
                           options={"connect": ["tcp/127.0.0.1:7447"], "prefix": "doradus/run1/"})], [])
"""

from __future__ import annotations

import functools
import os
import threading
import time
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from doradus._exceptions import ClosedError, ConnectError, TransportError
from doradus.backends._base import LinkOptions, host_port
from doradus.backends._network import LINK_OPTIONS, ConnectBound, NetworkBackend
from doradus.backends._tls import TlsFiles
from doradus.backends._zenoh_router import (
    DEFAULT_LISTEN,
    ZenohRouter,
    open_machine_router,
    open_session,
    router_tls,
    session_config,
    tls_problem,
)

if TYPE_CHECKING:  # zenoh is imported when a session opens (see `ZenohBackend.requires`)
    import zenoh

MODES = ("peer", "client", "router")
READY = "_ready"
ALIVE = "_alive"
GONE_GRACE = 0.5
"""Seconds a sender whose session vanished must stay silent before its receivers' inputs close."""


def _endpoints(value: Any) -> list[str]:
    """An endpoint option (one string or a list) as a list.

    Example:
        >>> _endpoints("tcp/127.0.0.1:7447"), _endpoints(None)
        (['tcp/127.0.0.1:7447'], [])
    """
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value else []
    return [str(v) for v in value]


def _matching(publisher: zenoh.Publisher) -> bool:
    status: Any = publisher.matching_status  # a MatchingStatus at run time, `bool` in the stubs
    return bool(getattr(status, "matching", status))


class ZenohBackend(NetworkBackend):
    """Frames as Zenoh publications on ``<prefix><sender>/<output>``; see the module documentation.

    Example::

        backend = ZenohBackend("detector", receiver)
        backend.open([LinkSpec("camera", "in", routes={"image": ["image"]},
                               options={"listen": ["tcp/127.0.0.1:7447"]})], [])
    """

    name = "zenoh"
    topics = True
    requires = ("zenoh",)
    options = LINK_OPTIONS | {"mode", "shm", "connect_timeout", "tls"}
    option_choices = MappingProxyType({"mode": MODES})
    machine_router = True  # nodes behind routers need no address per receiver (see `open_router`)

    @classmethod
    def link_options(cls, common: dict[str, Any], host: str, port: int) -> LinkOptions:
        """Peer to peer: the receiver listens on the TCP (with ``tls``: TLS) endpoint, the sender connects.

        Example:
            >>> ZenohBackend.link_options({}, "127.0.0.1", 7447)
            ({'connect': ['tcp/127.0.0.1:7447']}, {'listen': ['tcp/127.0.0.1:7447']})
            >>> ZenohBackend.link_options({"tls": {"ca": "ca.pem"}}, "127.0.0.1", 7447)[0]["connect"]
            ['tls/127.0.0.1:7447']
        """
        endpoint = cls.router_endpoint(host, port)
        if common.get("tls"):
            endpoint = f"tls/{host_port(host, port)}"
        return {**common, "connect": [endpoint]}, {**common, "listen": [endpoint]}

    @classmethod
    def router_endpoint(
        cls,
        host: str,
        port: int,
        options: Mapping[str, Any] | None = None,
        *,
        folder: str | os.PathLike[str] | None = None,
    ) -> str:
        """A Zenoh TCP endpoint, or a TLS one when ``options`` has ``tls`` (its files checked).

        Raises:
            TransportError: the ``tls`` files cannot serve a router (`router_tls`).

        Example:
            >>> ZenohBackend.router_endpoint("::1", 7447)
            'tcp/[::1]:7447'
        """
        scheme = "tcp" if router_tls(options, folder) is None else "tls"
        return f"{scheme}/{host_port(host, port)}"

    @classmethod
    def open_machine_router(
        cls,
        endpoint: str,
        peers: Sequence[str],
        options: Mapping[str, Any] | None = None,
        *,
        folder: str | os.PathLike[str] | None = None,
    ) -> ZenohRouter:
        """This machine's Zenoh router on ``endpoint``, connected to ``peers``; TLS with ``tls``.

        Raises:
            TransportError: the ``tls`` files cannot serve a router.
            ConnectError: the router cannot start, or fails a TLS check (`open_machine_router`).

        Example::

            router = ZenohBackend.open_machine_router("tcp/10.0.0.1:7447", ["tcp/10.0.0.2:7447"])
        """
        return open_machine_router(endpoint, peers, router_tls(options, folder))

    @classmethod
    def router_link_options(cls, common: dict[str, Any], router: str) -> LinkOptions:
        """Both ends connect to their machine's router as Zenoh clients and listen nowhere.

        Peers behind a router would need gossip to find each other, which stays off. A
        ``tls`` in ``common`` applies to the connection to the router (a ``tls/`` endpoint).

        Example:
            >>> ZenohBackend.router_link_options({}, "tcp/10.0.0.1:7447")[1]
            {'connect': ['tcp/10.0.0.1:7447'], 'mode': 'client', 'listen': []}
        """
        both = {**common, "connect": [router], "mode": "client", "listen": []}
        return both, dict(both)

    def __init__(self, node_id: str, receiver: Any) -> None:
        super().__init__(node_id, receiver)
        self.session: zenoh.Session | None = None
        self.config: zenoh.Config | None = None
        """The configuration the session was opened with (for inspection)."""
        self.mode = "peer"
        self.listen: list[str] = []
        self.connect: list[str] = []
        self._publishers: dict[str, zenoh.Publisher] = {}
        self._declared: list[Any] = []
        self._ready_seen: set[str] = set()
        self._ready_changed = threading.Condition()
        self._gone: dict[str, bool] = {}
        self._last_frame: dict[str, float] = {}
        self._timers: list[threading.Timer] = []

    # ------------------------------------------------------------ options
    def _option(self, key: str, default: Any) -> Any:
        for link in (*self.out_links, *self.in_links.values()):
            if key in link.options:
                return link.options[key]
        return default

    def _prefix(self) -> str:
        topic = self.topic("x", sender="x")
        return topic[: -len("x/x")]

    def _timeout(self) -> float:
        if self._option("connect_timeout", None) is not None:
            return float(self._option("connect_timeout", 0.0))
        return ConnectBound.from_options(self.merged_options()).seconds

    # ---------------------------------------------------------- transport
    def _open_transport(self) -> None:
        if not self.out_links and not self.in_links:
            return
        self.listen = _endpoints(self._option("listen", list(DEFAULT_LISTEN)))
        connect: list[str] = []
        for link in (*self.out_links, *self.in_links.values()):
            connect += [e for e in _endpoints(link.options.get("connect")) if e not in connect]
        self.connect = connect
        timeout = self._timeout()
        deadline = time.monotonic() + timeout
        self.mode = str(self._option("mode", "peer"))
        tls = TlsFiles.for_link(self._option("tls", None), option=self.name)
        self.config = session_config(
            self.mode,
            self.listen,
            connect,
            shm=bool(self._option("shm", True)),
            connect_timeout=timeout,
            tls=tls,
        )
        what = f"node {self.node_id!r} could not open its Zenoh session"
        what += f" (listen {self.listen}, connect {connect})"
        try:
            self.session = open_session(self.config, what)
        except ConnectError as exc:
            problem = tls_problem(tls, connect)
            if problem is None:
                raise
            raise ConnectError(f"{exc} ({problem}; check `tls.ca` and the certificate's names)") from exc
        try:
            if connect:
                self._wait_for_network(deadline)
            self._declare_inbound()
            self._declare_outbound(deadline)
        except BaseException:
            self._close_transport()
            raise

    def _wait_for_network(self, deadline: float) -> None:
        assert self.session is not None
        while not (self.session.info.peers_zid() or self.session.info.routers_zid()):
            if time.monotonic() > deadline:
                raise ConnectError(
                    f"node {self.node_id!r}: no Zenoh peer or router answered at {self.connect}"
                )
            time.sleep(0.01)

    def _declare_inbound(self) -> None:
        assert self.session is not None
        prefix = self._prefix()
        liveliness = self.session.liveliness()
        for peer, link in self.in_links.items():
            for output in link.routes:
                callback = functools.partial(self._on_sample, peer)
                self._declared.append(
                    self.session.declare_subscriber(self.topic(output, sender=peer), callback)
                )
            gone = functools.partial(self._on_alive, peer)
            self._declared.append(liveliness.declare_subscriber(f"{prefix}{ALIVE}/{peer}", gone))
        # after the subscribers: a sender that sees these tokens sees the subscribers too
        for peer in self.in_links:
            self._declared.append(liveliness.declare_token(f"{prefix}{READY}/{self.node_id}/{peer}"))

    def _declare_outbound(self, deadline: float) -> None:
        import zenoh

        assert self.session is not None
        if not self.out_links:
            return
        prefix = self._prefix()
        liveliness = self.session.liveliness()
        self._declared.append(liveliness.declare_token(f"{prefix}{ALIVE}/{self.node_id}"))
        for output in self.subscribed_outputs():
            topic = self.topic(output)
            self._publishers[topic] = self.session.declare_publisher(
                topic,
                reliability=zenoh.Reliability.RELIABLE,
                congestion_control=zenoh.CongestionControl.BLOCK,
            )
        watcher = liveliness.declare_subscriber(
            f"{prefix}{READY}/*/{self.node_id}", self._on_ready, history=True
        )
        try:
            wanted = {link.peer for link in self.out_links}
            with self._ready_changed:
                while not wanted <= self._ready_seen:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        missing = ", ".join(sorted(wanted - self._ready_seen))
                        raise ConnectError(
                            f"node {self.node_id!r}: receivers {missing} did not subscribe over Zenoh "
                            f"in time (connect {self.connect}, listen {self.listen}){self._hint()}"
                        )
                    self._ready_changed.wait(min(left, 0.05))
        finally:
            watcher.undeclare()  # type: ignore[no-untyped-call]  # the stubs leave it unannotated
        for topic, publisher in self._publishers.items():
            while not _matching(publisher):
                if time.monotonic() > deadline:
                    raise ConnectError(f"node {self.node_id!r}: no Zenoh subscriber matches {topic}")
                time.sleep(0.002)

    def _hint(self) -> str:
        session = self.session
        info = None if session is None or self.mode != "peer" else session.info
        if info is not None and info.routers_zid() and not info.peers_zid():
            return "; a node that reaches others through a Zenoh router needs `mode: client`"
        return ""

    # ------------------------------------------------------------ callbacks
    def _on_ready(self, sample: zenoh.Sample) -> None:
        import zenoh

        parts = str(sample.key_expr).split("/")
        if len(parts) < 3:
            return
        with self._ready_changed:
            if sample.kind == zenoh.SampleKind.PUT:
                self._ready_seen.add(parts[-2])
            else:
                self._ready_seen.discard(parts[-2])
            self._ready_changed.notify_all()

    def _on_sample(self, peer: str, sample: zenoh.Sample) -> None:
        import zenoh

        if sample.kind != zenoh.SampleKind.PUT:
            return
        self._last_frame[peer] = time.monotonic()
        try:
            self._frame(peer, sample.payload.to_bytes())
        except Exception as exc:  # never let an exception into Zenoh's thread
            self.receiver.error(f"zenoh: delivering a frame from {peer!r} failed: {exc}")

    def _on_alive(self, peer: str, sample: zenoh.Sample) -> None:
        # Zenoh sends declarations at a higher priority than data: the token's
        # removal may overtake frames still on their way (a router's backlog).
        # Close the peer's inputs only once it has been silent for GONE_GRACE.
        import zenoh

        with self._lock:
            self._gone[peer] = sample.kind == zenoh.SampleKind.DELETE
        if sample.kind == zenoh.SampleKind.DELETE:
            self._arm_gone(peer, GONE_GRACE)

    def _arm_gone(self, peer: str, delay: float) -> None:
        timer = threading.Timer(delay, self._check_gone, (peer,))
        timer.daemon = True
        self._timers.append(timer)
        timer.start()

    def _check_gone(self, peer: str) -> None:
        with self._lock:
            if not self._gone.get(peer) or self._closing:
                return
            quiet = time.monotonic() - self._last_frame.get(peer, 0.0)
        if quiet < GONE_GRACE:
            self._arm_gone(peer, GONE_GRACE - quiet)
        else:
            self.peer_gone(peer)  # no-op when an END frame already closed its inputs

    # -------------------------------------------------------------- sending
    def _publish(self, topic: str, parts: list[bytes | memoryview]) -> None:
        import zenoh

        session = self.session
        if session is None or session.is_closed():
            raise ClosedError(f"node {self.node_id!r}: the Zenoh session is closed")
        payload = b"".join(parts)
        try:
            publisher = self._publishers.get(topic)
            if publisher is not None:
                publisher.put(payload)
            else:
                session.put(
                    topic,
                    payload,
                    congestion_control=zenoh.CongestionControl.BLOCK,
                )
        except zenoh.ZError as exc:
            with self._lock:
                self._failures += 1
            raise TransportError(f"node {self.node_id!r}: publishing on {topic} failed: {exc}") from exc

    def _close_transport(self) -> None:
        import zenoh

        for timer in self._timers:
            timer.cancel()
        for publisher in self._publishers.values():
            try:
                publisher.undeclare()  # type: ignore[no-untyped-call]  # the stubs leave it unannotated
            except zenoh.ZError:
                pass
        for entity in reversed(self._declared):  # tokens first, then subscribers
            try:
                entity.undeclare()
            except zenoh.ZError:
                pass
        self._publishers.clear()
        self._declared.clear()
        if self.session is not None and not self.session.is_closed():
            self.session.close()  # type: ignore[no-untyped-call]  # the stubs leave it unannotated

    def _details(self) -> dict[str, Any]:
        peers = routers = 0
        if self.session is not None and not self.session.is_closed():
            peers = len(self.session.info.peers_zid())
            routers = len(self.session.info.routers_zid())
        return {"listen": self.listen, "connect": self.connect, "peers": peers, "routers": routers}
