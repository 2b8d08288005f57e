"""``doradus daemon``: one per machine, runs the dataflows its coordinator places here.

It connects to the coordinator's ``/api/v1/daemon`` WebSocket (one try,
then ``retries`` retries: `doradus._control.client.call_with_retries`, the contract of every client
command), registers with its proof (the coordinator's daemon key when both
run on this machine for this user, else the API token: `doradus._control.auth`),
sends a heartbeat with each node's metrics (CPU, memory, input/output rates,
dropped, queued, p50 latency, errors) every second, runs each dataflow with
`LocalDaemon` in a thread and relays node output lines and state changes.
The dataflow comes as text in the ``prepare``/``spawn`` order, with the path
of its file: relative node paths start from that file's folder on this
machine. If it refuses the registration (no valid secret, or the machine id
has a connected daemon) it exits at once with the reason (`ApiError`).

If the coordinator goes away (killed, restarted), the dataflows keep running:
the daemon reconnects for ``reconnect_window`` seconds (`CoordinatorLink.reconnect`:
backoff from 0.2 s doubling to 2 s) and registers again listing them, so the
coordinator re-attaches them; log records meanwhile wait in a bounded queue. When
the window passes, it stops its dataflows and exits 1, saying why. A daemon that
starts never adopts node processes of an earlier one: it lists only its own.

Example::

    sys.exit(MachineDaemon(resolve_address(None), machine_id="robot-1").run())
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from doradus._control.client import (
    DEFAULT_RETRIES,
    DEFAULT_RETRY_INTERVAL,
    RECONNECT_WINDOW,
    Address,
)
from doradus._control.daemon_connection import CoordinatorLink
from doradus._control.daemon_runs import HostedDataflow
from doradus._dataflow.model import Dataflow
from doradus._exceptions import DoradusError
from doradus._runtime.ending import KILL_AFTER_TERM
from doradus._runtime.supervisor import LocalDaemon

HEARTBEAT = 1.0
SHUTDOWN_GRACE = 3.0
ENDED_KEPT = 32
"""Ended dataflows a daemon keeps listing in its ``register`` (the latest), for a restarted coordinator."""


@dataclass(frozen=True)
class PreparedRouter:
    """This machine's router for a run, as announced in ``prepare`` and opened at ``spawn``.

    ``options`` are the dataflow's settings for ``backend``; their relative paths start from
    ``folder`` (the dataflow file's folder).

    Example:
        >>> PreparedRouter("zenoh", "tcp/10.0.0.1:7447", {}, Path("/srv/flow")).endpoint
        'tcp/10.0.0.1:7447'
    """

    backend: str
    endpoint: str
    options: dict[str, Any]
    folder: Path


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
        token_file: str | None = None,
        reconnect_window: float = RECONNECT_WINDOW,
        say: Callable[[str], None] = print,
    ) -> None:
        self.address = address
        self.machine_id = machine_id or socket.gethostname()
        self.reconnect_window = reconnect_window
        self.say = say
        self.link = CoordinatorLink(
            address,
            machine_id=self.machine_id,
            token=token,
            token_file=token_file,
            retries=retries,
            retry_interval=retry_interval,
            say=say,
        )
        self.dataflows: dict[str, HostedDataflow] = {}
        self._closed = threading.Event()
        self._routers: dict[str, PreparedRouter] = {}
        self.heartbeat = HEARTBEAT
        """Seconds between heartbeats; the coordinator's ``welcome`` may change it."""

    def connect(self) -> None:
        """Open the WebSocket to the coordinator (one try, then up to ``retries`` retries) and register.

        Each retry is announced on stderr (see `doradus._control.client.call_with_retries`). Returns once the
        coordinator welcomed this daemon.

        Raises:
            ServiceUnreachable: The first try and every retry failed.
            ApiError: The coordinator refused the token (401), the registration
                (401: no valid secret; 409: the machine id has a connected daemon),
                or closed the link at once.
        """
        self._handle(self.link.open(self._held))

    def address_for_peers(self) -> str:
        """The IP this machine reaches the coordinator from: where other machines reach its nodes.

        Example::

            daemon.address_for_peers()   # '10.200.1.2'
        """
        return self.link.address_for_peers()

    def send(self, message: dict[str, Any]) -> bool:
        """Send one JSON message to the coordinator (thread-safe); whether it went out.

        While the coordinator is away, log records wait in a bounded queue, the rest is dropped.
        """
        return self.link.send(message)

    def run(self) -> int:
        """Connect, serve commands until ``shutdown`` (0), or until the coordinator stays away (1).

        A dropped link is tried again for ``reconnect_window`` seconds while the dataflows
        keep running; after that (at once with a window of 0) they are stopped.

        Raises:
            ServiceUnreachable: The coordinator could not be reached (after the retries).
        """
        self.connect()
        self.say(f"daemon {self.machine_id!r} connected to the coordinator at {self.address}")
        threading.Thread(target=self._heartbeat, name="heartbeat", daemon=True).start()
        try:
            while not self._serve():
                if not self._reconnect():
                    self._stop_all(1.0)
                    return 1
            return 0
        finally:
            self._closed.set()
            self.link.close()

    def _serve(self) -> bool:
        """Handle the coordinator's messages; True after ``shutdown``, False once the link dropped."""
        from websockets.exceptions import ConnectionClosed

        try:
            while True:
                message = self.link.recv()
                if message.get("type") == "shutdown":
                    self.say("shutdown requested by the coordinator")
                    self._stop_all(SHUTDOWN_GRACE)
                    self.send({"type": "goodbye"})
                    return True
                self._handle(message)
        except (ConnectionClosed, OSError):
            return False

    def _reconnect(self) -> bool:
        """Register again within the reconnect window (the dataflows run on); whether it did."""
        window = self.reconnect_window
        if window <= 0:
            self.say(
                "lost the connection to the coordinator (no --reconnect-window): stopping every dataflow"
            )
            return False
        running = sum(hosted.final is None for hosted in self.dataflows.values())
        self.say(
            f"lost the connection to the coordinator at {self.address}: {running} dataflow(s) keep "
            f"running; reconnecting for up to {window:g}s"
        )
        welcome = self.link.reconnect(window, self._held)
        if welcome is None:
            self.say(
                f"the coordinator at {self.address} did not come back within {window:g}s "
                f"(last try: {self.link.why}): stopping every dataflow"
            )
            return False
        self._handle(welcome)
        for hosted in list(self.dataflows.values()):
            hosted.reconnected()
        dropped = self.link.dropped_while_away
        note = f"; {dropped} log record(s) dropped while it was away" if dropped else ""
        self.say(f"reconnected to the coordinator at {self.address} with {running} dataflow(s){note}")
        self.link.dropped_while_away = 0
        return True

    def _held(self) -> list[dict[str, Any]]:
        """The dataflows this daemon runs, or ran and has not reported ended: what ``register`` lists."""
        return [hosted.held() for hosted in list(self.dataflows.values())]

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
        elif kind == "node_params":
            running = self.dataflows.get(str(message.get("id")))
            if running is not None:
                running.set_params(message)

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
            prepared = self._routers.pop(run_id, None)
            remote["router"] = prepared.endpoint if prepared is not None else None
            try:
                router = self._open_router(prepared, remote)
            except DoradusError as exc:
                self.send({"type": "spawn_failed", "id": run_id, "error": self._here(exc)})
                return
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
        running = HostedDataflow(run_id, local, self.send)
        running.router = router
        try:
            local.start()
        except OSError as exc:
            local.kill()
            local.close()
            if router is not None:
                router.close()
            self.send({"type": "spawn_failed", "id": run_id, "error": f"could not start: {exc}"})
            return
        self._forget_ended()
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
            name = routed[0]
            settings = flow.communication.get(name)
            options = dict(settings) if isinstance(settings, dict) else {}
            try:
                endpoint = backend_class(name).router_endpoint(
                    host, free_port(host), options, folder=flow.working_dir
                )
            except DoradusError as exc:
                fix = f"correct `communication.{name}` in the dataflow (relative paths start from its folder)"
                self.send({"type": "spawn_failed", "id": run_id, "error": self._here(exc), "fix": fix})
                return
            self._routers[run_id] = PreparedRouter(name, endpoint, options, flow.working_dir)
            reply["router"] = endpoint
        self.send(reply)

    def _here(self, exc: Exception) -> str:
        """An error of this machine, for the coordinator: which machine said it matters there."""
        return f"machine {self.machine_id!r}: {exc}"

    def _open_router(self, prepared: PreparedRouter | None, remote: dict[str, Any]) -> Any:
        """This machine's router for a run, connected to the other machines' routers.

        Raises:
            DoradusError: the router cannot start, or fails its backend's checks (TLS).
        """
        if prepared is None:
            return None
        from doradus.backends import get_backend

        backend = get_backend(prepared.backend)
        others = [str(e) for m, e in dict(remote.get("routers") or {}).items() if m != self.machine_id]
        return backend.open_machine_router(
            prepared.endpoint, others, prepared.options, folder=prepared.folder
        )

    def _heartbeat(self) -> None:
        while not self._closed.wait(self.heartbeat):
            if not self.link.up:
                continue  # the coordinator is away: nothing to tell it until it is back
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

    def _forget_ended(self) -> None:
        """Keep only the latest `ENDED_KEPT` ended dataflows whose end the coordinator was told."""
        ended = [h for h in self.dataflows.values() if h.final is not None and h.end_sent]
        for hosted in ended[: max(0, len(ended) - ENDED_KEPT)]:
            del self.dataflows[hosted.id]
