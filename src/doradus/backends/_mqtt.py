"""The ``mqtt`` backend: messages through an MQTT broker (Mosquitto or any MQTT 5 broker).

Each output is published on its topic ``<prefix><sender>/<output>`` (the
prefix ``doradus/<run-id>/`` keeps runs sharing a broker apart); a receiving
node subscribes to the topics of the outputs routed to it, and the broker's
``SUBACK`` is awaited before `MqttBackend.open` returns, so nothing published
after the receiver's ``start`` is missed. One paho client (MQTT 5) per node,
its network loop in paho's own thread (``loop_start``).

Delivery guarantees, by ``qos`` (link option, default 1):

- **QoS 0: at-most-once.** Messages may be lost under load or while a client
  is disconnected.
- **QoS 1: at-least-once while connected**, in order per topic. What we
  rely on: one client publishes a topic; paho keeps its outgoing messages in
  one ordered queue and, after a reconnect, re-sends the unacknowledged ones
  first, in order; the broker forwards a topic in arrival order (MQTT 5
  section 4.6; Mosquitto does). The backend lets one message be in flight per
  publisher (``max_inflight``, default 1; paho's default is 20). Duplicates
  come from re-sends after a reconnect: the publisher's in-flight message,
  and the broker's own in-flight messages to the subscriber (Mosquitto:
  ``max_inflight_messages``, 20), so a run of recent messages may arrive
  **again**, with the same ``seq`` and timestamp, after the ones already seen
  (measured across a restart: ``..., 198, 199, 193, 194, ..., 199, 200, ...``).
  Drop every message whose ``seq`` is not above the last seen on that input
  to get each once, in order.
  Under load the broker is the limit: Mosquitto keeps at most
  ``max_queued_messages`` (default 1000) QoS 1/2 messages per subscriber
  beyond its 20 in flight, and **drops** the rest. One message in flight
  paces a publisher at one broker round trip (about 1,000 msg/s for small
  messages here), which a subscriber keeps up with; with paho's 20 in flight
  a publisher reached ~3,700 msg/s and a subscriber in the same process lost
  ~25 % of 10,000 messages. Raise ``max_queued_messages`` on the broker
  before raising ``max_inflight`` or fanning many publishers into one node.
- **QoS 2: exactly once** per broker session, in order (slower: four
  packets each; the broker's queue limit above applies all the same).

Across a broker restart or a subscriber's disconnection, by ``session``:

- ``clean`` (default): the broker forgets the subscriber when it
  disconnects; messages published until it has reconnected and resubscribed
  are lost for it (at-most-once across a restart, whatever the QoS).
- ``persistent``: the client connects with ``clean_start=False``, a session
  expiry of ``session_expiry`` seconds (default 300) and a client id derived
  from the run and the node (``doradus-<run-id>-<node>``, or ``client_id``),
  so the broker keeps its subscriptions and queues QoS 1/2 messages while it
  is offline, and delivers them on reconnect: nothing is lost at QoS>=1 as
  long as the broker keeps the session. Across a broker **restart** that
  requires ``persistence true`` in the broker's configuration **and a clean
  shutdown** (Mosquitto saves its database on SIGTERM and every
  ``autosave_interval``, 30 min by default; a crash loses what changed since),
  and at most ``max_queued_messages`` (Mosquitto: 1000 by default) are queued
  per offline client, the rest dropped. The backend ends its session (expiry
  0) when it closes.

Publishing while the broker is unreachable waits for paho to reconnect, for
at most ``reconnect_timeout`` seconds (default 10), blocking the sending node
(back pressure); past that the message is dropped, counted in
``statistics().send_failures``, and the node hears it through
``Receiver.error``; until a publish succeeds again, later ones do not wait.
At most ``max_pending`` messages (default 1000) wait in paho's queue for the
broker's acknowledgement; a publish beyond that waits for room the same way.
paho reconnects by itself, waiting ``reconnect_min`` (default 1 s) then
doubling up to ``reconnect_max`` (default 4 s; whole seconds); subscriptions
are renewed on each reconnect.

Large payloads: Mosquitto accepts messages up to 256 MiB (its
``message_size_limit`` default), so frames are sent whole up to ``fragment``
bytes (default 64 MiB: 16 MiB frames travel whole); a larger frame is split
into fragments sent back to back and reassembled by the receiver. A frame
missing a fragment is dropped whole and counted (``details["partial_dropped"]``).

Options (link options, defaults in parentheses): ``url``
(``mqtt://127.0.0.1:1883``), ``qos`` (1), ``session`` (``clean``),
``fragment`` (64 MiB), ``connect_retries`` (50), ``retry_interval``
(0.1 s), ``reconnect_timeout`` (10 s), ``reconnect_min`` (1 s),
``reconnect_max`` (4 s), ``session_expiry`` (300 s), ``client_id``,
``keepalive`` (30 s), ``max_pending`` (1000), ``max_inflight`` (1), ``tls``
(files for ``mqtts://``, port 8883 by default: `doradus.backends._tls`). A user name and
password in the URL (``mqtt://user:pw@host``) log in to the broker; the password is masked
in every message (`doradus._secrets`).
Opening fails with `ConnectError` when the broker cannot be reached within
``connect_retries`` x ``retry_interval`` (`ConnectBound`, the bound of every
backend; plus the connect timeout of each attempt, at least 1 s, when the host
does not answer at all).

Example::

    backend = MqttBackend("camera", receiver)
    backend.open([LinkSpec("detector", "out", ("image",), options={"prefix": "doradus/run1/", "qos": 1})], [])
"""

from __future__ import annotations

import socket
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, fields
from types import MappingProxyType
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from doradus._exceptions import ConnectError, TransportError
from doradus._secrets import redact, redact_url
from doradus.backends._base import Receiver
from doradus.backends._fragments import Reassembler, split_frame
from doradus.backends._network import CONNECT_RETRIES, RETRY_INTERVAL, ConnectBound, NetworkBackend
from doradus.backends._tls import TLS_SCHEMES, TlsFiles

if TYPE_CHECKING:  # paho-mqtt is imported when a backend opens (see `MqttBackend.requires`)
    import paho.mqtt.client as mqtt
    from paho.mqtt.reasoncodes import ReasonCode

DEFAULT_URL = "mqtt://127.0.0.1:1883"
QOS_LEVELS = (0, 1, 2)
SESSIONS = ("clean", "persistent")
HANDSHAKE_TIMEOUT = 10.0
"""Seconds to wait for ``CONNACK`` and ``SUBACK`` once connected."""
CLOSE_TIMEOUT = 5.0
"""Seconds ``close`` waits for the broker to acknowledge what was published."""


# Fragments: the same envelope as the redis backend (each backend stands alone, importing
# only its own client library).
@dataclass(frozen=True)
class MqttSettings:
    """The ``mqtt`` link options, with their defaults.

    Example:
        >>> MqttSettings.from_options({"qos": 2}).qos, MqttSettings().port
        (2, 1883)
    """

    url: str = DEFAULT_URL
    qos: int = 1
    session: str = "clean"
    fragment: int = 64 << 20
    connect_retries: int = CONNECT_RETRIES
    retry_interval: float = RETRY_INTERVAL
    reconnect_timeout: float = 10.0
    reconnect_min: int = 1
    reconnect_max: int = 4
    session_expiry: int = 300
    client_id: str = ""
    keepalive: int = 30
    max_pending: int = 1000
    max_inflight: int = 1
    tls: Any = None

    @property
    def host(self) -> str:
        """The broker's host.

        Example:
            >>> MqttSettings(url="mqtt://broker:1884").host
            'broker'
        """
        return urlsplit(self.url).hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        """The broker's port.

        Example:
            >>> MqttSettings(url="mqtt://broker:1884").port
            1884
        """
        parts = urlsplit(self.url)
        return parts.port or (8883 if parts.scheme in TLS_SCHEMES else 1883)

    @property
    def bound(self) -> ConnectBound:
        """How long to try reaching the broker: ``connect_retries`` x ``retry_interval``.

        Example:
            >>> MqttSettings().bound.seconds
            5.0
        """
        return ConnectBound(self.connect_retries, self.retry_interval)

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> MqttSettings:
        """Settings from link options (unknown keys are ignored: they belong to other layers).

        Raises:
            TransportError: an option has an invalid value.

        Example:
            >>> MqttSettings.from_options({"session": "persistent"}).session_expiry
            300
        """
        try:
            settings = cls(
                url=str(options.get("url", DEFAULT_URL)),
                qos=int(options.get("qos", 1)),
                session=str(options.get("session", "clean")),
                fragment=int(options.get("fragment", 64 << 20)),
                connect_retries=int(options.get("connect_retries", CONNECT_RETRIES)),
                retry_interval=float(options.get("retry_interval", RETRY_INTERVAL)),
                reconnect_timeout=float(options.get("reconnect_timeout", 10.0)),
                reconnect_min=int(options.get("reconnect_min", 1)),
                reconnect_max=int(options.get("reconnect_max", 4)),
                session_expiry=int(options.get("session_expiry", 300)),
                client_id=str(options.get("client_id", "")),
                keepalive=int(options.get("keepalive", 30)),
                max_pending=int(options.get("max_pending", 1000)),
                max_inflight=int(options.get("max_inflight", 1)),
                tls=options.get("tls"),
            )
            scheme, _port = urlsplit(settings.url).scheme, settings.port
        except (TypeError, ValueError) as exc:
            raise TransportError(redact(f"invalid mqtt option: {exc}")) from exc
        if scheme not in ("mqtt", "tcp", "mqtts", "ssl"):
            raise TransportError(
                f"mqtt url must start with mqtt:// (or mqtts:// for TLS), not {redact_url(settings.url)!r}"
            )
        TlsFiles.from_option(settings.tls, url=settings.url, option="mqtt")  # refused here, not at connect
        if settings.qos not in QOS_LEVELS:
            raise TransportError(f"mqtt qos must be 0, 1 or 2, not {settings.qos}")
        if settings.session not in SESSIONS:
            raise TransportError(
                f"mqtt session must be one of {', '.join(SESSIONS)}, not {settings.session!r}"
            )
        if not 0 < settings.fragment <= 256 << 20:
            raise TransportError(f"mqtt fragment must be between 1 B and 256 MiB, not {settings.fragment}")
        return settings


class MqttBackend(NetworkBackend):
    """Frames through an MQTT broker; see the module documentation.

    ``send`` may be called from any thread; fragments of one frame are
    published together under a lock. ``close`` publishes ``END`` on every
    output, waits (up to 5 s) for the broker to acknowledge what was
    published, then disconnects (ending a persistent session).

    Example::

        backend = MqttBackend("b", receiver)
        backend.open([LinkSpec("a", "in", routes={"out": ["in"]}, options={"qos": 1})], [])
    """

    name = "mqtt"
    topics = True
    requires = ("paho.mqtt",)
    options = frozenset(f.name for f in fields(MqttSettings))
    option_choices = MappingProxyType({"qos": QOS_LEVELS, "session": SESSIONS})

    def __init__(self, node_id: str, receiver: Receiver) -> None:
        super().__init__(node_id, receiver)
        self.settings = MqttSettings()
        self._client: mqtt.Client | None = None
        self._peers: dict[str, str] = {}
        self._connected = threading.Event()
        self._subscribed = threading.Event()
        self._refused: str | None = None
        self._subscribe_mid = -1
        self._publish_lock = threading.Lock()
        self._room = threading.Condition()
        self._pending = 0
        self._frame_number = 0
        self._gave_up = False
        self._reassembler = Reassembler()
        self._connects = 0
        self._subscriptions = 0
        self._session_present = False

    # ------------------------------------------------------------ lifecycle
    def client_id(self) -> str:
        """The MQTT client id: ``client_id``, or one derived from the run prefix and the node.

        A persistent session needs the same id on every connection; a clean
        one gets a random suffix, so two clients never take each other over.

        Example::

            backend.client_id()   # 'doradus-01J...-camera'
        """
        if self.settings.client_id:
            return self.settings.client_id
        run = self.topic("").removesuffix(f"{self.node_id}/").strip("/").replace("/", "-")
        base = f"{run or 'doradus'}-{self.node_id}"
        return base if self.settings.session == "persistent" else f"{base}-{uuid.uuid4().hex[:8]}"

    def _open_transport(self) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

        self.settings = MqttSettings.from_options(self.merged_options())
        for peer, link in self.in_links.items():
            for output in link.routes:
                self._peers[self.topic(output, sender=peer)] = peer
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=self.client_id(), protocol=MQTTProtocolVersion.MQTTv5
        )
        client.connect_timeout = max(1.0, self.settings.retry_interval)
        parts = urlsplit(self.settings.url)
        if parts.username is not None or parts.password is not None:  # mqtt://user:password@host
            client.username_pw_set(unquote(parts.username or ""), unquote(parts.password or "") or None)
        files = TlsFiles.from_option(self.settings.tls, url=self.settings.url, option="mqtt")
        if files is not None:
            client.tls_set_context(files.context())
        client.max_inflight_messages_set(max(1, self.settings.max_inflight))
        minimum = max(1, self.settings.reconnect_min)
        client.reconnect_delay_set(min_delay=minimum, max_delay=max(minimum, self.settings.reconnect_max))
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        self._client = client
        self._connect(client)
        client.loop_start()
        if not self._connected.wait(HANDSHAKE_TIMEOUT) or self._refused:
            self._abort(f"the broker did not accept the connection: {self._refused or 'no CONNACK'}")
        if self._peers and (not self._subscribed.wait(HANDSHAKE_TIMEOUT) or self._refused):
            self._abort(f"the broker did not confirm the subscription: {self._refused or 'no SUBACK'}")

    def _connect(self, client: mqtt.Client) -> None:
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        settings = self.settings
        # paho-mqtt's Properties.__init__ carries no annotations.
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        if settings.session == "persistent":
            properties.SessionExpiryInterval = settings.session_expiry
        settings.bound.connect(
            lambda: client.connect(
                settings.host,
                settings.port,
                keepalive=settings.keepalive,
                clean_start=settings.session == "clean",
                properties=properties,
            ),
            node_id=self.node_id,
            target=f"the mqtt broker at {redact_url(settings.url)}",
            retry_on=(OSError, ValueError),
        )

    def _abort(self, why: str) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.disconnect()
            client.loop_stop()
        raise ConnectError(redact(f"node {self.node_id!r} at {self.settings.url}: {why}"))

    def _close_transport(self) -> None:
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        client, self._client = self._client, None
        if client is None:
            return
        with self._room:
            self._room.wait_for(lambda: self._pending == 0 or not self._connected.is_set(), CLOSE_TIMEOUT)
        properties = None
        if self.settings.session == "persistent":
            # paho-mqtt's Properties.__init__ carries no annotations.
            properties = Properties(PacketTypes.DISCONNECT)  # type: ignore[no-untyped-call]
            properties.SessionExpiryInterval = 0  # the run is over for this node: the broker may forget it
        client.disconnect(properties=properties)
        client.loop_stop()

    # ------------------------------------------------------- paho callbacks
    def _on_connect(
        self, client: mqtt.Client, _userdata: Any, flags: Any, reason: ReasonCode, _props: Any
    ) -> None:
        from paho.mqtt.subscribeoptions import SubscribeOptions

        if reason.is_failure:
            self._refused = str(reason)
            self._connected.set()
            return
        self._session_present = bool(flags.session_present)
        sock = client.socket()
        if isinstance(sock, socket.socket):  # small messages must not wait for Nagle's algorithm
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        with self._lock:
            self._connects += 1
        if self._peers:
            _rc, mid = client.subscribe(
                [(topic, SubscribeOptions(qos=self.settings.qos)) for topic in sorted(self._peers)]
            )
            self._subscribe_mid = -1 if mid is None else mid
        self._connected.set()
        self._wake()

    def _on_disconnect(
        self, _client: mqtt.Client, _userdata: Any, _flags: Any, _reason: Any, _props: Any
    ) -> None:
        self._connected.clear()
        self._wake()

    def _on_subscribe(
        self, _client: mqtt.Client, _userdata: Any, mid: int, reasons: list[ReasonCode], _props: Any
    ) -> None:
        failed = [str(r) for r in reasons if r.is_failure]
        if failed and not self._subscribed.is_set():
            self._refused = ", ".join(failed)
        elif failed:
            self.receiver.error(f"the mqtt broker refused a resubscription: {', '.join(failed)}")
        if mid == self._subscribe_mid:
            with self._lock:
                self._subscriptions += 1
            self._subscribed.set()

    def _on_message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        try:
            peer = self._peers.get(message.topic)
            if peer is None:
                return
            frame = self._reassembler.feed(message.topic, message.payload)
            if frame is not None:
                self._frame(peer, frame)
        except Exception as exc:  # an exception would end paho's network thread
            self.receiver.error(f"a message on {message.topic!r} could not be delivered: {exc}")

    def _on_publish(self, _client: mqtt.Client, _userdata: Any, _mid: int, _reason: Any, _props: Any) -> None:
        # paho calls this holding its outgoing-message lock, which publish() takes too: a publish
        # must never be made while holding self._room, or the two threads wait for each other.
        self._published()

    def _published(self) -> None:
        with self._room:
            self._pending -= 1
            self._room.notify_all()

    def _wake(self) -> None:
        with self._room:
            self._room.notify_all()

    # -------------------------------------------------------------- sending
    def _publish(self, topic: str, parts: list[bytes | memoryview]) -> None:
        with self._publish_lock:
            self._frame_number += 1
            for message in split_frame(parts, self.settings.fragment, self._frame_number):
                if not self._publish_one(topic, message):
                    return  # the receiver drops the partial frame

    def _publish_one(self, topic: str, message: bytes) -> bool:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import MQTTErrorCode

        client = self._client
        if client is None:
            return False
        budget = 0.0 if self._gave_up or self._closing else self.settings.reconnect_timeout
        with self._room:
            ready = self._room.wait_for(
                lambda: self._connected.is_set() and self._pending < self.settings.max_pending, budget
            )
        if not ready:
            self._gave_up = True
            return self._give_up(
                topic, f"no room at the broker {redact_url(self.settings.url)} within {budget:g} s"
            )
        with self._room:
            self._pending += 1  # counted first: paho may acknowledge before publish() returns
        try:
            info = client.publish(
                topic, message, qos=self.settings.qos
            )  # never under self._room: see _on_publish
        except (OSError, ValueError) as exc:
            self._published()
            return self._give_up(topic, str(exc))
        queued = info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS or (
            info.rc == MQTTErrorCode.MQTT_ERR_NO_CONN and self.settings.qos > 0
        )  # paho re-sends QoS>=1 messages it could not write, once reconnected
        if not queued:
            self._published()
            return self._give_up(topic, mqtt.error_string(info.rc))
        self._gave_up = False
        return True

    def _give_up(self, topic: str, why: str) -> bool:
        with self._lock:
            self._failures += 1
        if not self._closing:
            self.receiver.error(f"a message on {topic!r} was dropped: {why}")
        return False

    def _details(self) -> dict[str, Any]:
        return {
            "qos": self.settings.qos,
            "session": self.settings.session,
            "connects": self._connects,
            "subscriptions": self._subscriptions,
            "session_present": self._session_present,
            "pending": self._pending,
            "partial_dropped": self._reassembler.dropped,
        }
