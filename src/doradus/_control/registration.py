"""A `doradus run` reporting to a coordinator that happens to run: `RunRegistration`.

When ``doradus up`` (or ``doradus coordinator``) runs on this machine, a dataflow that
``doradus run`` runs itself shows in ``list``, ``status``, ``top`` and ``logs`` too, and
``doradus stop`` reaches it, and so do ``doradus node pause|resume|restart|set``: the node
actions asked of it come back in the reply to its reports (``node_actions``), and it takes
each new one on its `LocalDaemon` (a restart or a stop on a thread of its own). Best effort: the run
never waits for, nor depends on, the coordinator. A report the coordinator does not answer (it is
restarting, say) is tried again with the next one, its records kept (at most `MAX_HELD_LINES`);
one it refuses (it no longer knows the run) ends the reporting.

Example::

    registration = RunRegistration.open(flow, run_id, Path("dataflow.yml"))
    if registration is not None:
        registration.finish(run_dataflow(flow, run_id=run_id, on_daemon=registration.watch))
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from doradus._control.client import resolve_address, resolve_token

if TYPE_CHECKING:
    import httpx

    from doradus._dataflow.model import Dataflow
    from doradus._runtime.foreground import RunOutcome
    from doradus._runtime.supervisor import LocalDaemon

REGISTER_CONNECT_TIMEOUT = 0.05
"""One quick attempt: `doradus run` must not wait when no coordinator runs."""
REPORT_EVERY = 0.5
"""Seconds between reports (log lines, node metrics; a stop request comes back with one)."""
REPORT_MAX_LINES = 2_000
"""Log records per report; more are sent in several posts."""
MAX_HELD_LINES = 10 * REPORT_MAX_LINES
"""Log records kept for the coordinator at most (while it does not answer); later ones are dropped."""
_NODE_STATES = {
    "starting": "pending",
    "running": "running",
    "paused": "paused",
    "restarting": "restarting",
    "exited": "finished",
    "failed": "failed",
    "stopped": "stopped",
}
"""A `LocalDaemon` node state → the API's."""


class RunRegistration:
    """Tells a running coordinator about a dataflow `doradus run` runs itself (best effort).

    A coordinator that does not answer is tried again with the next report; one that
    refuses a report ends the reporting, silently: the run never depends on the
    coordinator. Thread-safe: records may be queued from any thread.

    Example::

        registration = RunRegistration.open(flow, run_id, Path("dataflow.yml"))
        if registration:
            registration.record(make_record("INFO", "hello", node="talker"))
            registration.finish(outcome)
    """

    def __init__(self, client: httpx.Client, run_id: str, name: str, address: str) -> None:
        self.client = client
        self.run_id = run_id
        self.name = name
        self.address = address
        self._lock = threading.Lock()
        self._lines: list[dict[str, Any]] = []
        self._nodes: dict[str, dict[str, Any]] = {}
        self._broken = False
        self._daemon: LocalDaemon | None = None
        self._on_stop: Callable[[], None] | None = None
        self._stop_seen = False
        self._actions_taken = 0
        """The ``seq`` of the last node action taken."""
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="run-registration", daemon=True)
        self._thread.start()

    @classmethod
    def open(cls, flow: Dataflow, run_id: str, path: Path) -> RunRegistration | None:
        """Register with the coordinator at the discovered address, if one answers at once.

        One TCP connect of at most 50 ms and no retry; None when there is no coordinator.

        Example::

            registration = RunRegistration.open(flow, "01a2...", Path("dataflow.yml"))
        """
        try:
            address = resolve_address(None)
            with socket.create_connection((address.host, address.port), timeout=REGISTER_CONNECT_TIMEOUT):
                pass
            token = resolve_token(None, address)
        except (OSError, ValueError):
            return None
        import httpx  # only once a coordinator answered: a plain run never pays for it

        client = httpx.Client(
            base_url=address.http,
            headers={"Authorization": f"Bearer {token}"} if token else {},
            timeout=httpx.Timeout(2.0, connect=REGISTER_CONNECT_TIMEOUT * 4),
        )
        body = {
            "name": flow.name,
            "id": run_id,
            "nodes": [n.id for n in flow.nodes],
            "machine": socket.gethostname(),
            "path": str(path.resolve()),
        }
        try:
            response = client.post("/dataflows/external", json=body)
            response.raise_for_status()
            name = str(response.json()["name"])
        except (httpx.HTTPError, ValueError, KeyError):
            client.close()
            return None
        return cls(client, run_id, name, str(address))

    def record(self, record: dict[str, Any]) -> None:
        """Queue one log record of the run (sent with the next report).

        Example::

            registration.record(make_record("INFO", "hello", node="talker"))
        """
        with self._lock:
            if len(self._lines) < MAX_HELD_LINES:
                self._lines.append(record)

    def on_stop(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` once when `doradus stop` asks for this dataflow (seen with a report).

        Example::

            registration.on_stop(lambda: os.kill(os.getpid(), signal.SIGINT))
        """
        self._on_stop = callback

    def watch(self, daemon: LocalDaemon) -> None:
        """Report ``daemon.node_metrics()`` (state, pid, CPU, memory, rates, per-edge counters) each report.

        Example::

            registration.watch(local_daemon)
        """
        self._daemon = daemon

    def _sample(self) -> None:
        daemon = self._daemon
        if daemon is None:
            return
        try:
            metrics = daemon.node_metrics()
        except Exception:
            return  # best effort: a sample that fails is skipped, the next one may not
        with self._lock:
            for node_id, values in metrics.items():
                entry = {k: v for k, v in values.items() if k != "state" and k != "exit_code"}
                entry["state"] = _NODE_STATES.get(str(values.get("state")), "running")
                latency = values.get("p50_latency_us")
                entry["latency_p50_ms"] = None if latency is None else round(latency / 1000, 3)
                self._nodes.setdefault(node_id, {}).update(entry)

    def spawned(self, pids: dict[str, int | None] | None = None) -> None:
        """Every node was started: report them running.

        Example::

            registration.spawned({"talker": None})
        """
        with self._lock:
            for node_id, pid in (pids or {}).items():
                self._nodes.setdefault(node_id, {}).update(state="running", pid=pid)

    def finish(self, outcome: RunOutcome | None) -> None:
        """Report the end: each node's state and exit code, and the dataflow's status.

        ``outcome`` is the `RunOutcome`, or None when the run crashed.

        Example::

            registration.finish(run_dataflow(flow, run_id=registration.run_id))
        """
        self._done.set()
        self._thread.join(timeout=3.0)
        status = "failed"
        reason: str | None = "doradus run crashed"
        if outcome is not None:
            self._sample()  # the final counters
            with self._lock:
                for result in outcome.results:
                    state = "finished" if result.ok else "stopped" if outcome.stopped else "failed"
                    entry = self._nodes.setdefault(result.node_id, {})
                    entry.update(state=state, exit_code=result.returncode)
            status = "failed" if outcome.failed else ("stopped" if outcome.stopped else "finished")
            reason = None
        self._flush(status, reason)
        self.client.close()

    def _loop(self) -> None:
        while not self._done.wait(REPORT_EVERY):
            self._sample()
            self._flush(None, None)

    def _flush(self, status: str | None, reason: str | None) -> None:
        with self._lock:
            lines, self._lines = self._lines, []
            nodes, self._nodes = self._nodes, {}
        if self._broken or not (lines or nodes or status):
            return
        import httpx

        while True:
            batch, lines = lines[:REPORT_MAX_LINES], lines[REPORT_MAX_LINES:]
            body = {"logs": batch, "nodes": nodes, "status": None if lines else status, "reason": reason}
            try:
                response = self.client.post(f"/dataflows/{self.run_id}/report", json=body)
                response.raise_for_status()
                reply = response.json()
                stop = bool(reply.get("stop_requested"))
                self._take_actions(reply.get("node_actions"))
            except httpx.TransportError:
                self._keep(batch + lines, nodes)  # not there now (restarting?): with the next report
                return
            except Exception:
                self._broken = True  # the coordinator refused: the run goes on without it
                return
            if stop and not self._stop_seen and self._on_stop is not None and status is None:
                self._stop_seen = True
                self._on_stop()
            nodes = {}
            if not lines:
                return

    def _keep(self, lines: list[dict[str, Any]], nodes: dict[str, dict[str, Any]]) -> None:
        """Put back what a report could not deliver, before what came since (bounded)."""
        with self._lock:
            self._lines = (lines + self._lines)[:MAX_HELD_LINES]
            for node_id, fields in nodes.items():
                self._nodes[node_id] = {**fields, **self._nodes.get(node_id, {})}

    def _take_actions(self, actions: Any) -> None:
        """Take the node actions not taken yet, in order (each failure an ERROR record of the node)."""
        daemon = self._daemon
        if daemon is None or not isinstance(actions, list):
            return
        for action in sorted((a for a in actions if isinstance(a, dict)), key=lambda a: int(a.get("seq", 0))):
            seq = int(action.get("seq", 0))
            if seq <= self._actions_taken:
                continue
            self._actions_taken = seq
            nodes = (
                [str(action["node"])] if action.get("node") else _targets(daemon, str(action.get("action")))
            )
            for node_id in nodes:
                if action.get("action") not in ("restart", "stop"):  # they wait for the process to end
                    _take(daemon, action, node_id)
                    continue
                threading.Thread(
                    target=_take, args=(daemon, action, node_id), name=f"node-action-{seq}", daemon=True
                ).start()


def _targets(daemon: LocalDaemon, action: str) -> list[str]:
    """The nodes a dataflow-wide action applies to: those running (pause) or paused (resume)."""
    with daemon.state.lock:
        procs = [p for p in daemon.nodes.values() if p.registered and not p.exited]
        return [p.spec.id for p in procs if p.paused == (action == "resume")]


def _take(daemon: LocalDaemon, action: dict[str, Any], node_id: str) -> None:
    from doradus._exceptions import DoradusError

    name = str(action.get("action"))
    try:
        daemon.node_action(
            name,
            node_id,
            env=action.get("env"),
            args=action.get("args"),
            grace=action.get("grace_seconds"),
            data_format=action.get("data_format"),
            schema=action.get("schema"),
        )
    except DoradusError as exc:
        daemon.runtime_record("ERROR", f"could not {name} the node: {exc}", node_id)
