"""Control-plane commands: services, dataflows (start, stop, restart, clean, list, status, top, logs).

Each parses its options, calls the coordinator through `ControlClient`, and
renders: tables on a terminal, ``--output json|yaml`` on stdout for scripts.

Example::

    $ doradus up && doradus start dataflow.yml --detach && doradus list --output json
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar, cast

import click

from doradus._control.client import (
    DEFAULT_RETRIES,
    DEFAULT_RETRY_INTERVAL,
    MAX_RETRY_INTERVAL,
    ApiError,
    ControlClient,
    ServiceUnreachable,
    parse_address,
    read_state,
    resolve_address,
    resolve_token,
    state_path,
    write_state,
)
from doradus._observability.records import parse_timestamp
from doradus._paths import runtime_base
from doradus.cli._render import Reporter, log_options, output_option, parse_duration, parse_env

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
UP_TIMEOUT = 20.0
UP_DAEMON_RETRIES = 10
"""Retries of the daemon `up` starts: it may try before its new coordinator listens."""
UP_DAEMON_RETRY_INTERVAL = 0.5
"""Quicker than the default, so `up` returns soon after the coordinator listens (5 s in all)."""
GIVE_UP = "Maximum retries reached. Exiting."
"""The line after the last retry line, before the fix."""
F = TypeVar("F", bound=Callable[..., Any])


# ------------------------------------------------------------------ options
def connection_options(func: F) -> F:
    """Add ``--coordinator``, ``--retries``, ``--retry-interval``, ``--token-file``, ``--no-color``."""
    options = [
        click.option(
            "-c",
            "--coordinator",
            "--coordinator-addr",
            "coordinator",
            metavar="HOST:PORT",
            help="Coordinator address (default: $DORADUS_COORDINATOR, then `doradus up`'s, "
            "then 127.0.0.1:6300).",
        ),
        click.option(
            "--retries",
            type=click.IntRange(min=0),
            default=DEFAULT_RETRIES,
            show_default=True,
            help="Retries after the first try when no coordinator answers (0: try once).",
        ),
        click.option(
            "--retry-interval",
            type=click.FloatRange(min=0, max=MAX_RETRY_INTERVAL),
            default=DEFAULT_RETRY_INTERVAL,
            show_default=True,
            help=f"Seconds to wait before each retry (at most {MAX_RETRY_INTERVAL:g}).",
        ),
        click.option("--token-file", type=click.Path(dir_okay=False), help="File holding the API token."),
        click.option("--no-color", is_flag=True, help="Plain output."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _client(opts: dict[str, Any]) -> ControlClient:
    try:
        address = resolve_address(opts["coordinator"])
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--coordinator") from exc
    try:
        token = resolve_token(opts["token_file"], address)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise click.BadParameter(f"cannot read the token file: {reason}", param_hint="--token-file") from exc
    return ControlClient(address, retries=opts["retries"], retry_interval=opts["retry_interval"], token=token)


@contextmanager
def _failures(reporter: Reporter) -> Iterator[None]:
    """Render control-plane errors as cause + ``Suggested fix:`` with the documented exit code."""
    try:
        yield
    except ServiceUnreachable as exc:
        # After retries their lines gave the cause; without any, the cause is this line.
        reporter.error(GIVE_UP if exc.retries else f"{exc}. Exiting.", mark=False)
        reporter.info(f"Suggested fix: {exc.fix}")
        sys.exit(1)
    except ApiError as exc:
        reporter.error(str(exc))
        if exc.fix:
            reporter.info(f"Suggested fix: {exc.fix}")
        sys.exit(2 if exc.status in (401, 404, 409, 422) else 1)


def _emit(data: Any, output: str) -> None:
    if output == "json":
        click.echo(json.dumps(data, indent=2, sort_keys=True))
    else:
        import yaml

        click.echo(yaml.safe_dump(data, sort_keys=True), nl=False)


def _when(stamp: str | None) -> str:
    """An API time (ISO 8601 UTC) as local ``HH:MM:SS`` for tables; ``-`` when there is none.

    Example:
        >>> _when(None)
        '-'
    """
    return _clock(parse_timestamp(stamp)) if stamp else "-"


def _clock(seconds: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(seconds))


def _console() -> Any:
    from rich.console import Console

    width = None if sys.stdout.isatty() else 200  # piped: never truncate ids
    return Console(no_color="NO_COLOR" in os.environ, width=width)


def _make_table(title: str | None, columns: list[str], rows: list[list[str]], right: int = 99) -> Any:
    """A rich table; columns from index ``right`` on are right-aligned (numbers)."""
    from rich.table import Table

    table = Table(title=title, title_justify="left", header_style="bold")
    for k, column in enumerate(columns):
        table.add_column(column, justify="right" if k >= right else "left")
    for row in rows:
        table.add_row(*row)
    return table


def _table(title: str | None, columns: list[str], rows: list[list[str]], right: int = 99) -> None:
    _console().print(_make_table(title, columns, rows, right))


_STATUS_STYLE = {"running": "blue", "finished": "green", "stopped": "yellow", "failed": "red"}


def _styled(status: str) -> str:
    style = _STATUS_STYLE.get(status)
    return f"[{style}]{status}[/{style}]" if style else status


# ------------------------------------------------------------- services
no_token_option = click.option(
    "--no-token",
    is_flag=True,
    help="Serve the API without a token (loopback only): every local user can then run programs as you.",
)
"""``--no-token``: the opt-out of the API token, for ``coordinator`` and ``up``."""


@click.command(context_settings=CONTEXT)
@click.option("--bind", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=6300, show_default=True)
@click.option(
    "--token-file",
    type=click.Path(dir_okay=False),
    help="File holding the API token clients must send (default: a new one in the runtime folder).",
)
@click.option(
    "--generate-token",
    is_flag=True,
    help="Make a new token in the runtime folder (the default on loopback; needed beyond it without "
    "--token-file).",
)
@no_token_option
@click.option(
    "--heartbeat-interval",
    type=click.FloatRange(min=0.05),
    default=1.0,
    show_default=True,
    help="Seconds between daemon heartbeats; a daemon silent for 2 intervals is marked lost.",
)
def coordinator(
    bind: str,
    port: int,
    token_file: str | None,
    generate_token: bool,
    no_token: bool,
    heartbeat_interval: float,
) -> None:
    """Run the coordinator in the foreground (`doradus up` starts it in the background).

    Clients must send its API token: a new one in the runtime folder (mode 0600,
    found there by every command of the same user on this machine), or the one
    of --token-file. Daemons of this machine prove themselves with a key it
    writes beside it; daemons elsewhere with the token. See docs/security.md.
    """
    from doradus._control.auth import (
        daemon_key_path,
        is_loopback,
        new_secret,
        remove_secret,
        token_path,
        write_secret,
    )
    from doradus._control.coordinator import create_app, serve

    reporter = Reporter()
    if no_token and (token_file or generate_token):
        raise click.UsageError("--no-token cannot go with --token-file or --generate-token")
    if not is_loopback(bind) and (no_token or not (token_file or generate_token)):
        reporter.error(f"refusing to listen on {bind} without a token: anyone on the network could run code")
        reporter.info("Suggested fix: add --generate-token (or --token-file FILE), or bind 127.0.0.1")
        sys.exit(2)
    token = None if no_token else (_read_token_file(token_file) if token_file else new_secret())
    made = token is not None and not token_file
    daemon_key = new_secret()

    def ready() -> None:  # the port is ours: a coordinator that could not bind replaces nothing
        write_secret(daemon_key_path(port), daemon_key)
        if made and token is not None:
            path = write_secret(token_path(port), token)
            reporter.info(f"API token written to {path} (mode 0600); other machines need a copy")
        elif token is None:
            reporter.warning(
                "no API token: every user of this machine can use the API and run programs as you"
            )
        reporter.info(f"coordinator listening on http://{bind}:{port}/api/v1 (pid {os.getpid()})")

    try:
        serve(create_app(token, heartbeat_interval, daemon_key=daemon_key), bind, port, ready)
    except OSError as exc:
        reporter.error(f"cannot listen on {bind}:{port}: {exc.strerror or exc}")
        reporter.info("Suggested fix: is a coordinator already running? see `doradus list`, or pick --port")
        sys.exit(1)
    finally:
        remove_secret(daemon_key_path(port), daemon_key)
        if made and token is not None:
            remove_secret(token_path(port), token)


def _read_token_file(path: str) -> str:
    from doradus._control.auth import read_secret

    try:
        token = read_secret(Path(path).expanduser())
    except OSError as exc:
        raise click.BadParameter(f"cannot read it: {exc.strerror or exc}", param_hint="--token-file") from exc
    if token is None:
        raise click.BadParameter(f"no token file at {path}", param_hint="--token-file")
    return token


@click.command(context_settings=CONTEXT)
@click.option("--machine-id", metavar="NAME", help="This machine's name (default: the host name).")
@connection_options
def daemon(machine_id: str | None, **opts: Any) -> None:
    """Run this machine's daemon in the foreground, connected to the coordinator.

    It tries once, then --retries times more, --retry-interval apart; when no
    coordinator answered, it exits 1 with a suggested fix.
    """
    from doradus._control.machine_daemon import MachineDaemon

    reporter = Reporter(color=False if opts["no_color"] else None)
    client = _client(opts)
    runner = MachineDaemon(
        client.address,
        machine_id=machine_id,
        retries=client.retries,
        retry_interval=client.retry_interval,
        token=client.token,
        say=reporter.info,
    )
    with _failures(reporter):
        sys.exit(runner.run())


@click.command(context_settings=CONTEXT)
@click.option("--port", type=click.IntRange(1, 65535), help="Coordinator port (default: from the address).")
@no_token_option
@connection_options
def up(port: int | None, no_token: bool, **opts: Any) -> None:
    """Start a coordinator and this machine's daemon in the background.

    The API gets a new token (mode 0600 in the runtime folder, where every
    command finds it), or the one of --token-file; --no-token opts out.
    Returns once the daemon is connected, or fails with the cause and the
    last lines of the log file. Does nothing if a coordinator already answers.
    """
    reporter = Reporter(color=False if opts["no_color"] else None)
    client = _client(opts)
    if port is not None:
        client.address = parse_address(f"{client.address.host}:{port}", "--port")
    if client.ping():
        reporter.success(f"a coordinator is already running at {client.address}")
        return
    base = runtime_base()
    address = str(client.address)
    token, token_args = _up_token(client, no_token, opts["token_file"])
    started = time.monotonic()
    procs = {
        "coordinator": _background(
            ["coordinator", "--bind", client.address.host, "--port", str(client.address.port), *token_args],
            base / "coordinator.log",
        ),
    }
    retry = ["--retries", str(UP_DAEMON_RETRIES), "--retry-interval", str(UP_DAEMON_RETRY_INTERVAL)]
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
    client.token = token
    deadline = started + UP_TIMEOUT
    while time.monotonic() < deadline:
        for name, proc in procs.items():
            if proc.poll() is not None:
                _up_failed(reporter, procs, f"the {name} exited with code {proc.returncode}", name)
        try:
            # One try a turn: this loop is the retry, bounded by UP_TIMEOUT.
            probe = ControlClient(client.address, retries=0, token=client.token, timeout=2.0)
            if any(d.get("status", "connected") == "connected" for d in probe.get("/daemons")):
                reporter.success(
                    f"coordinator and daemon running at {address} "
                    f"(done in {time.monotonic() - started:.1f}s; state: {state_path()})"
                )
                return
        except (ServiceUnreachable, ApiError):
            pass
        time.sleep(0.1)
    _up_failed(reporter, procs, f"the daemon did not connect within {UP_TIMEOUT:g}s", "daemon")


def _up_token(client: ControlClient, no_token: bool, token_file: str | None) -> tuple[str | None, list[str]]:
    """The token ``up`` gives its coordinator, and the arguments that say so.

    A new token is written to the runtime folder before anything starts, so the
    daemon and the first probe have it.
    """
    from doradus._control.auth import new_secret, token_path, write_secret
    from doradus._control.client import ENV_TOKEN_FILE

    if no_token:
        if token_file:
            raise click.UsageError("--no-token cannot go with --token-file")
        return None, ["--no-token"]
    given = token_file or os.environ.get(ENV_TOKEN_FILE)
    if given:
        return client.token, ["--token-file", str(Path(given).expanduser().resolve())]
    token = new_secret()
    return token, ["--token-file", str(write_secret(token_path(client.address.port), token))]


def _background(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "doradus.cli", *args],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _up_failed(reporter: Reporter, procs: dict[str, subprocess.Popen[bytes]], why: str, name: str) -> None:
    for proc in procs.values():
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    _forget_up(read_state() or {})
    log = runtime_base() / f"{name}.log"
    reporter.error(f"doradus up failed: {why}")
    lines = log.read_text(errors="replace").splitlines()[-10:] if log.exists() else []
    for line in lines:
        reporter.info(f"    {line}")
    reporter.info(f"full log: {log}")
    reporter.info("Suggested fix: read the log above; if the port is taken, pass --port or -c HOST:PORT")
    sys.exit(1)


@click.command(context_settings=CONTEXT)
@connection_options
def destroy(**opts: Any) -> None:
    """Stop every dataflow, the daemons and the coordinator started by `doradus up`."""
    reporter = Reporter(color=False if opts["no_color"] else None)
    client = _client(opts)
    state = read_state() or {}
    pids = [int(p) for p in dict(state.get("pids") or {}).values()]
    try:
        client.post("/destroy")
    except ServiceUnreachable:
        if not any(_alive(p) for p in pids):
            state_path().unlink(missing_ok=True)
        with _failures(reporter):
            raise
    deadline = time.monotonic() + 20.0
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.1)
    left = [p for p in pids if _alive(p)]
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    _forget_up(state)
    note = f" (killed {len(left)} process(es) that did not exit)" if left else ""
    reporter.success(f"coordinator at {client.address} and its daemons stopped{note}")


def _forget_up(state: dict[str, Any]) -> None:
    """Remove the state file, and the token ``up`` made (never a token file the user gave)."""
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
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


# ------------------------------------------------------------- dataflows
@click.command(context_settings=CONTEXT)
@click.argument("dataflow", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--name", help="Name to refer to it by (default: from the file, made unique).")
@click.option("--detach/--attach", default=False, help="Return at once, or follow its logs (default).")
@click.option(
    "--env", "env", multiple=True, metavar="K=V", help="Set an environment variable for every node."
)
@log_options
@connection_options
def start(
    dataflow: Path,
    name: str | None,
    detach: bool,
    env: tuple[str, ...],
    log_level: str | None,
    log_format: str,
    **opts: Any,
) -> None:
    """Start DATAFLOW on the running coordinator.

    Attached, its logs are printed prefixed by node id until it ends; Ctrl-C
    stops it (a second Ctrl-C forces). Exit 0 if it finished, 1 if it failed.
    """
    from doradus._dataflow.loader import check_dataflow_text, read_dataflow_text

    reporter = Reporter(color=False if opts["no_color"] else None)
    extra_env = parse_env(env)
    # Read once: the text checked here is the text the coordinator gets (it never opens the file).
    text, problems = read_dataflow_text(dataflow)
    flow = None
    if text is not None:
        flow, problems = check_dataflow_text(text, dataflow, extra_env=extra_env)
    if flow is not None:  # settings the file gives but Doradus does not apply yet, as `run` says
        from doradus._dataflow.problems import sort_problems

        problems = sort_problems([*problems, *flow.not_applied])
    reporter.problems(problems)
    if flow is None:
        reporter.error(f"{dataflow}: {sum(p.severity == 'error' for p in problems)} error(s)")
        sys.exit(2)
    client = _client(opts)
    body = {
        "path": str(dataflow.resolve()),
        "text": text,
        "name": name,
        "env": extra_env,
        "log_level": log_level.upper() if log_level else None,
    }
    with _failures(reporter):
        started = client.post("/dataflows", body)
        reporter.success(
            f"started dataflow {started['name']!r} (id {started['id']}, {started['nodes']} nodes)"
        )
        if detach:
            click.echo(started["id"])
            return
        _attach(client, reporter, started["id"], [n.id for n in flow.nodes], log_format)
        final = client.get(f"/dataflows/{started['id']}")
    status = final["status"]
    (reporter.error if status == "failed" else reporter.success)(f"dataflow {final['name']!r} {status}")
    sys.exit(1 if status == "failed" else 0)


def _attach(
    client: ControlClient, reporter: Reporter, run_id: str, node_ids: list[str], log_format: str = "pretty"
) -> None:
    from doradus._runtime.foreground import RecordPrinter

    printer = RecordPrinter(node_ids, color=reporter.color, fmt=log_format)
    presses = 0

    def on_interrupt(_signum: int, _frame: Any) -> None:
        nonlocal presses
        presses += 1
        force = presses > 1
        reporter.warning("forcing the stop" if force else "stopping (Ctrl-C again to force)")
        client.post(f"/dataflows/{run_id}/stop", {"force": force})

    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        for entry in _follow(client, run_id, tail=10_000, node=None):
            printer(entry)
    finally:
        signal.signal(signal.SIGINT, previous)


def _follow(
    client: ControlClient,
    name_or_id: str,
    tail: int,
    node: str | list[str] | None,
    query: Any = None,
) -> Iterator[dict[str, Any]]:
    """Records of a dataflow as they come (the last ``tail`` matching first), until it ends.

    ``query`` (a `doradus._observability.query.LogQuery`) filters on the coordinator, on
    the backlog and on live records alike.
    """
    from urllib.parse import urlencode

    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    params: dict[str, Any] = {"tail": tail, "node": [node] if isinstance(node, str) else node}
    if query is not None:
        params.update(
            level=query.min_level,
            filter=",".join(sorted(query.levels)) if query.levels is not None else None,
            grep=query.grep.pattern if query.grep is not None else None,
            since=query.since,
            until=query.until,
        )
    encoded = urlencode({k: v for k, v in params.items() if v is not None}, doseq=True)
    url = f"{client.address.ws}/dataflows/{name_or_id}/logs/follow?{encoded}"
    with connect(url, additional_headers=client.headers or None) as ws:
        while True:
            try:
                raw = ws.recv(timeout=0.5)
            except TimeoutError:
                continue
            except ConnectionClosed:
                return
            yield cast("dict[str, Any]", json.loads(raw))


@click.command(context_settings=CONTEXT)
@click.argument("name_or_id", required=False)
@click.option("--all", "all_", is_flag=True, help="Stop every running dataflow.")
@click.option("--grace-duration", metavar="DURATION", default="5s", show_default=True,
              help="After Stop, how long nodes get before SIGTERM.")  # fmt: skip
@click.option("--force", is_flag=True, help="Terminate at once, without waiting for the nodes.")
@connection_options
def stop(name_or_id: str | None, all_: bool, grace_duration: str, force: bool, **opts: Any) -> None:
    """Stop the dataflow NAME_OR_ID (or the only running one, or --all)."""
    reporter = Reporter(color=False if opts["no_color"] else None)
    grace = parse_duration(grace_duration, "--grace-duration")
    client = _client(opts)
    with _failures(reporter):
        if name_or_id and all_:
            raise click.UsageError("give a NAME_OR_ID or --all, not both")
        targets = [name_or_id] if name_or_id else []
        if not name_or_id:
            running = [d["id"] for d in client.get("/dataflows") if d["status"] == "running"]
            if not all_ and len(running) != 1:
                raise click.UsageError(
                    f"{len(running)} dataflows are running: name one (see `doradus list`) or pass --all"
                )
            targets = running
        for target in targets:
            done = client.post(f"/dataflows/{target}/stop", {"grace_seconds": grace, "force": force})
            reporter.success(f"stop requested for {done['name']!r} ({done['id']})")


@click.command(context_settings=CONTEXT)
@click.argument("name_or_id")
@click.option("--grace-duration", metavar="DURATION", default="5s", show_default=True,
              help="After Stop, how long nodes get before SIGTERM.")  # fmt: skip
@output_option
@connection_options
def restart(name_or_id: str, grace_duration: str, output: str, **opts: Any) -> None:
    """Stop NAME_OR_ID gracefully, then start its file again with the same name and env.

    Prints the new id (or, with --output json|yaml, the new dataflow).
    """
    reporter = Reporter(color=False if opts["no_color"] else None)
    grace = parse_duration(grace_duration, "--grace-duration")
    client = _client(opts)
    client.timeout = max(client.timeout, grace + 45.0)  # stop, then a spawn
    with _failures(reporter):
        started = client.post(f"/dataflows/{name_or_id}/restart", {"grace_seconds": grace})
    reporter.success(f"restarted {started['name']!r} (new id {started['id']}, {started['nodes']} nodes)")
    if output == "table":
        click.echo(started["id"])
    else:
        _emit(started, output)


@click.command(context_settings=CONTEXT)
@click.option("--older-than", metavar="DURATION",
              help="Only those that ended at least this long ago (e.g. 10m, 1h).")  # fmt: skip
@output_option
@connection_options
def clean(older_than: str | None, output: str, **opts: Any) -> None:
    """Remove ended dataflows (finished, failed, stopped) from the coordinator's list.

    Running dataflows are never touched. Prints how many were removed
    (with --output json|yaml: ``{"removed": N, "ids": [...]}``).
    """
    reporter = Reporter(color=False if opts["no_color"] else None)
    age = parse_duration(older_than, "--older-than") if older_than else None
    with _failures(reporter):
        result = _client(opts).post("/dataflows/clean", {"older_than": age})
    if output == "table":
        reporter.success(f"removed {result['removed']} ended dataflow(s)")
    else:
        _emit(result, output)


_SORT_KEYS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "name": lambda d: d["name"],
    "started": lambda d: parse_timestamp(d["started_at"]),
    "status": lambda d: d["status"],
}


@click.command("list", context_settings=CONTEXT)
@click.option("--status", type=click.Choice(["running", "finished", "failed", "stopped"]), help="Only these.")
@click.option("--sort-by", type=click.Choice(sorted(_SORT_KEYS)), default="started", show_default=True)
@output_option
@connection_options
def list_(status: str | None, sort_by: str, output: str, **opts: Any) -> None:
    """List dataflows: running, finished, failed and stopped."""
    reporter = Reporter(color=False if opts["no_color"] else None)
    with _failures(reporter):
        flows = _client(opts).get("/dataflows")
    flows = sorted((d for d in flows if status in (None, d["status"])), key=_SORT_KEYS[sort_by])
    if output != "table":
        _emit(flows, output)
        return
    rows = [
        [d["name"], d["id"], _styled(d["status"]), str(d["nodes"]), d["machine"], _when(d["started_at"])]
        for d in flows
    ]
    _table(None, ["NAME", "ID", "STATUS", "NODES", "MACHINE", "STARTED"], rows)


def _show(value: Any, fmt: str = "{}") -> str:
    return "-" if value is None else fmt.format(value)


def _memory(value: int | None) -> str:
    return "-" if value is None else f"{value / 2**20:.1f} MiB"


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}/s"


def _latency(us: float | None) -> str:
    """``123 µs``, ``4.56 ms`` or ``1.23 s``.

    Example:
        >>> _latency(250.0), _latency(4560.0), _latency(None)
        ('250 µs', '4.56 ms', '-')
    """
    if us is None:
        return "-"
    if us < 1000:
        return f"{us:.0f} µs"
    if us < 1_000_000:
        return f"{us / 1000:.2f} ms"
    return f"{us / 1_000_000:.2f} s"


def _node_state(node: dict[str, Any]) -> str:
    state = _styled(str(node["state"]))
    code = node.get("exit_code")
    return state if code is None else f"{state} (exit {code})"


STATUS_COLUMNS = [
    "Node",
    "Status",
    "PID",
    "CPU",
    "Memory",
    "Input rate",
    "Output rate",
    "p50 latency",
    "Dropped",
    "Restarts",
    "Errors",
]


def _status_rows(flow: dict[str, Any]) -> list[list[str]]:
    return [
        [
            node_id,
            _node_state(n),
            _show(n.get("pid")),
            _show(n.get("cpu_percent"), "{:.1f}%"),
            _memory(n.get("memory_bytes")),
            _rate(n.get("input_rate")),
            _rate(n.get("output_rate")),
            _latency(n.get("p50_latency_us")),
            _show(n.get("dropped")),
            _show(n.get("restarts")),
            _show(n.get("errors")),
        ]
        for node_id, n in flow["nodes"].items()
    ]


@click.command(context_settings=CONTEXT)
@click.argument("name_or_id")
@output_option
@connection_options
def status(name_or_id: str, output: str, **opts: Any) -> None:
    """One dataflow and each node's state, pid, CPU, memory, rates, p50 latency, dropped, restarts, errors.

    Rates are messages/s over the last second; nodes report every second.
    """
    reporter = Reporter(color=False if opts["no_color"] else None)
    with _failures(reporter):
        flow = _client(opts).get(f"/dataflows/{name_or_id}")
    if output != "table":
        _emit(flow, output)
        return
    title = f"{flow['name']} ({flow['id']}): {flow['status']}"
    _table(title, STATUS_COLUMNS, _status_rows(flow), right=2)


TOP_COLUMNS = ["Dataflow", "Node", "Status", "PID", "CPU", "Memory", "Input rate", "Output rate", "Dropped"]


def _top_snapshot(client: ControlClient, name_or_id: str | None) -> list[dict[str, Any]]:
    """One object per node of the running dataflows (or of NAME_OR_ID), sorted."""
    if name_or_id:
        flows = [client.get(f"/dataflows/{name_or_id}")]
    else:
        running = [d["id"] for d in client.get("/dataflows") if d["status"] == "running"]
        flows = []
        for run_id in running:
            try:
                flows.append(client.get(f"/dataflows/{run_id}"))
            except ApiError:
                continue  # ended and forgotten between the two calls
    nodes = [
        {"dataflow": f["name"], "dataflow_id": f["id"], "node": node_id, **node}
        for f in flows
        for node_id, node in f["nodes"].items()
    ]
    return sorted(nodes, key=lambda n: (n["dataflow"], n["dataflow_id"], n["node"]))


def _top_table(nodes: list[dict[str, Any]]) -> Any:
    rows = [
        [
            n["dataflow"],
            n["node"],
            _node_state(n),
            _show(n.get("pid")),
            _show(n.get("cpu_percent"), "{:.1f}%"),
            _memory(n.get("memory_bytes")),
            _rate(n.get("input_rate")),
            _rate(n.get("output_rate")),
            _show(n.get("dropped")),
        ]
        for n in nodes
    ]
    flows = len({n["dataflow_id"] for n in nodes})
    title = f"doradus top: {flows} dataflow(s), {len(nodes)} node(s) at {_clock(time.time())}"
    return _make_table(title, TOP_COLUMNS, rows, right=3)


@click.command(context_settings=CONTEXT)
@click.argument("name_or_id", required=False)
@click.option("--once", is_flag=True, help="Print one snapshot and exit.")
@click.option(
    "--interval", metavar="DURATION", default="1s", show_default=True, help="Time between refreshes."
)
@output_option
@connection_options
def top(name_or_id: str | None, once: bool, interval: str, output: str, **opts: Any) -> None:
    """Live CPU, memory and message rates of each node of the running dataflows (or of NAME_OR_ID).

    The table refreshes every --interval until Ctrl-C. With --output json or
    yaml, each refresh prints one snapshot (a list of node objects, one JSON
    line each refresh); --once prints a single snapshot and exits.
    """
    reporter = Reporter(color=False if opts["no_color"] else None)
    period = max(0.1, parse_duration(interval, "--interval"))
    client = _client(opts)
    with _failures(reporter):
        try:
            if once:
                nodes = _top_snapshot(client, name_or_id)
                if output == "table":
                    _console().print(_top_table(nodes))
                else:
                    _emit(nodes, output)
                return
            if output != "table":
                while True:
                    nodes = _top_snapshot(client, name_or_id)
                    if output == "json":
                        click.echo(json.dumps(nodes, sort_keys=True))
                    else:
                        click.echo("---")
                        _emit(nodes, output)
                    time.sleep(period)
            if not sys.stdout.isatty():  # piped: one table per refresh, no cursor tricks
                while True:
                    _console().print(_top_table(_top_snapshot(client, name_or_id)))
                    time.sleep(period)
            from rich.live import Live

            with Live(
                _top_table(_top_snapshot(client, name_or_id)), console=_console(), auto_refresh=False
            ) as live:
                while True:
                    time.sleep(period)
                    live.update(_top_table(_top_snapshot(client, name_or_id)), refresh=True)
        except KeyboardInterrupt:
            return


logs_output_option = click.option(
    "--output",
    "--format",
    "output",
    type=click.Choice(["text", "json", "csv", "yaml"]),
    default="text",
    show_default=True,
    help="text for people; json (one object per line), csv (header + rows) or yaml (a list) for scripts.",
)
"""``--output text|json|csv|yaml`` (``--format`` alias): the ``logs`` variant of `output_option`."""


@click.command(context_settings=CONTEXT)
@click.argument("name_or_id")
@click.option("--node", "nodes", metavar="ID", multiple=True, help="Only this node's records (repeatable).")
@click.option(
    "--level", metavar="LEVEL", help="Only LEVEL and more severe (TRACE DEBUG INFO WARN ERROR FATAL)."
)
@click.option("--filter", "levels", metavar="LEVELS", help="Only these exact levels, comma separated.")
@click.option("--grep", metavar="REGEX", help="Only records whose message or fields match REGEX.")
@click.option(
    "--since",
    metavar="WHEN",
    help="Only records at or after WHEN: 30s, 10m, 2h, 1d ago, or an ISO 8601 time.",
)
@click.option("--until", metavar="WHEN", help="Only records at or before WHEN (same forms as --since).")
@click.option(
    "--tail", type=click.IntRange(min=0), help="Only the last N matching records (--follow: of the backlog)."
)
@click.option(
    "--follow", "-f", is_flag=True, help="Keep printing new matching records until the dataflow ends."
)
@click.option(
    "--group-by",
    type=click.Choice(["node", "level", "minute"]),
    help="Count records per node, level or minute.",
)
@logs_output_option
@connection_options
def logs(
    name_or_id: str,
    nodes: tuple[str, ...],
    level: str | None,
    levels: str | None,
    grep: str | None,
    since: str | None,
    until: str | None,
    tail: int | None,
    follow: bool,
    group_by: str | None,
    output: str,
    **opts: Any,
) -> None:
    """Search the log records of a dataflow, or of a run folder on disk.

    NAME_OR_ID is a dataflow on the coordinator, or a run folder (out/<run-id>),
    a logs.jsonl file, or a run id whose folder is under ./out/ (read from disk:
    no coordinator needed). Every given filter must hold. Text lines are
    TIME LEVEL NODE | message key=value..., coloured by level on a terminal.
    """
    from doradus._observability import query as lq

    reporter = Reporter(color=False if opts["no_color"] else None)
    try:
        query = lq.build_query(
            node=nodes, level=level, levels=levels, grep=grep, since=since, until=until, tail=tail
        )
    except lq.QueryError as exc:
        raise click.BadParameter(
            f"{exc.message}. Suggested fix: {exc.fix}", param_hint=f"--{exc.param}"
        ) from exc
    if follow and group_by:
        raise click.UsageError("--group-by counts records already there: drop --follow or --group-by")
    color = (
        output == "text"
        and not opts["no_color"]
        and "NO_COLOR" not in os.environ
        and (sys.stdout.isatty() or bool(os.environ.get("FORCE_COLOR")))
    )
    source = lq.local_log_source(name_or_id, Path.cwd())
    known: list[str] = list(nodes)
    records: Iterable[dict[str, Any]]
    if source is not None and not follow:
        seen: set[str] = set()

        def scan(found: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
            for record in found:
                seen.add(str(record.get("node") or lq.NO_NODE))
                yield record

        records = query.apply(scan(lq.read_log_source(source)))
        known = known or sorted(seen)  # the node column fits every node of the run
    else:
        if source is not None:  # a run `doradus run` registered: its id is the folder's name
            name_or_id = (source if source.is_dir() else source.parent).name
        client = _client(opts)
        with _failures(reporter):
            try:
                detail = client.get(f"/dataflows/{name_or_id}")  # a clear error for an unknown name
            except ServiceUnreachable as exc:
                if source is None:  # perhaps a finished `doradus run`, searched from elsewhere
                    exc.fix += (
                        f"; or, for a run of `doradus run`, give its folder: `doradus logs "
                        f"<dataflow folder>/out/{name_or_id}`"
                    )
                raise
            known = known or list(detail.get("nodes") or {})
            if follow:
                backlog = tail if tail is not None else 10_000
                records = _follow(client, name_or_id, backlog, list(nodes) or None, query=query)
            else:
                params: dict[str, Any] = {
                    "node": list(nodes) or None,
                    "level": query.min_level,
                    "filter": ",".join(sorted(query.levels)) if query.levels is not None else None,
                    "grep": grep,
                    "since": query.since,
                    "until": query.until,
                    "tail": tail,
                }
                records = client.get(
                    f"/dataflows/{name_or_id}/logs", params={k: v for k, v in params.items() if v is not None}
                )
    if group_by:
        rows = lq.group_records(records, group_by)
        if output == "text":
            from doradus.cli._render import plain_table

            table = [
                [row["key"], str(row["count"]), lq.short_timestamp({"timestamp": row["first"]}),
                 lq.short_timestamp({"timestamp": row["last"]}), row["sample"]]
                for row in rows
            ]  # fmt: skip
            click.echo(plain_table([group_by.upper(), "COUNT", "FIRST", "LAST", "SAMPLE"], table))
        elif output == "csv":
            click.echo(lq.to_csv(rows, lq.GROUP_COLUMNS), nl=False)
        elif output == "yaml":
            import yaml

            click.echo(yaml.safe_dump(rows, sort_keys=False), nl=False)
        else:
            for row in rows:
                click.echo(json.dumps(row, sort_keys=False))
        return
    if output == "yaml" and not follow:
        import yaml

        click.echo(yaml.safe_dump(list(records), sort_keys=True), nl=False)
        return
    if output == "text" and not follow:
        records = list(records)
        known = [*known, *(str(r.get("node") or lq.NO_NODE) for r in records)]
    width = lq.node_column_width([], known)
    if output == "csv":
        click.echo(lq.csv_header(), nl=False)
    try:
        for record in records:
            if output == "text":
                click.echo(lq.format_text(record, color, width), color=color)
            elif output == "json":
                click.echo(json.dumps(record, sort_keys=True, ensure_ascii=False))
            elif output == "csv":
                click.echo(lq.csv_row(record), nl=False)
            else:
                import yaml

                click.echo(yaml.safe_dump([record], sort_keys=True), nl=False)
    except KeyboardInterrupt:
        return


# ------------------------------------------------------- run beside up
REGISTER_CONNECT_TIMEOUT = 0.05
"""One quick attempt: `doradus run` must not wait when no coordinator runs."""
REPORT_EVERY = 0.5
REPORT_MAX_LINES = 2_000


class RunRegistration:
    """Tells a running coordinator about a dataflow `doradus run` runs itself (best effort).

    Every failure to report silently ends the reporting: the run never
    depends on the coordinator.

    Example::

        registration = RunRegistration.open(flow, run_id, Path("dataflow.yml"))
        if registration:
            registration.record(make_record("INFO", "hello", node="talker"))
            registration.finish(outcome)
    """

    def __init__(self, client: Any, run_id: str, name: str, address: str) -> None:
        import threading

        self.client = client
        self.run_id = run_id
        self.name = name
        self.address = address
        self._lock = threading.Lock()
        self._lines: list[dict[str, Any]] = []
        self._nodes: dict[str, dict[str, Any]] = {}
        self._broken = False
        self._daemon: Any = None
        self._on_stop: Any = None
        self._stop_seen = False
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="run-registration", daemon=True)
        self._thread.start()

    @classmethod
    def open(cls, flow: Any, run_id: str, path: Path) -> RunRegistration | None:
        """Register with the coordinator at the discovered address, if one answers at once.

        One TCP connect of at most 50 ms and no retry; None when there is no coordinator.

        Example::

            registration = RunRegistration.open(flow, "01a2...", Path("dataflow.yml"))
        """
        import socket

        try:
            address = resolve_address(None)
            with socket.create_connection((address.host, address.port), timeout=REGISTER_CONNECT_TIMEOUT):
                pass
            token = resolve_token(None, address)
        except (OSError, ValueError):
            return None
        import httpx

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
            if len(self._lines) < 10 * REPORT_MAX_LINES:
                self._lines.append(record)

    def on_stop(self, callback: Any) -> None:
        """Call ``callback()`` once when `doradus stop` asks for this dataflow (seen with a report).

        Example::

            registration.on_stop(lambda: os.kill(os.getpid(), signal.SIGINT))
        """
        self._on_stop = callback

    def watch(self, daemon: Any) -> None:
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
            return
        states = {"starting": "pending", "running": "running", "exited": "finished", "failed": "failed"}
        with self._lock:
            for node_id, values in metrics.items():
                entry = {k: v for k, v in values.items() if k != "state" and k != "exit_code"}
                entry["state"] = states.get(str(values.get("state")), "running")
                latency = values.get("p50_latency_us")
                entry["latency_p50_ms"] = None if latency is None else round(latency / 1000, 3)
                self._nodes.setdefault(node_id, {}).update(entry)

    def spawned(self, pids: dict[str, int | None] | None = None) -> None:
        """Every node was started: report them running."""
        with self._lock:
            for node_id, pid in (pids or {}).items():
                self._nodes.setdefault(node_id, {}).update(state="running", pid=pid)

    def finish(self, outcome: Any) -> None:
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
        while True:
            batch, lines = lines[:REPORT_MAX_LINES], lines[REPORT_MAX_LINES:]
            body = {"logs": batch, "nodes": nodes, "status": None if lines else status, "reason": reason}
            try:
                response = self.client.post(f"/dataflows/{self.run_id}/report", json=body)
                response.raise_for_status()
                stop = bool(response.json().get("stop_requested"))
            except Exception:
                self._broken = True
                return
            if stop and not self._stop_seen and self._on_stop is not None and status is None:
                self._stop_seen = True
                self._on_stop()
            nodes = {}
            if not lines:
                return


ALL_COMMANDS = {
    "coordinator": coordinator,
    "daemon": daemon,
    "up": up,
    "destroy": destroy,
    "down": destroy,
    "start": start,
    "stop": stop,
    "restart": restart,
    "clean": clean,
    "list": list_,
    "status": status,
    "top": top,
    "logs": logs,
}
"""Command name → command, for ``cli/_main.py`` to register."""
