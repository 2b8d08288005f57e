"""Steering one node of a running dataflow: ``doradus node pause|resume|stop|restart|set NAME``.

Each parses its options, calls ``doradus._control.node_commands`` through a `ControlClient`,
and says what was done (``--output json|yaml``: the API's answer on stdout). ``--dataflow``
names the dataflow; without it, the one running dataflow. See docs/steering.md.

Example::

    $ doradus node pause detector
    ✓ Paused node 'detector' of dataflow 'demo'.
    $ doradus node set detector --env THRESHOLD=0.7
    ✓ Restarted node 'detector' of dataflow 'demo' with new configuration (restarts: 1).
    $ doradus node set middle --data-format avro --schema reading.avsc
    ✓ Restarted node 'middle' of dataflow 'demo' with new configuration (restarts: 2).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from doradus._control import node_commands as api
from doradus._control.node_commands import NodeChange
from doradus.cli._options import (
    CONTEXT,
    connection_options,
    failures,
    make_client,
    output_option,
    parse_duration,
    parse_env,
)
from doradus.cli._render import Reporter, emit_data

F = TypeVar("F", bound=Callable[..., Any])
_GRACE_HELP = "How long the node gets after Stop before SIGTERM."


def _node_options(func: F) -> F:
    """NAME, ``--dataflow``, ``--output`` and the connection options of every node command."""
    func = connection_options(func)
    func = output_option(func)
    func = click.option(
        "--dataflow",
        "-d",
        metavar="NAME",
        help="The dataflow (name or id); needed only when several run.",
    )(func)
    return click.argument("name")(func)


@click.group(context_settings=CONTEXT)
def node() -> None:
    """Steer one node of a running dataflow: pause, resume, stop, restart, set its configuration."""


@node.command(context_settings=CONTEXT)
@_node_options
def pause(name: str, dataflow: str | None, output: str, **opts: Any) -> None:
    """Hold the input messages of node NAME: they queue (the oldest dropped past queue_size).

    The node keeps running; Stop and InputClosed still reach it. `doradus node resume` delivers
    what queued, in arrival order.
    """
    _simple(name, dataflow, output, opts, "pause")


@node.command(context_settings=CONTEXT)
@_node_options
def resume(name: str, dataflow: str | None, output: str, **opts: Any) -> None:
    """Deliver the input messages of paused node NAME again, those queued first."""
    _simple(name, dataflow, output, opts, "resume")


@node.command(context_settings=CONTEXT)
@click.option("--grace-duration", metavar="DURATION", default="5s", show_default=True, help=_GRACE_HELP)
@click.option("--wait/--no-wait", default=True, help="Return once it has ended (default), or at once.")
@_node_options
def stop(name: str, dataflow: str | None, grace_duration: str, wait: bool, output: str, **opts: Any) -> None:
    """Stop node NAME for good while the dataflow runs on; the nodes reading it see its outputs close.

    It gets Stop, then SIGTERM after --grace-duration, then SIGKILL. To stop the whole dataflow:
    `doradus stop`.
    """
    reporter = Reporter(color=False if opts["no_color"] else None)
    grace = parse_duration(grace_duration, "--grace-duration")
    client = make_client(opts)
    with failures(reporter):
        flow = api.running_dataflow(client, dataflow)
        done = api.request_node_action(client, flow, name, "stop", grace=grace)
        status = api.wait_ended(client, flow, name, grace) if wait else None
    if output != "table":
        emit_data({**done, "node": status} if status is not None else done, output)
        return
    if status is None:
        reporter.success(str(done["message"]))
        return
    reporter.success(f"Stopped node {name!r} of dataflow {done['dataflow']!r} ({status.get('state')}).")


@node.command(context_settings=CONTEXT)
@click.option("--grace-duration", metavar="DURATION", default="5s", show_default=True, help=_GRACE_HELP)
@click.option(
    "--wait/--no-wait", default=True, help="Return once the new process runs (default), or at once."
)
@_node_options
def restart(
    name: str, dataflow: str | None, grace_duration: str, wait: bool, output: str, **opts: Any
) -> None:
    """Stop node NAME and start it again; its edges stay wired (its peers see no InputClosed)."""
    _restart(name, dataflow, output, opts, grace_duration=grace_duration, wait=wait)


@node.command("set", context_settings=CONTEXT)
@click.option("--env", "env", multiple=True, metavar="K=V", help="Set a variable for the node (repeatable).")
@click.option(
    "--args", "args", metavar="ARGS", help="Its new arguments (shell-quoted), replacing the dataflow's."
)
@click.option(
    "--data-format",
    "data_format",
    metavar="FORMAT",
    help="Its outputs' new data format (arrow, avro, capnp, flatbuffers, ...), checked first.",
)
@click.option(
    "--schema",
    "schema",
    metavar="FILE[:TYPE]",
    help="The schema of the new format, relative to the dataflow file's folder (as the file writes it).",
)
@click.option("--grace-duration", metavar="DURATION", default="5s", show_default=True, help=_GRACE_HELP)
@click.option(
    "--wait/--no-wait", default=True, help="Return once the new process runs (default), or at once."
)
@_node_options
def set_(
    name: str,
    dataflow: str | None,
    env: tuple[str, ...],
    args: str | None,
    data_format: str | None,
    schema: str | None,
    grace_duration: str,
    wait: bool,
    output: str,
    **opts: Any,
) -> None:
    """Change node NAME's configuration live: restart just it with new --env, --args or --data-format.

    --env is merged over its values, --args replaces its arguments, --data-format (with --schema)
    sets its outputs' format: refused before anything stops when `doradus check` would refuse it.
    The dataflow's edges stay wired; messages sent to it meanwhile are dropped and counted.
    """
    if not env and args is None and data_format is None and schema is None:
        raise click.UsageError(
            "give --env K=V, --args or --data-format to change (or use `doradus node restart`)"
        )
    change = NodeChange(parse_env(env) or None, args, data_format, schema)
    _restart(name, dataflow, output, opts, grace_duration=grace_duration, wait=wait, change=change)


def _simple(name: str, dataflow: str | None, output: str, opts: dict[str, Any], action: str) -> None:
    reporter = Reporter(color=False if opts["no_color"] else None)
    client = make_client(opts)
    with failures(reporter):
        flow = api.running_dataflow(client, dataflow)
        done = api.request_node_action(client, flow, name, action)
    if output != "table":
        emit_data(done, output)
        return
    reporter.success(str(done["message"]))


def _restart(
    name: str,
    dataflow: str | None,
    output: str,
    opts: dict[str, Any],
    *,
    grace_duration: str,
    wait: bool,
    change: NodeChange | None = None,
) -> None:
    reporter = Reporter(color=False if opts["no_color"] else None)
    grace = parse_duration(grace_duration, "--grace-duration")
    client = make_client(opts)
    configured = " with new configuration" if change is not None else ""
    with failures(reporter):
        flow = api.running_dataflow(client, dataflow)
        before = int(api.node_status(client, flow, name).get("restarts") or 0)
        done = api.request_node_action(client, flow, name, "restart", change=change, grace=grace)
        status = api.wait_restarted(client, flow, name, before, grace) if wait else None
    if output != "table":
        emit_data({**done, "node": status} if status is not None else done, output)
        return
    if status is None:
        reporter.success(f"{done['message'][:-1]}{configured}.")
        return
    restarts = status.get("restarts")
    reporter.success(
        f"Restarted node {name!r} of dataflow {done['dataflow']!r}{configured} (restarts: {restarts})."
    )


ALL_COMMANDS = {"node": node}
"""Command name → command, for ``cli/_main.py`` to register."""
