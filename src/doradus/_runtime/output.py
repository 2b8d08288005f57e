"""Reading what nodes print: one I/O thread for every node's stdout and stderr, and the keeper.

Each line a node writes becomes a log record (`classify_line` reads its level), goes to the
node's ``log_<id>.txt`` and to its tail (the summary of a failed run); a Python traceback
becomes one ERROR record. Lines of a ``send_stdout_as`` node also go to its
`StdoutRelay`: when the relay is full, its pipe is paused (the node waits on its stdout, as
on a terminal) until the relay has room again.

The same thread reads the keeper's reports (`doradus._unsafe.keeper.Keeper`: started,
failed, exited) and hands them to the spawner (`doradus._runtime.spawn`): a node has ended
when its process has, whoever still holds its pipes.

Example::

    reader = OutputReader(state, run_log)
    reader.start(keeper, on_keeper=spawner.keeper_events)
    reader.watch(proc)   # once the node started
"""

from __future__ import annotations

import os
import selectors
import threading
import time
from collections.abc import Callable

from doradus._observability.records import classify_line, make_record
from doradus._runtime.processes import NodeProcess, OutputPipe
from doradus._runtime.run_log import RunLog
from doradus._runtime.state import RunState
from doradus._unsafe.keeper import Keeper

READ_CHUNK = 65536
DRAIN_CHUNKS = 32
"""Chunks read at most when draining a pipe: more than a pipe holds (1 MiB at most), but a
helper writing without end cannot keep the reader draining forever."""
MAX_LINE = 1 << 20
"""A longer run of output without a newline is cut into lines of this many bytes."""
PAUSE_CHECK = 0.02
"""Seconds between two looks at paused stdout pipes (their relay was full)."""
LAST_REPORTS = 1.0
"""Seconds the I/O thread waits, as the run ends, for the keeper's last reports."""

KeeperHandler = Callable[[Keeper, float], bool]
"""Acts on the keeper's reports, waiting at most the seconds given; False once the keeper has gone."""


class OutputReader:
    """The I/O thread of one run: nodes' output pipes and the keeper's reports.

    Thread safety: `watch`, `drain`, `forget` and the pipes are the I/O thread's (they are
    called from the keeper's reports it reads); `start`, `stop` and `close` come from the
    thread running the daemon.
    """

    def __init__(self, state: RunState, run_log: RunLog) -> None:
        self._state = state
        self._log = run_log
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._thread: threading.Thread | None = None
        self._stop = False
        self._paused: list[OutputPipe] = []
        self._keeper: Keeper | None = None
        self._on_keeper: KeeperHandler | None = None

    def start(self, keeper: Keeper, on_keeper: KeeperHandler) -> None:
        """Start the I/O thread, reading ``keeper``'s reports into ``on_keeper``."""
        self._keeper = keeper
        self._on_keeper = on_keeper
        self._selector.register(keeper.fileno(), selectors.EVENT_READ, keeper)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._thread = threading.Thread(target=self._loop, name="doradus-io", daemon=True)
        self._thread.start()

    def watch(self, proc: NodeProcess) -> None:
        """Read a node's pipes from now on (it started; a restarted node's old pipes are read already)."""
        for pipe in proc.pipes:
            if pipe.registered:
                continue
            self._selector.register(pipe.fd, selectors.EVENT_READ, pipe)
            pipe.registered = True

    def drain(self, proc: NodeProcess) -> None:
        """A node's process exited: take what it wrote; its stdout lines end with it.

        Pipes still held by a helper it started stay open: their lines are logged until they
        close or the run ends.
        """
        for pipe in list(proc.pipes):
            self._read_pipe(pipe, drain=True)
            self._end_lines(pipe)
            if pipe.relay is not None:
                pipe.relay.finish()  # the node's stdout lines end with the node
                pipe.relay = None

    def forget(self, keeper: Keeper) -> None:
        """Stop reading the keeper (it has gone)."""
        self._selector.unregister(keeper.fileno())

    def stop(self) -> None:
        """End the I/O thread once the keeper's last reports and the pipes' last lines are read."""
        if self._thread is not None:
            self._stop = True
            os.write(self._wake_w, b"!")
            self._thread.join(timeout=5.0)

    def close(self) -> None:
        """Release the selector and the wake-up pipe (after `stop`)."""
        self._selector.close()
        os.close(self._wake_r)
        os.close(self._wake_w)

    # ---------------------------------------------------------------- the thread
    def _loop(self) -> None:
        """Read every node's output pipes and the keeper's reports, until `stop` ends the run."""
        assert self._on_keeper is not None
        while not self._stop:
            for key, _events in self._selector.select(PAUSE_CHECK if self._paused else None):
                try:
                    if key.data is None:
                        _read_all(self._wake_r)
                    elif isinstance(key.data, Keeper):
                        self._on_keeper(key.data, 0.0)
                    else:
                        self._read_pipe(key.data)
                except Exception as exc:  # this thread must live on: without it no node is seen ending
                    self._log.runtime_record("ERROR", f"internal error watching the nodes: {exc!r}")
            if self._paused:
                self._resume_paused()
        # The keeper has ended every node: take its last reports and what is left in the pipes.
        keeper = self._keeper
        deadline = time.monotonic() + LAST_REPORTS
        while keeper is not None and keeper.fileno() in self._selector.get_map():
            left = deadline - time.monotonic()
            if left <= 0 or not self._on_keeper(keeper, left):
                break
        for proc in self._state.nodes.values():
            for pipe in list(proc.pipes):
                self._read_pipe(pipe, drain=True)
                self._close_pipe(pipe)

    def _read_pipe(self, pipe: OutputPipe, drain: bool = False) -> None:
        """Read what the pipe holds (one chunk, or with ``drain`` all of it) and log its lines."""
        chunks = DRAIN_CHUNKS if drain else 1
        while chunks and pipe.fd >= 0:  # closed meanwhile: by an event earlier in the same batch
            chunks -= 1
            if not drain and pipe.relay is not None and not pipe.relay.has_room():
                self._pause(pipe)  # its readers lag: the node waits on its stdout, as on a terminal
                return
            try:
                chunk = os.read(pipe.fd, READ_CHUNK)
            except BlockingIOError:
                return
            except OSError:
                chunk = b""
            if not chunk:
                self._close_pipe(pipe)
                return
            lines = (pipe.partial + chunk).split(b"\n")
            pipe.partial = lines.pop()
            if len(pipe.partial) > MAX_LINE:
                lines.append(pipe.partial)
                pipe.partial = b""
            for raw in lines:  # one chunk per turn unless draining: every node's output gets its turn
                self._line(pipe, raw.decode("utf-8", "replace"))

    def _pause(self, pipe: OutputPipe) -> None:
        if pipe.registered:
            self._selector.unregister(pipe.fd)
            pipe.registered = False
            self._paused.append(pipe)

    def _resume_paused(self) -> None:
        for pipe in list(self._paused):
            if pipe.relay is None or pipe.relay.has_room():
                self._paused.remove(pipe)
                if pipe in pipe.proc.pipes:
                    self._selector.register(pipe.fd, selectors.EVENT_READ, pipe)
                    pipe.registered = True

    def _close_pipe(self, pipe: OutputPipe) -> None:
        """The pipe ended (every holder closed it) or the run did: log its last line, close it."""
        self._end_lines(pipe)
        if pipe.relay is not None:
            pipe.relay.finish()  # every line is queued: it sends them, then its readers' inputs close
            pipe.relay = None
        if pipe.registered:
            self._selector.unregister(pipe.fd)
            pipe.registered = False
        if pipe in self._paused:
            self._paused.remove(pipe)
        os.close(pipe.fd)
        pipe.fd = -1  # the number may soon name another node's pipe
        proc = pipe.proc
        proc.pipes.remove(pipe)
        if not proc.pipes and proc.exited:
            proc.close_log()

    def _end_lines(self, pipe: OutputPipe) -> None:
        """Log a last line without its newline, and a traceback being gathered."""
        if pipe.partial:
            self._line(pipe, pipe.partial.decode("utf-8", "replace"))
            pipe.partial = b""
        if pipe.traceback:
            self._emit_traceback(pipe.proc, pipe.stream, pipe.traceback)
            pipe.traceback = []

    def _line(self, pipe: OutputPipe, line: str) -> None:
        proc, stream = pipe.proc, pipe.stream
        if pipe.relay is not None:
            pipe.relay.put(line, time.time_ns())
        proc.tail.append(line)
        proc.write_raw(line)
        if pipe.traceback:  # a Python traceback becomes one ERROR record, ending at its exception line
            pipe.traceback.append(line)
            if line[:1] not in (" ", "\t", "") and not line.startswith("During handling"):
                self._emit_traceback(proc, stream, pipe.traceback)
                pipe.traceback = []
            return
        if line.startswith("Traceback (most recent call last):"):
            pipe.traceback = [line]
            return
        level, message, fields = classify_line(line, stream)
        self._log.record(make_record(level, message, node=proc.spec.id, source=stream, fields=fields))

    def _emit_traceback(self, proc: NodeProcess, stream: str, lines: list[str]) -> None:
        self._log.record(make_record("ERROR", "\n".join(lines), node=proc.spec.id, source=stream))


def _read_all(fd: int) -> None:
    try:
        while os.read(fd, 4096):
            pass
    except BlockingIOError:
        pass
