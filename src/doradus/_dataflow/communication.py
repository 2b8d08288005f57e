"""Checking backend names in dataflow files (``communication:``), with a did-you-mean fix.

Example::

    check_backend_name(reader, ("communication", "local"), "zenho")
    # error: unknown backend `zenho` — fix: did you mean `zenoh`? ...
"""

from __future__ import annotations

from typing import Any

from doradus._dataflow.fields import FieldReader
from doradus._dataflow.problems import closest, shorten
from doradus._dataflow.yaml_positions import KeyPath

RESERVED = frozenset({"local", "remote", "_unstable_local", "_unstable_remote"})
"""Keys of a dataflow's ``communication`` mapping that are not backend option blocks."""
_RETRY = ("connect_retries", "retry_interval")
OPTIONS: dict[str, frozenset[str]] = {
    "shm": frozenset(),
    "tcp": frozenset({"listen", "connect", *_RETRY}),
    "websocket": frozenset({"listen", "connect", "max_size", "tls", *_RETRY}),
    "grpc": frozenset({"listen", "connect", "max_message", *_RETRY}),
    "quic": frozenset({"listen", "connect", "cert", "key", "ca", "server_name", "idle_timeout", *_RETRY}),
    "zenoh": frozenset({"listen", "connect", "mode", "shm", "connect_timeout", *_RETRY}),
    "redis": frozenset({"url", "mode", "fragment", "maxlen", "expire", "reconnect_timeout", *_RETRY}),
    "mqtt": frozenset(
        {"url", "qos", "session", "session_expiry", "client_id", "fragment", "keepalive", "max_inflight"}
        | {"max_pending", "reconnect_min", "reconnect_max", "reconnect_timeout", *_RETRY}
    ),
}
"""The options each built-in backend reads (see its module); others are reported by ``check``."""
CHOICES: dict[tuple[str, str], tuple[Any, ...]] = {
    ("redis", "mode"): ("pubsub", "streams"),
    ("mqtt", "qos"): (0, 1, 2),
    ("mqtt", "session"): ("clean", "persistent"),
    ("zenoh", "mode"): ("peer", "client", "router"),
}


def check_backend_name(reader: FieldReader, path: KeyPath, name: object, *, at_key: bool = False) -> bool:
    """Report ``name`` unless it is a registered backend; True when it is.

    Example::

        check_backend_name(reader, ("nodes", 0, "communication"), "redis")   # True
    """
    from doradus.backends import backend_names

    known = backend_names()
    if isinstance(name, str) and name in known:
        return True
    guess = closest(str(name), known)
    hint = f"did you mean `{guess}`? " if guess else ""
    reader.error(
        path, f"unknown backend `{shorten(str(name))}`", f"{hint}Backends: {', '.join(known)}", at_key=at_key
    )
    return False


def check_communication(reader: FieldReader, path: KeyPath, mapping: dict[Any, Any]) -> None:
    """Check a dataflow's ``communication`` mapping.

    ``local``/``remote`` name backends; other keys are option blocks of known backends (mappings).

    Example::

        check_communication(reader, ("communication",), {"local": "shm", "redis": {"url": "redis://h"}})
    """
    for key in ("local", "remote"):
        if isinstance(mapping.get(key), str):
            check_backend_name(reader, (*path, key), mapping[key])
    for key, value in mapping.items():
        if key in RESERVED:
            continue
        if not check_backend_name(reader, (*path, key), key, at_key=True):
            continue
        if not isinstance(value, dict):
            fix = f"write the options of `{key}` as a mapping, e.g. `{key}: {{...}}`"
            reader.type_error((*path, key), value, "a mapping of options", fix)
            continue
        _check_options(reader, (*path, key), str(key), value)


def _check_options(reader: FieldReader, path: KeyPath, backend: str, options: dict[Any, Any]) -> None:
    known = OPTIONS.get(backend)
    if known is None:  # a third-party backend: its options are its own business
        return
    for name, value in options.items():
        if name not in known:
            guess = closest(str(name), known)
            hint = f"did you mean `{guess}`? " if guess else ""
            listed = ", ".join(sorted(known)) or "none"
            reader.error(
                (*path, name),
                f"`{backend}` has no option `{shorten(str(name))}`",
                f"{hint}Options: {listed}",
                at_key=True,
            )
            continue
        allowed = CHOICES.get((backend, str(name)))
        if allowed is not None and value not in allowed:
            listed = ", ".join(f"`{a}`" for a in allowed)
            reader.error(
                (*path, name),
                f"`{backend}` option `{name}` must be one of {listed}",
                f"write one of {listed}",
            )
