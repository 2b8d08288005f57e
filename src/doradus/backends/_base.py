"""The backend interface: how the messages of a node's edges travel.

A backend owns the links of one node: it sends that node's outputs to the
receivers subscribed to them, and hands what arrives to the node through a
:class:`Receiver`. The node encodes values and metadata once
(:class:`Outgoing`); the backend only moves them.

Guarantees every backend gives (the conformance suite checks them):

- **Order per edge**: messages of one output arrive at one input in the order
  they were sent.
- **No loss under the queue bound**: a message is dropped only by the
  receiver's documented queue policy, and every drop is counted there.
- **Backpressure** (backends that set `Backend.applies_backpressure`): a
  message for a ``queue_policy: backpressure`` input waits at its sender
  until the receiving node has room (`doradus.backends._flow`), at most the
  input's ``backpressure_timeout``.
- **Close**: when a sender is gone (exit or crash), its receivers' inputs
  close once everything it sent before has been delivered.
- **Errors** surface as :class:`~doradus.TransportError` subclasses, never as
  a library's own exception.

Example:
    >>> issubclass(Backend, object)
    True
"""

from __future__ import annotations

import os
import select
from abc import ABC, abstractmethod
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple, Protocol

if TYPE_CHECKING:
    # Only for annotations: importing the interface (the registry, `doradus check` reading a
    # backend's hooks) needs neither numpy nor pyarrow.
    import numpy as np
    import pyarrow as pa

    from doradus._wire.values import ValuePlan

LinkOptions = tuple[dict[str, Any], dict[str, Any]]
"""The options of a link's sending end and of its receiving end (`Backend.link_options`)."""


def host_port(host: str, port: int) -> str:
    """``host:port``, with an IPv6 host in brackets.

    Example:
        >>> host_port("127.0.0.1", 7000), host_port("::1", 7000)
        ('127.0.0.1:7000', '[::1]:7000')
    """
    host = host.strip("[]")
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class Outgoing(NamedTuple):
    """One message, encoded once by the node, ready for any backend.

    ``plan`` lays the value's Arrow buffers out; ``array`` is the value itself
    (a backend with shared memory may find it already lives there). A named
    tuple: immutable, and cheap to build on the hot path.

    Example:
        >>> from doradus.testing import outgoing
        >>> message = outgoing([1, 2, 3], seq=7)
        >>> message.output, message.array.to_pylist(), message.seq, message.codec
        (b'out', [1, 2, 3], 7, 0)
    """

    output: bytes
    array: pa.Array
    plan: ValuePlan
    metadata: bytes
    seq: int
    stamp_ns: int
    codec: int = 0
    """The data format's tag (``doradus.codecs.TAGS``); 0 is Arrow."""


@dataclass(frozen=True)
class LinkSpec:
    """One link of the node, as the daemon wired it.

    ``direction`` is ``"out"`` (this node sends ``outputs`` to ``peer``) or
    ``"in"`` (``peer`` sends to this node; ``routes`` maps its output ids to
    this node's input ids).
    ``backpressure`` (``out`` links): per output, the receiver's ``queue_policy:
    backpressure`` inputs it feeds, with their ``(queue_size, backpressure_timeout)``.
    ``held``: ``peer`` may be restarted when it ends (its ``restart_policy``): a
    backend that sees a sender's end (`Backend.reports_sender_end`) keeps the inputs
    open until `Backend.sender_ended` says the end is for good; one that sees a
    receiver's end counts what it does not send it meanwhile (`Backend.restart_drops`).
    ``hold_limit`` (``out`` links): the most bytes of the sender's shared memory the receiver
    may hold before newer messages to it are dropped (the ``shm`` backend; None: its default).

    Example:
        >>> link = LinkSpec("camera", "in", routes={"image": ["frames"]})
        >>> link.peer, link.direction, link.routes["image"], link.outputs
        ('camera', 'in', ['frames'], ())
    """

    peer: str
    direction: str
    outputs: tuple[str, ...] = ()
    routes: dict[str, list[str]] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    held: bool = False
    backpressure: dict[str, dict[str, tuple[int, float]]] = field(default_factory=dict)
    hold_limit: int | None = None


@dataclass(frozen=True)
class BackendStatistics:
    """Counters of one backend, for status displays and metrics.

    Example:
        >>> BackendStatistics("shm").messages_sent
        0
    """

    backend: str
    messages_sent: int = 0
    bytes_sent: int = 0
    messages_received: int = 0
    send_failures: int = 0
    details: dict[str, Any] = field(default_factory=dict)


class Receiver(Protocol):
    """What a backend calls as messages arrive (from its own threads).

    Example:
        >>> from doradus.testing import CollectingReceiver
        >>> receiver: Receiver = CollectingReceiver()
        >>> receiver.closed(["image"])
        >>> receiver.error("lost the link to 'camera'")
        >>> receiver.closed_inputs, receiver.errors
        (['image'], ["lost the link to 'camera'"])
    """

    def deliver(self, inputs: tuple[str, ...], entry: tuple[Any, ...]) -> None:
        """A message for ``inputs`` (decoded later by the node)."""

    def closed(self, inputs: Sequence[str]) -> None:
        """These inputs will receive nothing more."""

    def error(self, message: str) -> None:
        """Something went wrong that the node should hear about."""

    def timed_out(self, inputs: Sequence[str]) -> None:
        """A message for ``inputs`` was not sent: its sender's wait for room timed out (backpressure)."""

    def dropped(self, inputs: Sequence[str], count: int) -> None:
        """``count`` messages for ``inputs`` were dropped by their sender: this node held too much."""


class MachineRouter(Protocol):
    """A machine's meeting point for links crossing machines (`Backend.open_machine_router`)."""

    def close(self) -> None:
        """Stop routing; must succeed even after errors."""


class Backend(ABC):
    """Moves one node's messages. Implementations: one module each, one registry line.

    Lifecycle: ``open(links, fds)`` wires the links the daemon prepared;
    ``start()`` begins receiving; ``send`` may then be called from any thread;
    ``close()`` releases everything and must succeed even after errors.

    Hooks: what the rest of Doradus asks of a backend *class*, before any node
    runs (``doradus check``, the daemon wiring links, the machine daemon). Each
    has a default that suits a third-party network backend, which then needs
    none of them; the built-in backends set their own. The daemon and
    ``doradus check`` read them through `doradus.backends.backend_class`, so
    a backend's module must import its library inside methods and name it in
    `requires` (the registry imports it for `doradus.backends.get_backend`,
    with an install hint when it is missing).

    Example:
        >>> from doradus.backends import backend_class
        >>> backend_class("tcp").uses_socket_pairs, backend_class("shm").uses_socket_pairs
        (False, True)
    """

    name: ClassVar[str]

    requires: ClassVar[tuple[str, ...]] = ()
    """Modules this backend imports when it runs (its library), imported by `get_backend` first.

    A missing one makes `get_backend` raise ImportError naming the ``pip install`` to run.
    """

    options: ClassVar[frozenset[str] | None] = None
    """The options a dataflow may give this backend (``communication: {<name>: {...}}``).

    ``doradus check`` reports any other, with a did-you-mean. None (the default): the backend
    does not declare them, and ``check`` accepts anything.
    """

    option_choices: ClassVar[Mapping[str, tuple[Any, ...]]] = MappingProxyType({})
    """Allowed values of some `options` (option → values); ``check`` reports any other value."""

    uses_socket_pairs: ClassVar[bool] = False
    """The daemon connects each link of this backend with a Unix socket pair, and nothing else.

    True: both nodes must run on the daemon's machine; `open` gets one end per link in
    ``fds`` (in link order) and no addresses. False (the default): links get no descriptor
    and `link_options` says where they meet.
    """

    reports_sender_end: ClassVar[bool] = False
    """A receiver's links show by themselves that a sender ended (a socket closes with its process).

    False (the default): the daemon tells receiving nodes when a sender's process exits, and
    the node calls `sender_ended`.
    """

    machine_router: ClassVar[bool] = False
    """Links crossing machines meet at one router per machine instead of at each receiver.

    True: the machine daemon of each machine a link crosses opens a router
    (`router_endpoint`, `open_machine_router`) and nodes reach each other through it
    (`router_link_options`). False (the default): each receiver listens at an address its
    machine announces, and `link_options` applies across machines too. One router backend
    per run may cross machines.
    """

    restarts_links: ClassVar[bool] = False
    """The links of this backend survive a node's restart (``doradus node restart``).

    True: a node linked to a restarting peer gets `peer_restarting` (it stops sending to the
    peer, counting what it would have sent in `restart_drops`, and takes the end of the peer's
    links as no end), then `open` again with the new links to the restarted peer. False (the
    default): the runtime refuses to restart a node with links of this backend, naming it.
    """

    applies_backpressure: ClassVar[bool] = False
    """Inputs with ``queue_policy: backpressure`` fed by this backend's links never drop.

    True: a sender waits for room at the receiver (`LinkSpec.backpressure`), the receiving
    node calls `taken` as it takes their messages and `hold_senders` as it is paused and
    resumed, and the backend tells the receiver of a timed-out wait (`Receiver.timed_out`).
    False (the default): such inputs drop their oldest message, and ``doradus check`` says so.
    """

    close_when_main_thread_ends: ClassVar[bool] = True
    """Close this backend as the node's main thread ends, before Python joins the other threads.

    Backends holding sessions or threads that would keep the process alive (and whose
    receivers learn the end of a sender from its close) set True; a backend whose links the
    kernel closes with the process may leave it False.
    """

    @classmethod
    def link_options(cls, common: dict[str, Any], host: str, port: int) -> LinkOptions:
        """Options of a link's sending end and its receiving end, the receiver listening at ``host:port``.

        ``common`` holds the dataflow's settings for this backend and the run's topic
        ``prefix``; ``host:port`` is free for the receiver: a loopback port on one machine,
        or the address its machine announced for links from other machines. The default,
        for a backend where receivers listen and senders connect: ``connect`` and
        ``listen`` as ``host:port``. A broker backend can ignore the address.

        Example:
            >>> Backend.link_options({"prefix": "p/"}, "127.0.0.1", 7000)
            ({'prefix': 'p/', 'connect': '127.0.0.1:7000'}, {'prefix': 'p/', 'listen': '127.0.0.1:7000'})
        """
        address = host_port(host, port)
        return {**common, "connect": address}, {**common, "listen": address}

    @classmethod
    def router_endpoint(
        cls,
        host: str,
        port: int,
        options: Mapping[str, Any] | None = None,
        *,
        folder: str | os.PathLike[str] | None = None,
    ) -> str:
        """The address a `machine_router` backend's router listens on, as other routers reach it.

        ``options`` are the dataflow's settings for this backend (``communication: {<name>:
        {...}}``), whose relative file paths start from ``folder`` (the dataflow file's
        folder, where nodes run); the machine daemon asks before any node starts, so a
        backend checks here what its router will need (a TLS endpoint, readable files).

        Raises:
            TransportError: the options cannot give a router (the message names the option).

        Example:
            >>> Backend.router_endpoint("10.0.0.1", 7447)
            '10.0.0.1:7447'
        """
        return host_port(host, port)

    @classmethod
    def open_machine_router(
        cls,
        endpoint: str,
        peers: Sequence[str],
        options: Mapping[str, Any] | None = None,
        *,
        folder: str | os.PathLike[str] | None = None,
    ) -> MachineRouter:
        """Start this machine's router on ``endpoint``, connected to the routers at ``peers``.

        Only called when `machine_router` is True; the machine daemon closes it when the run ends.
        ``options`` and ``folder``: as for `router_endpoint`.

        Raises:
            TransportError: the options cannot give a router.
            ConnectError: the router cannot start.

        Example::

            router = ZenohBackend.open_machine_router("tcp/10.0.0.1:7447", ["tcp/10.0.0.2:7447"])
        """
        raise NotImplementedError(f"backend {cls.name!r} has no machine router")

    @classmethod
    def router_link_options(cls, common: dict[str, Any], router: str) -> LinkOptions:
        """Options of a link's two ends across machines, each node reaching its machine's ``router``.

        Only called when `machine_router` is True.

        Example::

            ZenohBackend.router_link_options({}, "tcp/10.0.0.1:7447")[0]["mode"]   # 'client'
        """
        raise NotImplementedError(f"backend {cls.name!r} has no machine router")

    def __init__(self, node_id: str, receiver: Receiver) -> None:
        self.node_id = node_id
        self.receiver = receiver

    @abstractmethod
    def open(self, links: Sequence[LinkSpec], fds: Sequence[int]) -> None:
        """Take over the link ends (``fds``, one per link, in order)."""

    @abstractmethod
    def start(self) -> None:
        """Begin receiving."""

    @abstractmethod
    def send(self, message: Outgoing) -> int:
        """Send to every live subscriber of ``message.output``; returns how many were reached."""

    @abstractmethod
    def close(self) -> None:
        """Close every link; receivers see their inputs close."""

    @abstractmethod
    def statistics(self) -> BackendStatistics:
        """A snapshot of the counters."""

    def allocate(self, nbytes: int) -> np.ndarray:
        """A writable buffer that :meth:`send` can carry without copying, if the backend can.

        The default is ordinary memory.
        """
        import numpy as np

        return np.empty(nbytes, dtype=np.uint8)

    def sender_ended(self, peer: str) -> None:  # noqa: B027 - an optional hook, empty by default
        """The daemon says node ``peer`` exited: close the inputs it fed once nothing more comes.

        Called for backends without `reports_sender_end` (and for every backend when the
        sender ran on another machine), and for ``held`` links (`LinkSpec.held`): their
        sender will not be restarted, so the end its links showed (or will show) is the end
        of the inputs they feed. A backend whose links show a sender's end by themselves (a
        closed socket, an ``END`` frame) and that holds no link may ignore it, as this
        default does.
        """

    def peer_restarting(self, peer: str) -> None:  # noqa: B027 - an optional hook, empty by default
        """Node ``peer`` is about to restart: stop sending to it; its links' end is no end.

        Only called on backends that set `restarts_links`; the new links come through `open`.
        """

    def restart_drops(self) -> dict[str, int]:
        """Messages not sent to each restarting peer while it was down, since the start (peer → count).

        Example::

            backend.restart_drops()   # {'detector': 3}
        """
        return {}

    def taken(self, input_id: str) -> None:  # noqa: B027 - an optional hook, empty by default
        """The node took a message of backpressure input ``input_id``: its sender may send one more.

        Called from the node's consuming thread; must not block. Only for `applies_backpressure`.
        """

    def hold_senders(self, inputs: Collection[str], held: bool) -> None:  # noqa: B027 - optional hook
        """The node was paused (``held``) or resumed: tell the senders of these backpressure ``inputs``.

        Their waits for room have no deadline while the node is paused. Only for
        `applies_backpressure`.
        """

    def idle(self) -> None:  # noqa: B027 - an optional hook, empty by default
        """The node is about to wait for events: a moment for housekeeping."""

    def drain(self) -> None:  # noqa: B027 - an optional hook, empty by default
        """The node ends: read what its links hold now into its queues, so its last report counts it.

        Called once, just before the node's final statistics; must not block.
        """

    def end_outputs(self) -> None:  # noqa: B027 - an optional hook, empty by default
        """The node's process is ending, its final report sent: tell its receivers now.

        Called once at exit, after the last report and before the interpreter's own teardown
        (which takes tens of milliseconds with pyarrow and numpy loaded), so receivers see the
        end of their inputs without waiting for it. Messages already sent stay readable.
        """

    def wait(self, timeout: float, wake_fd: int) -> None:
        """Block the node's thread until ``wake_fd`` is readable or ``timeout`` passes (< 0: forever).

        A backend may also wait on its own connections here and deliver what
        arrives from the calling thread, saving a hand-off between threads.
        """
        poller = select.poll()
        poller.register(wake_fd, select.POLLIN)
        poller.poll(None if timeout < 0 else timeout * 1000)
