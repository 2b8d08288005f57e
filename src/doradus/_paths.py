"""Where Doradus keeps its per-user runtime files.

Example:
    >>> runtime_base().name
    'doradus'
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def runtime_base() -> Path:
    """The per-user runtime folder (``$XDG_RUNTIME_DIR/doradus`` or ``/tmp/doradus-<uid>/doradus``).

    Created with mode 0700 on first use.

    Example:
        >>> runtime_base().is_dir()
        True
    """
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    parent = (
        Path(xdg) if xdg and Path(xdg).is_dir() else Path(tempfile.gettempdir()) / f"doradus-{os.getuid()}"
    )
    base = parent / "doradus"
    base.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(parent if not xdg else base, 0o700)
    return base


def runs_dir() -> Path:
    """The folder holding one private folder per live run.

    Example:
        >>> runs_dir().name
        'runs'
    """
    path = runtime_base() / "runs"
    path.mkdir(mode=0o700, exist_ok=True)
    return path
