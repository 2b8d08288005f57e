"""``send_stdout_as``: the daemon sends a node's stdout lines on one of its outputs.

The daemon reads the stdout of every node it starts (each line becomes a log
record). For a node with ``send_stdout_as: out``, the daemon also holds the
sending ends of the ``shm`` links from ``out`` to the readers on this machine,
and sends each line there as a one-element UTF-8 string array, in order. Since
nothing is asked of the node process, this works for any node: a Python file
that only prints and never creates a `Node`, a shell script, a compiled program.

Lines wait in a queue served by a thread of their own, so reading stdout never
waits on a receiver (a node that prints before the dataflow has started would
otherwise stall the start). Once the dataflow runs, a queue of
`QUEUE_BOUND` lines has no room (`StdoutRelay.has_room`): the daemon stops
reading that node's stdout until it has, so a node printing faster than its
readers take lines slows down on its stdout, as on a terminal.

When the node's stdout ends (it exited), the queued lines are sent, then the
links close: readers get every line, then ``InputClosed``.

Example::

    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    relay = StdoutRelay("talker", "out", [("listener", a)])   # b goes to the listener
    relay.put("hello", time.time_ns())
    relay.finish()   # the node's stdout ended
"""

from __future__ import annotations

import os
import socket
import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import ClassVar

import pyarrow as pa

from doradus._wire.values import plan_value
from doradus.backends._base import LinkSpec, Outgoing
from doradus.backends._shm import ShmBackend

QUEUE_BOUND = 10_000
"""Lines held for slow readers before reading the node's stdout waits (once the dataflow runs)."""
ABORT_WAIT = 2.0
"""Seconds `StdoutRelay.abort` waits for the sending thread."""


class _NoInputs:
    """The relay only sends: nothing arrives for it."""

    def deliver(self, inputs: tuple[str, ...], entry: tuple[object, ...]) -> None:
        """Never called: the relay has no receiving links."""

    def closed(self, inputs: Sequence[str]) -> None:
        """Never called: the relay has no receiving links."""

    def error(self, message: str) -> None:
        """Never called: the relay has no receiving links."""

    def timed_out(self, inputs: Sequence[str]) -> None:
        """Never called: the relay has no receiving links."""

    def dropped(self, inputs: Sequence[str], count: int) -> None:
        """Never called: the relay has no receiving links."""


class StdoutRelay:
    """Sends one node's stdout lines on its ``send_stdout_as`` output, from the daemon.

    Thread safety: `put` and `finish` are meant for the one thread reading the
    node's stdout; `has_room`, `dataflow_started` and `abort` may come from any thread.

    Args:
        node_id: the node whose stdout this is (its receivers see the lines come from it).
        output: the output id the lines travel on.
        ends: ``(receiver node id, sending end)`` of each link to a reader; the relay
            owns the sockets from now on.
        on_error: called with a message when a line cannot be sent.

    Example:
        >>> import socket, time
        >>> mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        >>> relay = StdoutRelay("talker", "out", [("listener", mine)])
        >>> relay.put("hello", time.time_ns())
        >>> relay.finish()
        >>> relay.join(5), relay.sent
        (True, 1)
        >>> b"hello" in theirs.recv(65536), theirs.recv(65536)   # the line, then the link's end
        (True, b'')
        >>> theirs.close()
    """

    backend: ClassVar[type[ShmBackend]] = ShmBackend
    """The backend of the relay's links: what its readers' ends are wired as (one socket pair each)."""

    def __init__(
        self,
        node_id: str,
        output: str,
        ends: Sequence[tuple[str, socket.socket]],
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        self.node_id = node_id
        self.output = output
        self.sent = 0
        """Lines sent so far."""
        self.bytes = 0
        """Payload bytes sent so far."""
        self._on_error = on_error
        self._ends = [sock for _peer, sock in ends]
        self._backend = self.backend(node_id, _NoInputs())
        links = [LinkSpec(peer, "out", (output,)) for peer, _sock in ends]
        # The backend owns duplicates: closing our own ends is what lets `abort` wake a blocked send.
        self._backend.open(links, [os.dup(sock.fileno()) for sock in self._ends])
        self._backend.start()
        self._out = output.encode()
        self._lines: deque[tuple[str, int]] = deque()
        self._changed = threading.Condition()
        self._ending = False
        self._aborted = False
        self._bounded = False
        self._seq = 0
        self._thread = threading.Thread(target=self._run, name=f"stdout-as-{node_id}", daemon=True)
        self._thread.start()

    def put(self, line: str, stamp_ns: int) -> None:
        """Queue one line (without its newline), read at ``stamp_ns`` (its message's timestamp).

        Never waits: the reader asks `has_room` before reading more of the node's stdout.
        """
        with self._changed:
            if self._aborted:
                return
            self._lines.append((line, stamp_ns))
            self._changed.notify_all()

    def has_room(self) -> bool:
        """Whether more lines may be read: fewer than `QUEUE_BOUND` wait, or the dataflow has not started.

        Example:
            >>> import socket
            >>> mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            >>> relay = StdoutRelay("talker", "out", [("listener", mine)])
            >>> relay.has_room()
            True
            >>> relay.abort(); theirs.close()
        """
        with self._changed:
            return self._aborted or not self._bounded or len(self._lines) < QUEUE_BOUND

    def dataflow_started(self) -> None:
        """Every node is ready: from now on a full queue has no room (see `has_room`)."""
        with self._changed:
            self._bounded = True

    def finish(self) -> None:
        """The node's stdout ended: send what is queued, then close the links."""
        with self._changed:
            self._ending = True
            self._changed.notify_all()

    def join(self, timeout: float | None = None) -> bool:
        """Wait until every line went out and the links closed; False if ``timeout`` passed first."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def abort(self) -> None:
        """Drop what is queued and close the links now (the run is over)."""
        with self._changed:
            self._aborted = self._ending = True
            self._lines.clear()
            self._changed.notify_all()
        for sock in self._ends:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # wakes a send blocked on a reader that never reads
            except OSError:
                pass
        self._thread.join(ABORT_WAIT)

    def _run(self) -> None:
        try:
            while True:
                with self._changed:
                    while not self._lines and not self._ending:
                        self._changed.wait()
                    if not self._lines or self._aborted:
                        return
                    batch = list(self._lines)
                    self._lines.clear()
                    self._changed.notify_all()
                for line, stamp in batch:
                    if self._aborted:
                        return
                    self._send(line, stamp)
        finally:
            self._close()

    def _send(self, line: str, stamp_ns: int) -> None:
        array = pa.array([line], pa.string())
        plan = plan_value(array)
        self._seq += 1
        try:
            self._backend.send(Outgoing(self._out, array, plan, b"", self._seq, stamp_ns))
        except Exception as exc:  # one line that cannot go must not end the relay: say so and go on
            if self._on_error is not None:
                self._on_error(f"could not send a stdout line on {self.output!r}: {exc!r}")
            return
        self.sent += 1
        self.bytes += plan.size

    def _close(self) -> None:
        """Close the links (readers see their inputs close after the last line) and the pool."""
        self._backend.close()
        for sock in self._ends:
            try:
                sock.close()
            except OSError:
                pass
        self._backend.pool.close()
