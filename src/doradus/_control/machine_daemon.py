"""``doradus daemon``: one per machine, runs the dataflows its coordinator places here.

It connects to the coordinator's ``/api/v1/daemon`` WebSocket (one try,
then ``retries`` retries: `call_with_retries`, the contract of every client
command), registers with its proof (the coordinator's daemon key when both
run on this machine for this user, else the API token: `doradus._control.auth`),
sends a heartbeat with each node's metrics (CPU, memory, input/output rates,
dropped, queued, p50 latency, errors) every second, runs each dataflow with
`LocalDaemon` in a thread and relays node output lines and state changes.
The dataflow comes as text in the ``prepare``/``spawn`` order, with the path
of its file: relative node paths start from that file's folder on this
machine. If the coordinator goes away it stops its dataflows and exits
non-zero; if it refuses the registration (no valid secret, or the machine id
has a connected daemon) it exits at once with the reason (`ApiError`).

Example::

    sys.exit(MachineDaemon(resolve_address(None), machine_id="robot-1").run())
"""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from doradus._control.client import (
    DEFAULT_RETRIES,
    DEFAULT_RETRY_INTERVAL,
    Address,
    ApiError,
    call_with_retries,
    found_daemon_key,
)
from doradus._control.daemon_link import NOT_AUTHENTICATED, REGISTER_TIMEOUT, SEAT_TAKEN
from doradus._dataflow.model import Dataflow
from doradus._runtime.ending import KILL_AFTER_TERM
from doradus._runtime.supervisor import LocalDaemon

HEARTBEAT = 1.0
_FIX_TOKEN = "pass --token-file with the coordinator's token (or set DORADUS_TOKEN_FILE)"
_REFUSALS = {
    NOT_AUTHENTICATED: (
        401,
        "run the daemon as the coordinator's user on its machine (it reads the daemon key from "
        "the runtime folder), or pass --token-file with the coordinator's token",
    ),
    SEAT_TAKEN: (409, "stop the other daemon first, or give this one another --machine-id"),
}
"""Close codes of a refused registration → (the `ApiError` status, the fix)."""
SHUTDOWN_GRACE = 3.0
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
        "queued",
        "errors",
        "restarts",
        "restart_dropped",
        "data_formats",
    }
)
"""What `LocalDaemon.node_metrics` measures, relayed with each heartbeat."""

Send = Callable[[dict[str, Any]], None]


class _RunningDataflow:
    """One dataflow on this machine: its `LocalDaemon` and the thread that watches it."""

    def __init__(self, run_id: str, local: LocalDaemon, send: Send) -> None:
        self.id = run_id
        self.local = local
        self.send = send
        self.stop_at: float | None = None
        self.grace = 5.0
        self.termed_at: float | None = None
        self.reported: dict[str, str] = {}
        self.router: Any = None
        """The machine's router for this run (links crossing machines on a backend with one)."""
        self.thread = threading.Thread(target=self._watch, name=f"dataflow-{run_id[:8]}", daemon=True)

    def stop(self, grace: float, force: bool) -> None:
        """Send Stop now; SIGTERM after ``grace`` (at once with ``force``), SIGKILL 2 s later."""
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

    def _report_nodes(self) -> None:
        for node_id, proc in self.local.nodes.items():
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
            if self.reported.get(node_id) != state:
                self.reported[node_id] = state
                pid = proc.pid
                self.send(
                    {"type": "node", "id": self.id, "node": node_id, "state": state, "pid": pid}
                    | ({"exit_code": proc.returncode if proc.exited and not proc.restarting else None})
                )

    def sample(self) -> None:
        """Send each node's metrics: CPU, memory, rates, dropped, queued, p50 latency, errors.

        The node's ``state`` is reported by `_report_nodes` (in the API's terms), not here.
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
            self.send({"type": "dataflow", "id": self.id, "status": "failed" if failed else "finished"})
        finally:
            self.local.kill()
            self.local.close()
            if self.router is not None:
                self.router.close()


class MachineDaemon:
    """The daemon of one machine.

    Example::

        code = MachineDaemon(parse_address("127.0.0.1:6300", "flag")).run()
    """

    def __init__(
        self,
        address: Address,
        *,
        machine_id: str | None = None,
        retries: int = DEFAULT_RETRIES,
        retry_interval: float = DEFAULT_RETRY_INTERVAL,
        token: str | None = None,
        say: Callable[[str], None] = print,
    ) -> None:
        self.address = address
        self.machine_id = machine_id or socket.gethostname()
        self.retries = retries
        self.retry_interval = retry_interval
        self.token = token
        self.say = say
        self.dataflows: dict[str, _RunningDataflow] = {}
        self._send_lock = threading.Lock()
        self._closed = threading.Event()
        self._ws: Any = None
        self._routers: dict[str, dict[str, Any]] = {}
        self.heartbeat = HEARTBEAT
        """Seconds between heartbeats; the coordinator's ``welcome`` may change it."""

    def connect(self) -> None:
        """Open the WebSocket to the coordinator (one try, then up to ``retries`` retries) and register.

        Each retry is announced on stderr (see `call_with_retries`). Returns once the
        coordinator welcomed this daemon.

        Raises:
            ServiceUnreachable: The first try and every retry failed.
            ApiError: The coordinator refused the token (401), the registration
                (401: no valid secret; 409: the machine id has a connected daemon),
                or closed the link at once.
        """
        from websockets.exceptions import InvalidHandshake, InvalidStatus
        from websockets.sync.client import connect

        headers = {"Authorization": f"Bearer {self.token}"} if self.token else None

        def attempt() -> Any:
            try:
                return connect(
                    f"{self.address.ws}/daemon", additional_headers=headers, open_timeout=5, max_size=None
                )
            except InvalidStatus as exc:
                if exc.response.status_code in (401, 403):  # an answer, not an absence: no retry
                    raise ApiError(401, "the coordinator refused the token", _FIX_TOKEN) from exc
                raise

        self._ws = call_with_retries(
            attempt,
            retries=self.retries,
            interval=self.retry_interval,
            what=f"coordinator at {self.address}",
            retry_on=(OSError, InvalidHandshake, TimeoutError),
        )
        self.send(
            {
                "type": "register",
                "machine_id": self.machine_id,
                "hostname": socket.gethostname(),
                "pid": os.getpid(),
                "address": self.address_for_peers(),
                "secret": found_daemon_key(self.address) or self.token,
            }
        )
        self._handle(self._welcome())

    def _welcome(self) -> dict[str, Any]:
        """The coordinator's first answer; its refusal as an `ApiError`."""
        from websockets.exceptions import ConnectionClosed

        try:
            answer: dict[str, Any] = json.loads(self._ws.recv(timeout=REGISTER_TIMEOUT))
        except (ConnectionClosed, TimeoutError) as exc:
            self._closed.set()
            self._ws.close()
            closed = getattr(exc, "rcvd", None)
            code, reason = (int(closed.code), str(closed.reason)) if closed is not None else (0, "no answer")
            status, fix = _REFUSALS.get(code, (400, "see the coordinator's log"))
            raise ApiError(status, f"the coordinator refused this daemon: {reason or code}", fix) from None
        return answer

    def address_for_peers(self) -> str:
        """The IP this machine reaches the coordinator from: where other machines reach its nodes.

        Example::

            daemon.address_for_peers()   # '10.200.1.2'
        """
        try:
            return str(self._ws.socket.getsockname()[0])
        except (AttributeError, OSError):
            return "127.0.0.1"

    def send(self, message: dict[str, Any]) -> None:
        """Send one JSON message to the coordinator (thread-safe; dropped once closed)."""
        if self._closed.is_set():
            return
        try:
            with self._send_lock:
                self._ws.send(json.dumps(message))
        except Exception:
            self._closed.set()

    def run(self) -> int:
        """Connect, serve commands until ``shutdown`` (0) or a lost connection (1).

        Raises:
            ServiceUnreachable: The coordinator could not be reached (after the retries).
        """
        from websockets.exceptions import ConnectionClosed

        self.connect()
        self.say(f"daemon {self.machine_id!r} connected to the coordinator at {self.address}")
        threading.Thread(target=self._heartbeat, name="heartbeat", daemon=True).start()
        try:
            while True:
                message = json.loads(self._ws.recv())
                if message.get("type") == "shutdown":
                    self.say("shutdown requested by the coordinator")
                    self._stop_all(SHUTDOWN_GRACE)
                    self.send({"type": "goodbye"})
                    return 0
                self._handle(message)
        except (ConnectionClosed, OSError):
            self.say("lost the connection to the coordinator: stopping every dataflow")
            self._stop_all(1.0)
            return 1
        finally:
            self._closed.set()
            try:
                self._ws.close()
            except Exception:
                pass

    def _handle(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "welcome":
            interval = float(message.get("heartbeat_interval") or HEARTBEAT)
            self.heartbeat = min(HEARTBEAT, max(0.05, interval))
        elif kind == "prepare":
            self._prepare(message)
        elif kind == "spawn":
            self._spawn(message)
        elif kind == "peer_gone":
            running = self.dataflows.get(str(message.get("id")))
            if running is not None:
                running.local.peer_gone(str(message.get("node")))
        elif kind == "stop":
            running = self.dataflows.get(str(message.get("id")))
            if running is not None:
                running.stop(float(message.get("grace_seconds", 5.0)), bool(message.get("force")))
        elif kind == "node_action":
            running = self.dataflows.get(str(message.get("id")))
            if running is not None:
                running.act(message)

    def _load(self, message: dict[str, Any]) -> Dataflow | None:
        """The dataflow of a ``prepare`` or ``spawn`` order, or None once ``spawn_failed`` was sent."""
        from doradus._dataflow.loader import load_dataflow_text
        from doradus._exceptions import DescriptorError

        run_id = str(message["id"])
        env = {str(k): str(v) for k, v in dict(message.get("env") or {}).items()}
        text = message.get("text")
        if not isinstance(text, str):
            error = "the coordinator sent no dataflow text"
            self.send(
                {"type": "spawn_failed", "id": run_id, "error": error, "fix": "upgrade the coordinator"}
            )
            return None
        try:
            return load_dataflow_text(text, str(message["path"]), extra_env=env)
        except DescriptorError as exc:
            self.send(
                {"type": "spawn_failed", "id": run_id, "error": str(exc), "fix": "run `doradus check` on it"}
            )
            return None

    def _spawn(self, message: dict[str, Any]) -> None:
        run_id = str(message["id"])
        env = {str(k): str(v) for k, v in dict(message.get("env") or {}).items()}
        flow = self._load(message)
        if flow is None:
            return
        out_dir = flow.working_dir / "out" / run_id
        early: list[dict[str, Any]] = []
        ready = threading.Event()
        gate = threading.Lock()

        def on_record(record: dict[str, Any]) -> None:
            entry = {"type": "log", "id": run_id, "record": record}
            with gate:
                if not ready.is_set():
                    early.append(entry)
                    return
            self.send(entry)

        placement = {str(k): str(v) for k, v in dict(message.get("placement") or {}).items()}
        remote = dict(message.get("remote") or {})
        router = None
        if placement:
            remote["router"] = self._routers.get(run_id, {}).get("endpoint")
            router = self._open_router(run_id, remote)
        local = LocalDaemon(
            flow,
            run_id=run_id,
            out_dir=out_dir,
            extra_env=env,
            on_record=on_record,
            log_level=message.get("log_level") or None,
            machine=self.machine_id,
            placement=placement,
            remote=remote,
        )
        running = _RunningDataflow(run_id, local, self.send)
        running.router = router
        try:
            local.start()
        except OSError as exc:
            local.kill()
            local.close()
            self.send({"type": "spawn_failed", "id": run_id, "error": f"could not start: {exc}"})
            return
        self.dataflows[run_id] = running
        with gate:
            self.send(
                {
                    "type": "spawned",
                    "id": run_id,
                    "name": flow.name,
                    "nodes": [n.id for n in flow.nodes],
                    "early": early,
                }
            )
            ready.set()
        running.thread.start()

    def _prepare(self, message: dict[str, Any]) -> None:
        """First round of a multi-machine start: announce where this machine's nodes listen.

        For each link arriving here from another machine on a listening transport, a free
        port on this machine's address; and, when links crossing machines use a backend with a
        machine router (`Backend.machine_router`), the endpoint this machine's router will
        listen on.
        """
        from doradus._runtime.links import free_port, inbound_remote, router_backends_across
        from doradus.backends import backend_class

        run_id = str(message["id"])
        placement = {str(k): str(v) for k, v in dict(message.get("placement") or {}).items()}
        flow = self._load(message)
        if flow is None:
            return
        host = self.address_for_peers()
        listen = {
            f"{receiver}|{backend}": f"{host}:{free_port(host)}"
            for receiver, backend in inbound_remote(flow, placement, self.machine_id)
        }
        reply: dict[str, Any] = {"type": "prepared", "id": run_id, "listen": listen}
        routed = router_backends_across(flow, placement, self.machine_id)
        if len(routed) > 1:  # the coordinator gathers one router endpoint per machine
            error = f"links crossing machines use {len(routed)} backends with routers ({', '.join(routed)})"
            fix = "give the nodes of these links one `remote` backend"
            self.send({"type": "spawn_failed", "id": run_id, "error": error, "fix": fix})
            return
        if routed:
            endpoint = backend_class(routed[0]).router_endpoint(host, free_port(host))
            self._routers[run_id] = {"endpoint": endpoint, "backend": routed[0]}
            reply["router"] = endpoint
        self.send(reply)

    def _open_router(self, run_id: str, remote: dict[str, Any]) -> Any:
        """This machine's router for a run, connected to the other machines' routers."""
        endpoint = self._routers.get(run_id, {}).get("endpoint")
        if not endpoint:
            return None
        from doradus.backends import get_backend

        backend = get_backend(str(self._routers[run_id]["backend"]))
        others = [str(e) for m, e in dict(remote.get("routers") or {}).items() if m != self.machine_id]
        return backend.open_machine_router(str(endpoint), others)

    def _heartbeat(self) -> None:
        while not self._closed.wait(self.heartbeat):
            self.send({"type": "heartbeat"})
            for running in list(self.dataflows.values()):
                if running.thread.is_alive():
                    running.sample()

    def _stop_all(self, grace: float) -> None:
        alive = [r for r in self.dataflows.values() if r.thread.is_alive()]
        for running in alive:
            running.stop(grace, force=False)
        for running in alive:
            running.thread.join(timeout=grace + KILL_AFTER_TERM + 2.0)
