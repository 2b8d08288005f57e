"""``doradus run`` and ``doradus check``: a dataflow file run in the foreground, or checked.

Neither needs a coordinator; ``run`` reports to one when one happens to run (see
``doradus._control.registration``), and never loads the rest of the control plane.

Example::

    $ doradus check dataflow.yml && doradus run dataflow.yml --stop-after 10s
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from doradus.cli._options import CONTEXT, log_options, output_option, parse_duration, parse_env
from doradus.cli._render import Reporter, StageDisplay

if TYPE_CHECKING:
    from doradus._control.registration import RunRegistration
    from doradus._dataflow.model import Dataflow
    from doradus._runtime.foreground import RunOutcome


@click.command(context_settings=CONTEXT)
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
    from doradus._unsafe.keeper import prestart

    prestart()  # the run's keeper starts its interpreter while this one loads the run's modules
    from doradus._control.registration import RunRegistration
    from doradus._ids import new_run_id

    reporter = Reporter(color=False if no_color else None)
    extra_env = parse_env(env)
    stop_seconds = parse_duration(stop_after, "--stop-after") if stop_after else None
    grace = parse_duration(grace_duration, "--grace-duration")
    stages = StageDisplay(color=reporter.color)
    flow = _load(dataflow, extra_env, reporter, stages)
    run_id = new_run_id()
    registration = RunRegistration.open(flow, run_id, dataflow)  # only when `up` (a coordinator) runs
    if registration is not None:
        _registered(registration, reporter)
    reporter.info(f"Running dataflow {flow.name!r}: {len(flow.nodes)} nodes")
    stages.begin(f"Spawning {len(flow.nodes)} nodes")
    outcome = _run(
        flow,
        registration,
        reporter,
        stages,
        log_format=log_format,
        stop_after=stop_seconds,
        extra_env=extra_env,
        grace=grace,
        run_id=run_id,
        log_level=log_level,
    )
    for drops in outcome.drops:  # the summary says which queues dropped, before the verdict
        reporter.warning(drops.message)
    reporter.outcome(outcome)
    sys.exit(outcome.exit_code)


def _load(path: Path, extra_env: dict[str, str], reporter: Reporter, stages: StageDisplay) -> Dataflow:
    """The checked dataflow of ``path``, its stages shown; every problem and exit 2 when it has errors."""
    from doradus._dataflow.loader import load_dataflow_text, read_dataflow_text
    from doradus._dataflow.problems import sort_problems
    from doradus._exceptions import DescriptorError
    from doradus._runtime.foreground import not_yet_supported

    stages.begin("Loading dataflow")
    text, unreadable = read_dataflow_text(path)  # a regular file of at most 1 MiB, or why not
    stages.end(ok=text is not None)
    if text is None:
        reporter.problems(unreadable)
        sys.exit(2)
    stages.begin("Validating")
    try:
        flow = load_dataflow_text(text, path, extra_env=extra_env)
    except DescriptorError as exc:
        stages.end(ok=False)
        reporter.problems(exc.problems)
        sys.exit(2)
    stages.end()
    reporter.problems(sort_problems([*flow.warnings, *flow.not_applied]))
    for note in not_yet_supported(flow):
        reporter.warning(note)
    return flow


def _registered(registration: RunRegistration, reporter: Reporter) -> None:
    """Say so, and stop as Ctrl-C would when `doradus stop NAME` asks elsewhere."""
    reporter.info(f"Registered as {registration.name!r} with the coordinator at {registration.address}")

    def stop_asked() -> None:
        import os
        import signal

        reporter.info("stop requested through the coordinator (`doradus stop`)")
        os.kill(os.getpid(), signal.SIGINT)

    registration.on_stop(stop_asked)


def _run(
    flow: Dataflow,
    registration: RunRegistration | None,
    reporter: Reporter,
    stages: StageDisplay,
    *,
    log_format: str,
    stop_after: float | None,
    extra_env: dict[str, str],
    grace: float,
    run_id: str,
    log_level: str | None,
) -> RunOutcome:
    """`run_dataflow` with its records printed (and reported); exit 1 when the machine cannot hold it."""
    from doradus._exceptions import ResourceLimitError
    from doradus._observability.terminal import RecordPrinter
    from doradus._runtime.foreground import run_dataflow

    printer = RecordPrinter([n.id for n in flow.nodes], color=reporter.color, fmt=log_format)

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
            stop_after=stop_after,
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
    return outcome


@click.command(context_settings=CONTEXT)
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
