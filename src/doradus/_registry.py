"""Plug-in registries: names in dataflow files → classes, built in or from an entry-point group.

Backends and codecs each keep one `Registry`. A plug-in's module is imported
only when its name is asked for, and stays cheap to import: the library it
drives (zenoh, grpcio, fastavro…) is imported inside its methods, and named in
the class's ``requires``. So `Registry.find` gives the class for reading its
hooks (what ``doradus check`` and the daemon need) without that library, and
`Registry.load` imports the library too, naming the extra to install when it
is missing.

Example:
    >>> r = Registry("thing", "doradus.things", {"shm": ("doradus.backends._shm", "ShmBackend", None)})
    >>> r.load("shm").__name__
    'ShmBackend'
"""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint


class Registry:
    """Names → plug-in classes (see the module documentation).

    ``builtin`` maps a name to (module, class name, extra to install when
    its imports fail, or None). Entry points of ``group`` add third-party
    names; built-in names win over an entry point of the same name.

    Example:
        >>> Registry("x", "doradus.x", {}).names()
        []
    """

    def __init__(self, what: str, group: str, builtin: dict[str, tuple[str, str, str | None]]) -> None:
        self.what = what
        self.group = group
        self.builtin = builtin
        self._found: dict[str, Any] = {}
        self._entry_points: tuple[tuple[str, ...], dict[str, EntryPoint]] | None = None

    def _plugins(self) -> dict[str, EntryPoint]:
        """The group's entry points by name, scanned again only when ``sys.path`` changed."""
        from importlib.metadata import entry_points  # tens of ms to import: only when asked

        key = tuple(sys.path)
        if self._entry_points is None or self._entry_points[0] != key:
            # A scan reads every installed distribution's metadata (milliseconds): once per path.
            found = {ep.name: ep for ep in entry_points(group=self.group)}
            self._entry_points = (key, found)
        return self._entry_points[1]

    def names(self) -> list[str]:
        """Every registered name, built in and from entry points, sorted.

        Example:
            >>> Registry("x", "doradus.x", {"b": ("m", "C", None), "a": ("m", "C", None)}).names()
            ['a', 'b']
        """
        return sorted({*self.builtin, *self._plugins()})

    def find(self, name: str) -> Any:
        """The class registered under ``name``, to read its hooks; its ``requires`` are not imported.

        Raises:
            KeyError: no such name (the message lists the known ones).
            ImportError: its module cannot be imported.

        Example:
            >>> Registry("x", "doradus.x", {}).find("nope")
            Traceback (most recent call last):
            ...
            KeyError: "unknown x 'nope'; known: "
        """
        found = self._found.get(name)
        if found is not None:
            return found
        if name in self.builtin:
            module_name, class_name, extra = self.builtin[name]
            try:
                found = getattr(importlib.import_module(module_name), class_name)
            except ImportError as exc:
                raise ImportError(self._missing(name, extra, exc)) from exc
        else:
            plugin = self._plugins().get(name)
            if plugin is None:
                raise KeyError(f"unknown {self.what} {name!r}; known: {', '.join(self.names())}")
            try:
                found = plugin.load()
            except ImportError as exc:
                message = f"{self.what} {name!r} ({plugin.value}) cannot be imported: {exc}"
                raise ImportError(f"{message}; reinstall the package that provides it") from exc
        self._found[name] = found
        return found

    def load(self, name: str) -> Any:
        """The class registered under ``name``, ready to use: the modules it ``requires`` imported.

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
        found = self.find(name)
        for module_name in getattr(found, "requires", ()):
            try:
                importlib.import_module(module_name)
            except ImportError as exc:
                extra = self.builtin[name][2] if name in self.builtin else None
                raise ImportError(self._missing(name, extra, exc)) from exc
        return found

    def _missing(self, name: str, extra: str | None, exc: ImportError) -> str:
        if name not in self.builtin:
            fix = "install the packages that its own package depends on"
        else:
            fix = f"run pip install 'doradus[{extra}]'" if extra else "reinstall doradus"
        return f"{self.what} {name!r} needs packages that are missing: {exc}; {fix}"
