"""``doradus topic list|echo|hz|bw|info|pub``: the messages of a running dataflow, on this machine.

Each command finds the run (``--dataflow``, else the one running here: `doradus._control.topics`)
and asks its topic socket; ``echo``, ``hz``, ``bw`` and ``info`` read a tap the node sends to
directly (`doradus._control.topic_taps`). Nothing needs to be set before the dataflow starts.
See docs/topics.md.

Example::

    $ doradus topic echo camera/image --count 1
    [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, …] (uint8, 921600 items)
    $ doradus topic hz camera/image
    camera/image: 30.00 Hz  min 33.10 ms  max 33.55 ms  std 0.09 ms  window 100  (240 messages)
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import click

from doradus.cli._options import CONTEXT, make_client, output_option, parse_duration
from doradus.cli._render import Reporter, emit_data, plain_table

F = TypeVar("F", bound=Callable[..., Any])
STREAM_OUTPUT = click.option(
    "--output",
    "--format",
    "output",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="table: lines for people; json: one JSON object per line (flushed each line).",
)


def _run_options(func: F) -> F:
    """``--dataflow``, and the coordinator options: it is asked only for names it gave, never retried."""
    options = [
        click.option(
            "--dataflow",
            "-d",
            metavar="NAME",
            help="The dataflow (name or id); needed only when several run on this machine.",
        ),
        click.option(
            "-c",
            "--coordinator",
            metavar="HOST:PORT",
            help="The coordinator, asked for a --dataflow name no run here has (default: as other commands).",
        ),
        click.option("--token-file", type=click.Path(dir_okay=False), help="File holding the API token."),
        click.option("--no-color", is_flag=True, help="Plain output."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@contextmanager
def _topic_failures(reporter: Reporter) -> Iterator[None]:
    """A refused topic command: its cause and ``Suggested fix:``, exit 2."""
    from doradus._runtime.topic_messages import TopicError

    try:
        yield
    except TopicError as exc:
        reporter.error(str(exc))
        if exc.fix:
            reporter.info(f"Suggested fix: {exc.fix}")
        sys.exit(2)


def _connect(dataflow: str | None, opts: dict[str, Any]) -> Any:
    """The run's `TopicSocket` (the run found as `doradus._control.topics.find_run` says)."""
    from doradus._control.topics import TopicSocket, find_run
    from doradus._runtime.topic_messages import TopicError

    run = find_run(dataflow, make_client({**opts, "retries": 0, "retry_interval": 0.0}))
    try:
        return TopicSocket(run.socket)
    except OSError as exc:
        raise TopicError(f"dataflow {run.dataflow!r} stopped answering: {exc}", "see `doradus list`") from exc


def _reporter(opts: dict[str, Any]) -> Reporter:
    return Reporter(color=False if opts.get("no_color") else None)


def _write(line: str) -> None:
    """One line on stdout, flushed at once (a pipe sees each line as it comes)."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _quiet_stdout() -> None:
    """Stdout's reader has gone (a closed pipe): point stdout at /dev/null so exiting is quiet."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


@click.group(context_settings=CONTEXT)
def topic() -> None:
    """See the messages of a running dataflow: list, echo, hz, bw, info, pub.

    They run on the machine of the node they read, need nothing set before the dataflow
    started, and never slow the node down (a reader that falls behind skips messages, counted).
    """


@topic.command("list", context_settings=CONTEXT)
@click.option("--no-rates", is_flag=True, help="Do not wait for the nodes' next reports to measure rates.")
@output_option
@_run_options
def list_(dataflow: str | None, no_rates: bool, output: str, **opts: Any) -> None:
    """Every output of the dataflow: format, publisher, subscribers, backend, rate, messages sent."""
    from doradus._control.topics import measure_rates
    from doradus.cli._topic_views import topic_rows

    reporter = _reporter(opts)
    with _topic_failures(reporter), _connect(dataflow, opts) as conn:
        topics = measure_rates(conn, max_wait=0.0 if no_rates else 2.5)
    if output != "table":
        emit_data(topics, output)
        return
    columns = ["TOPIC", "FORMAT", "PUBLISHER", "SUBSCRIBERS", "BACKEND", "RATE", "BANDWIDTH", "SENT"]
    click.echo(plain_table(columns, topic_rows(topics)))


@topic.command(context_settings=CONTEXT)
@click.argument("name", metavar="NODE/OUTPUT")
@click.option("--metadata", "with_metadata", is_flag=True, help="Show each message's metadata too.")
@click.option("--count", "-n", type=click.IntRange(min=1), help="Stop after N messages.")
@click.option(
    "--max-items", type=click.IntRange(min=1), default=10, show_default=True, help="Array items shown."
)
@STREAM_OUTPUT
@_run_options
def echo(
    name: str,
    dataflow: str | None,
    with_metadata: bool,
    count: int | None,
    max_items: int,
    output: str,
    **opts: Any,
) -> None:
    """Print the messages NODE sends on OUTPUT, one line each, as they come.

    Arrow values print as JSON-like text (a long array: its first items, its type and length);
    other data formats as their codec reads them. Ctrl-C stops; so does --count.
    """
    from doradus._control.topic_taps import MessageTap, close_fd
    from doradus._control.topics import split_topic

    reporter = _reporter(opts)
    with _topic_failures(reporter):
        node, out = split_topic(name)
        with _connect(dataflow, opts) as conn:
            tapped, fd = conn.tap(node, out, "full")
        try:
            tap = MessageTap(fd, node, out, tapped["format"], max_items=max_items)
        except Exception:
            close_fd(fd)
            raise
    with tap:
        try:
            _echo_loop(tap, name, output, with_metadata, count, reporter)
        except KeyboardInterrupt:
            pass
        except BrokenPipeError:
            _quiet_stdout()
        for error in tap.errors[:3]:
            reporter.warning(error)
        if tap.missed_total:
            reporter.warning(f"{name}: {tap.missed_total} message(s) not shown: this reader fell behind")


def _echo_loop(
    tap: Any, name: str, output: str, metadata: bool, count: int | None, reporter: Reporter
) -> None:
    """Print the messages until ``count`` or the node's end; say what was missed at most once a second."""
    from doradus.cli._topic_views import echo_line

    shown = missed = 0
    said = time.monotonic()
    while count is None or shown < count:
        message = tap.next(0.2)
        if message is None:
            if tap.ended:
                reporter.info(f"{name}: the node's end closed (it ended or restarted)")
                return
            continue
        missed += message.missed
        if missed and output == "table" and time.monotonic() - said >= 1.0:
            reporter.warning(f"{missed} message(s) not shown: this reader fell behind")
            missed, said = 0, time.monotonic()
        _write(echo_line(name, message, output, metadata))
        shown += 1


def _rate_command(
    name: str,
    dataflow: str | None,
    window: int,
    every: str,
    duration: str | None,
    output: str,
    opts: dict[str, Any],
    line: Callable[[str, Any, str], str],
) -> None:
    """``hz`` and ``bw``: a headers tap into a window, one line every ``every``."""
    from doradus._control.topic_rates import RateWindow
    from doradus._control.topic_taps import HeaderTap, close_fd
    from doradus._control.topics import split_topic

    interval = parse_duration(every, "--interval") or 1.0
    limit = None if duration is None else parse_duration(duration, "--duration")
    reporter = _reporter(opts)
    with _topic_failures(reporter):
        node, out = split_topic(name)
        with _connect(dataflow, opts) as conn:
            _tapped, fd = conn.tap(node, out, "headers")
    book = RateWindow(window)
    try:
        tap = HeaderTap(fd, book)
    except OSError:
        close_fd(fd)
        raise
    ends_at = None if limit is None else time.monotonic() + limit
    with tap:
        try:
            while True:
                wait = interval if ends_at is None else max(0.0, min(interval, ends_at - time.monotonic()))
                ended = tap.wait(wait)
                _write(line(name, book.stats(time.time_ns()), output))
                if ended:
                    reporter.info(f"{name}: the node's end closed (it ended or restarted)")
                    return
                if ends_at is not None and time.monotonic() >= ends_at:
                    return
        except KeyboardInterrupt:
            pass
        except BrokenPipeError:
            _quiet_stdout()


def _rate_options(func: F) -> F:
    func = _run_options(STREAM_OUTPUT(func))
    func = click.option(
        "--duration", metavar="DURATION", help="Stop after this long (e.g. 10s); default: Ctrl-C."
    )(func)
    func = click.option(
        "--interval", metavar="DURATION", default="1s", show_default=True, help="Time between lines."
    )(func)
    func = click.option(
        "--window",
        type=click.IntRange(min=1),
        default=100,
        show_default=True,
        help="Intervals the statistics span.",
    )(func)
    return click.argument("name", metavar="NODE/OUTPUT")(func)


@topic.command(context_settings=CONTEXT)
@_rate_options
def hz(
    name: str,
    dataflow: str | None,
    window: int,
    interval: str,
    duration: str | None,
    output: str,
    **opts: Any,
) -> None:
    """Print the rate NODE sends OUTPUT at: Hz, min/max/std of the intervals over the last --window.

    Every message counts, whatever its size (the tap carries a small header per message, never
    the payload); times are the sender's send times.
    """
    from doradus.cli._topic_views import hz_line

    _rate_command(name, dataflow, window, interval, duration, output, opts, hz_line)


@topic.command(context_settings=CONTEXT)
@_rate_options
def bw(
    name: str,
    dataflow: str | None,
    window: int,
    interval: str,
    duration: str | None,
    output: str,
    **opts: Any,
) -> None:
    """Print the bytes per second NODE sends on OUTPUT (payloads), over the last --window messages."""
    from doradus.cli._topic_views import bw_line

    _rate_command(name, dataflow, window, interval, duration, output, opts, bw_line)


@topic.command(context_settings=CONTEXT)
@click.argument("name", metavar="NODE/OUTPUT")
@click.option(
    "--wait",
    "wait_for",
    metavar="DURATION",
    default="2s",
    show_default=True,
    help="How long to wait for a message, to show its type (0: do not).",
)
@output_option
@_run_options
def info(name: str, dataflow: str | None, wait_for: str, output: str, **opts: Any) -> None:
    """Show one output: format and type, publisher, subscribers, backend, rate, counters."""
    from doradus._control.topics import measure_rates, split_topic
    from doradus._runtime.topic_messages import TopicError
    from doradus.cli._topic_views import info_lines

    reporter = _reporter(opts)
    seconds = parse_duration(wait_for, "--wait")
    with _topic_failures(reporter):
        node, out = split_topic(name)
        with _connect(dataflow, opts) as conn:
            found = [t for t in measure_rates(conn) if t["topic"] == f"{node}/{out}"]
            if not found:
                raise TopicError(f"no output {name!r} in this dataflow", "see `doradus topic list`")
            facts = found[0]
            if seconds and facts.get("tappable") is None and facts["state"] == "running":
                facts["sample"] = _sample(conn, node, out, seconds)
    if output != "table":
        emit_data(facts, output)
        return
    click.echo("\n".join(info_lines(facts)))


def _sample(conn: Any, node: str, output: str, seconds: float) -> dict[str, Any] | None:
    """The type, size and sequence number of the next message (None if none comes in ``seconds``)."""
    from doradus._control.topic_taps import MessageTap

    tapped, fd = conn.tap(node, output, "full")
    with MessageTap(fd, node, output, tapped["format"], max_items=1) as tap:
        message = tap.next(seconds)
    if message is None:
        return None
    return {
        "type": message.shown.type,
        "length": message.shown.length,
        "size": message.size,
        "seq": message.seq,
    }


@topic.command("pub", context_settings=CONTEXT)
@click.argument("name", metavar="NODE/OUTPUT")
@click.argument("value", metavar="VALUE")
@click.option(
    "--metadata", "metadata", metavar="JSON", help='The message\'s metadata, a JSON object ({"k": 1}).'
)
@click.option(
    "--type", "arrow_type", metavar="ARROW_TYPE", help="Arrow type of the items (int32, float32, ...)."
)
@click.option(
    "--count", "-n", type=click.IntRange(min=1), default=1, show_default=True, help="Messages to send."
)
@click.option(
    "--rate", type=click.FloatRange(min=0.001), default=1.0, show_default=True, help="Messages per second."
)
@output_option
@_run_options
def pub(
    name: str,
    value: str,
    dataflow: str | None,
    metadata: str | None,
    arrow_type: str | None,
    count: int,
    rate: float,
    output: str,
    **opts: Any,
) -> None:
    """Send VALUE (JSON) to the receivers of NODE/OUTPUT on this machine, as if NODE had sent it.

    A JSON list becomes an Arrow array, anything else an array of one item; an output in
    another data format gets VALUE encoded by its codec.
    """
    from doradus._control.topics import split_topic
    from doradus._runtime.topic_messages import PubRequest

    reporter = _reporter(opts)
    try:
        parsed = json.loads(value)
        meta = json.loads(metadata) if metadata else {}
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="VALUE or --metadata") from exc
    with _topic_failures(reporter):
        node, out = split_topic(name)
        request: PubRequest = {
            "op": "pub",
            "node": node,
            "output": out,
            "value": parsed,
            "metadata": meta,
            "arrow_type": arrow_type,
        }
        with _connect(dataflow, opts) as conn:
            for k in range(count):
                if k:
                    time.sleep(1.0 / rate)
                answer = conn.pub(request)
    if output != "table":
        emit_data(answer, output)
        return
    reporter.success(f"Sent {count} message(s) on {name} to {', '.join(answer['reached'])}.")
    for missed in answer["missed"]:
        reporter.warning(f"not sent to {missed['input']}: {missed['why']}")


ALL_COMMANDS = {"topic": topic}
