"""The nodes of running dataflows: ``doradus node list|info`` and ``node pause|resume|stop|restart|set NAME``.

``list`` and ``info`` show what the coordinator knows of the nodes (state, machine, inputs,
outputs, rates); the others steer one node. Each parses its options, calls
``doradus._control.node_commands`` through a `ControlClient`, and says what it found or did
(``--output json|yaml``: the API's answer on stdout). ``--dataflow`` names the dataflow;
without it, the one running dataflow (``list``: every running one). See docs/steering.md.

Example::

    $ doradus node list
    $ doradus node info detector --output json
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
from doradus.cli._node_views import info_lines, input_rows, list_rows, output_rows
from doradus.cli._options import (
    CONTEXT,
    connection_options,
    failures,
    make_client,
    output_option,
    parse_duration,
    parse_env,
)
from doradus.cli._render import Reporter, emit_data, print_table
from doradus.cli._status import reason_lines

F = TypeVar("F", bound=Callable[..., Any])
_GRACE_HELP = "How long the node gets after Stop before SIGTERM."


def _node_options(func: F) -> F:
    """NAME, ``--dataflow``, ``--output`` and the connection options of every node command."""
    func = connection_options(func)
    func = output_option(func)
    func = _DATAFLOW(func)
    return click.argument("name")(func)


_DATAFLOW = click.option(
    "--dataflow",
    "-d",
    metavar="NAME",
    help="The dataflow (name or id); needed only when several run.",
)


@click.group(context_settings=CONTEXT)
def node() -> None:
    """See the nodes of running dataflows (list, info) and steer one: pause, resume, stop, restart, set."""


@node.command("list", context_settings=CONTEXT)
@click.option("--dataflow", "-d", metavar="NAME", help="Only this dataflow's nodes (name or id).")
@output_option
@connection_options
def list_(dataflow: str | None, output: str, **opts: Any) -> None:
    """Every node of the running dataflows (or of --dataflow): state, pid, machine, restarts, CPU, memory.

    Below the table, why a node is in its state when that needs saying. --output json|yaml prints
    each node's full object (as `doradus node info` does).
    """
    reporter = Reporter(color=False if opts["no_color"] else None)
    with failures(reporter):
        nodes = api.node_infos(make_client(opts), dataflow)
    if output != "table":
        emit_data(nodes, output)
        return
    if not nodes:
        reporter.info("No dataflow is running." if not dataflow else f"Dataflow {dataflow!r} has no node.")
        return
    columns, rows = list_rows(nodes)
    print_table(None, columns, rows, right=4)
    for line in reason_lines(nodes):
        click.echo(line)


@node.command(context_settings=CONTEXT)
@click.argument("name")
@_DATAFLOW
@output_option
@connection_options
def info(name: str, dataflow: str | None, output: str, **opts: Any) -> None:
    """Everything known of node NAME: state, pid, machine, kind, inputs, outputs, rates, parameters.

    Inputs show their source, queue (size and policy), rate, received, dropped and queued counts
    and median latency; outputs their rate, sent messages and bytes, data format, backends and
    readers. Rates are over the node's last two reports (it reports every second).
    """
    reporter = Reporter(color=False if opts["no_color"] else None)
    client = make_client(opts)
    with failures(reporter):
        found = api.node_info(client, api.running_dataflow(client, dataflow), name)
    if output != "table":
        emit_data(found, output)
        return
    for line in info_lines(found):
        click.echo(line)
    if found["inputs"]:
        print_table("Inputs", *input_rows(found), right=3)
    if found["outputs"]:
        print_table("Outputs", *output_rows(found), right=4)


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
