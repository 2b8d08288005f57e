"""What the ``iceoryx2`` backend asks of the iceoryx2 library: its node, services, samples, liveness.

Every call into iceoryx2 lives here, so `doradus.backends._iceoryx2` reads as the other
backends do. The library is imported inside the functions (the registry imports it for the
backend, `doradus check` never does).

Services, per run (``prefix`` is ``doradus/<run-id>/``, so two runs at once never share one):

- ``<prefix>link/<sender>/<receiver>``: publish/subscribe of byte slices, one per link: the
  sending node publishes (two publishers at most, for a restarted sender whose dead one is
  not yet cleaned up), the receiving node subscribes, no history. Both sides open it with the
  same settings (`open_publisher`, `open_subscriber`); whichever comes first creates it.
  A publisher never blocks in iceoryx2 (``DiscardData``): a sample its receiver's full
  queue refused is reported by ``send`` (0 delivered), and the backend waits for room
  itself, in Python, where the wait releases the interpreter (iceoryx2's own
  ``RetryUntilDelivered`` spins holding it, which stops every other thread of the node:
  two nodes sending to each other would each wait for the other forever).
- ``<prefix>wake/<receiver>``: an event service; the receiver listens, each of its senders
  notifies after each sample it publishes, so a receiver waits on one listener for all of
  its inputs.

Memory: the bytes of a message are written once, into the publisher's shared memory
(`write_sample`); a receiver reads payloads of `ZERO_COPY_MIN` bytes and more where they
lie, holding the sample while any Arrow buffer over it lives, and copies smaller ones (one
copy, then the sample goes back at once). The views over samples, and how long each may be
used, are in `doradus._unsafe.iceoryx2_samples`.

Example::

    node = create_node("doradus/01J/camera")
    publisher, factory = open_publisher(node, "doradus/01J/link/camera/detector")
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from doradus._exceptions import TransportError
from doradus._unsafe.iceoryx2_samples import U8, held_view, sample_bytes
from doradus._unsafe.iceoryx2_samples import write_sample as write_sample  # the backend sends through it

MAX_SENDERS = 64
"""Sending nodes one receiving node may have on this backend (notifiers of its wake-up service)."""
BUFFER = 16
"""Samples a subscriber's queue holds before its publisher waits (the receiver drains it at once)."""
HELD_MAX = 8
"""Received samples a receiving node holds zero-copy at once; beyond, payloads are copied."""
ZERO_COPY_MIN = 64 * 1024
"""Payloads from this size are read in place (held); smaller ones are copied (cheaper than holding)."""
INITIAL_SLICE = 4096
"""A publisher's first sample size; iceoryx2 grows its memory in powers of two as messages grow."""


def _iox2() -> Any:
    import iceoryx2  # type: ignore[import-untyped]  # iceoryx2 ships no type hints (no py.typed)

    return iceoryx2


def _config() -> Any:
    """iceoryx2's built-in defaults (``/tmp/iceoryx2``, ``iox2_`` in /dev/shm), never a config file.

    Every node of every run uses the same settings whatever iceoryx2 configuration file the
    machine has (and iceoryx2 does not warn, on each node's stderr, that it found none).
    """
    return _iox2().config.default()


def _failed(what: str, name: str, exc: BaseException, fix: str) -> TransportError:
    return TransportError(f"iceoryx2 could not {what} {name!r}: {exc!r}; {fix}")


def create_node(name: str) -> Any:
    """An iceoryx2 node named ``name``, that installs no signal handler (Doradus owns them).

    Raises:
        TransportError: the name is too long or iceoryx2 cannot create its files (the
            message says where they go).

    Example::

        node = create_node("doradus/01J/camera")
    """
    iox2 = _iox2()
    iox2.set_log_level_from_env_or(iox2.LogLevel.Warn)
    try:
        node_name = iox2.NodeName.new(name)
        return (
            iox2.NodeBuilder.new()
            .config(_config())
            .name(node_name)
            .signal_handling_mode(iox2.SignalHandlingMode.Disabled)
            .create(iox2.ServiceType.Ipc)
        )
    except Exception as exc:
        raise _failed(
            "create its node",
            name,
            exc,
            "node names are at most 128 bytes, and iceoryx2 needs write access to /tmp/iceoryx2 and /dev/shm",
        ) from exc


def _pubsub(node: Any, name: str) -> Any:
    iox2 = _iox2()
    try:
        return (
            node.service_builder(iox2.ServiceName.new(name))
            .publish_subscribe(iox2.Slice[U8])
            .max_publishers(2)
            .max_subscribers(2)
            .max_nodes(4)
            .history_size(0)
            .subscriber_max_buffer_size(BUFFER)
            .subscriber_max_borrowed_samples(HELD_MAX + 1)
            .enable_safe_overflow(False)
            .open_or_create()
        )
    except Exception as exc:
        raise _failed(
            "open the service",
            name,
            exc,
            "two nodes of one id in one run cannot both use it, and /dev/shm must have room",
        ) from exc


def _wake_service(node: Any, name: str) -> Any:
    iox2 = _iox2()
    try:
        return (
            node.service_builder(iox2.ServiceName.new(name))
            .event()
            .max_notifiers(MAX_SENDERS)
            .max_listeners(2)
            .max_nodes(MAX_SENDERS + 2)
            .open_or_create()
        )
    except Exception as exc:
        raise _failed(
            "open the wake-up service",
            name,
            exc,
            f"a node may have at most {MAX_SENDERS} sending nodes on iceoryx2 (use `shm` for more)",
        ) from exc


def open_publisher(node: Any, service: str) -> tuple[Any, Any]:
    """The publisher of ``service`` and the service (its receivers' count): grows with messages.

    Raises:
        TransportError: the service or the port cannot be opened.

    Example::

        publisher, factory = open_publisher(node, "doradus/01J/link/camera/detector")
    """
    iox2 = _iox2()
    factory = _pubsub(node, service)
    try:
        publisher = (
            factory.publisher_builder()
            .initial_max_slice_len(INITIAL_SLICE)
            .allocation_strategy(iox2.AllocationStrategy.PowerOfTwo)
            .backpressure_strategy(iox2.BackpressureStrategy.DiscardData)
            .create()
        )
        return publisher, factory
    except Exception as exc:
        raise _failed(
            "create a publisher on",
            service,
            exc,
            "another process of this run already publishes it (two nodes with one id?)",
        ) from exc


def open_subscriber(node: Any, service: str) -> Any:
    """A subscriber of ``service``.

    Raises:
        TransportError: the service or the port cannot be opened.

    Example::

        subscriber = open_subscriber(node, "doradus/01J/link/camera/detector")
    """
    factory = _pubsub(node, service)
    try:
        return factory.subscriber_builder().create()
    except Exception as exc:
        raise _failed("subscribe to", service, exc, "one receiving node per id and run") from exc


def open_listener(node: Any, service: str) -> Any:
    """The listener of the wake-up service ``service`` (its receiving node's).

    Example::

        listener = open_listener(node, "doradus/01J/wake/detector")
    """
    try:
        return _wake_service(node, service).listener_builder().create()
    except TransportError:
        raise
    except Exception as exc:
        raise _failed("listen on", service, exc, "one receiving node per id and run") from exc


def open_notifier(node: Any, service: str) -> Any:
    """A notifier of the wake-up service ``service`` (a receiving node's).

    Example::

        notifier = open_notifier(node, "doradus/01J/wake/detector")
    """
    try:
        return _wake_service(node, service).notifier_builder().create()
    except TransportError:
        raise
    except Exception as exc:
        raise _failed("notify on", service, exc, f"at most {MAX_SENDERS} senders per receiver") from exc


def receivers(factory: Any) -> int:
    """How many subscribers the publish/subscribe service ``factory`` has now.

    Example::

        receivers(factory)   # 1
    """
    return int(factory.dynamic_config.number_of_subscribers)


def wait(listener: Any, seconds: float) -> None:
    """Wait on ``listener`` for a wake-up, at most ``seconds`` (it may return earlier: spurious).

    Example::

        wait(listener, 0.5)
    """
    iox2 = _iox2()
    listener.timed_wait(iox2.Duration.from_secs_f64(seconds))


class Holds:
    """Counts the samples a receiving node holds zero-copy, and makes their buffers.

    Example::

        holds = Holds()
        frame = holds.frame(sample)   # a read-only memoryview: held or copied
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.held = 0
        """Samples held now (their memory backs values the node may still read)."""
        self.zero_copy = 0
        """Samples read in place since the start."""
        self.copied_large = 0
        """Payloads of `ZERO_COPY_MIN` bytes or more copied since the start (`HELD_MAX` reached)."""

    def _released(self) -> None:
        with self._lock:
            self.held -= 1

    def frame(self, sample: Any) -> memoryview | bytes:
        """The bytes of ``sample``: a read-only view that holds it, or a copy (the sample then goes back).

        A view holds the sample through a read-only numpy array it is made from: Arrow
        buffers and arrays over the view keep the array, so the sample is returned to its
        publisher only once the node has dropped every value read from it.
        """
        view = sample_bytes(sample)
        size = len(view)
        if size >= ZERO_COPY_MIN:
            with self._lock:
                hold = self.held < HELD_MAX
                if hold:
                    self.held += 1
                    self.zero_copy += 1
                else:
                    self.copied_large += 1
            if hold:
                return held_view(sample, view, self._released)
        data = bytes(view)
        view.release()
        sample.delete()
        return data


def node_states(prefix: str) -> Iterator[tuple[str, str, Any]]:
    """(state, node name, view) of every iceoryx2 node whose name starts with ``prefix``.

    ``state`` is ``"alive"``, ``"dead"`` (its process ended without removing it: ``view``
    can remove what it left) or ``"inaccessible"``.

    Example::

        [name for state, name, _ in node_states("doradus/01J/") if state == "dead"]
    """
    iox2 = _iox2()
    try:
        states = iox2.Node.list(iox2.ServiceType.Ipc, _config())
    except Exception:  # a node's files may vanish while listed: try again next time
        return
    for state in states:
        view = getattr(state, "_0", None)
        details = getattr(view, "details", None)
        name = details.name.as_str() if details is not None else ""
        if not name.startswith(prefix):
            continue
        yield type(state).__name__.lower(), name, view


def remove_stale(view: Any) -> bool:
    """Remove what a dead node left (shared memory, files); True once it is gone.

    Example::

        remove_stale(view)
    """
    try:
        return bool(view.try_remove_stale_resources() is not False)
    except Exception:
        return False
