"""Checking backend names in dataflow files (``communication:``), with a did-you-mean fix.

Example::

    check_backend_name(reader, ("communication", "local"), "zenho")
    # error: unknown backend `zenho` — fix: did you mean `zenoh`? ...
"""

from __future__ import annotations

from typing import Any

from doradus._fields import FieldReader
from doradus._problems import closest, shorten
from doradus._yamlpos import KeyPath

RESERVED = frozenset({"local", "remote", "_unstable_local", "_unstable_remote"})
"""Keys of a dataflow's ``communication`` mapping that are not backend option blocks."""


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
        if check_backend_name(reader, (*path, key), key, at_key=True) and not isinstance(value, dict):
            fix = f"write the options of `{key}` as a mapping, e.g. `{key}: {{...}}`"
            reader.type_error((*path, key), value, "a mapping of options", fix)
