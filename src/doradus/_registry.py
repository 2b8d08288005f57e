"""Plug-in registries: names in dataflow files → classes, built in or from an entry-point group.

Backends and codecs each keep one `Registry`; implementations are imported
only when asked for, and a missing optional dependency names the extra to
install.

Example:
    >>> r = Registry("thing", "doradus.things", {"shm": ("doradus.backends._shm", "ShmBackend", None)})
    >>> r.load("shm").__name__
    'ShmBackend'
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Any


class Registry:
    """Names → plug-in classes (see the module documentation).

    ``builtin`` maps a name to (module, class name, extra to install when
    its imports fail, or None).

    Example:
        >>> Registry("x", "doradus.x", {}).names()
        []
    """

    def __init__(self, what: str, group: str, builtin: dict[str, tuple[str, str, str | None]]) -> None:
        self.what = what
        self.group = group
        self.builtin = builtin

    def names(self) -> list[str]:
        """Every registered name, built in and from entry points, sorted.

        Example:
            >>> Registry("x", "doradus.x", {"b": ("m", "C", None), "a": ("m", "C", None)}).names()
            ['a', 'b']
        """
        return sorted({*self.builtin, *(ep.name for ep in entry_points(group=self.group))})

    def load(self, name: str) -> Any:
        """The class registered under ``name``.

        Raises:
            KeyError: no such name (the message lists the known ones).
            ImportError: its optional dependencies are missing (the message
                names the ``pip install`` to run).

        Example:
            >>> Registry("x", "doradus.x", {}).load("nope")
            Traceback (most recent call last):
            ...
            KeyError: "unknown x 'nope'; known: "
        """
        if name in self.builtin:
            module_name, class_name, extra = self.builtin[name]
            try:
                module = importlib.import_module(module_name)
            except ImportError as exc:
                hint = f"pip install 'doradus[{extra}]'" if extra else "reinstall doradus"
                message = f"{self.what} {name!r} needs packages that are missing: {exc}; run {hint}"
                raise ImportError(message) from exc
            return getattr(module, class_name)
        for ep in entry_points(group=self.group):
            if ep.name == name:
                return ep.load()
        raise KeyError(f"unknown {self.what} {name!r}; known: {', '.join(self.names())}")
