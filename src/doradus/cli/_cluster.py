"""This machine's services: ``doradus coordinator``, ``daemon``, ``up`` and ``destroy`` (``down``).

Each parses its options, calls ``doradus._control.services`` (or the machine daemon), and
reports on stderr with a suggested fix when something fails.

Example::

    $ doradus up && doradus destroy
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from doradus._control.client import RECONNECT_WINDOW, ServiceUnreachable, parse_address, state_path
from doradus.cli._options import CONTEXT, connection_options, failures, make_client
from doradus.cli._render import Reporter

no_token_option = click.option(
    "--no-token",
    is_flag=True,
    help="Serve the API without a token (loopback only): every local user can then run programs as you.",
)
"""``--no-token``: the opt-out of the API token, for ``coordinator`` and ``up``."""
reconnect_window_option = click.option(
    "--reconnect-window",
    type=click.FloatRange(min=0),
    default=RECONNECT_WINDOW,
    show_default=True,
    metavar="SECONDS",
    help="How long the daemon keeps its dataflows running and reconnects when it loses the coordinator "
    "(0: stop them at once).",
)
"""``--reconnect-window``: for ``daemon`` and ``up``."""


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

    Its state is saved in the runtime folder (coordinator-PORT.db): started again
    at the same address, it restores its dataflows and its daemons reconnect.
    `doradus destroy` removes it.
    """
    from doradus._control.auth import is_loopback
    from doradus._control.services import serve_coordinator

    reporter = Reporter()
    if no_token and (token_file or generate_token):
        raise click.UsageError("--no-token cannot go with --token-file or --generate-token")
    if not is_loopback(bind) and (no_token or not (token_file or generate_token)):
        reporter.error(f"refusing to listen on {bind} without a token: anyone on the network could run code")
        reporter.info("Suggested fix: add --generate-token (or --token-file FILE), or bind 127.0.0.1")
        sys.exit(2)
    given = _read_token_file(token_file) if token_file else None

    def listening(made: Path | None) -> None:
        if made is not None:
            reporter.info(f"API token written to {made} (mode 0600); other machines need a copy")
        elif no_token:
            reporter.warning(
                "no API token: every user of this machine can use the API and run programs as you"
            )
        reporter.info(f"coordinator listening on http://{bind}:{port}/api/v1 (pid {os.getpid()})")

    try:
        serve_coordinator(
            bind,
            port,
            token=given,
            new_token=not (no_token or token_file),
            heartbeat_interval=heartbeat_interval,
            on_listening=listening,
        )
    except OSError as exc:
        reporter.error(f"cannot listen on {bind}:{port}: {exc.strerror or exc}")
        reporter.info("Suggested fix: is a coordinator already running? see `doradus list`, or pick --port")
        sys.exit(1)


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
@reconnect_window_option
@connection_options
def daemon(machine_id: str | None, reconnect_window: float, **opts: Any) -> None:
    """Run this machine's daemon in the foreground, connected to the coordinator.

    It tries once, then --retries times more, --retry-interval apart; when no
    coordinator answered, it exits 1 with a suggested fix. Once connected, if the
    coordinator goes away its dataflows keep running while it reconnects, for
    --reconnect-window seconds; then it stops them and exits 1.
    """
    from doradus._control.machine_daemon import MachineDaemon

    reporter = Reporter(color=False if opts["no_color"] else None)
    client = make_client(opts)
    runner = MachineDaemon(
        client.address,
        machine_id=machine_id,
        retries=client.retries,
        retry_interval=client.retry_interval,
        token=client.token,
        token_file=opts["token_file"],
        reconnect_window=reconnect_window,
        say=reporter.info,
    )
    with failures(reporter):
        sys.exit(runner.run())


@click.command(context_settings=CONTEXT)
@click.option("--port", type=click.IntRange(1, 65535), help="Coordinator port (default: from the address).")
@no_token_option
@reconnect_window_option
@connection_options
def up(port: int | None, no_token: bool, reconnect_window: float, **opts: Any) -> None:
    """Start a coordinator and this machine's daemon in the background.

    The API gets a new token (mode 0600 in the runtime folder, where every
    command finds it), or the one of --token-file; --no-token opts out.
    Returns once the daemon is connected, or fails with the cause and the
    last lines of the log file. Does nothing if a coordinator already answers.
    """
    from doradus._control.services import bring_up, log_tail, up_token

    reporter = Reporter(color=False if opts["no_color"] else None)
    client = make_client(opts)
    if port is not None:
        client.address = parse_address(f"{client.address.host}:{port}", "--port")
    if client.ping():
        reporter.success(f"a coordinator is already running at {client.address}")
        return
    if no_token and opts["token_file"]:
        raise click.UsageError("--no-token cannot go with --token-file")
    outcome = bring_up(
        client, *up_token(client, no_token, opts["token_file"]), reconnect_window=reconnect_window
    )
    if outcome.failure is None:
        reporter.success(
            f"coordinator and daemon running at {client.address} "
            f"(done in {outcome.seconds:.1f}s; state: {state_path()})"
        )
        return
    reporter.error(f"doradus up failed: {outcome.failure}")
    if outcome.log is not None:
        for line in log_tail(outcome.log):
            reporter.info(f"    {line}")
        reporter.info(f"full log: {outcome.log}")
    reporter.info("Suggested fix: read the log above; if the port is taken, pass --port or -c HOST:PORT")
    sys.exit(1)


@click.command(context_settings=CONTEXT)
@connection_options
def destroy(**opts: Any) -> None:
    """Stop every dataflow, the daemons and the coordinator started by `doradus up`; remove its state."""
    from doradus._control.services import tear_down

    reporter = Reporter(color=False if opts["no_color"] else None)
    client = make_client(opts)
    try:
        killed = tear_down(client)
    except ServiceUnreachable:
        with failures(reporter):
            raise
    note = f" (killed {killed} process(es) that did not exit)" if killed else ""
    reporter.success(f"coordinator at {client.address} and its daemons stopped{note}")


ALL_COMMANDS = {"coordinator": coordinator, "daemon": daemon, "up": up, "destroy": destroy, "down": destroy}
"""Command name → command, for ``cli/_main.py`` to register (``down`` is ``destroy``)."""
