"""Options shared by the commands, their parsing, and reaching the coordinator from them.

The context settings every command uses (`CONTEXT`), ``--output``, ``--log-level`` and
``--log-format``, ``K=V`` and duration parsing, and for the control-plane commands the
connection options, the `ControlClient` they make and how its failures are shown.

Example::

    @click.command(context_settings=CONTEXT)
    @output_option
    @connection_options
    def list_(output: str, **opts: Any) -> None:
        client = make_client(opts)
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import click

from doradus import _quantities as quantities
from doradus._observability.records import LEVELS
from doradus._observability.terminal import LOG_FORMATS

if TYPE_CHECKING:
    from doradus._control.client import ControlClient
    from doradus.cli._render import Reporter

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
"""Context settings of every command: ``-h`` too, and help up to 100 columns."""
GIVE_UP = "Maximum retries reached. Exiting."
"""The line after the last retry line, before the fix."""
F = TypeVar("F", bound=Callable[..., Any])


def parse_duration(text: str, option: str) -> float:
    """Seconds from ``10s``, ``500ms``, ``2m`` or a bare number of seconds.

    Example:
        >>> parse_duration("500ms", "--stop-after")
        0.5
    """
    seconds = quantities.parse_duration(text)
    if seconds is None or seconds < 0:
        hint = f"{text!r} is not a duration; write e.g. 10s, 500ms or 2m"
        raise click.BadParameter(hint, param_hint=option)
    return seconds


def parse_env(pairs: Iterable[str]) -> dict[str, str]:
    """``K=V`` strings into a mapping.

    Example:
        >>> parse_env(["A=1", "B=x=y"])
        {'A': '1', 'B': 'x=y'}
    """
    env: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not K=V", param_hint="--env")
        env[key] = value
    return env


output_option = click.option(
    "--output",
    "--format",
    "output",
    type=click.Choice(["table", "json", "yaml"]),
    default="table",
    show_default=True,
    help="table for people; json or yaml (on stdout, stable keys) for scripts.",
)
"""``--output table|json|yaml`` (``--format`` is dora's alias), shared by every data command."""

_log_level_option = click.option(
    "--log-level",
    type=click.Choice([level.lower() for level in LEVELS], case_sensitive=False),
    envvar="DORADUS_LOG_LEVEL",
    help="Minimum level of the records kept and shown; nodes' Python logging gets it too "
    "(default: DORADUS_LOG_LEVEL of the dataflow's env, else info) [env: DORADUS_LOG_LEVEL].",
)
_log_format_option = click.option(
    "--log-format",
    type=click.Choice(LOG_FORMATS),
    default="pretty",
    show_default=True,
    help="How records print: node-prefixed lines, one-line records with time, or JSON lines.",
)


def log_options(func: F) -> F:
    """``--log-level`` and ``--log-format``, shared by ``run`` and ``start``.

    Example::

        @click.command()
        @log_options
        def run(log_level: str | None, log_format: str) -> None: ...
    """
    return _log_level_option(_log_format_option(func))


def connection_options(func: F) -> F:
    """Add ``--coordinator``, ``--retries``, ``--retry-interval``, ``--token-file``, ``--no-color``.

    Example::

        @click.command()
        @connection_options
        def status(**opts: Any) -> None:
            client = make_client(opts)
    """
    from doradus._control.client import DEFAULT_RETRIES, DEFAULT_RETRY_INTERVAL, MAX_RETRY_INTERVAL

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


def make_client(opts: dict[str, Any]) -> ControlClient:
    """The `ControlClient` the `connection_options` in ``opts`` describe.

    Raises:
        click.BadParameter: The address or the token file cannot be used.

    Example:
        >>> opts = {"coordinator": "192.0.2.7:7000", "token_file": None, "retries": 0, "retry_interval": 1.0}
        >>> str(make_client(opts).address)
        '192.0.2.7:7000'
    """
    from doradus._control.client import ControlClient, resolve_address, resolve_token

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
def failures(reporter: Reporter) -> Iterator[None]:
    """Render control-plane errors as cause + ``Suggested fix:`` with the documented exit code.

    No coordinator: exit 1. Refused: exit 2 for 401, 404, 409 and 422, else 1.

    Example::

        with failures(reporter):
            flows = client.get("/dataflows")
    """
    from doradus._control.client import ApiError, ServiceUnreachable

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
