r"""The keeper process: it forks a run's nodes, reports their exits and ends them with the run.

This module runs as a script (``python -I -S keeper_process.py FD CONFIG``, started by
`doradus._unsafe.keeper.Keeper.start`), so it imports only the standard library and nothing
of its own package: it holds everything the keeper needs — its loop, the JSON datagrams it
exchanges with the supervisor, and the one ``prctl(2)`` call made through ``ctypes``.

The keeper is single-threaded. It

- starts each node in a session (so a process group) of its own, with the descriptor limit
  the supervisor chose for nodes, and asks the kernel to SIGKILL the node if the keeper
  itself dies (``PR_SET_PDEATHSIG``);
- reports each node's exit status as soon as it exits (a pidfd per node; ``SIGCHLD`` where
  the kernel has no pidfds), and leaves the exited node unreaped (a zombie) until the run
  ends: its pid, which is also its process group's id, cannot be reused meanwhile, so
  signalling the group never reaches a stranger;
- when the supervisor ends the run, or when the supervisor's end of the socket closes
  because the supervisor died — even by SIGKILL: the kernel closes a dead process's
  descriptors — sends SIGTERM to every node's process group that still holds a process,
  SIGKILL to those left after the grace, reaps every node, removes the run's runtime
  folders and exits.

Invariants (the supervisor's are in `doradus._unsafe.keeper`):

1. **`set_parent_death_signal` runs only where one thread exists**: in the keeper's
   children between ``fork`` and ``exec`` (they then check that the keeper still lives:
   a death before the call would go unnoticed).
2. **Groups are signalled only while pinned**: the keeper signals a node's group only
   while it holds the node's zombie or the group still has a live member.

Example:
    >>> import socket
    >>> a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    >>> send_datagram(a, {"op": "end", "grace": 1.0})
    >>> receive_datagram(b, wait=1.0)
    ({'op': 'end', 'grace': 1.0}, [])
    >>> a.close(); b.close()
"""

from __future__ import annotations

import array
import ctypes
import json
import os
import resource
import select
import selectors
import signal
import socket
import subprocess
import sys
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the keeper starts on every run's critical path: it loads only what it runs
    from collections.abc import Sequence
    from typing import Any

_PR_SET_PDEATHSIG = 1
_PR_GET_PDEATHSIG = 2
RECV_BUFFER = 1 << 20
"""Largest request: a node's command, folder and environment."""
SCAN_INTERVAL = 0.02
"""Seconds between two looks at the process groups left while ending a run."""
_prctl_function: Any = None


def _prctl() -> Any:
    """``prctl(2)`` from the C library, loaded once (before any fork: loading takes locks)."""
    global _prctl_function
    if _prctl_function is None:
        # SAFETY: the C library of this process, already loaded; the declared argument and
        # result types are prctl(2)'s (int option, four unsigned long), so ctypes converts
        # and checks every argument instead of guessing.
        function = ctypes.CDLL(None, use_errno=True).prctl
        function.restype = ctypes.c_int
        function.argtypes = (ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong)
        _prctl_function = function
    return _prctl_function


def set_parent_death_signal(signum: int) -> None:
    r"""Ask the kernel to send ``signum`` to this process when the thread that forked it ends.

    See invariant 1: call it only in a single-threaded process (a child between fork and
    exec). The setting survives ``exec`` (not of set-user-id programs) and is not inherited
    by this process's own children.

    Args:
        signum: The signal, e.g. ``signal.SIGKILL``; 0 clears the setting.

    Raises:
        OSError: The kernel refused (an invalid signal number).

    Example:
        >>> import subprocess, sys
        >>> code = "import signal; from doradus._unsafe.keeper_process import *; "
        >>> code += "set_parent_death_signal(signal.SIGKILL); print(parent_death_signal())"
        >>> subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout
        '9\n'
    """
    # SAFETY: PR_SET_PDEATHSIG reads only its integer argument; no memory is passed.
    if _prctl()(_PR_SET_PDEATHSIG, signum, 0, 0, 0) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"prctl(PR_SET_PDEATHSIG): {os.strerror(error)}")


def parent_death_signal() -> int:
    """The signal this process gets when the thread that forked it ends (0: none).

    Example:
        >>> parent_death_signal() in range(65)
        True
    """
    value = ctypes.c_int(0)
    # SAFETY: PR_GET_PDEATHSIG writes one C int through its second argument: the address
    # of `value`, a C int this frame holds until the call has returned.
    if _prctl()(_PR_GET_PDEATHSIG, ctypes.addressof(value), 0, 0, 0) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"prctl(PR_GET_PDEATHSIG): {os.strerror(error)}")
    return value.value


# ------------------------------------------------------------------------- the datagrams
def send_datagram(sock: socket.socket, message: dict[str, Any], fds: Sequence[int] = ()) -> None:
    """Send one JSON message, with descriptors passed along (``SCM_RIGHTS``).

    Raises:
        OSError: The peer has gone.

    Example:
        >>> a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        >>> send_datagram(a, {"op": "ping"}); b.recv(100)
        b'{"op":"ping"}'
        >>> a.close(); b.close()
    """
    data = json.dumps(message, separators=(",", ":")).encode()
    if fds:
        sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
    else:
        sock.send(data)


def receive_datagram(sock: socket.socket, wait: float = 0.0) -> tuple[dict[str, Any] | None, list[int]]:
    """One datagram and the descriptors it carried, waiting up to ``wait`` seconds.

    Returns:
        The message (None at the peer's end) and the descriptors, which the caller owns.

    Raises:
        BlockingIOError: Nothing arrived in time.

    Example:
        >>> a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        >>> a.close(); receive_datagram(b)
        (None, [])
        >>> b.close()
    """
    if wait > 0:
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        poller.poll(wait * 1000)
    data, ancdata, _flags, _addr = sock.recvmsg(RECV_BUFFER, socket.CMSG_SPACE(2 * 4), socket.MSG_DONTWAIT)
    fds = array.array("i")
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
    if not data:
        return None, list(fds)
    return json.loads(data), list(fds)


# ------------------------------------------------------------------------- the keeper
class _Child:
    __slots__ = ("key", "pidfd", "popen", "reported")

    def __init__(self, key: str, popen: subprocess.Popen[bytes], pidfd: int | None) -> None:
        self.key = key
        self.popen = popen
        self.pidfd = pidfd
        self.reported = False


class _Server:
    """The keeper's loop: serve spawn requests, report exits, end the run (see the module docstring)."""

    def __init__(self, sock: socket.socket, config: dict[str, Any]) -> None:
        self.sock = sock
        self.node_files: int | None = config.get("node_files")
        self.orphan_grace = float(config.get("orphan_grace", 1.0))
        self.remove: list[str] = list(config.get("remove") or [])
        self.supervisor = int(config["supervisor"])
        self.use_pidfd = bool(config.get("pidfd", True)) and hasattr(os, "pidfd_open")
        self.me = os.getpid()
        self.children: list[_Child] = []
        self.selector = selectors.DefaultSelector()

    def serve(self) -> None:
        """Serve until the supervisor ends the run or goes, then end every node and exit."""
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        signal.signal(signal.SIGCHLD, lambda _signum, _frame: None)
        signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        self.selector.register(self.sock, selectors.EVENT_READ, "control")
        self.selector.register(wake_r, selectors.EVENT_READ, "sigchld")
        grace = None
        while grace is None:
            for key, _events in self.selector.select():
                if key.data == "sigchld":
                    while _drained(wake_r):
                        pass
                    if not self.use_pidfd:
                        self._report_exits(self.children)
                elif isinstance(key.data, _Child):
                    self._report_exits([key.data])
                elif grace is None:
                    grace = self._serve_requests()
        self._end(grace)
        if self.remove:
            import shutil

            for path in self.remove:
                shutil.rmtree(path, ignore_errors=True)

    def _serve_requests(self) -> float | None:
        """Serve the requests that have arrived; the grace to end with once the run ends."""
        while True:
            try:
                message, fds = receive_datagram(self.sock, wait=0)
            except BlockingIOError:
                return None
            except OSError:
                return self.orphan_grace
            if message is None:
                return self.orphan_grace  # the supervisor died
            if message.get("op") == "end":
                return float(message.get("grace", self.orphan_grace))
            if message.get("op") == "spawn":
                self._spawn(message, fds)
            else:
                for fd in fds:
                    os.close(fd)

    def _spawn(self, request: dict[str, Any], fds: list[int]) -> None:
        key = str(request.get("key"))
        try:
            if os.getppid() != self.supervisor:
                return  # the supervisor died with requests in flight: start nothing more
            stdout, stderr = fds
            popen = subprocess.Popen(
                request["argv"],
                cwd=request["cwd"],
                env=request["env"],
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                start_new_session=True,
                # SAFETY: preexec_fn runs between fork and exec, safe only in a process with one
                # thread, which the keeper is (its reason to exist: see `doradus._unsafe.keeper`).
                preexec_fn=self._in_child,
            )
        except (OSError, ValueError, subprocess.SubprocessError) as exc:
            self._tell({"op": "failed", "key": key, "error": str(exc)})
            return
        finally:
            for fd in fds:
                os.close(fd)
        child = _Child(key, popen, None)
        self.children.append(child)
        self._tell({"op": "spawned", "key": key, "pid": popen.pid})
        if self.use_pidfd:
            try:
                child.pidfd = os.pidfd_open(popen.pid)
            except OSError:
                self.use_pidfd = False  # e.g. ENOSYS: SIGCHLD tells from now on
                self._report_exits(self.children)
                return
            self.selector.register(child.pidfd, selectors.EVENT_READ, child)

    def _in_child(self) -> None:
        """Between fork and exec in a node (one thread exists): die with the keeper, take the node's limit."""
        # SAFETY: the keeper has one thread, so the forked child has no lock another thread
        # held at fork time; prctl was loaded before the first fork (see `_main`).
        set_parent_death_signal(signal.SIGKILL)
        if os.getppid() != self.me:
            os._exit(127)  # the keeper died before the request took effect
        if self.node_files is not None:
            _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            resource.setrlimit(resource.RLIMIT_NOFILE, (self.node_files, hard))

    def _report_exits(self, children: list[_Child]) -> None:
        for child in children:
            if child.reported:
                continue
            try:
                # WNOWAIT: the zombie stays, and so does the pid (its group's id) until the run ends.
                found = os.waitid(os.P_PID, child.popen.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                found = None
            if found is None:
                continue
            child.reported = True
            if child.pidfd is not None:
                self.selector.unregister(child.pidfd)
                os.close(child.pidfd)
                child.pidfd = None
            code = found.si_status if found.si_code == os.CLD_EXITED else -found.si_status
            self._tell({"op": "exited", "key": child.key, "code": code})

    def _tell(self, message: dict[str, Any]) -> None:
        try:
            send_datagram(self.sock, message)
        except OSError:
            pass  # the supervisor has gone: the loop sees its end next

    def _end(self, grace: float) -> None:
        """SIGTERM the groups still holding a process, SIGKILL them after ``grace``; reap every node."""
        live = self._live_groups()
        _signal_groups(live, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while live and time.monotonic() < deadline:
            time.sleep(SCAN_INTERVAL)
            live = self._live_groups()
        _signal_groups(live, signal.SIGKILL)
        for child in self.children:
            code = child.popen.wait()
            if not child.reported:  # killed above: the supervisor may still be listening
                child.reported = True
                self._tell({"op": "exited", "key": child.key, "code": code})

    def _live_groups(self) -> set[int]:
        """Process groups of nodes holding a process that has not exited (zombies do not count)."""
        groups = {child.popen.pid for child in self.children}
        live: set[int] = set()
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                with open(f"/proc/{name}/stat", "rb") as stat:
                    data = stat.read()
            except OSError:
                continue  # gone meanwhile
            # "pid (command) state ppid pgrp ...": the command may hold spaces and parentheses.
            fields = data[data.rindex(b")") + 2 :].split()
            if int(fields[2]) in groups and fields[0] not in (b"Z", b"X"):
                live.add(int(fields[2]))
        return live


def _signal_groups(groups: set[int], signum: int) -> None:
    for group in groups:
        try:
            os.killpg(group, signum)
        except ProcessLookupError:
            pass


def _drained(fd: int) -> bool:
    try:
        return bool(os.read(fd, 4096))
    except BlockingIOError:
        return False


def _configuration(sock: socket.socket) -> dict[str, Any] | None:
    """The run's settings, the first datagram of a keeper started ahead; None if the supervisor went."""
    while True:
        try:
            message, fds = receive_datagram(sock, wait=60.0)
        except BlockingIOError:
            continue
        except OSError:
            return None
        for fd in fds:
            os.close(fd)
        if message is None:
            return None
        if message.get("op") == "config":
            return message


def _main(argv: list[str]) -> None:
    sock = socket.socket(fileno=int(argv[1]))
    sock.set_inheritable(False)
    # Started with its settings, or ahead of them (`Keeper.launch`): then they come first.
    config = json.loads(argv[2]) if len(argv) > 2 else _configuration(sock)
    if config is None:
        return  # the supervisor went before it needed a keeper: nothing was started
    # One pidfd per running node: the keeper needs as many descriptors as the run has nodes.
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor decides when the run ends
    _prctl()  # loaded before the first fork (invariant 1): loading takes the loader's locks
    _Server(sock, config).serve()


if __name__ == "__main__":
    _main(sys.argv)
