r"""Ending nodes with their supervisor: the supervisor's side of a run's node keeper.

A supervisor (``doradus run``, the machine daemon) does not fork its nodes itself: it asks
one **keeper** per run to. The keeper is a small single-threaded Python process
(`doradus._unsafe.keeper_process`, run as a script: it imports only the standard library)
that the supervisor talks to over a Unix socket pair, in JSON datagrams; `Keeper` is the
supervisor's side. The keeper starts each node in a process group of its own that the
kernel SIGKILLs if the keeper dies, reports each exit at once, and when the run ends — or
the supervisor dies, even by SIGKILL, which closes the supervisor's end of the socket —
ends every node's group (SIGTERM, SIGKILL after the grace), reaps them, removes the run's
runtime folders and exits.

Why a keeper rather than ``preexec_fn`` in the supervisor: the supervisor runs many threads,
where ``preexec_fn`` may deadlock and forces ``fork`` of a large process instead of ``vfork``;
and ``PR_SET_PDEATHSIG`` fires when the *thread* that forked the child exits, which in the
machine daemon is a short-lived one. The keeper has one thread, alive as long as it is.

Invariants — what keeps nodes from outliving their supervisor, and what callers must keep
(the keeper's own are in `doradus._unsafe.keeper_process`):

1. **Only the supervisor holds the supervisor's end** of the socket pair: it is
   close-on-exec and never passed to a node, so its closing means the supervisor is gone.
   A supervisor must not ``fork`` without ``exec`` while a keeper runs.
2. What escapes: a process that leaves its node's process group (``setsid``, a daemon
   that double-forks) is not ended by the keeper; nor are a node's children when the
   keeper itself is SIGKILLed (the nodes themselves are).

Example:
    >>> import os
    >>> keeper = Keeper.start()
    >>> out, into = os.pipe()
    >>> keeper.spawn("hello", ["/bin/sh", "-c", "echo hi"], cwd="/", env={}, stdout=into, stderr=into)
    >>> os.close(into)
    >>> os.read(out, 100)
    b'hi\n'
    >>> events = []
    >>> while not any(isinstance(e, Exited) for e in events):
    ...     events += keeper.receive(timeout=5) or []
    >>> [type(e).__name__ for e in events], events[-1].code
    (['Spawned', 'Exited'], 0)
    >>> keeper.end(grace=1.0), keeper.receive()   # ended: every node reaped, then the keeper's end
    (True, None)
    >>> keeper.close(); os.close(out)
"""

from __future__ import annotations

import atexit
import os
import socket
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from doradus._unsafe.keeper_process import receive_datagram, send_datagram

KEEPER_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "keeper_process.py")
"""The keeper's program (`doradus._unsafe.keeper_process`), run as a script."""


@dataclass(frozen=True)
class Spawned:
    """The node ``key`` runs as ``pid`` (also its process group's id)."""

    key: str
    pid: int


@dataclass(frozen=True)
class SpawnFailed:
    """The node ``key`` could not be started; ``error`` says why."""

    key: str
    error: str


@dataclass(frozen=True)
class Exited:
    """The node ``key`` exited: ``code`` is its status, or minus the signal that ended it."""

    key: str
    code: int


KeeperEvent = Spawned | SpawnFailed | Exited


class Keeper:
    """The supervisor's side of a run's keeper (see the module docstring).

    Thread safety: `spawn` may be called from one thread while another calls `receive`;
    `end` once, after the last `spawn`; `close` once nothing reads any more.

    Example:
        >>> keeper = Keeper.start(orphan_grace=0.5)
        >>> keeper.pid > 0, keeper.end(grace=1.0)
        (True, True)
        >>> keeper.close()
    """

    def __init__(self, process: subprocess.Popen[bytes], sock: socket.socket) -> None:
        self._process = process
        self._sock = sock

    @classmethod
    def start(
        cls,
        *,
        node_files: int | None = None,
        orphan_grace: float = 1.0,
        remove: Sequence[str] = (),
        pidfd: bool = True,
    ) -> Keeper:
        """Start a keeper (or take the one `prestart` started ahead) and give it the run's settings.

        Args:
            node_files: The soft descriptor limit (``ulimit -n``) nodes get; None keeps the keeper's.
            orphan_grace: Seconds between SIGTERM and SIGKILL when the supervisor dies.
            remove: Folders the keeper removes when the supervisor dies (the run's runtime folders).
            pidfd: Watch nodes through pidfds (False: through ``SIGCHLD``, as on kernels before 5.3).

        Returns:
            The running keeper.

        Example:
            >>> keeper = Keeper.start(node_files=1024)
            >>> keeper.end(grace=1.0)
            True
            >>> keeper.close()
        """
        keeper = _take_prestarted() or cls.launch()
        config = {
            "op": "config",
            "node_files": node_files,
            "orphan_grace": orphan_grace,
            "remove": list(remove),
            "supervisor": os.getpid(),
            "pidfd": pidfd,
        }
        try:
            send_datagram(keeper._sock, config)
        except OSError:  # it died meanwhile (killed from outside): one more try, from scratch
            keeper._sock.close()
            keeper._process.wait()
            keeper = cls.launch()
            send_datagram(keeper._sock, config)
        return keeper

    @classmethod
    def launch(cls) -> Keeper:
        """Start a keeper process that waits for its settings (the first thing `start` sends).

        Its interpreter starts while the caller goes on; a keeper whose supervisor goes before
        sending them exits at once, having started nothing.

        Example:
            >>> keeper = Keeper.launch()
            >>> keeper.close()   # never configured: it exits
            >>> keeper.wait_exit(5.0)
            True
        """
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            # -I -S: no site packages, environment or current folder; a bare interpreter starts fast.
            process = subprocess.Popen(
                [sys.executable, "-I", "-S", KEEPER_SCRIPT, str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                start_new_session=True,  # Ctrl-C on the terminal reaches the supervisor, not the keeper
            )
        except BaseException:
            mine.close()
            raise
        finally:
            theirs.close()
        return cls(process, mine)

    def wait_exit(self, timeout: float) -> bool:
        """Wait for the keeper process to exit (and reap it); False if it still runs after ``timeout``.

        Example:
            >>> keeper = Keeper.start()
            >>> keeper.close(); keeper.wait_exit(5.0)
            True
        """
        try:
            self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        return True

    @property
    def pid(self) -> int:
        """The keeper's process id."""
        return self._process.pid

    def fileno(self) -> int:
        """The socket to wait on (readable when `receive` has events)."""
        return self._sock.fileno()

    def spawn(
        self, key: str, argv: Sequence[str], *, cwd: str, env: dict[str, str], stdout: int, stderr: int
    ) -> None:
        """Ask for a node to be started; a `Spawned` or `SpawnFailed` event answers.

        The descriptors are passed on, the caller may close its own at once. Blocks while the
        keeper has many requests to serve.

        Raises:
            OSError: The keeper has gone.
        """
        request = {"op": "spawn", "key": key, "argv": list(argv), "cwd": cwd, "env": env}
        send_datagram(self._sock, request, [stdout, stderr])

    def receive(self, timeout: float = 0.0) -> list[KeeperEvent] | None:
        """The events that have arrived (waiting up to ``timeout`` for one); None once the keeper has gone."""
        events: list[KeeperEvent] = []
        wait = timeout
        while True:
            try:
                message, fds = receive_datagram(self._sock, wait=wait)
            except BlockingIOError:
                return events
            except OSError:
                return events if events else None
            wait = 0.0
            for fd in fds:
                os.close(fd)
            if message is None:
                return events if events else None
            op, key = message.get("op"), str(message.get("key"))
            if op == "spawned":
                events.append(Spawned(key, int(message["pid"])))
            elif op == "failed":
                events.append(SpawnFailed(key, str(message["error"])))
            elif op == "exited":
                events.append(Exited(key, int(message["code"])))

    def end(self, grace: float) -> bool:
        """End the run: SIGTERM to what is left in the nodes' groups, SIGKILL after ``grace``.

        Returns once the keeper has exited (every node reaped), its last reports readable
        with `receive`; False if it did not exit within ``grace`` and a few seconds.
        """
        try:
            send_datagram(self._sock, {"op": "end", "grace": grace})
        except OSError:
            pass  # gone already: it ended the nodes when it went
        try:
            self._process.wait(grace + 3.0)
        except subprocess.TimeoutExpired:
            return False
        return True

    def close(self) -> None:
        """Close the socket (a keeper still running takes it as the supervisor's end)."""
        self._sock.close()


_prestarted: list[tuple[int, Keeper]] = []
"""The keeper `prestart` started ahead, with the process id that started it (a fork takes nothing)."""


def prestart() -> None:
    """Start the next run's keeper now, so its interpreter starts while the caller loads the run.

    The next `Keeper.start` of this process takes it. One not taken exits with the caller
    (the socket's end tells it), having started nothing. ``doradus run`` calls this first thing.

    Example:
        >>> prestart()
        >>> keeper = Keeper.start()
        >>> keeper.end(grace=1.0)
        True
        >>> keeper.close()
    """
    if not _prestarted:
        _prestarted.append((os.getpid(), Keeper.launch()))
        atexit.register(_drop_prestarted)


def _take_prestarted() -> Keeper | None:
    """The keeper `prestart` started, if this process started it and it still runs."""
    while _prestarted:
        pid, keeper = _prestarted.pop()
        if pid == os.getpid() and keeper._process.poll() is None:
            return keeper
        if pid == os.getpid():
            keeper.close()
            keeper.wait_exit(1.0)
    return None


def _drop_prestarted() -> None:
    """At exit: end a prestarted keeper nobody took (it exits when its socket closes)."""
    keeper = _take_prestarted()
    if keeper is not None:
        keeper.close()
        keeper.wait_exit(1.0)
