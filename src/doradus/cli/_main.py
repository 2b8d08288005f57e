"""Command definitions. Each parses arguments, calls the library, renders."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from doradus.cli._render import (
    Reporter,
    StageDisplay,
    log_options,
    output_option,
    parse_duration,
    parse_env,
)

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


_CONTROL = "doradus.cli._control"
_LAZY_COMMANDS = {
    **dict.fromkeys(
        [
            "coordinator", "daemon", "up", "destroy", "down", "start", "stop",
            "restart", "clean", "list", "status", "top", "logs",
        ],
        _CONTROL,
    ),
    "init": "doradus.cli._project",
    "new": "doradus.cli._project",
    "version": "doradus.cli._tools",
    "completion": "doradus.cli._tools",
    "doctor": "doradus.cli._tools",
    "graph": "doradus.cli._graph",
    "build": "doradus.cli._build",
    "profile": "doradus.cli._profile",
}  # fmt: skip
"""Command name → module defining it (in ``ALL_COMMANDS`` or under its own name)."""


class _LazyGroup(click.Group):
    """Loads a command's module only when that command is used.

    ``doradus run`` is felt on every run: it should not pay for importing the
    control plane, the project templates or the graph code.
    """

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *_LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None or cmd_name not in _LAZY_COMMANDS:
            return command
        import importlib

        module = importlib.import_module(_LAZY_COMMANDS[cmd_name])
        table: dict[str, click.Command] = getattr(module, "ALL_COMMANDS", {})
        found: click.Command = table[cmd_name] if cmd_name in table else getattr(module, cmd_name)
        return found


@click.group(cls=_LazyGroup, context_settings=CONTEXT)
@click.version_option(package_name="doradus", prog_name="doradus")
@click.option(
    "--profile",
    envvar="DORADUS_PROFILE",
    metavar="NAME",
    help="Use [profiles.NAME] of doradus.toml (project, then user config) [env: DORADUS_PROFILE].",
)
@click.pass_context
def cli(ctx: click.Context, profile: str | None) -> None:
    """Doradus: run dora-style dataflows of Python nodes, fast."""
    if profile:
        _use_profile(ctx, profile)
    if ctx.invoked_subcommand == "daemon":  # `doradus run` does it as its run starts
        from doradus._paths import clean_stale_runs

        clean_stale_runs()  # folders of runs whose supervisor was killed with its keeper


def _use_profile(ctx: click.Context, name: str) -> None:
    """Activate a profile: coordinator for address discovery, defaults for every command."""
    import os

    from doradus._project import profiles as _profiles
    from doradus.cli._profile import profile_errors

    reporter = Reporter()
    with profile_errors(reporter):
        found = _profiles.load_profile(name)
    _profiles.activate(found)
    if found.log_level and "DORADUS_LOG_LEVEL" not in os.environ:
        os.environ["DORADUS_LOG_LEVEL"] = found.log_level.upper()
    defaults: dict[str, Any] = {}
    for command_name, command in cli.commands.items():
        names = {param.name for param in command.params}
        values: dict[str, Any] = {}
        if found.output and "output" in names:
            values["output"] = found.output
        if found.token_file and "token_file" in names:
            token = Path(found.token_file).expanduser()
            values["token_file"] = str(token if token.is_absolute() else found.source.parent / token)
        if found.backend and "backend" in names:
            values["backend"] = found.backend
        if values:
            defaults[command_name] = values
    ctx.default_map = {**(ctx.default_map or {}), **defaults}
    reporter.info(f"Loaded profile: {name}")


@cli.command(context_settings=CONTEXT)
@click.argument("dataflow", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--stop-after", metavar="DURATION", help="Stop the dataflow after this long (e.g. 10s, 500ms, 2m)."
)
@click.option(
    "--env", "env", multiple=True, metavar="K=V", help="Set an environment variable for every node."
)
@click.option(
    "--grace-duration",
    metavar="DURATION",
    default="5s",
    show_default=True,
    help="After Stop, how long nodes get to exit before they are terminated.",
)
@log_options
@click.option("--no-color", is_flag=True, help="Plain output (also when NO_COLOR is set or not a terminal).")
def run(
    dataflow: Path,
    stop_after: str | None,
    env: tuple[str, ...],
    grace_duration: str,
    log_level: str | None,
    log_format: str,
    no_color: bool,
) -> None:
    """Run DATAFLOW in the foreground until every node has exited.

    Node output and logs are printed prefixed by the node id and stored as
    structured records in out/<run-id>/logs.jsonl next to the dataflow file
    (search them with `doradus logs <run-id>`). Ctrl-C stops every node (a
    second Ctrl-C forces).
    """
    from doradus._dataflow.loader import load_dataflow_text, read_dataflow_text
    from doradus._dataflow.problems import sort_problems
    from doradus._exceptions import DescriptorError, ResourceLimitError
    from doradus._ids import new_run_id
    from doradus._runtime.foreground import RecordPrinter, run_dataflow
    from doradus.cli._control import RunRegistration

    reporter = Reporter(color=False if no_color else None)
    extra_env = parse_env(env)
    stop_seconds = parse_duration(stop_after, "--stop-after") if stop_after else None
    grace = parse_duration(grace_duration, "--grace-duration")
    stages = StageDisplay(color=reporter.color)
    stages.begin("Loading dataflow")
    text, unreadable = read_dataflow_text(dataflow)  # a regular file of at most 1 MiB, or why not
    stages.end(ok=text is not None)
    if text is None:
        reporter.problems(unreadable)
        sys.exit(2)
    stages.begin("Validating")
    try:
        flow = load_dataflow_text(text, dataflow, extra_env=extra_env)
    except DescriptorError as exc:
        stages.end(ok=False)
        reporter.problems(exc.problems)
        sys.exit(2)
    stages.end()
    reporter.problems(sort_problems([*flow.warnings, *flow.not_applied]))
    for note in _not_yet_supported(flow):
        reporter.warning(note)
    printer = RecordPrinter([n.id for n in flow.nodes], color=reporter.color, fmt=log_format)
    run_id = new_run_id()
    registration = RunRegistration.open(flow, run_id, dataflow)  # only when `up` (a coordinator) runs
    if registration is not None:
        reporter.info(f"Registered as {registration.name!r} with the coordinator at {registration.address}")

        def stop_asked() -> None:  # `doradus stop NAME` elsewhere: stop as Ctrl-C would
            import os
            import signal

            reporter.info("stop requested through the coordinator (`doradus stop`)")
            os.kill(os.getpid(), signal.SIGINT)

        registration.on_stop(stop_asked)
    reporter.info(f"Running dataflow {flow.name!r}: {len(flow.nodes)} nodes")
    stages.begin(f"Spawning {len(flow.nodes)} nodes")

    def spawned() -> None:
        stages.end()
        if registration is not None:
            registration.spawned({n.id: None for n in flow.nodes})

    def on_record(record: dict[str, Any]) -> None:
        printer(record)
        if registration is not None:
            registration.record(record)

    try:
        outcome = run_dataflow(
            flow,
            stop_after=stop_seconds,
            extra_env=extra_env,
            grace=grace,
            on_record=on_record,
            on_info=reporter.info,
            on_spawned=spawned,
            run_id=run_id,
            log_level=log_level,
            on_daemon=registration.watch if registration is not None else None,
        )
    except ResourceLimitError as exc:  # the machine cannot hold the run: nothing was started
        stages.end(ok=False)
        if registration is not None:
            registration.finish(None)
        reporter.error(str(exc))
        sys.exit(1)
    except BaseException:
        stages.end(ok=False)
        if registration is not None:
            registration.finish(None)
        raise
    if registration is not None:
        registration.finish(outcome)
    for drops in outcome.drops:  # the summary says which queues dropped, before the verdict
        reporter.warning(drops.message)
    reporter.outcome(outcome)
    sys.exit(outcome.exit_code)


@cli.command(context_settings=CONTEXT)
@click.argument("dataflow", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--no-color", is_flag=True, help="Plain output.")
@output_option
def check(dataflow: Path, no_color: bool, output: str) -> None:
    """Validate DATAFLOW and report every problem with file:line:column and a fix.

    Exits 0 when the file is valid (warnings allowed), 2 otherwise. With
    ``--output json|yaml`` the problems go to stdout as records
    (``file, line, column, severity, message, fix``).
    """
    from doradus._dataflow.loader import check_dataflow
    from doradus._dataflow.problems import sort_problems
    from doradus.cli._render import emit_data

    reporter = Reporter(color=False if no_color else None)
    flow, problems = check_dataflow(dataflow)
    errors = [p for p in problems if p.severity == "error"]
    valid = not errors and flow is not None
    if flow is not None:  # settings the file may give but Doradus does not apply yet: warnings too
        problems = sort_problems([*problems, *flow.not_applied])
    if output != "table":
        emit_data(
            {
                "file": str(dataflow),
                "valid": valid,
                "nodes": len(flow.nodes) if flow is not None else None,
                "problems": [
                    {
                        "file": str(p.location.file),
                        "line": p.location.line,
                        "column": p.location.column,
                        "severity": p.severity,
                        "message": p.message,
                        "fix": p.fix,
                    }
                    for p in problems
                ],
            },
            output,
        )
        sys.exit(0 if valid else 2)
    reporter.problems(problems)
    if not valid or flow is None:
        reporter.error(f"{dataflow}: {len(errors)} error(s)")
        sys.exit(2)
    reporter.success(f"{dataflow}: valid ({len(flow.nodes)} nodes)")


cli.add_command(check, name="validate")


def _not_yet_supported(flow: Any) -> list[str]:
    """What `doradus run` leaves to other commands (building, placing on machines).

    Settings not applied yet are the dataflow's ``not_applied`` warnings, which ``check`` prints too.
    """
    notes = []
    for node in flow.nodes:
        if node.build:
            notes.append(
                f"node {node.id!r} has a `build` command; `doradus run` does not build: "
                "run `doradus build` first"
            )
    machines = sorted({node.machine for node in flow.nodes if node.machine})
    if len(machines) > 1:
        notes.append(
            f"nodes are placed on machines {', '.join(machines)}; `doradus run` runs every node here: "
            "start a daemon on each machine (`doradus daemon --machine-id NAME -c COORDINATOR`) "
            "and use `doradus start` to place them"
        )
    return notes


def main() -> None:
    """Entry point of the ``doradus`` console script."""
    cli()
