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
- **Close**: when a sender is gone (exit or crash), its receivers' inputs
  close once everything it sent before has been delivered.
- **Errors** surface as :class:`~doradus.TransportError` subclasses, never as
  a library's own exception.

Example:
    >>> issubclass(Backend, object)
    True
"""

from __future__ import annotations

import select
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple, Protocol

import numpy as np
import pyarrow as pa

from doradus._wire.values import ValuePlan


class Outgoing(NamedTuple):
    """One message, encoded once by the node, ready for any backend.

    ``plan`` lays the value's Arrow buffers out; ``array`` is the value itself
    (a backend with shared memory may find it already lives there). A named
    tuple: immutable, and cheap to build on the hot path.
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
    """

    peer: str
    direction: str
    outputs: tuple[str, ...] = ()
    routes: dict[str, list[str]] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)


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
    """What a backend calls as messages arrive (from its own threads)."""

    def deliver(self, inputs: tuple[str, ...], entry: tuple[Any, ...]) -> None:
        """A message for ``inputs`` (decoded later by the node)."""

    def closed(self, inputs: Sequence[str]) -> None:
        """These inputs will receive nothing more."""

    def error(self, message: str) -> None:
        """Something went wrong that the node should hear about."""


class Backend(ABC):
    """Moves one node's messages. Implementations: one module each, one registry line.

    Lifecycle: ``open(links, fds)`` wires the links the daemon prepared;
    ``start()`` begins receiving; ``send`` may then be called from any thread;
    ``close()`` releases everything and must succeed even after errors.
    """

    name: ClassVar[str]

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
        return np.empty(nbytes, dtype=np.uint8)

    def idle(self) -> None:  # noqa: B027 - an optional hook, empty by default
        """The node is about to wait for events: a moment for housekeeping."""

    def wait(self, timeout: float, wake_fd: int) -> None:
        """Block the node's thread until ``wake_fd`` is readable or ``timeout`` passes (< 0: forever).

        A backend may also wait on its own connections here and deliver what
        arrives from the calling thread, saving a hand-off between threads.
        """
        poller = select.poll()
        poller.register(wake_fd, select.POLLIN)
        poller.poll(None if timeout < 0 else timeout * 1000)
