"""Restart policies: whether a node that ended starts again, after how long, and starting it.

A node's ``restart_policy`` (dora-rs's keys and meanings):

- ``never`` (the default): its end is its end.
- ``on-failure``: started again when it fails: an exit status other than 0, or a signal the
  runtime did not send (a node ended by a stop is not restarted).
- ``always``: started again whenever it ends, with status 0 too.

``max_restarts`` restarts at most are made within ``restart_window`` seconds (0: no limit; no
window: over the whole run): the window starts at the first restart and a restart more than
``restart_window`` seconds later starts a new one. ``restart_delay`` seconds pass before the
first restart of a window, doubling for each next one, at most ``max_restart_delay``. Without
``restart_delay``, a node that ends within `QUICK_END` seconds of its start waits a back-off
(0.1 s doubling, at most 5 s) so a node that cannot start does not spin a CPU (dora-rs restarts
it at once).

Never restarted: a node ended while its dataflow stops or by ``doradus node stop``; one whose
inputs have all closed for good (nothing would reach it again: a node with a timer input
always has an open input); and one that ends before the dataflow has started (the start
fails, as without a policy). A node whose links cannot be handed to a new process (links on a
network backend or to another machine, `doradus._runtime.restart.check_restartable`) keeps
``never``, with a WARN record saying why.

While a node waits to start again its state is ``restarting``: its receivers' inputs stay
open (their links are ``held``: `doradus._wire.node_config.LinkConfig`), its senders drop
what they would send it and count it (``restart_dropped``), and the dataflow does not end.
Once it runs again, its receivers get ``NodeRestarted``. A node that failed and is not
restarted gives its receivers ``NodeFailed``, then their inputs close.

Example:
    >>> from doradus._dataflow.model import NodeSpec
    >>> spec = NodeSpec(id="n", kind="python", restart_policy="on-failure", max_restarts=3,
    ...                 restart_delay=0.5, max_restart_delay=1.5)
    >>> wants_restart(spec, 1, killed=False), wants_restart(spec, 0, killed=False)
    (True, False)
    >>> [delay_before(spec, attempt) for attempt in (1, 2, 3, 4)]
    [0.5, 1.0, 1.5, 1.5]
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from doradus._dataflow.model import NodeSource, NodeSpec
from doradus._runtime.actions import RestartNotSupported
from doradus._runtime.control_socket import ControlSocket
from doradus._runtime.processes import NodeProcess, end_reason
from doradus._runtime.restart import Restarter, check_restartable
from doradus._runtime.run_log import RunLog
from doradus._runtime.state import RunState

QUICK_END = 1.0
"""A node that ends within this many seconds of its start is restarted after a back-off even
without ``restart_delay``: `QUICK_BACKOFF` seconds, doubling, at most `QUICK_BACKOFF_MAX`."""
QUICK_BACKOFF = 0.1
QUICK_BACKOFF_MAX = 5.0


def wants_restart(spec: NodeSpec, code: int, *, killed: bool) -> bool:
    """Whether ``spec``'s policy asks for a restart after an end with ``code`` (``killed``: by us).

    Example:
        >>> always = NodeSpec(id="n", kind="python", restart_policy="always")
        >>> wants_restart(always, 0, killed=False), wants_restart(always, -9, killed=True)
        (True, False)
    """
    if killed or spec.restart_policy == "never":
        return False
    return spec.restart_policy == "always" or code != 0


def delay_before(spec: NodeSpec, attempt: int) -> float:
    """Seconds before restart number ``attempt`` (from 1) of a window: ``restart_delay`` doubling.

    Example:
        >>> delay_before(NodeSpec(id="n", kind="python"), 3)
        0.0
        >>> delay_before(NodeSpec(id="n", kind="python", restart_delay=0.1), 3)
        0.4
    """
    if not spec.restart_delay:
        return 0.0
    delay = spec.restart_delay * (1 << min(attempt - 1, 16))
    return delay if spec.max_restart_delay is None else min(delay, spec.max_restart_delay)


@dataclass
class RestartWindow:
    """The restarts of one node counted against its ``max_restarts`` in its ``restart_window``.

    Example:
        >>> window = RestartWindow(NodeSpec(id="n", kind="python", max_restarts=2, restart_window=10))
        >>> window.next_attempt(now=0.0), window.next_attempt(now=1.0), window.next_attempt(now=2.0)
        (1, 2, None)
        >>> window.next_attempt(now=11.0)
        1
    """

    spec: NodeSpec
    started: float = 0.0
    count: int = 0

    def next_attempt(self, now: float) -> int | None:
        """Count one more restart at ``now``: its number in the window, or None past ``max_restarts``."""
        window = self.spec.restart_window
        if self.count == 0 or (window is not None and now - self.started > window):
            self.started, self.count = now, 0
        if self.spec.max_restarts and self.count >= self.spec.max_restarts:
            return None
        self.count += 1
        return self.count


class Reviver:
    """Applies the nodes' restart policies in one run (see the module documentation).

    Thread safety: `on_exit` runs with the run's lock held (the I/O thread, as a node's exit
    is taken); each restart then runs on a thread of its own.
    """

    def __init__(
        self, state: RunState, run_log: RunLog, control: ControlSocket, restarter: Restarter
    ) -> None:
        self._state = state
        self._log = run_log
        self._control = control
        self._restarter = restarter
        self._windows: dict[str, RestartWindow] = {}

    def prepare(self) -> None:
        """Before the links are wired: the nodes whose policy applies get their receivers' links held."""
        state = self._state
        for node_id, proc in state.nodes.items():
            if proc.spec.restart_policy == "never":
                continue
            try:
                check_restartable(state, node_id)
            except RestartNotSupported as exc:
                fields = {"event": "restart_policy", "applied": False}
                self._log.runtime_record("WARN", f"restart_policy not applied: {exc}", node_id, fields)
                continue
            state.held.add(node_id)
            self._windows[node_id] = RestartWindow(proc.spec)

    def on_exit(self, proc: NodeProcess, code: int) -> bool:
        """A node's process ended: True if it starts again (a thread does it), else its end stands.

        The caller holds the run's lock. A node already restarting (a restart's old process, or
        a new one that ended before it was ready) is left to that restart.
        """
        if proc.restarting:
            return True
        delay = self._decide(proc, code)
        if delay is None:
            return False
        name = f"restart-{proc.spec.id}"
        threading.Thread(target=self._revive, args=(proc, delay), name=name, daemon=True).start()
        return True

    def _decide(self, proc: NodeProcess, code: int) -> float | None:
        """Seconds before the node starts again (then ``restarting``), or None (caller holds the lock)."""
        node_id = proc.spec.id
        window = self._windows.get(node_id)
        state = self._state
        if window is None or not wants_restart(proc.spec, code, killed=proc.ended_by_us):
            return None
        if not state.started or state.stopping:
            return None
        if self._inputs_closed(proc):
            cancelled = {"event": "restart_cancelled"}
            self._log.runtime_record("INFO", "not restarted: its inputs have all closed", node_id, cancelled)
            return None
        attempt = window.next_attempt(time.monotonic())
        if attempt is None:
            gave_up = {"event": "restart_gave_up", "restarts": proc.restarts}
            message = f"not restarted: {proc.spec.max_restarts} restarts already"
            if proc.spec.restart_window is not None:
                message += f" within {proc.spec.restart_window:g}s (restart_window)"
            self._log.runtime_record("ERROR", message + " (max_restarts)", node_id, gave_up)
            proc.reason = f"{end_reason(code)}; {message} (max_restarts)"
            return None
        delay = delay_before(proc.spec, attempt)
        if not delay and time.monotonic() - proc.started_at < QUICK_END:
            delay = min(QUICK_BACKOFF * (1 << min(attempt - 1, 16)), QUICK_BACKOFF_MAX)
        proc.restarting = True
        proc.reason = f"restarting in {delay:g}s after {end_reason(code)} (restart {proc.restarts + 1})"
        fields: dict[str, object] = {
            "event": "restart_scheduled",
            "delay": delay,
            "attempt": attempt,
            "reason": end_reason(code),
        }
        self._log.runtime_record(
            "WARN",
            f"restarting in {delay:g}s ({end_reason(code)}; restart_policy {proc.spec.restart_policy}, "
            f"restart {proc.restarts + 1})",
            node_id,
            fields,
        )
        return delay

    def settle(self, proc: NodeProcess) -> None:
        """A restarted node's new process ended before it was ready: the policy, or its end stands.

        The caller holds the run's lock (`Restarter.on_ended`).
        """
        code = proc.returncode if proc.returncode is not None else 1
        if not self.on_exit(proc, code):
            self._control.ended_for_good(proc)

    def _inputs_closed(self, proc: NodeProcess) -> bool:
        """Whether every input of the node reads a node here that has ended for good."""
        inputs = proc.spec.inputs.values()
        if not inputs:
            return False
        for inp in inputs:
            if not isinstance(inp.source, NodeSource):
                return False  # a timer or the logs: never closes
            sender = self._state.nodes.get(inp.source.node)
            if sender is None or not sender.exited or sender.restarting:
                return False
        return True

    def _revive(self, proc: NodeProcess, delay: float) -> None:
        """Wait ``delay``, start the node again; again while a new process ends before it is ready."""
        state = self._state
        while True:
            deadline = time.monotonic() + delay
            with state.lock:
                while not state.stopping and (left := deadline - time.monotonic()) > 0:
                    state.changed.wait(left)
                if state.stopping:
                    self._give_up(proc, "the dataflow is stopping")
                    return
            try:
                self._restarter.revive(proc.spec.id)
            except Exception as exc:  # the node stays ended, the run goes on, the record says why
                with state.lock:
                    self._give_up(proc, f"could not start it again: {exc}")
                return
            with state.lock:
                if proc.pid is None:  # the new process could not be started: trying again would not help
                    self._give_up(proc, "its new process could not be started (see the error above)")
                    return
                if not proc.exited:
                    proc.restarting = False
                    state.changed.notify_all()
                    return
                # It ended before it was ready: the policy again (this thread goes on with it).
                proc.restarting = False
                code = proc.returncode if proc.returncode is not None else 1
                next_delay = self._decide(proc, code)
                if next_delay is None:
                    self._control.ended_for_good(proc)
                    return
                delay = next_delay

    def _give_up(self, proc: NodeProcess, why: str) -> None:
        """The restart is off: the node's end stands (caller holds the lock)."""
        proc.restarting = False
        self._log.runtime_record(
            "INFO", f"not restarted: {why}", proc.spec.id, {"event": "restart_cancelled"}
        )
        self._control.ended_for_good(proc)
