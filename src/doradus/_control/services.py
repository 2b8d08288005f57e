"""This machine's services: the coordinator in the foreground, and `up`/`destroy` in the background.

`serve_coordinator` is ``doradus coordinator``: the API, with the secret files of this
machine written once the port is bound and removed when it ends, and its state saved in
``<runtime folder>/coordinator-<port>.db`` (`doradus._control.persistence`): started again
with the same address, it finds that state and goes on from it. `bring_up` starts a
coordinator and this machine's daemon as background processes (``doradus up``), records them in
the state file (``pids.coordinator``, ``pids.daemon``) and waits for the daemon to connect;
`tear_down` stops them and removes the saved state (``doradus destroy``).

Example::

    client = ControlClient(resolve_address(None))
    token, args = up_token(client, no_token=False, token_file=None)
    outcome = bring_up(client, token, args)
    print(outcome.failure or f"up in {outcome.seconds:.1f}s")
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from doradus._control.client import (
    ENV_TOKEN_FILE,
    RECONNECT_WINDOW,
    Address,
    ApiError,
    ControlClient,
    ServiceUnreachable,
    parse_address,
    read_state,
    state_path,
    write_state,
)
from doradus._paths import runtime_base

UP_TIMEOUT = 20.0
"""How long `bring_up` waits for the daemon to connect."""
UP_DAEMON_RETRIES = 50
"""Retries of the daemon `up` starts: it may try before its new coordinator listens."""
UP_DAEMON_RETRY_INTERVAL = 0.1
"""Quicker than the default, so `up` returns within 0.1 s of the coordinator listening (5 s in all)."""
DESTROY_TIMEOUT = 20.0
"""How long `tear_down` waits for the processes `up` started to exit before killing them."""
LOG_TAIL_LINES = 10
"""The lines of a failed service's log `log_tail` gives."""


def serve_coordinator(
    bind: str,
    port: int,
    *,
    token: str | None,
    new_token: bool,
    heartbeat_interval: float,
    on_listening: Callable[[Path | None], None],
) -> None:
    """Serve the coordinator's API on ``bind:port`` until ``POST /destroy`` or a signal.

    Clients must send ``token`` (none when None), or a new one when
    ``new_token``. Once the port is bound — a coordinator that cannot bind
    replaces nothing — this machine's daemon key and the new token are written
    to the runtime folder (mode 0600), then ``on_listening`` gets the new
    token's file (None without one). Both files are removed when it ends.

    Its state is saved to `database_path` as it changes, and restored from there
    when it starts: the database is removed after ``POST /destroy`` only. When
    ``up.json`` names this address, its ``pids.coordinator`` becomes this process.

    Raises:
        OSError: It cannot listen there (say, the port is taken).

    Example::

        serve_coordinator("127.0.0.1", 6300, token=None, new_token=True, heartbeat_interval=1.0,
                          on_listening=lambda path: print("listening; token in", path))
    """
    from doradus._control.auth import daemon_key_path, new_secret, remove_secret, token_path, write_secret
    from doradus._control.coordinator import CoordinatorState, create_app, serve
    from doradus._control.persistence import database_path, remove_database
    from doradus._control.recovery import open_saved_state

    if new_token:
        token = new_secret()
    daemon_key = new_secret()

    app = create_app(token, heartbeat_interval, daemon_key=daemon_key)
    state: CoordinatorState = app.state.coordinator

    def ready() -> None:  # the port is ours: so is its saved state
        open_saved_state(state, database_path(port), app.state.reattach_window)
        write_secret(daemon_key_path(port), daemon_key)
        _claim_up_state(parse_address(f"{bind}:{port}", "--bind"))
        on_listening(write_secret(token_path(port), token) if new_token and token is not None else None)

    try:
        serve(app, bind, port, ready)
    finally:
        if state.store is not None:
            state.store.close()
        if state.destroyed:
            remove_database(database_path(port))
        remove_secret(daemon_key_path(port), daemon_key)
        if new_token and token is not None:
            remove_secret(token_path(port), token)


def _claim_up_state(address: Address) -> None:
    """Record this process as ``up.json``'s coordinator when the file names this address (a restart)."""
    state = read_state()
    pids = state.get("pids") if state else None
    if state is None or not isinstance(pids, dict) or pids.get("coordinator") == os.getpid():
        return
    try:
        recorded = parse_address(str(state.get("address")), "state")
    except ValueError:
        return
    if recorded.port == address.port and recorded.host == address.host:
        write_state({**state, "pids": {**pids, "coordinator": os.getpid()}})


def up_token(client: ControlClient, no_token: bool, token_file: str | None) -> tuple[str | None, list[str]]:
    """The token `bring_up` gives its coordinator, and the arguments that say so.

    A new token is written to the runtime folder before anything starts, so the
    daemon and the first probe have it; ``no_token`` opts out; a token file
    given (or named by ``DORADUS_TOKEN_FILE``) is passed on.

    Example::

        token, args = up_token(client, no_token=True, token_file=None)   # (None, ['--no-token'])
    """
    from doradus._control.auth import new_secret, token_path, write_secret

    if no_token:
        return None, ["--no-token"]
    given = token_file or os.environ.get(ENV_TOKEN_FILE)
    if given:
        return client.token, ["--token-file", str(Path(given).expanduser().resolve())]
    token = new_secret()
    return token, ["--token-file", str(write_secret(token_path(client.address.port), token))]


@dataclass(frozen=True)
class UpOutcome:
    """How `bring_up` ended: the daemon connected after ``seconds``, or ``failure`` says why not."""

    seconds: float
    failure: str | None = None
    """Why it failed (``the daemon exited with code 1``); None when it is up."""
    log: Path | None = None
    """The log file of the service that failed."""


def bring_up(
    client: ControlClient,
    token: str | None,
    token_args: list[str],
    timeout: float = UP_TIMEOUT,
    *,
    reconnect_window: float = RECONNECT_WINDOW,
) -> UpOutcome:
    """Start a coordinator at ``client.address`` and this machine's daemon, in the background.

    Records them in the state file, then waits up to ``timeout`` seconds for the
    daemon to connect. On failure both are killed and the state file removed.
    ``token_args`` come from `up_token`; ``token`` becomes the client's. The daemon
    keeps its dataflows running for ``reconnect_window`` seconds when it loses the coordinator.

    Example::

        outcome = bring_up(client, *up_token(client, no_token=False, token_file=None))
    """
    started = time.monotonic()
    procs = _start_services(client, token_args, reconnect_window)
    client.token = token
    failure = _wait_connected(client, procs, started, timeout)
    if failure is None:
        return UpOutcome(time.monotonic() - started)
    why, name = failure
    for proc in procs.values():
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    forget_up(read_state() or {})
    return UpOutcome(time.monotonic() - started, why, runtime_base() / f"{name}.log")


def _start_services(
    client: ControlClient, token_args: list[str], reconnect_window: float
) -> dict[str, subprocess.Popen[bytes]]:
    base = runtime_base()
    address = str(client.address)
    procs = {
        "coordinator": _background(
            ["coordinator", "--bind", client.address.host, "--port", str(client.address.port), *token_args],
            base / "coordinator.log",
        ),
    }
    retry = ["--retries", str(UP_DAEMON_RETRIES), "--retry-interval", str(UP_DAEMON_RETRY_INTERVAL)]
    retry += ["--reconnect-window", f"{reconnect_window:g}"]
    daemon_token = token_args if token_args[:1] == ["--token-file"] else []
    procs["daemon"] = _background(["daemon", "-c", address, *retry, *daemon_token], base / "daemon.log")
    state: dict[str, Any] = {
        "address": address,
        "pids": {name: p.pid for name, p in procs.items()},
        "logs": {name: str(base / f"{name}.log") for name in procs},
    }
    if daemon_token:
        state["token_file"] = daemon_token[1]
    write_state(state)
    return procs


def _wait_connected(
    client: ControlClient, procs: dict[str, subprocess.Popen[bytes]], started: float, timeout: float
) -> tuple[str, str] | None:
    """None once a daemon is connected; else why not and which service's log tells."""
    while time.monotonic() < started + timeout:
        for name, proc in procs.items():
            if proc.poll() is not None:
                return f"the {name} exited with code {proc.returncode}", name
        try:
            # One try a turn: this loop is the retry, bounded by the timeout.
            probe = ControlClient(client.address, retries=0, token=client.token, timeout=2.0)
            if any(d.get("status", "connected") == "connected" for d in probe.get("/daemons")):
                return None
        except (ServiceUnreachable, ApiError):
            pass
        time.sleep(0.1)
    return f"the daemon did not connect within {timeout:g}s", "daemon"


def _background(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "doradus.cli", *args],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def log_tail(log: Path, lines: int = LOG_TAIL_LINES) -> list[str]:
    """The last ``lines`` lines of a service's log file (none when there is no file).

    Example:
        >>> log_tail(Path("/nonexistent/daemon.log"))
        []
    """
    return log.read_text(errors="replace").splitlines()[-lines:] if log.exists() else []


def tear_down(client: ControlClient, timeout: float = DESTROY_TIMEOUT) -> int:
    """Stop every dataflow, the daemons and the coordinator; how many processes had to be killed.

    The processes `bring_up` started get ``timeout`` seconds to exit, then
    SIGKILL; the state file, the token `bring_up` made and the coordinator's saved
    state are removed. When the coordinator does not answer (killed, say) but a
    process `bring_up` started still runs (its daemon, reconnecting), those get
    SIGTERM instead of the coordinator's ``shutdown``: their nodes end with them.

    Raises:
        ServiceUnreachable: No coordinator answered and none of the processes
            `bring_up` started runs (the state file and the saved state are removed).

    Example::

        killed = tear_down(client)
    """
    from doradus._control.persistence import database_path, remove_database

    state = read_state() or {}
    pids = [int(p) for p in dict(state.get("pids") or {}).values()]
    try:
        client.post("/destroy")
    except ServiceUnreachable:
        alive = [p for p in pids if _alive(p)]
        if not alive:
            state_path().unlink(missing_ok=True)
            remove_database(database_path(client.address.port))
            raise
        for pid in alive:
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.1)
    left = [p for p in pids if _alive(p)]
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    forget_up(state)
    remove_database(database_path(client.address.port))
    return len(left)


def forget_up(state: dict[str, Any]) -> None:
    """Remove the state file, and the token ``up`` made (never a token file the user gave).

    Example::

        forget_up(read_state() or {})
    """
    from doradus._control.auth import token_path

    state_path().unlink(missing_ok=True)
    token_file, address = state.get("token_file"), state.get("address")
    if isinstance(token_file, str) and isinstance(address, str):
        try:
            made = Path(token_file) == token_path(parse_address(address, "state").port)
        except ValueError:
            made = False
        if made:
            Path(token_file).unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        waited, _status = os.waitpid(pid, os.WNOHANG)
        if waited == pid:
            return False  # our own child, now reaped
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    """Whether ``pid`` exited but was not reaped (by a parent that never waits: PID 1 in some containers)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] == ["Z"]
