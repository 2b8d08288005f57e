"""The ``iceoryx2`` backend: zero-copy shared-memory publish/subscribe between nodes of one machine.

Each node runs one iceoryx2 node, named ``<prefix><node id>`` (``prefix`` is
``doradus/<run-id>/``, so two runs at once never meet). Each link (sender → receiver) is one
publish/subscribe service, ``<prefix>link/<sender>/<receiver>``
(`doradus.backends._iceoryx2_ports`): the sender loans a sample of the message's size in
its own shared memory, writes the frame there (the header and the value's Arrow buffers:
the one copy of the message's bytes), sends it, and notifies the receiver's wake-up
service. A receiving node subscribes to its links, and one thread waits on its wake-up
listener, takes every sample that arrived and hands it to the node: payloads from 64 KiB
are read in place, read-only, the sample held while any value over it lives (up to 8 at
once, beyond that copied); smaller ones are copied once.

Frames are those of every byte-carrying backend (`doradus.backends._frames`): the ``END``
frame a sender writes as it closes closes its receiver's inputs after everything it sent.
A sender that dies without closing (SIGKILL) is seen twice: the daemon tells the receiving
node (`sender_ended`), and the receiving thread looks every `LIVENESS` seconds for its
iceoryx2 node among the dead (or vanished) ones, takes what it had sent, closes its inputs
and removes what it left in ``/dev/shm`` and ``/tmp/iceoryx2``.

Delivery: every message in order. A receiver's queue (16 samples) that is full makes its
sender wait, in Python (the interpreter released), until the receiving thread has taken
some: nothing is dropped on the way. A receiver that closed ends the link (later messages
skip it, counted in ``send_failures``); one that died is found while its sender waits, its
leftovers removed. One machine only: a link crossing machines fails at open, naming the fix.
Fan-out writes the frame once per receiving node (a service per link).

Example::

    backend = Iceoryx2Backend("camera", receiver)
    backend.open([LinkSpec("detector", "out", ("image",), options={"prefix": "doradus/01J/"})], [])
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

from doradus._exceptions import TransportError
from doradus._wire.protocol import pack_data
from doradus.backends._base import LinkOptions, LinkSpec, Outgoing
from doradus.backends._network import NetLink, NetworkBackend

LIVENESS = 0.5
"""Seconds between two looks for a peer among iceoryx2's dead nodes (a receiver idle, a sender waiting)."""
PAUSE_MAX = 0.002
"""The longest pause of a sender between two attempts to write to a full receiver's queue."""
WAIT = 0.5
"""The longest a receiving thread waits for a wake-up before it looks again."""
BATCH = 64
"""Samples taken from one subscriber before the next one's turn."""
DEFAULT_PREFIX = "doradus/"
_LOOPBACK = {"127.0.0.1", "::1", "localhost", ""}
_PAD = bytes(8)


def frame_head(message: Outgoing) -> tuple[list[bytes], int]:
    """The parts of ``message``'s frame before its payload, and the payload's offset in the frame.

    The same frame as `doradus.backends._frames.encode_frame`, whose payload this backend
    writes straight into shared memory instead of a buffer of its own.

    Example:
        >>> from doradus.testing import outgoing
        >>> parts, start = frame_head(outgoing([1, 2], seq=1))
        >>> start % 8, start == sum(len(p) for p in parts)
        (0, True)
    """
    plan = message.plan
    head = pack_data(message, plan.layout, 0, 0, plan.size)
    parts = [head, message.output, plan.type_blob, plan.layout, message.metadata]
    pos = sum(len(p) for p in parts)
    if pos % 8:
        parts.append(_PAD[: -pos % 8])
        pos += -pos % 8
    return parts, pos


class Iceoryx2Backend(NetworkBackend):
    """Frames in iceoryx2 shared-memory samples, one publish/subscribe service per link."""

    name = "iceoryx2"
    topics = False
    requires = ("iceoryx2",)
    options = frozenset()

    @classmethod
    def link_options(cls, common: dict[str, Any], host: str, port: int) -> LinkOptions:
        """Both ends get the run's ``prefix``; no address (nodes meet in iceoryx2's shared memory).

        A receiver on another machine (``host`` not a loopback address) is marked, and the
        link fails at open: shared memory does not cross machines.

        Example:
            >>> Iceoryx2Backend.link_options({"prefix": "doradus/r/"}, "127.0.0.1", 7000)[0]
            {'prefix': 'doradus/r/'}
        """
        options = dict(common)
        if host.strip("[]") not in _LOOPBACK:
            options["other_machine"] = host
        return dict(options), dict(options)

    def __init__(self, node_id: str, receiver: Any) -> None:
        super().__init__(node_id, receiver)
        self._node: Any = None
        self._prefix = DEFAULT_PREFIX
        self._subscribers: list[tuple[str, Any]] = []
        self._listener: Any = None
        self._holds: Any = None
        self._thread: threading.Thread | None = None
        self._seen_alive: set[str] = set()
        self._gone: set[str] = set()
        self._stale_removed = 0
        self._held: set[str] = set()
        """Senders that may be restarted: their death closes nothing until `sender_ended`."""
        self._taking = threading.Lock()
        """Held while samples are taken and delivered: one taker at a time keeps their order."""

    # ------------------------------------------------------------------ opening
    def open(self, links: Sequence[LinkSpec], fds: Sequence[int]) -> None:
        """Record which senders may be restarted (``held``), then open the links."""
        self._held = {spec.peer for spec in links if spec.direction == "in" and spec.held}
        super().open(links, fds)

    def _open_transport(self) -> None:
        from doradus.backends import _iceoryx2_ports as ports

        merged = self.merged_options()
        elsewhere = merged.get("other_machine")
        if elsewhere:
            raise TransportError(
                f"node {self.node_id!r}: iceoryx2 carries edges between nodes of one machine only "
                f"(shared memory), and a link reaches {elsewhere}; set `communication: {{remote: zenoh}}` "
                "(or tcp) for edges crossing machines"
            )
        self._prefix = str(merged.get("prefix") or DEFAULT_PREFIX)
        self._node = ports.create_node(f"{self._prefix}{self.node_id}")
        self._holds = ports.Holds()
        try:
            for link in self.out_links:
                publisher, factory = ports.open_publisher(
                    self._node, self._link_name(self.node_id, link.peer)
                )
                notifier = ports.open_notifier(self._node, self._wake_name(link.peer))
                link.handle = (publisher, factory, notifier, threading.Lock())
            if self.in_links:
                self._listener = ports.open_listener(self._node, self._wake_name(self.node_id))
                for peer in sorted(self.in_links):
                    service = self._link_name(peer, self.node_id)
                    self._subscribers.append((peer, ports.open_subscriber(self._node, service)))
                self._thread = threading.Thread(
                    target=self._receive_loop, name=f"iceoryx2-{self.node_id}", daemon=True
                )
                self._thread.start()
        except BaseException:
            self._release()
            raise

    def _link_name(self, sender: str, receiver: str) -> str:
        return f"{self._prefix}link/{sender}/{receiver}"

    def _wake_name(self, receiver: str) -> str:
        return f"{self._prefix}wake/{receiver}"

    # ------------------------------------------------------------------ sending
    def send(self, message: Outgoing) -> int:
        """Write ``message``'s frame into a loaned sample of each link reading its output, send, notify.

        Returns the receivers it was meant for (0: no receiver reads this output).
        """
        links = self._routes.get(message.output)
        if not links:
            return 0
        parts, start = frame_head(message)
        plan = message.plan

        def fill(view: memoryview) -> None:
            _write_parts(view, parts)
            if plan.size:
                plan.write_into(view, start)

        size = start + plan.size
        reached = 0
        for link in links:
            if link.alive and self._deliver(link, size, fill):
                reached += 1
        if reached:
            with self._lock:
                self._sent += 1
                self._bytes += size
        return len(links)

    def _send_link(self, link: NetLink, parts: list[bytes | memoryview]) -> None:
        """Write one frame given as parts (the ``END`` frames of `close`)."""
        self._deliver(link, sum(len(p) for p in parts), lambda view: _write_parts(view, parts))

    def _deliver(self, link: NetLink, size: int, fill: Any) -> bool:
        """Send one sample on ``link``, waiting for room in its receiver's queue; False if it is gone."""
        from doradus.backends import _iceoryx2_ports as ports

        publisher, factory, notifier, lock = link.handle
        pause = 0.0
        look = time.monotonic() + LIVENESS
        try:
            while True:
                with lock:
                    reached = ports.write_sample(publisher, size, fill)
                    notifier.notify()
                if reached:
                    return True
                if ports.receivers(factory) == 0:  # the receiver closed its end
                    self._link_failed(link)
                    return False
                if time.monotonic() >= look:
                    if self._peer_dead(link.peer):  # it died: its queue will never drain
                        self._link_failed(link)
                        return False
                    look = time.monotonic() + LIVENESS
                time.sleep(pause)  # releases the interpreter: the receiving thread may run
                pause = min(PAUSE_MAX, pause * 2 or 0.00005)
        except Exception as exc:
            self._link_failed(link)
            if not self._closing:
                self.receiver.error(
                    f"iceoryx2 could not send a {size} B message to {link.peer!r}: {exc!r}; "
                    "check that /dev/shm has room (`df -h /dev/shm`)"
                )
            return False

    def _peer_dead(self, peer: str) -> bool:
        """Whether ``peer``'s iceoryx2 node is dead (its leftovers then removed) or gone."""
        from doradus.backends import _iceoryx2_ports as ports

        for state, name, view in ports.node_states(f"{self._prefix}{peer}"):
            if name != f"{self._prefix}{peer}":
                continue
            if state == "dead":
                if ports.remove_stale(view):
                    self._stale_removed += 1
                return True
            return False
        return True

    # ---------------------------------------------------------------- receiving
    def _receive_loop(self) -> None:
        from doradus.backends import _iceoryx2_ports as ports

        next_look = time.monotonic() + LIVENESS
        try:
            while not self._closing:
                if self._drain():
                    continue
                now = time.monotonic()
                if now >= next_look:
                    self._look_for_dead_senders()
                    next_look = now + LIVENESS
                # May return early without an event (spurious under load): the loop looks again.
                ports.wait(self._listener, min(WAIT, max(0.0, next_look - now)))
        except Exception as exc:  # the library failed under us: the node hears it
            if not self._closing:
                self.receiver.error(f"iceoryx2 receiving thread of {self.node_id!r} stopped: {exc!r}")

    def _drain(self, peer: str | None = None) -> int:
        """Take what arrived (from ``peer`` only, or from everyone) and deliver it; returns how many."""
        taken = 0
        with self._taking:
            for sender, subscriber in self._subscribers:
                if peer is not None and sender != peer:
                    continue
                for _ in range(BATCH):
                    sample = subscriber.receive()
                    if sample is None:
                        break
                    taken += 1
                    self._frame(sender, self._holds.frame(sample))
        return taken

    def _look_for_dead_senders(self) -> None:
        """Close the inputs of senders whose iceoryx2 node died (or vanished) without ``END``."""
        from doradus.backends import _iceoryx2_ports as ports

        listed: dict[str, tuple[str, Any]] = {}
        for state, name, view in ports.node_states(self._prefix):
            listed[name] = (state, view)
        for peer in self.in_links:
            if peer in self._gone:
                continue
            state, view = listed.get(f"{self._prefix}{peer}", ("absent", None))
            if state == "alive":
                self._seen_alive.add(peer)
                continue
            if state == "dead" or (state == "absent" and peer in self._seen_alive):
                self._drain(peer)  # what it sent before it died is still there: deliver it first
                if state == "dead" and ports.remove_stale(view):
                    self._stale_removed += 1
                self._gone.add(peer)
                if (
                    peer not in self._held
                ):  # a held sender may be restarted: the daemon says when it is for good
                    self.peer_gone(peer)

    def drain(self) -> None:
        """The node ends: take what its subscribers hold now."""
        if self._subscribers and not self._closing:
            try:
                self._drain()
            except Exception:
                pass

    # ------------------------------------------------------------------ closing
    def _close_transport(self) -> None:
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(WAIT + 5.0)
        self._release()

    def _release(self) -> None:
        """Delete the ports and the node, so iceoryx2 removes their files; held samples keep theirs."""
        for link in self.out_links:
            if link.handle is not None:
                publisher, _factory, notifier, lock = link.handle
                with lock:
                    _delete(publisher)
                    _delete(notifier)
                link.handle = None
        if self._listener is not None:
            _delete(self._listener)
            self._listener = None
        holding = self._holds is not None and self._holds.held > 0
        if not holding:  # a value still read from a sample keeps its subscriber (and node) alive
            for _peer, subscriber in self._subscribers:
                _delete(subscriber)
        self._subscribers = []
        self._node = None  # the node's files go once nothing refers to it

    def _details(self) -> dict[str, Any]:
        holds = self._holds
        if holds is None:
            return {}
        return {
            "held_samples": holds.held,
            "zero_copy": holds.zero_copy,
            "copied_large": holds.copied_large,
            "stale_nodes_removed": self._stale_removed,
        }


def _write_parts(view: memoryview, parts: list[bytes] | list[bytes | memoryview]) -> None:
    pos = 0
    for part in parts:
        view[pos : pos + len(part)] = part
        pos += len(part)


def _delete(port: Any) -> None:
    try:
        port.delete()
    except Exception:  # already gone with its node: closing must still finish
        pass
