"""Ending one node's process while the run goes on: to stop it for good, or to restart it.

`ProcessEnder.end` asks a node to end as a run's stop does: ``Stop`` on its control socket,
then SIGTERM to its process group after ``grace`` seconds, then SIGKILL `KILL_AFTER_TERM`
seconds later. `stop_node` uses it to stop one node for good: its state becomes ``stopped``,
and the nodes reading its outputs see those inputs close (``InputClosed``) as when any
sender ends; the rest of the dataflow runs on. A restart (`doradus._runtime.restart`) uses
it to end the old process, its peers told beforehand that the end is not one.

Example::

    stop_node(state, run_log, "detector", grace=5.0)   # its readers get InputClosed
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable

from doradus._runtime.actions import NodeActionError, running_node
from doradus._runtime.control_socket import STOP
from doradus._runtime.ending import KILL_AFTER_TERM
from doradus._runtime.processes import NodeProcess
from doradus._runtime.run_log import RunLog
from doradus._runtime.state import RunState
from doradus._wire.control import send_control

EXIT_WAIT = 10.0
"""Seconds to wait, after SIGKILL, for the process to be seen gone."""


class ProcessEnder:
    """Ends node processes of one run, one at a time or several at once (thread-safe).

    Args:
        state: the run.
        run_log: where the signals sent are recorded (a WARN record each).

    Example::

        ProcessEnder(state, run_log).end(state.nodes["detector"], grace=5.0)
    """

    def __init__(self, state: RunState, run_log: RunLog) -> None:
        self._state = state
        self._log = run_log

    def end(self, proc: NodeProcess, grace: float) -> None:
        """``Stop``, SIGTERM after ``grace`` seconds, SIGKILL `KILL_AFTER_TERM` later; returns once it exited.

        Raises:
            NodeActionError: the process was still there `EXIT_WAIT` seconds after SIGKILL.

        Example::

            ender.end(proc, grace=5.0)
        """
        with self._state.lock:
            if proc.conn is not None and not proc.exited:
                try:
                    send_control(proc.conn, STOP)
                except OSError:
                    pass
        if self.wait(lambda: proc.exited, max(0.0, grace)):
            return
        for sig, wait in ((signal.SIGTERM, KILL_AFTER_TERM), (signal.SIGKILL, EXIT_WAIT)):
            self._signal(proc, sig)
            if self.wait(lambda: proc.exited, wait):
                return
        raise NodeActionError(f"node {proc.spec.id!r} did not end after SIGKILL", node_id=proc.spec.id)

    def wait(self, done: Callable[[], bool], timeout: float) -> bool:
        """Wait on the run's condition until ``done()`` (checked under the lock); False on timeout.

        Example::

            ender.wait(lambda: proc.exited, 5.0)
        """
        deadline = time.monotonic() + timeout
        with self._state.lock:
            while not done():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._state.changed.wait(remaining)
            return True

    def _signal(self, proc: NodeProcess, sig: signal.Signals) -> None:
        pid = proc.pid
        if pid is None:
            return
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        proc.killed = True
        fields = {"event": "signal", "signal": sig.name}
        self._log.runtime_record("WARN", f"still running: sending {sig.name}", proc.spec.id, fields)


def stop_node(state: RunState, run_log: RunLog, node_id: str, grace: float = 5.0) -> None:
    """Stop one node for good while the run goes on; returns once its process has ended.

    Its state becomes ``stopped`` whatever its exit status; the nodes that read its outputs
    see those inputs close. The run ends, as always, when its last node has.

    Raises:
        NodeActionError: no such node here (``status`` 404), or it is not running (409).

    Example::

        stop_node(state, run_log, "detector", grace=2.0)
    """
    with state.lock:
        proc = running_node(state, node_id)
        proc.stop_requested = True
    run_log.runtime_record("INFO", "stopping (asked by the user)", node_id, {"event": "stopping"})
    ProcessEnder(state, run_log).end(proc, grace)
