"""Where Doradus keeps its per-user runtime files.

Example:
    >>> runtime_base().name
    'doradus'
"""

from __future__ import annotations

import os
import shutil
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


def new_run_folder(run_id: str) -> Path:
    """A new private folder (mode 0700) for one live run, under `runs_dir`.

    Its name starts with the run id's first 13 characters and holds this process's id
    (``<run-id>-p<pid>-<random>``): `clean_stale_runs` removes it once that process is gone.

    Example:
        >>> folder = new_run_folder("01a2418d-a6c0-7021-9cab-bb87e9c18914")
        >>> folder.name.startswith(f"01a2418d-a6c0-p{os.getpid()}-"), oct(folder.stat().st_mode & 0o777)
        (True, '0o700')
        >>> folder.rmdir()
    """
    return Path(tempfile.mkdtemp(prefix=f"{run_id[:13]}-p{os.getpid()}-", dir=runs_dir()))


def new_socket_folder() -> Path:
    """A new private folder with a short path, for a Unix socket whose run folder's path is too long.

    Unix socket paths hold at most 107 bytes. Named like `new_run_folder` (``doradus-p<pid>-…``
    in the temporary folder), so `clean_stale_runs` finds it too.

    Example:
        >>> folder = new_socket_folder()
        >>> len(str(folder / "c.sock")) < 100
        True
        >>> folder.rmdir()
    """
    return Path(tempfile.mkdtemp(prefix=f"doradus-p{os.getpid()}-"))


def clean_stale_runs() -> list[Path]:
    """Remove the folders of runs whose supervisor is no longer running; returns them.

    A run's supervisor removes its folders when the run ends, and its node keeper does
    when the supervisor dies; this catches what is left when both were killed. Folders
    of live processes, and those not named by `new_run_folder`, are left alone.

    Example:
        >>> stale = runs_dir() / "01a2418d-a6c0-p999999999-abcdefgh"   # no such process
        >>> stale.mkdir(); (stale / "control.sock").touch()
        >>> stale in clean_stale_runs(), stale.exists()
        (True, False)
    """
    candidates = [*runs_dir().iterdir(), *Path(tempfile.gettempdir()).glob("doradus-p*-*")]
    removed = []
    for folder in candidates:
        owner = _owner(folder.name)
        if owner is None or _alive(owner) or not folder.is_dir():
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed


def _owner(name: str) -> int | None:
    """The supervisor's pid in a folder name made by `new_run_folder` or `new_socket_folder`."""
    parts = name.rsplit("-", 2)
    if len(parts) != 3 or not parts[1].startswith("p") or not parts[1][1:].isdigit():
        return None
    return int(parts[1][1:])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:
        return True  # another user's process took the number: not ours to judge, keep the folder
    return True
