"""What ``doradus doctor`` and ``doradus version`` report: the machine's fitness for Doradus.

Each check returns a frozen `Check`: ``ok``, ``warn`` (optional or
informational, never fails the doctor) or ``fail`` (Doradus cannot work as
is), with a fix for anything not ``ok``.

Example:
    >>> checks = run_checks()
    >>> {c.status for c in checks} <= {"ok", "warn", "fail"}
    True
"""

from __future__ import annotations

import functools
import importlib
import os
import platform
import socket
import stat
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from doradus._control.client import resolve_address
from doradus._paths import runtime_base
from doradus._unsafe.memory import map_file

Status = Literal["ok", "warn", "fail"]
CONNECT_TIMEOUT = 0.3
MIN_PYTHON = (3, 11)
BROKERS = (("redis", 6379, "redis"), ("mqtt", 1883, "mqtt"))
"""Optional brokers: (name, default port, the ``doradus[extra]`` whose backend needs it)."""


@dataclass(frozen=True)
class Check:
    """One finding: ``name``, ``status``, what was seen (``detail``) and the ``fix`` when not ok.

    ``required`` says whether a failure here stops Doradus from working.

    Example:
        >>> Check("python", "ok", "3.11.9").fix
        ''
    """

    name: str
    status: Status
    detail: str
    fix: str = ""
    required: bool = True

    def as_dict(self) -> dict[str, Any]:
        """The record as a JSON-ready mapping (stable keys).

        Example:
            >>> sorted(Check("x", "ok", "fine").as_dict())
            ['detail', 'fix', 'name', 'required', 'status']
        """
        return asdict(self)


def check_python(version: tuple[int, ...] | None = None) -> Check:
    """Python 3.11 or newer (``version`` defaults to the running interpreter's).

    Example:
        >>> check_python().status, check_python((3, 10, 4)).status
        ('ok', 'fail')
    """
    found = version or tuple(sys.version_info[:3])
    shown = ".".join(map(str, found))
    if found >= MIN_PYTHON:
        return Check("python", "ok", f"Python {shown} ({sys.executable})")
    return Check("python", "fail", f"Python {shown} is too old", "install Python 3.11 or newer")


def check_module(name: str) -> Check:
    """``name`` imports; its version in the detail.

    Example:
        >>> check_module("numpy").status
        'ok'
    """
    try:
        module = importlib.import_module(name)
    except Exception as exc:  # any import failure (missing, broken build) is the finding
        return Check(name, "fail", f"cannot import {name}: {exc}", f"pip install --upgrade {name}")
    return Check(name, "ok", f"{name} {getattr(module, '__version__', '?')}")


def check_dev_shm() -> Check:
    """``/dev/shm`` (informational: Doradus shares memory through memfd, not /dev/shm).

    Example:
        >>> check_dev_shm().required
        False
    """
    shm = Path("/dev/shm")
    if shm.is_dir():
        usage = os.statvfs(shm)
        free = usage.f_bavail * usage.f_frsize / 2**20
        return Check("/dev/shm", "ok", f"present, {free:.0f} MiB free (Doradus uses memfd)", required=False)
    fix = "nothing needed for Doradus; dora-rs nodes run beside it may want /dev/shm mounted"
    return Check("/dev/shm", "warn", "absent (Doradus uses memfd instead)", fix, required=False)


def check_memfd() -> Check:
    """``os.memfd_create`` works and a memfd can be mapped read-only, the way nodes map one.

    Example:
        >>> check_memfd().status
        'ok'
    """
    fix = "run on Linux 3.17 or newer, where memfd_create is available (Doradus shares large values this way)"
    if not hasattr(os, "memfd_create"):
        return Check("memfd", "fail", "os.memfd_create is not available on this platform", fix)
    try:
        fd = os.memfd_create("doradus-doctor", getattr(os, "MFD_CLOEXEC", 0))
        try:
            os.write(fd, b"doradus")
            import numpy as np  # a dependency of Doradus (its own check reports it missing)

            seen = np.asarray(map_file(fd, 7, writable=False))[:7].tobytes()
        finally:
            os.close(fd)
    except (OSError, ImportError) as exc:
        return Check("memfd", "fail", f"memfd failed: {exc}", fix)
    if seen != b"doradus":
        return Check("memfd", "fail", "a read-only mapping of a memfd showed other bytes", fix)
    return Check("memfd", "ok", "memfd_create and read-only mmap work")


def check_seqpacket() -> Check:
    """A Unix ``SOCK_SEQPACKET`` socket pair carries a message.

    Example:
        >>> check_seqpacket().status
        'ok'
    """
    fix = "run on Linux: Doradus's node control channel needs Unix SOCK_SEQPACKET sockets"
    try:
        left, right = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        with left, right:
            left.sendall(b"ping")
            answer = right.recv(16)
    except (OSError, AttributeError) as exc:
        return Check("seqpacket", "fail", f"SOCK_SEQPACKET socket pair failed: {exc}", fix)
    if answer != b"ping":
        return Check("seqpacket", "fail", "a SOCK_SEQPACKET message arrived altered", fix)
    return Check("seqpacket", "ok", "Unix SOCK_SEQPACKET socket pairs work")


def check_fd_passing() -> Check:
    """A file descriptor passes over a Unix socket (SCM_RIGHTS) and reads back.

    Example:
        >>> check_fd_passing().status
        'ok'
    """
    fix = "run on Linux with Unix sockets that allow SCM_RIGHTS (some sandboxes forbid it)"
    try:
        left, right = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        with left, right, tempfile.TemporaryFile() as file:
            file.write(b"passed")
            file.flush()
            socket.send_fds(left, [b"fd"], [file.fileno()])
            _data, fds, _flags, _addr = socket.recv_fds(right, 16, 1)
            if len(fds) != 1:
                return Check("fd passing", "fail", "no file descriptor arrived", fix)
            try:
                content = os.pread(fds[0], 6, 0)
            finally:
                os.close(fds[0])
    except (OSError, AttributeError) as exc:
        return Check("fd passing", "fail", f"SCM_RIGHTS failed: {exc}", fix)
    if content != b"passed":
        return Check("fd passing", "fail", "the passed descriptor showed other bytes", fix)
    return Check("fd passing", "ok", "SCM_RIGHTS descriptor passing works")


def check_runtime_folder() -> Check:
    """The per-user runtime folder exists, is writable, and only its owner can enter it.

    Example:
        >>> check_runtime_folder().name
        'runtime folder'
    """
    try:
        base = runtime_base()
        with tempfile.NamedTemporaryFile(dir=base, prefix=".doctor-"):
            pass
        mode = stat.S_IMODE(base.stat().st_mode)
    except OSError as exc:
        fix = "set XDG_RUNTIME_DIR to a folder you own, or free /tmp"
        return Check("runtime folder", "fail", f"cannot write the runtime folder: {exc}", fix)
    if mode != 0o700:
        return Check("runtime folder", "fail", f"{base} has mode {mode:04o}, not 0700", f"chmod 700 {base}")
    return Check("runtime folder", "ok", f"{base} (0700, writable)")


def _connects(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT):
            return True
    except OSError:
        return False


def _is_coordinator(http_base: str) -> bool:
    import httpx

    try:
        return httpx.get(f"{http_base}/health", timeout=1.0).status_code in (200, 401)
    except httpx.HTTPError:
        return False


def check_coordinator() -> Check:
    """The coordinator address answers as a coordinator, or its port is free for ``doradus up``.

    Example:
        >>> check_coordinator().status in ("ok", "fail")
        True
    """
    try:
        address = resolve_address(None)
    except ValueError as exc:
        return Check("coordinator", "fail", str(exc), "fix DORADUS_COORDINATOR (HOST:PORT)")
    where = f"{address} (from {address.source})"
    if _connects(address.host, address.port):
        if _is_coordinator(address.http):
            return Check("coordinator", "ok", f"a coordinator answers at {where}")
        fix = "stop what listens there, or choose another port: DORADUS_COORDINATOR=127.0.0.1:<port>"
        return Check("coordinator", "fail", f"something that is not a coordinator listens at {where}", fix)
    return Check("coordinator", "ok", f"none running; {where} is free for `doradus up`")


def check_broker(name: str, port: int, extra: str) -> Check:
    """An optional broker answers on 127.0.0.1 (a plain TCP connect).

    Example:
        >>> check_broker("redis", 6379, "redis").required
        False
    """
    if _connects("127.0.0.1", port):
        return Check(name, "ok", f"reachable on 127.0.0.1:{port}", required=False)
    fix = (
        f"only needed for the {name} backend (`pip install 'doradus[{extra}]'`): start {name} on port {port}"
    )
    return Check(name, "warn", f"nothing listens on 127.0.0.1:{port} (optional)", fix, required=False)


def check_dora_rs() -> Check:
    """Whether dora-rs is installed beside Doradus (informational).

    Example:
        >>> check_dora_rs().required
        False
    """
    try:
        version = metadata.version("dora-rs")
    except metadata.PackageNotFoundError:
        return Check("dora-rs", "ok", "not installed (optional)", required=False)
    return Check("dora-rs", "ok", f"dora-rs {version} installed beside Doradus", required=False)


def _checks() -> list[tuple[str, Callable[[], Check]]]:
    checks: list[tuple[str, Callable[[], Check]]] = [
        ("python", check_python),
        ("pyarrow", lambda: check_module("pyarrow")),
        ("numpy", lambda: check_module("numpy")),
        ("/dev/shm", check_dev_shm),
        ("memfd", check_memfd),
        ("seqpacket", check_seqpacket),
        ("fd passing", check_fd_passing),
        ("runtime folder", check_runtime_folder),
        ("coordinator", check_coordinator),
    ]
    for name, port, extra in BROKERS:
        checks.append((name, functools.partial(check_broker, name, port, extra)))
    checks.append(("dora-rs", check_dora_rs))
    return checks


def run_checks() -> list[Check]:
    """Every check, in order; a check that raises is reported as failed rather than crashing.

    Example:
        >>> [c.name for c in run_checks()][:3]
        ['python', 'pyarrow', 'numpy']
    """
    results = []
    for name, check in _checks():
        try:
            results.append(check())
        except Exception as exc:  # a broken check must not hide the others
            results.append(Check(name, "fail", f"the check itself failed: {exc!r}", "report this as a bug"))
    return results


def healthy(checks: list[Check]) -> bool:
    """True when no required check failed.

    Example:
        >>> healthy([Check("x", "warn", "meh", required=False)])
        True
    """
    return not any(c.status == "fail" for c in checks)


def _version_of(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def version_info() -> dict[str, str | None]:
    """Versions of Doradus, Python, pyarrow and numpy, and the platform (stable keys).

    Example:
        >>> sorted(version_info())
        ['doradus', 'numpy', 'platform', 'pyarrow', 'python', 'python_executable']
    """
    from doradus import __version__

    return {
        "doradus": __version__,
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "pyarrow": _version_of("pyarrow"),
        "numpy": _version_of("numpy"),
        "platform": platform.platform(),
    }


__all__ = ["Check", "check_fd_passing", "healthy", "run_checks", "version_info"]
