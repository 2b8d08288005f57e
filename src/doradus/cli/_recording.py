"""``doradus record``, ``doradus replay`` and ``doradus recording info|export``: runs kept in MCAP.

``record`` runs a dataflow in the foreground as ``run`` does, with a recorder node added
(`doradus._recording.plan`), or with ``--attach`` records one already running
(`doradus.cli._record_attach`); ``replay`` runs the recorded (or a given) dataflow with nodes
swapped for replayers; ``recording`` reads files (`doradus._recording.info`, ``.export``).

Example::

    $ doradus record dataflow.yml -o run.mcap --stop-after 10s
    $ doradus record --attach demo -o run.mcap --duration 30s   # a dataflow already running
    $ doradus recording info run.mcap
    $ doradus replay run.mcap --replace camera --speed 2
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import click

from doradus.cli._options import CONTEXT, log_options, output_option, parse_duration, parse_env
from doradus.cli._render import Reporter, StageDisplay, emit_data, plain_table

if TYPE_CHECKING:
    from doradus._dataflow.model import Dataflow
    from doradus._recording.config import Compression
    from doradus._recording.export import ExportFormat
    from doradus._recording.info import RecordingInfo
    from doradus._runtime.foreground import RunOutcome

F = TypeVar("F", bound=Callable[..., Any])
COMPRESSIONS = ("zstd", "lz4", "none")
"""The chunk compressions (`doradus._recording.config.COMPRESSIONS`, without importing it)."""
EXPORT_FORMATS = ("jsonl", "csv", "parquet")


@dataclass(frozen=True)
class _RunSettings:
    """What ``record`` and ``replay`` take from ``run``'s options."""

    stop_after: float | None
    env: dict[str, str]
    grace: float
    log_level: str | None
    log_format: str


def _run_options(func: F) -> F:
    """``--stop-after``, ``--env``, ``--grace-duration``, the log options and ``--no-color``, as ``run``."""
    for option in reversed(
        [
            click.option("--stop-after", metavar="DURATION", help="Stop after this long (e.g. 10s, 2m)."),
            click.option("--env", "env", multiple=True, metavar="K=V", help="Set a variable for every node."),
            click.option(
                "--grace-duration",
                metavar="DURATION",
                default="5s",
                show_default=True,
                help="After Stop, how long nodes get to exit before they are terminated.",
            ),
            log_options,
            click.option("--no-color", is_flag=True, help="Plain output."),
        ]
    ):
        func = option(func)
    return func


def _settings(
    stop_after: str | None, env: tuple[str, ...], grace: str, level: str | None, fmt: str
) -> _RunSettings:
    return _RunSettings(
        stop_after=parse_duration(stop_after, "--stop-after") if stop_after else None,
        env=parse_env(env),
        grace=parse_duration(grace, "--grace-duration"),
        log_level=level,
        log_format=fmt,
    )


@contextmanager
def _errors(reporter: Reporter, code: int = 1) -> Iterator[None]:
    """A `RecordingError` becomes its message and exit ``code``."""
    from doradus._recording.errors import RecordingError

    try:
        yield
    except RecordingError as exc:
        reporter.error(str(exc))
        sys.exit(code)


def _patterns(values: tuple[str, ...]) -> list[str]:
    """``--topics`` values, repeated or comma separated."""
    return [p.strip() for value in values for p in value.split(",") if p.strip()]


@click.command(context_settings=CONTEXT)
@click.argument("dataflow", type=click.Path(path_type=Path, dir_okay=False), required=False)
@click.option(
    "--attach",
    is_flag=False,
    flag_value="",
    default=None,
    metavar="[NAME]",
    help="Record a dataflow that already runs on this machine (name or id; none: the only one running).",
)
@click.option(
    "--duration",
    metavar="DURATION",
    help="With --attach: stop recording after this long (the dataflow runs on). Default: Ctrl-C.",
)
@click.option(
    "-c",
    "--coordinator",
    metavar="HOST:PORT",
    help="With --attach: the coordinator asked for a NAME no run here has (default: as other commands).",
)
@click.option(
    "--token-file", type=click.Path(dir_okay=False), help="With --attach: file holding the API token."
)
@click.option(
    "-o",
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    help="The MCAP file to write.",
)
@click.option(
    "--topics",
    multiple=True,
    metavar="NODE/OUTPUT",
    help="Record only these outputs: NODE/OUTPUT, NODE or a glob (repeat or comma separate). Default: all.",
)
@click.option("--compression", type=click.Choice(COMPRESSIONS), default="zstd", show_default=True)
@click.option("--chunk-size", metavar="SIZE", default="1MiB", show_default=True, help="Bytes per chunk.")
@click.option(
    "--queue-size",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="Messages each output may queue at the recorder before the oldest is dropped (and counted).",
)
@_run_options
def record(
    dataflow: Path | None,
    attach: str | None,
    duration: str | None,
    coordinator: str | None,
    token_file: str | None,
    out: Path,
    topics: tuple[str, ...],
    compression: str,
    chunk_size: str,
    queue_size: int,
    stop_after: str | None,
    env: tuple[str, ...],
    grace_duration: str,
    log_level: str | None,
    log_format: str,
    no_color: bool,
) -> None:
    """Run DATAFLOW in the foreground, as `run` does, recording its messages to an MCAP file.

    Every output (or those --topics names) is written with its metadata and timing until the
    dataflow ends or Ctrl-C stops it; the file is then finished (summary and footer). A
    recording cut short (the recorder killed) stays readable up to its last complete chunk.

    With --attach [NAME], record a dataflow already running on this machine (`doradus start
    --detach`, or `doradus run`) instead, until Ctrl-C, --duration or its end; it runs on.
    """
    from doradus._ids import new_run_id
    from doradus._recording.plan import plan_recording
    from doradus.cli._run import _load

    reporter = Reporter(color=False if no_color else None)
    size = _chunk_size(chunk_size)
    if attach is not None:
        _refuse_with_attach(dataflow, attach, stop_after, env)
        from doradus._recording.attach import AttachSettings
        from doradus.cli._record_attach import AttachRequest, record_attach

        attached = AttachSettings(
            out,
            topics=tuple(_patterns(topics)),
            compression=cast("Compression", compression),  # one of COMPRESSIONS (click.Choice)
            chunk_size=size,
            queue_size=queue_size,
            duration=parse_duration(duration, "--duration") if duration else None,
        )
        connection = {"coordinator": coordinator, "token_file": token_file}
        sys.exit(record_attach(AttachRequest(attach or None, attached, connection), reporter))
    if dataflow is None:
        raise click.UsageError(
            "give the DATAFLOW file to run and record, or --attach NAME to record one running"
        )
    if duration is not None:
        raise click.UsageError(
            "--duration goes with --attach; to stop the dataflow you run, use --stop-after"
        )
    settings = _settings(stop_after, env, grace_duration, log_level, log_format)
    stages = StageDisplay(color=reporter.color)
    flow = _load(dataflow, settings.env, reporter, stages)
    run_id = new_run_id()
    with _errors(reporter, code=2):
        plan = plan_recording(
            flow,
            output=out,
            run_id=run_id,
            topics=_patterns(topics),
            compression=cast("Compression", compression),  # one of COMPRESSIONS (click.Choice)
            chunk_size=size,
            queue_size=queue_size,
        )
    reporter.info(f"Recording {len(plan.topics)} outputs of dataflow {flow.name!r} to {out}")
    outcome = _start(plan.flow, dataflow, run_id, reporter, stages, settings)
    for drops in outcome.drops:
        reporter.warning(drops.message)
    _recorded(out, reporter)
    reporter.outcome(outcome)
    sys.exit(outcome.exit_code)


def _chunk_size(text: str) -> int:
    from doradus._quantities import parse_byte_size

    size = parse_byte_size(text)
    if not size:
        raise click.BadParameter(f"{text!r} is not a size; write e.g. 1MiB or 4MB", param_hint="--chunk-size")
    return size


def _refuse_with_attach(
    dataflow: Path | None, attach: str, stop_after: str | None, env: tuple[str, ...]
) -> None:
    """Options of a run ``record`` starts, given with --attach (which starts nothing): a usage error."""
    if dataflow is not None:
        raise click.UsageError(
            f"--attach records a running dataflow: give its name (--attach {attach or 'NAME'}), not a file "
            f"({dataflow}); to run and record a file, leave --attach out"
        )
    if stop_after is not None:
        raise click.UsageError("--stop-after stops a dataflow `record` runs; with --attach use --duration")
    if env:
        raise click.UsageError("--env sets variables of a dataflow `record` runs; --attach starts none")


def _recorded(out: Path, reporter: Reporter) -> None:
    """What the file holds once the run is over, in one line."""
    from doradus._recording.errors import RecordingError
    from doradus._recording.info import recording_info

    try:
        info = recording_info(out)
    except RecordingError as exc:
        reporter.error(f"no recording: {exc}")
        return
    messages = sum(t.messages for t in info.topics)
    line = f"{messages} messages on {len(info.topics)} topics in {out} ({_mib(info.size)})"
    if info.complete:
        reporter.success(f"recorded {line}")
    else:
        reporter.warning(f"recording not finished: {line}, readable up to its last complete chunk")


@click.command(context_settings=CONTEXT)
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--speed",
    type=click.FloatRange(min=0),
    default=1.0,
    show_default=True,
    help="Pace relative to the recording (2.0 twice as fast); 0 as fast as possible without losing messages.",
)
@click.option("--loop", is_flag=True, help="Start again after the last message, until stopped.")
@click.option(
    "--replace",
    multiple=True,
    metavar="NODE",
    help="Replace this node by its recorded outputs (repeatable). Default: the recorded source nodes.",
)
@click.option(
    "--topics",
    multiple=True,
    metavar="NODE/OUTPUT",
    help="Replay only these recorded outputs (NODE/OUTPUT, NODE or a glob); the others stay silent.",
)
@click.option(
    "--dataflow",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Run this dataflow file instead of the one the recording holds.",
)
@_run_options
def replay(
    file: Path,
    speed: float,
    loop: bool,
    replace: tuple[str, ...],
    topics: tuple[str, ...],
    dataflow: Path | None,
    stop_after: str | None,
    env: tuple[str, ...],
    grace_duration: str,
    log_level: str | None,
    log_format: str,
    no_color: bool,
) -> None:
    """Run the dataflow FILE recorded, with nodes replaced by what they sent then.

    Each replaced node's recorded messages are published on its outputs with their recorded
    metadata, at their recorded pace (times --speed); the other nodes run as they are now.
    """
    from doradus._ids import new_run_id
    from doradus._recording.plan import plan_replay
    from doradus._recording.reader import Recording

    reporter = Reporter(color=False if no_color else None)
    settings = _settings(stop_after, env, grace_duration, log_level, log_format)
    stages = StageDisplay(color=reporter.color)
    run_id = new_run_id()
    with _errors(reporter, code=2), Recording.open(file) as recording:
        flow, path = _replayed_dataflow(recording, dataflow, settings.env, reporter, stages)
        plan = plan_replay(
            flow,
            recording,
            run_id=run_id,
            replace=_patterns(replace),
            topics=_patterns(topics),
            speed=speed,
            loop=loop,
        )
        if not recording.complete:
            reporter.warning(f"{file} was not finished: replaying up to its last complete chunk")
    pace = "as fast as possible" if speed == 0 else f"at {speed:g}x"
    for node, found in plan.topics.items():
        reporter.info(f"Replaying {', '.join(found) or 'nothing'} in place of node {node!r} {pace}")
    outcome = _start(plan.flow, path, run_id, reporter, stages, settings)
    for drops in outcome.drops:
        reporter.warning(drops.message)
    reporter.outcome(outcome)
    sys.exit(outcome.exit_code)


def _replayed_dataflow(
    recording: Any, given: Path | None, env: dict[str, str], reporter: Reporter, stages: StageDisplay
) -> tuple[Dataflow, Path]:
    """The dataflow to replay: the file given, else the one the recording holds (at its old place)."""
    from doradus._dataflow.loader import load_dataflow_text
    from doradus._exceptions import DescriptorError
    from doradus._recording.errors import RecordingError
    from doradus.cli._run import _load

    if given is not None:
        return _load(given, env, reporter, stages), given
    found = recording.dataflow_text()
    if found is None:
        raise RecordingError(f"{recording.path} holds no dataflow file", fix="give one with --dataflow FILE")
    path = Path(found[0])
    if not path.parent.is_dir():
        raise RecordingError(
            f"the recorded dataflow ran in {path.parent}, which no longer exists",
            fix="give the dataflow with --dataflow FILE (its nodes are found next to it)",
        )
    stages.begin("Loading the recorded dataflow")
    try:
        flow = load_dataflow_text(found[1], path, extra_env=env)
    except DescriptorError as exc:
        stages.end(ok=False)
        reporter.problems(exc.problems)
        sys.exit(2)
    stages.end()
    return flow, path


def _start(
    flow: Dataflow, path: Path, run_id: str, reporter: Reporter, stages: StageDisplay, settings: _RunSettings
) -> RunOutcome:
    """Run ``flow`` as ``doradus run`` does (printed, and reported to a coordinator if one runs)."""
    from doradus._control.registration import RunRegistration
    from doradus.cli._run import _registered, _run

    registration = RunRegistration.open(flow, run_id, path)
    if registration is not None:
        _registered(registration, reporter)
    stages.begin(f"Spawning {len(flow.nodes)} nodes")
    return _run(
        flow,
        registration,
        reporter,
        stages,
        log_format=settings.log_format,
        stop_after=settings.stop_after,
        extra_env=settings.env,
        grace=settings.grace,
        run_id=run_id,
        log_level=settings.log_level,
    )


@click.group(context_settings=CONTEXT)
def recording() -> None:
    """Read recordings (MCAP files `doradus record` writes): summarise, export."""


@recording.command("info", context_settings=CONTEXT)
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@output_option
def info(file: Path, output: str) -> None:
    """Summarise FILE: topics, message counts, rates, duration, size, compression.

    A file that was not finished (its recorder killed) is read up to its last complete chunk.
    """
    from doradus._recording.info import recording_info

    reporter = Reporter()
    with _errors(reporter):
        found = recording_info(file)
    if output != "table":
        emit_data(found.to_json(), output)
        return
    _print_info(found, reporter)


def _print_info(info: RecordingInfo, reporter: Reporter) -> None:
    state = "complete" if info.complete else "not finished"
    ratio = f", ratio {info.ratio:.1f}" if info.ratio else ""
    click.echo(f"file:        {info.path} ({_mib(info.size)}, {state})")
    click.echo(f"dataflow:    {info.dataflow or '-'} (run {info.run_id or '-'})")
    click.echo(f"duration:    {info.duration:.3f} s")
    click.echo(f"messages:    {info.messages}")
    click.echo(f"chunks:      {info.chunks} ({', '.join(info.compression) or 'none'}{ratio})")
    rows = [
        [
            t.topic,
            t.format,
            t.schema,
            str(t.messages),
            "-" if t.rate is None else f"{t.rate:.2f} Hz",
            str(t.metadata_messages),
            str(t.dropped),
        ]
        for t in info.topics
    ]
    click.echo(plain_table(["TOPIC", "FORMAT", "SCHEMA", "MESSAGES", "RATE", "METADATA", "DROPPED"], rows))
    if not info.complete:
        reporter.warning(f"not finished: read up to its last complete chunk ({info.damage})")


@recording.command("export", context_settings=CONTEXT)
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(EXPORT_FORMATS), required=True, help="The files' format.")
@click.option(
    "-o",
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    help="The folder to write (default: FILE without its suffix).",
)
@click.option(
    "--topics", multiple=True, metavar="NODE/OUTPUT", help="Only these topics (NODE/OUTPUT, NODE, glob)."
)
def export(file: Path, fmt: str, out: Path | None, topics: tuple[str, ...]) -> None:
    """Write each topic of FILE as its own file: DIR/NODE/OUTPUT.jsonl|csv|parquet.

    A row per message: log_time, publish_time, sequence, metadata, value.
    """
    from doradus._recording.export import export_recording

    reporter = Reporter()
    folder = out or file.with_suffix("")
    with _errors(reporter):
        written = export_recording(file, folder, cast("ExportFormat", fmt), _patterns(topics))
    for topic, files in written.items():
        reporter.info(f"{topic}: {', '.join(str(f) for f in files)}")
    reporter.success(f"exported {len(written)} topics to {folder}")


def _mib(size: int) -> str:
    return f"{size / 1_048_576:.1f} MiB"


ALL_COMMANDS = {"record": record, "replay": replay, "recording": recording}
"""The commands this module defines, by name (`doradus.cli._main` loads them lazily)."""
