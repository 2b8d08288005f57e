"""The coordinator: one per cluster, the HTTP + WebSocket API under ``/api/v1``.

It keeps what daemons report (dataflows, node states, log lines) in memory
(`doradus._control.state`), saved to a SQLite database when given one
(`doradus._control.persistence`) and restored from it when started again
(`doradus._control.recovery`), and forwards commands (prepare, spawn, stop,
shutdown) to the daemon that runs them. Daemons connect to ``/api/v1/daemon``
and speak the messages of `doradus._control.daemon_link`; each must prove itself
(`doradus._control.auth`) and one machine id has one seat. ``doradus run`` registers the
dataflows it runs itself through ``POST /dataflows/external`` and reports on
them, so they are listed too.

What a client can make the coordinator do is bounded (docs/security.md): it
never opens a file a client names (``POST /dataflows`` carries the dataflow's
text, at most 1 MiB), request bodies stop at `MAX_REQUEST_BYTES` and daemon
frames at `MAX_FRAME_BYTES` before they are read, and the one piece of work a
request causes beyond bookkeeping, reading the text for placement, runs off the
event loop, two at a time.

Example::

    app = create_app(token)
    serve(app, "127.0.0.1", 6300)
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable
from pathlib import Path

from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from pydantic import ValidationError

from doradus._control.auth import TokenGuard, new_secret
from doradus._control.client import RECONNECT_WINDOW
from doradus._control.daemon_link import (
    BAD_MESSAGE,
    MAX_FRAME_BYTES,
    NO_REGISTER,
    REGISTER_TIMEOUT,
    DaemonMessage,
    LinkError,
    Register,
    frame_text,
    node_changes,
    parse_message,
)
from doradus._control.launch import Starter
from doradus._control.log_routes import register_log_routes
from doradus._control.models import ERROR_RESPONSES as ERRORS
from doradus._control.models import (
    Accepted,
    CleanRequest,
    CleanResult,
    DaemonInfo,
    DataflowDetail,
    DataflowSummary,
    ExternalDataflow,
    ExternalReport,
    Health,
    NodeStatus,
    RestartRequest,
    StartRequest,
    StopRequest,
)
from doradus._control.node_actions import register_node_routes
from doradus._control.node_info import register_node_info_routes
from doradus._control.params import param_orders, register_param_routes
from doradus._control.prometheus import mount_metrics
from doradus._control.recovery import open_saved_state, reattach, reported, watch_restored
from doradus._control.state import (
    HEARTBEAT_INTERVAL,
    CoordinatorState,
    Daemon,
    Run,
    fail,
    send_quietly,
)
from doradus._control.stream import register_stream_routes

__all__ = ["CoordinatorState", "create_app", "openapi_text", "serve"]

RESTART_STOP_TIMEOUT = 10.0
"""``restart`` waits the grace period plus this long for the old run to end."""
MAX_REQUEST_BYTES = 16 * 2**20
"""The largest HTTP request body (16 MiB: a dataflow's text JSON-escaped, a batch of log records)."""
_log = logging.getLogger("doradus.coordinator")


def create_app(
    token: str | None = None,
    heartbeat_interval: float = HEARTBEAT_INTERVAL,
    *,
    daemon_key: str | None = None,
    database: Path | None = None,
    reattach_window: float = RECONNECT_WINDOW,
) -> FastAPI:
    """The coordinator's FastAPI application.

    Args:
        token: When set, every request must send ``Authorization: Bearer <token>``;
            daemons on other machines prove themselves with it.
        heartbeat_interval: Seconds between daemon heartbeats; two missed ones mark a daemon lost.
        daemon_key: The secret daemons of this machine prove themselves with (a fresh
            random one when None: see ``app.state.coordinator.daemon_key``).
        database: The SQLite file its state is saved to and restored from (None: memory only;
            the caller closes ``app.state.coordinator.store``).
        reattach_window: Seconds restored running dataflows wait for their daemons.

    Example:
        >>> create_app().title
        'Doradus coordinator'
    """
    from doradus import __version__

    app = FastAPI(
        title="Doradus coordinator",
        version=__version__,
        description="Control API of Doradus: start, stop, list and watch dataflows.",
        max_body_size=MAX_REQUEST_BYTES,
    )
    state = CoordinatorState(heartbeat_interval, token=token, daemon_key=daemon_key or new_secret())
    app.state.coordinator = state
    app.state.reattach_window = reattach_window
    if database is not None:
        open_saved_state(state, database, reattach_window)
    if token:
        app.add_middleware(TokenGuard, token=token)

    @app.get("/api/v1/health", response_model=Health)
    async def health() -> Health:
        """Liveness, with counts of daemons and dataflows."""
        return Health(
            version=__version__, pid=os.getpid(), daemons=len(state.daemons), dataflows=len(state.dataflows)
        )

    @app.get("/api/v1/daemons", response_model=list[DaemonInfo])
    async def daemons() -> list[DaemonInfo]:
        """The daemons: connected ones, those lost or gone, and those a restarted coordinator awaits."""
        listed = [d.info() for d in [*state.daemons.values(), *state.gone.values()]]
        seen = {d.machine_id for d in listed}
        return listed + [d.info() for d in state.awaited.values() if d.machine_id not in seen]

    @app.post("/api/v1/destroy", response_model=Accepted)
    async def destroy() -> Accepted:
        """Stop every dataflow, tell every daemon to exit, then exit the coordinator; its saved state goes."""
        state.destroyed = True
        for run in state.dataflows.values():
            if run.status == "running":
                run.stop_requested = True
        for daemon in list(state.daemons.values()):
            await send_quietly(daemon, {"type": "shutdown"})
        asyncio.get_running_loop().create_task(_exit_when_daemons_gone(state))
        return Accepted(message=f"stopping {len(state.daemons)} daemon(s) and the coordinator")

    _dataflow_routes(app, state, Starter(state))
    _external_routes(app, state)
    register_log_routes(app, state)
    register_node_routes(app, state)
    register_node_info_routes(app, state)
    register_param_routes(app, state)
    register_stream_routes(app, state)
    _daemon_route(app, state)
    mount_metrics(app, state)
    return app


def _dataflow_routes(app: FastAPI, state: CoordinatorState, starter: Starter) -> None:
    @app.get("/api/v1/dataflows", response_model=list[DataflowSummary])
    async def list_dataflows() -> list[DataflowSummary]:
        """Every dataflow this coordinator has started, running or ended, oldest first."""
        return [d.summary() for d in state.dataflows.values()]

    @app.get("/api/v1/dataflows/{name_or_id}", response_model=DataflowDetail, responses=ERRORS)
    async def get_dataflow(name_or_id: str) -> DataflowDetail:
        """One dataflow with each node's state and metrics."""
        return state.find(name_or_id).detail()

    @app.post("/api/v1/dataflows", response_model=DataflowSummary, status_code=201, responses=ERRORS)
    async def start_dataflow(request: StartRequest) -> DataflowSummary:
        """Start a dataflow, given as its file's text and path, on the connected daemons.

        The coordinator never opens ``path``; a request without ``text`` is a 422.
        """
        return await starter.start(request)

    @app.post("/api/v1/dataflows/clean", response_model=CleanResult, responses=ERRORS)
    async def clean(request: CleanRequest) -> CleanResult:
        """Forget ended dataflows (finished, failed, stopped); running ones are kept."""
        ids = state.clean(request.older_than)
        return CleanResult(removed=len(ids), ids=ids)

    @app.post("/api/v1/dataflows/{name_or_id}/restart", response_model=DataflowSummary, responses=ERRORS)
    async def restart_dataflow(name_or_id: str, request: RestartRequest) -> DataflowSummary:
        """Stop the dataflow (Stop, SIGTERM after the grace period), then start its text again.

        The new run keeps the text it was started with, the name, environment and log
        level; its id is new.
        """
        run = state.find(name_or_id)
        if run.external or run.text is None:
            raise fail(409, f"dataflow {run.name!r} was run by `doradus run`", "run it again yourself")
        if run.status == "running":
            run.stop_requested = True
            state.save(run)
            for machine in run.machines or [run.machine]:
                if machine in state.daemons:
                    stop = {"type": "stop", "id": run.id, "grace_seconds": request.grace_seconds}
                    await send_quietly(state.daemons[machine], stop)
            try:
                await asyncio.wait_for(run.ended.wait(), request.grace_seconds + RESTART_STOP_TIMEOUT)
            except TimeoutError as exc:
                raise fail(
                    503, f"dataflow {run.name!r} did not stop in time", "try `doradus stop --force`"
                ) from exc
        again = {
            "path": run.path,
            "text": run.text,
            "name": run.name,
            "env": run.env,
            "log_level": run.log_level,
        }
        return await starter.start(StartRequest.model_validate(again))

    @app.post("/api/v1/dataflows/{name_or_id}/stop", response_model=DataflowSummary, responses=ERRORS)
    async def stop_dataflow(name_or_id: str, request: StopRequest) -> DataflowSummary:
        """Ask a running dataflow to stop: Stop, then SIGTERM after the grace period, then SIGKILL.

        A daemon reconnecting to a restarted coordinator is told when it is back.
        """
        run = state.find(name_or_id)
        if run.status == "running":
            run.stop_requested = True
            state.save(run)
            for machine in run.machines or [run.machine]:
                if machine in state.daemons:
                    await send_quietly(
                        state.daemons[machine], {"type": "stop", "id": run.id, **request.model_dump()}
                    )
        return run.summary()


def _external_routes(app: FastAPI, state: CoordinatorState) -> None:
    @app.post("/api/v1/dataflows/external", response_model=DataflowSummary, status_code=201, responses=ERRORS)
    async def register_external(request: ExternalDataflow) -> DataflowSummary:
        """Register a dataflow that `doradus run` runs itself, so list, status and logs see it."""
        if request.id in state.dataflows:
            raise fail(409, f"a dataflow with id {request.id!r} is already registered")
        run = Run(
            id=request.id,
            name=state.unique_name(request.name),
            path=request.path,
            machine=request.machine,
            external=True,
            nodes={n: NodeStatus() for n in request.nodes},
        )
        state.add_run(run)
        return run.summary()

    @app.post("/api/v1/dataflows/{name_or_id}/report", response_model=DataflowSummary, responses=ERRORS)
    async def report_external(name_or_id: str, report: ExternalReport) -> DataflowSummary:
        """News of an external dataflow: node fields, output lines, and its end."""
        run = state.find(name_or_id)
        if not run.external:
            raise fail(409, f"dataflow {run.name!r} is run by a daemon, not by `doradus run`")
        reported(state, run)
        try:
            changes = {node_id: node_changes(values) for node_id, values in report.nodes.items()}
        except ValidationError as exc:
            raise fail(422, f"invalid node fields: {exc.errors(include_input=False)[0]['msg']}") from None
        for line in report.logs:
            state.add_log(run, line)
        for node_id, fields in changes.items():
            state.set_node(run, node_id, fields)
        if report.status is not None and report.status != "running":
            state.end(run, report.status, report.reason)
        return run.summary()


def _daemon_route(app: FastAPI, state: CoordinatorState) -> None:
    @app.websocket("/api/v1/daemon")
    async def daemon_socket(websocket: WebSocket) -> None:
        """Where daemons connect: one ``register`` with their secret, then reports; commands go back.

        A frame that is not a valid message closes the link with the code and reason of
        `doradus._control.daemon_link`.
        """
        await websocket.accept()
        try:
            register = await _first_message(websocket)
            daemon = state.seat(register, websocket)
        except LinkError as exc:
            await _close(websocket, exc)
            return
        except (WebSocketDisconnect, RuntimeError, OSError):
            return
        watchdog = asyncio.get_running_loop().create_task(_watch_heartbeats(state, daemon))
        try:
            await websocket.send_json({"type": "welcome", "heartbeat_interval": state.heartbeat_interval})
            for order in reattach(state, daemon, register.dataflows):
                await websocket.send_json(order)
            for order in param_orders(state, daemon.machine_id):  # what changed while it was away
                await websocket.send_json(order)
            while True:
                state.handle(daemon, await _receive(websocket))
        except LinkError as exc:
            await _close(websocket, exc)
        except (WebSocketDisconnect, RuntimeError, OSError):
            pass
        finally:
            watchdog.cancel()
            state.lost(daemon)


async def _receive(websocket: WebSocket) -> DaemonMessage:
    """The next message of a daemon's link, checked.

    Raises:
        LinkError: The frame is not a valid message.
        WebSocketDisconnect: The daemon went away.
    """
    frame = await websocket.receive()
    if frame["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(frame.get("code", 1000))
    return parse_message(frame_text(frame))


async def _first_message(websocket: WebSocket) -> Register:
    try:
        message = await asyncio.wait_for(_receive(websocket), REGISTER_TIMEOUT)
    except TimeoutError:
        raise LinkError(NO_REGISTER, f"no register within {REGISTER_TIMEOUT:g}s") from None
    if not isinstance(message, Register):
        raise LinkError(BAD_MESSAGE, f"the first message must be a register, not {message.type!r}")
    return message


async def _close(websocket: WebSocket, error: LinkError) -> None:
    """Close a daemon's link with ``error``'s code and reason, and say so in the log."""
    client = websocket.client
    where = f"{client.host}:{client.port}" if client else "a client"
    _log.warning("closed the daemon link from %s: %s %s", where, error.code, error.reason)
    try:
        await websocket.close(code=error.code, reason=error.reason)
    except (RuntimeError, OSError):
        pass


async def _watch_heartbeats(state: CoordinatorState, daemon: Daemon) -> None:
    """Mark ``daemon`` lost and close its socket once it has been silent too long."""
    while daemon.status == "connected":
        await asyncio.sleep(state.heartbeat_interval / 4)
        if state.silent(daemon):
            state.lost(daemon)
            try:
                await asyncio.wait_for(daemon.ws.close(code=1001), 1.0)
            except (TimeoutError, RuntimeError, OSError):
                pass
            return


async def _exit_when_daemons_gone(state: CoordinatorState, limit: float = 15.0) -> None:
    if state.daemons:
        try:
            await asyncio.wait_for(state.no_daemons.wait(), limit)
        except TimeoutError:
            pass
    if state.shutdown is not None:
        state.shutdown.set()


def serve(app: FastAPI, host: str, port: int, ready: Callable[[], None] | None = None) -> None:
    """Serve ``app`` until ``POST /destroy`` or a signal; raises OSError if the port is taken.

    ``ready`` is called once the port is bound, before the first request is
    served (``doradus coordinator`` writes its secret files then, so that a
    coordinator that cannot bind never replaces another one's).

    Example::

        serve(create_app(), "127.0.0.1", 6300)
    """
    import uvicorn

    with socket.create_server((host, port), family=_family(host)) as sock:
        if ready is not None:
            ready()
        config = uvicorn.Config(
            app, log_level="warning", ws="websockets-sansio", lifespan="off", ws_max_size=MAX_FRAME_BYTES
        )
        server = uvicorn.Server(config)
        state: CoordinatorState = app.state.coordinator

        async def main() -> None:
            state.shutdown = asyncio.Event()

            async def watch() -> None:
                assert state.shutdown is not None
                await state.shutdown.wait()
                server.should_exit = True

            watcher = asyncio.create_task(watch())
            restored = asyncio.create_task(watch_restored(state, app.state.reattach_window))
            await server.serve(sockets=[sock])
            watcher.cancel()
            restored.cancel()

        asyncio.run(main())


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def openapi_text() -> str:
    """The API's OpenAPI description as committed in ``docs/openapi.json``.

    Regenerate with ``python -m doradus._control.coordinator > docs/openapi.json``.

    Example:
        >>> openapi_text().startswith("{")
        True
    """
    import json

    return json.dumps(create_app().openapi(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    print(openapi_text(), end="")
