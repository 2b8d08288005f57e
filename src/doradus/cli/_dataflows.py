"""Dataflows on the coordinator: ``doradus start``, ``stop``, ``restart``, ``clean`` and ``list``.

Each parses its options, calls ``doradus._control.dataflows`` through a `ControlClient`, and
renders: tables on a terminal, ``--output json|yaml`` on stdout for scripts.

Example::

    $ doradus start dataflow.yml --detach && doradus list --output json
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Any

import click

from doradus._control import dataflows as api
from doradus._control.client import ControlClient
from doradus.cli._options import (
    CONTEXT,
    connection_options,
    failures,
    log_options,
    make_client,
    output_option,
    parse_duration,
    parse_env,
)
from doradus.cli._render import Reporter, emit_data, print_table, styled_status, when

_GRACE_HELP = "After Stop, how long nodes get before SIGTERM."


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
    if flow is None or text is None:
        reporter.error(f"{dataflow}: {sum(p.severity == 'error' for p in problems)} error(s)")
        sys.exit(2)
    client = make_client(opts)
    with failures(reporter):
        started = api.start_dataflow(client, dataflow, text, name=name, env=extra_env, log_level=log_level)
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
    client: ControlClient, reporter: Reporter, run_id: str, node_ids: list[str], log_format: str
) -> None:
    """Print the dataflow's records until it ends; Ctrl-C asks it to stop, a second one forces."""
    from doradus._control.logs import follow_logs
    from doradus._observability.terminal import RecordPrinter

    printer = RecordPrinter(node_ids, color=reporter.color, fmt=log_format)
    presses = 0

    def on_interrupt(_signum: int, _frame: Any) -> None:
        nonlocal presses
        presses += 1
        force = presses > 1
        reporter.warning("forcing the stop" if force else "stopping (Ctrl-C again to force)")
        api.stop_dataflow(client, run_id, force=force)

    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        for entry in follow_logs(client, run_id):
            printer(entry)
    finally:
        signal.signal(signal.SIGINT, previous)


@click.command(context_settings=CONTEXT)
@click.argument("name_or_id", required=False)
@click.option("--all", "all_", is_flag=True, help="Stop every running dataflow.")
@click.option("--grace-duration", metavar="DURATION", default="5s", show_default=True, help=_GRACE_HELP)
@click.option("--force", is_flag=True, help="Terminate at once, without waiting for the nodes.")
@connection_options
def stop(name_or_id: str | None, all_: bool, grace_duration: str, force: bool, **opts: Any) -> None:
    """Stop the dataflow NAME_OR_ID (or the only running one, or --all)."""
    reporter = Reporter(color=False if opts["no_color"] else None)
    grace = parse_duration(grace_duration, "--grace-duration")
    client = make_client(opts)
    with failures(reporter):
        if name_or_id and all_:
            raise click.UsageError("give a NAME_OR_ID or --all, not both")
        targets = [name_or_id] if name_or_id else []
        if not name_or_id:
            running = api.running_ids(client)
            if not all_ and len(running) != 1:
                raise click.UsageError(
                    f"{len(running)} dataflows are running: name one (see `doradus list`) or pass --all"
                )
            targets = running
        for target in targets:
            done = api.stop_dataflow(client, target, grace=grace, force=force)
            reporter.success(f"stop requested for {done['name']!r} ({done['id']})")


@click.command(context_settings=CONTEXT)
@click.argument("name_or_id")
@click.option("--grace-duration", metavar="DURATION", default="5s", show_default=True, help=_GRACE_HELP)
@output_option
@connection_options
def restart(name_or_id: str, grace_duration: str, output: str, **opts: Any) -> None:
    """Stop NAME_OR_ID gracefully, then start its file again with the same name and env.

    Prints the new id (or, with --output json|yaml, the new dataflow).
    """
    reporter = Reporter(color=False if opts["no_color"] else None)
    grace = parse_duration(grace_duration, "--grace-duration")
    client = make_client(opts)
    with failures(reporter):
        started = api.restart_dataflow(client, name_or_id, grace)
    reporter.success(f"restarted {started['name']!r} (new id {started['id']}, {started['nodes']} nodes)")
    if output == "table":
        click.echo(started["id"])
    else:
        emit_data(started, output)


@click.command(context_settings=CONTEXT)
@click.option(
    "--older-than", metavar="DURATION", help="Only those that ended at least this long ago (e.g. 10m, 1h)."
)
@output_option
@connection_options
def clean(older_than: str | None, output: str, **opts: Any) -> None:
    """Remove ended dataflows (finished, failed, stopped) from the coordinator's list.

    Running dataflows are never touched. Prints how many were removed
    (with --output json|yaml: ``{"removed": N, "ids": [...]}``).
    """
    reporter = Reporter(color=False if opts["no_color"] else None)
    age = parse_duration(older_than, "--older-than") if older_than else None
    with failures(reporter):
        result = api.clean_dataflows(make_client(opts), age)
    if output == "table":
        reporter.success(f"removed {result['removed']} ended dataflow(s)")
    else:
        emit_data(result, output)


@click.command("list", context_settings=CONTEXT)
@click.option("--status", type=click.Choice(api.STATUSES), help="Only these.")
@click.option("--sort-by", type=click.Choice(sorted(api.SORT_KEYS)), default="started", show_default=True)
@output_option
@connection_options
def list_(status: str | None, sort_by: str, output: str, **opts: Any) -> None:
    """List dataflows: running, finished, failed and stopped."""
    reporter = Reporter(color=False if opts["no_color"] else None)
    with failures(reporter):
        flows = api.list_dataflows(make_client(opts), status, sort_by)
    if output != "table":
        emit_data(flows, output)
        return
    rows = [
        [d["name"], d["id"], styled_status(d["status"]), str(d["nodes"]), d["machine"], when(d["started_at"])]
        for d in flows
    ]
    print_table(None, ["NAME", "ID", "STATUS", "NODES", "MACHINE", "STARTED"], rows)


ALL_COMMANDS = {"start": start, "stop": stop, "restart": restart, "clean": clean, "list": list_}
"""Command name → command, for ``cli/_main.py`` to register."""
