"""Backends in dataflow files (``communication:``): names and options checked, each edge's backend.

What a backend accepts is declared by its class (`Backend.options`, `Backend.option_choices`),
read without importing the backend's library. `edge_backend` says which backend carries a
sender's edges.

Example::

    check_backend_name(reader, ("communication", "local"), "zenho")
    # error: unknown backend `zenho` — fix: did you mean `zenoh`? ...
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from doradus._dataflow.fields import FieldReader
from doradus._dataflow.model import NodeSpec
from doradus._dataflow.problems import closest, shorten
from doradus._dataflow.yaml_positions import KeyPath

RESERVED = frozenset({"local", "remote", "_unstable_local", "_unstable_remote"})
"""Keys of a dataflow's ``communication`` mapping that are not backend option blocks."""


def edge_backend(communication: Mapping[str, Any], sender: NodeSpec, *, remote: bool = False) -> str:
    """The backend of a sender's edges, given the dataflow's ``communication`` (as read).

    On one machine: the node's ``communication`` (a name, or its ``local``), else the
    dataflow's ``local``, else `doradus.backends.DEFAULT_LOCAL_BACKEND`. Across machines:
    the node's ``remote``, else the dataflow's, else `DEFAULT_REMOTE_BACKEND`.

    Example:
        >>> camera = NodeSpec(id="camera", kind="python", communication={"remote": "tcp"})
        >>> edge_backend({}, camera), edge_backend({}, camera, remote=True)
        ('shm', 'tcp')
    """
    from doradus.backends import DEFAULT_LOCAL_BACKEND, DEFAULT_REMOTE_BACKEND

    own = sender.communication
    key, default = ("remote", DEFAULT_REMOTE_BACKEND) if remote else ("local", DEFAULT_LOCAL_BACKEND)
    if not remote and isinstance(own, str) and own:
        return own
    if isinstance(own, dict) and isinstance(own.get(key), str) and own[key]:
        return str(own[key])
    chosen = communication.get(key)
    return str(chosen) if isinstance(chosen, str) and chosen else default


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
    """Report options the backend does not declare (`Backend.options`) and values it does not allow."""
    from doradus.backends import backend_class

    try:
        declared = backend_class(backend)
    except ImportError as exc:  # its own package is broken: say so where its options are
        reader.error(
            path, f"backend `{backend}` cannot be loaded: {exc}", "reinstall the package that provides it"
        )
        return
    known = declared.options
    if known is None:  # the backend does not declare them: its options are its own business
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
        allowed = declared.option_choices.get(str(name))
        if allowed is not None and value not in allowed:
            listed = ", ".join(f"`{a}`" for a in allowed)
            reader.error(
                (*path, name),
                f"`{backend}` option `{name}` must be one of {listed}",
                f"write one of {listed}",
            )
