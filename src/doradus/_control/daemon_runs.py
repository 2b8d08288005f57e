"""One dataflow the machine daemon runs: its `LocalDaemon`, the thread watching it, what it reports.

`HostedDataflow` starts a watcher thread that reports each node's state when it changes (in the
API's terms: ``pending``, ``running``, ``paused``, ``restarting``, ``finished``, ``failed``,
``stopped``), drives a stop (Stop, SIGTERM after the grace, SIGKILL 2 s later), and says when
the dataflow ended. Nothing in it depends on the coordinator being there: its messages go
through the daemon's ``send``, which queues or drops them while the link is down, and `held`
describes it for the ``register`` of a daemon reconnecting (`doradus._control.daemon_link`).

Example::

    hosted = HostedDataflow(run_id, local, daemon.send)
    local.start()
    hosted.thread.start()
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from doradus._runtime.ending import KILL_AFTER_TERM
from doradus._runtime.supervisor import LocalDaemon

METRIC_KEYS = frozenset(
    {
        "inputs",
        "outputs",
        "cpu_percent",
        "memory_bytes",
        "input_rate",
        "output_rate",
        "p50_latency_us",
        "processing_p50_us",
        "dropped",
        "backpressure_timeouts",
        "queued",
        "errors",
        "restarts",
        "restart_dropped",
        "data_formats",
        "reason",
    }
)
"""What `LocalDaemon.node_metrics` measures, relayed with each heartbeat."""

Send = Callable[[dict[str, Any]], bool]
"""Sends one message to the coordinator; whether it went out (False while the link is down)."""


class HostedDataflow:
    """One dataflow on this machine: its `LocalDaemon` and the thread that watches it.

    Example::

        hosted = HostedDataflow("01a2...", local, send)
        hosted.thread.start()
        hosted.stop(grace=5.0, force=False)
    """

    def __init__(self, run_id: str, local: LocalDaemon, send: Send) -> None:
        self.id = run_id
        self.local = local
        self.send = send
        self.stop_at: float | None = None
        self.grace = 5.0
        self.termed_at: float | None = None
        self.reported: dict[str, str] = {}
        self.final: str | None = None
        """How it ended (``finished`` or ``failed``), once it has."""
        self.end_sent = False
        """Whether the coordinator was sent its end (else it is sent again after a reconnection)."""
        self._report_again = threading.Event()
        self.router: Any = None
        """The machine's router for this run (links crossing machines on a backend with one)."""
        self.thread = threading.Thread(target=self._watch, name=f"dataflow-{run_id[:8]}", daemon=True)

    def stop(self, grace: float, force: bool) -> None:
        """Send Stop now; SIGTERM after ``grace`` (at once with ``force``), SIGKILL 2 s later.

        Example::

            hosted.stop(grace=5.0, force=False)
        """
        if self.stop_at is None:
            self.local.request_stop()
            self.stop_at = time.monotonic()
            self.grace = grace
        self.grace = 0.0 if force else min(self.grace, grace)

    def _drive_stop(self) -> None:
        if self.stop_at is None:
            return
        now = time.monotonic()
        if self.termed_at is None and now - self.stop_at >= self.grace:
            self.local.kill(signal.SIGTERM)
            self.termed_at = now
        elif self.termed_at is not None and now - self.termed_at >= KILL_AFTER_TERM:
            self.local.kill(signal.SIGKILL)

    def act(self, message: dict[str, Any]) -> None:
        """Carry out a ``node_action`` on the nodes here (a restart or a stop on a thread of its own).

        A node that cannot take it (ended meanwhile, or not restartable) gets an ERROR record
        saying why, which its logs show.

        Example::

            hosted.act({"type": "node_action", "id": run_id, "action": "pause", "nodes": ["sink"]})
        """
        action = str(message.get("action"))
        for node_id in [str(n) for n in message.get("nodes") or []]:
            if action in ("restart", "stop"):  # they wait for the process to end
                threading.Thread(
                    target=self._take, args=(action, node_id, message), name=f"restart-{node_id}", daemon=True
                ).start()
            else:
                self._take(action, node_id, message)

    def _take(self, action: str, node_id: str, message: dict[str, Any]) -> None:
        from doradus._exceptions import DoradusError

        try:
            self.local.node_action(
                action,
                node_id,
                env=message.get("env"),
                args=message.get("args"),
                grace=message.get("grace_seconds"),
                data_format=message.get("data_format"),
                schema=message.get("schema"),
            )
        except DoradusError as exc:
            self.local.runtime_record("ERROR", f"could not {action} the node: {exc}", node_id)

    def set_params(self, message: dict[str, Any]) -> None:
        """Carry out a ``node_params`` message: the node's whole parameter set, and the key just set.

        The node is told what changed (`LocalDaemon.set_node_params`); a node this machine does not
        run gets an ERROR record saying so.

        Example::

            hosted.set_params({"type": "node_params", "id": run_id, "node": "camera",
                               "params": {"exposure": 0.02}, "touched": "exposure"})
        """
        from doradus._exceptions import DoradusError

        node_id, params, touched = message.get("node"), message.get("params"), message.get("touched")
        if not isinstance(node_id, str) or not isinstance(params, dict):
            return  # not a message this version understands
        try:
            self.local.set_node_params(node_id, params, touched if isinstance(touched, str) else None)
        except DoradusError as exc:
            self.local.runtime_record("ERROR", f"could not set the node's parameters: {exc}", node_id)

    def node_states(self) -> dict[str, dict[str, Any]]:
        """Each node's ``state``, ``pid``, ``exit_code`` and ``restarts``, in the API's terms.

        Example::

            hosted.node_states()   # {'sink': {'state': 'running', 'pid': 4242, ...}}
        """
        states = {}
        for node_id, proc in list(self.local.nodes.items()):
            if proc.restarting:
                state = "restarting"
            elif proc.exited:
                state = "finished" if proc.returncode == 0 else "failed"
                if proc.stop_requested or (self.stop_at is not None and proc.returncode != 0):
                    state = "stopped"
            elif proc.pid is not None:
                state = "paused" if proc.paused else "running"
            else:
                state = "pending"
            code = proc.returncode if proc.exited and not proc.restarting else None
            states[node_id] = {"state": state, "pid": proc.pid, "exit_code": code, "restarts": proc.restarts}
        return states

    def held(self) -> dict[str, Any]:
        """What a reconnecting daemon's ``register`` says of it (a `HeldDataflow`).

        Example::

            hosted.held()   # {'id': '01a2...', 'status': 'running', 'nodes': {...}}
        """
        return {"id": self.id, "status": self.final or "running", "nodes": self.node_states()}

    def reconnected(self) -> None:
        """The daemon registered again: report every node's state anew, and the end if it was lost.

        Example::

            hosted.reconnected()
        """
        self._report_again.set()
        if self.final is not None and not self.end_sent:
            self.end_sent = self.send({"type": "dataflow", "id": self.id, "status": self.final})

    def _report_nodes(self) -> None:
        if self._report_again.is_set():
            self._report_again.clear()
            self.reported.clear()
        for node_id, fields in self.node_states().items():
            if self.reported.get(node_id) != fields["state"]:
                message = {"type": "node", "id": self.id, "node": node_id, **fields}
                del message["restarts"]  # a metric: sent with each heartbeat
                if self.send(message):
                    self.reported[node_id] = fields["state"]

    def sample(self) -> None:
        """Send each node's metrics: CPU, memory, rates, dropped, queued, p50 latency, errors.

        The node's ``state`` is reported by `_report_nodes` (in the API's terms), not here.

        Example::

            hosted.sample()
        """
        for node_id, values in self.local.node_metrics().items():
            metrics = {k: v for k, v in values.items() if k in METRIC_KEYS}
            latency = metrics.get("p50_latency_us")
            metrics["latency_p50_ms"] = None if latency is None else round(latency / 1000, 3)
            self.send({"type": "node", "id": self.id, "node": node_id, **metrics})

    def _watch(self) -> None:
        try:
            while not self.local.wait(timeout=0.1):
                self._report_nodes()
                self._drive_stop()
            self._report_nodes()
            self.sample()  # the final counts
            failed = any(r.returncode != 0 for r in self.local.results()) and self.stop_at is None
            self.final = "failed" if failed else "finished"
            self.end_sent = self.send({"type": "dataflow", "id": self.id, "status": self.final})
        finally:
            self.local.kill()
            self.local.close()
            if self.router is not None:
                self.router.close()
