"""What a node's ``path:`` names: a Python file, an executable, or a command.

Relative paths start from the dataflow file's folder. A bare name (no ``/``)
is looked for in that folder first, then next to the running Python (so
console scripts of the active virtualenv win), then on ``$PATH``.

Example:
    >>> resolve_node_path("dynamic", Path("/tmp")).kind
    'dynamic'
    >>> resolve_node_path("nodes/cam.py", Path("/df")).executable
    '/df/nodes/cam.py'
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from doradus._dataflow.model import NodeKind

FileState = Literal["missing", "folder", "file", "executable"]


@dataclass(frozen=True)
class Resolved:
    """The outcome of resolving a ``path:`` value.

    ``problem`` is ``(message, fix)`` when the path is unusable; ``missing``
    tells that the problem is only that the file does not exist yet (which
    a ``build`` command may change).

    Example:
        >>> Resolved("dynamic", None).problem is None
        True
    """

    kind: NodeKind
    executable: str | None
    problem: tuple[str, str] | None = None
    missing: bool = False


def resolve_node_path(text: str, folder: Path) -> Resolved:
    """Resolve a node's ``path:`` against the dataflow's folder.

    Args:
        text: The value as written: ``dynamic``, ``shell``, ``node.py``,
            ``./bin/node``, ``~/bin/node``, or a bare command name.
        folder: The dataflow file's folder (absolute).

    Returns:
        The node kind and absolute executable, or a problem.

    Example:
        >>> resolve_node_path("shell", Path("/df")).kind
        'shell'
    """
    if text in ("dynamic", "shell"):
        return Resolved("dynamic" if text == "dynamic" else "shell", None)
    unusable = _unusable(text)
    if unusable is not None:
        return Resolved("executable", None, unusable)
    if text.endswith(".py"):
        return check_file("python", absolute(folder, text), text)
    if "/" in text or text.startswith((".", "~")):
        return check_file("executable", absolute(folder, text), text)
    return _find_command(text, folder)


def check_file(kind: NodeKind, file: str, text: str) -> Resolved:
    """Check that ``file`` exists (and, for executables, may be run).

    Example:
        >>> check_file("python", "/no/such/node.py", "node.py").missing
        True
    """
    state = file_state(file)
    if state == "missing":
        fix = "fix the path (relative paths start from the dataflow file's folder) or create the file"
        return Resolved(kind, file, (f"`{text}` does not exist: no file at {file}", fix), missing=True)
    if state == "folder":
        return Resolved(kind, file, (f"`{text}` is a folder ({file}), not a file", "point `path` at a file"))
    if kind == "executable" and state != "executable":
        return Resolved(kind, file, (f"`{text}` is not executable ({file})", f"run `chmod +x {file}`"))
    return Resolved(kind, file)


def file_state(file: str) -> FileState:
    """Say whether ``file`` is missing, a folder, a file, or an executable file.

    Example:
        >>> file_state("/"), file_state("/no/such/file")
        ('folder', 'missing')
    """
    try:
        if os.path.isdir(file):
            return "folder"
        if not os.path.isfile(file):
            return "missing"
        return "executable" if os.access(file, os.X_OK) else "file"
    except (OSError, ValueError):  # unencodable names, names too long
        return "missing"


def _unusable(text: str) -> tuple[str, str] | None:
    if not text.strip():
        return ("`path` is empty", "name a Python file, an executable, `dynamic` or `shell`")
    if "\0" in text:
        return "`path` contains a NUL character", "remove it"
    if "://" in text:
        return (
            f"downloading nodes from URLs (`{text}`) is not supported yet",
            "download the file next to the dataflow and set `path` to it",
        )
    return None


def absolute(folder: Path, text: str) -> str:
    """Return ``text`` (``~`` expanded) made absolute from ``folder``, normalised.

    Example:
        >>> absolute(Path("/df"), "../bin/x")
        '/bin/x'
    """
    with contextlib.suppress(KeyError, ValueError):  # `~name` holding a NUL: keep it as written
        text = os.path.expanduser(text)
    return os.path.normpath(os.path.join(folder, text))


def _find_command(name: str, folder: Path) -> Resolved:
    local = os.path.join(folder, name)
    local_state = file_state(local)
    if local_state == "executable":
        return Resolved("executable", local)
    found = _which(name)
    if found is not None:
        return Resolved("executable", os.path.abspath(found))
    if local_state == "file":
        return Resolved(
            "executable", local, (f"`{name}` is not executable ({local})", f"run `chmod +x {local}`")
        )
    message = f"cannot find `{name}`: no file `{name}` in {folder} and no command `{name}` on PATH"
    fix = f"install the package that provides `{name}`, or give the file's path (`./{name}` or `{name}.py`)"
    return Resolved("executable", name, (message, fix), missing=True)


def _which(name: str) -> str | None:
    try:
        return shutil.which(name, path=os.path.dirname(sys.executable)) or shutil.which(name)
    except (OSError, ValueError):
        return None
