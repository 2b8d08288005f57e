"""Backends: how the bytes of an edge travel.

The registry maps the names used in dataflow files (``communication:``) to
implementations, imported only when used. Third-party backends register
through the ``doradus.backends`` entry-point group. What differs between
backends is said by hooks on their class (`Backend`), which the rest of
Doradus reads through `backend_class`; no other part of Doradus names a
backend.

May import: the wire format and the foundation modules; each backend its own
library, lazily. Never codecs, the dataflow model, the node process, the runtime
or the control plane.

Example:
    >>> get_backend("shm").name
    'shm'
"""

from __future__ import annotations

from doradus._registry import Registry
from doradus.backends._base import Backend, BackendStatistics, LinkSpec, Outgoing, Receiver

_BUILTIN: dict[str, tuple[str, str, str | None]] = {
    # name: (module, class, extra to install when its imports fail)
    "shm": ("doradus.backends._shm", "ShmBackend", None),
    "tcp": ("doradus.backends._tcp", "TcpBackend", None),
    "redis": ("doradus.backends._redis", "RedisBackend", "redis"),
    "mqtt": ("doradus.backends._mqtt", "MqttBackend", "mqtt"),
    "zenoh": ("doradus.backends._zenoh", "ZenohBackend", "zenoh"),
    "websocket": ("doradus.backends._websocket", "WebSocketBackend", None),
    "grpc": ("doradus.backends._grpc", "GrpcBackend", "grpc"),
    "quic": ("doradus.backends._quic", "QuicBackend", "quic"),
    "iceoryx2": ("doradus.backends._iceoryx2", "Iceoryx2Backend", "iceoryx2"),
}


_REGISTRY = Registry("backend", "doradus.backends", _BUILTIN)
DEFAULT_LOCAL_BACKEND = "shm"
"""The backend of edges between nodes of one machine unless a dataflow says otherwise."""
DEFAULT_REMOTE_BACKEND = "zenoh"
"""The backend of edges crossing machines unless a dataflow says otherwise."""


def backend_names() -> list[str]:
    """Names of every available backend (built-in and entry points).

    Example:
        >>> "shm" in backend_names()
        True
    """
    return _REGISTRY.names()


def backend_class(name: str) -> type[Backend]:
    """The backend class registered under ``name``, to read its hooks: its library is not imported.

    Raises:
        KeyError: no such backend (the message lists the known ones).

    Example:
        >>> backend_class("zenoh").machine_router
        True
    """
    backend: type[Backend] = _REGISTRY.find(name)
    return backend


def get_backend(name: str) -> type[Backend]:
    """The backend class registered under ``name``.

    Raises:
        KeyError: no such backend (the message lists the known ones).
        ImportError: its optional dependencies are missing (the message names
            the ``pip install`` to run).

    Example:
        >>> get_backend("shm").__name__
        'ShmBackend'
    """
    backend: type[Backend] = _REGISTRY.load(name)
    return backend


__all__ = ["Backend", "BackendStatistics", "LinkSpec", "Outgoing", "Receiver", "backend_names", "get_backend"]
