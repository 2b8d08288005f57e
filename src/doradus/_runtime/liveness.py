"""Liveness: nodes that do not start, stop reading, or never finish; each said, some ended.

`Watchdog` looks at every node of the run each ``health_check_interval`` (the dataflow's key,
5 s by default; at most every `TICK` seconds) and gives it a ``reason`` that ``status`` shows
next to its state:

- **starting** for longer than the interval: ``"not ready 7s after it started"``. With the
  node's ``startup_timeout``, a node not ready by then is ended (SIGTERM, then SIGKILL
  `KILL_AFTER_TERM` seconds later) as failed, and its restart policy applies.
- **not reading**: the node's code has held one input message for longer than the interval
  while one of its input queues is full: ``"not reading its inputs: busy with one message
  for 9s, input 'image' full (10 queued)"``. With the node's ``health_check_timeout``, a
  node busy with one message for longer than that is ended as failed (``unresponsive``).
  The node reports how long its code has held its current message with its counters
  (``busy_ms``, every second, from the node's own thread: a node stuck in its code still
  reports).
- **not finishing**: with ``finish_grace_secs``, a node still running that long after every
  node feeding it has ended (its inputs all closed, so it got ``Stop``; timers never close)
  is ended as failed.

A node ended by the watchdog (SIGTERM, then SIGKILL `KILL_AFTER_TERM` seconds later) has
``liveness`` set: its end is a failure (``status`` says ``failed``, the run's summary names
the node, its readers get ``NodeFailed`` unless it restarts), unlike a node ended by a stop.

Example::

    watchdog = Watchdog(state, run_log)
    watchdog.start()
    ...
    watchdog.close()
"""

from __future__ import annotations

import os
import signal
import threading
import time

from doradus._dataflow.model import NodeSource
from doradus._runtime.ending import KILL_AFTER_TERM
from doradus._runtime.processes import NodeProcess
from doradus._runtime.run_log import RunLog
from doradus._runtime.state import RunState

TICK = 0.5
"""Seconds between two looks at the nodes, at most."""


def busy_reason(proc: NodeProcess, threshold: float) -> str | None:
    """Why the node is not reading its inputs, if it is not (caller holds the run's lock).

    Example:
        >>> from doradus._dataflow.model import NodeSpec
        >>> busy_reason(NodeProcess(NodeSpec(id="n", kind="python")), 5.0) is None
        True
    """
    stats = proc.stats
    if stats is None or not stats.busy_ms or stats.busy_ms / 1000 < threshold:
        return None
    full = [
        (input_id, queued)
        for input_id, inp in proc.spec.inputs.items()
        if (queued := stats.queued_of(input_id)) and queued >= inp.queue_size
    ]
    if not full:
        return None
    input_id, queued = full[0]
    return (
        f"not reading its inputs: busy with one message for {stats.busy_ms / 1000:.0f}s, "
        f"input {input_id!r} full ({queued} queued)"
    )


class Watchdog:
    """Watches the nodes of one run (see the module documentation); one thread.

    Thread safety: `start` and `close` from the thread running the run; the rest on its own
    thread, under the run's lock.
    """

    def __init__(self, state: RunState, run_log: RunLog) -> None:
        self._state = state
        self._log = run_log
        self._interval = state.dataflow.health_check_interval
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="doradus-watchdog", daemon=True)
        self._ending: dict[str, float] = {}
        """Node id → when its inputs were all seen closed."""

    def start(self) -> None:
        """Start watching."""
        self._thread.start()

    def close(self) -> None:
        """Stop watching (returns at once; the thread ends at its next look)."""
        self._closed.set()

    def _run(self) -> None:
        period = min(TICK, self._interval)
        while not self._closed.wait(period):
            with self._state.lock:
                if self._state.stopping or self._state.ending:
                    return
                now = time.monotonic()
                for proc in list(self._state.nodes.values()):
                    if proc.pid is None or proc.exited or proc.restarting or proc.liveness:
                        continue
                    self._look(proc, now)

    def _look(self, proc: NodeProcess, now: float) -> None:
        """One look at one running node (caller holds the lock)."""
        spec = proc.spec
        if not proc.ready:
            waited = now - proc.started_at
            timeout = spec.startup_timeout
            if timeout is not None and waited > timeout:
                self._end(proc, f"not ready {waited:.0f}s after it started (startup_timeout {timeout:g}s)")
            else:
                proc.reason = f"not ready {waited:.0f}s after it started" if waited > self._interval else None
            return
        stats = proc.stats
        busy = stats.busy_ms / 1000 if stats is not None and stats.busy_ms else 0.0
        if spec.health_check_timeout is not None and busy > spec.health_check_timeout:
            self._end(
                proc,
                f"unresponsive: busy with one message for {busy:.0f}s "
                f"(health_check_timeout {spec.health_check_timeout:g}s)",
            )
            return
        proc.reason = busy_reason(proc, self._interval)
        if spec.finish_grace_secs is not None and self._inputs_closed(proc):
            since = self._ending.setdefault(spec.id, now)
            if now - since > spec.finish_grace_secs:
                self._finish(
                    proc,
                    f"still running {now - since:.0f}s after its inputs closed "
                    f"(finish_grace_secs {spec.finish_grace_secs:g}s)",
                )

    def _inputs_closed(self, proc: NodeProcess) -> bool:
        inputs = proc.spec.inputs.values()
        if not inputs:
            return False
        for inp in inputs:
            if not isinstance(inp.source, NodeSource):
                return False
            sender = self._state.nodes.get(inp.source.node)
            if sender is None or not sender.exited or sender.restarting:
                return False
        return True

    def _end(self, proc: NodeProcess, why: str) -> None:
        """End a node as failed: SIGTERM now, SIGKILL later (caller holds the lock)."""
        proc.liveness = proc.reason = why
        self._log.runtime_record("ERROR", f"ending it: {why}", proc.spec.id, {"event": "unresponsive"})
        self._signals(proc)

    def _finish(self, proc: NodeProcess, why: str) -> None:
        """End a node that does not finish, as failed (caller holds the lock)."""
        proc.liveness = proc.reason = why
        self._log.runtime_record("ERROR", f"ending it: {why}", proc.spec.id, {"event": "not_finishing"})
        self._signals(proc)

    def _signals(self, proc: NodeProcess) -> None:
        pid = proc.pid
        if pid is None:
            return
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        proc.killed = True
        timer = threading.Timer(KILL_AFTER_TERM, self._kill, args=(proc, pid))
        timer.daemon = True
        timer.start()

    def _kill(self, proc: NodeProcess, pid: int) -> None:
        with self._state.lock:
            if proc.exited or proc.pid != pid:
                return
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
