"""``doradus tui``: the live terminal UI over a coordinator's stream and HTTP API.

The command finds the coordinator as every command does (``--coordinator``,
``DORADUS_COORDINATOR``, the profile, ``doradus up``'s state file), checks that it
answers and that ``--dataflow`` names a dataflow it knows, then hands the terminal to
the app (`doradus._tui.app`). Settings come from the flags, else the ``[tui]`` table
of ``doradus.toml``.

Example::

    $ doradus tui
    $ doradus tui --dataflow camera --refresh 0.5 --columns node,state,in,p50,errors
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from doradus._tui.columns import COLUMNS
from doradus.cli._options import CONTEXT, connection_options, failures, make_client
from doradus.cli._render import Reporter

if TYPE_CHECKING:
    from doradus._control.client import ControlClient
    from doradus._tui.settings import Settings

INSTALL_FIX = "pip install 'doradus[tui]'"


def _use_profile(name: str | None, opts: dict[str, Any], reporter: Reporter) -> None:
    """``--profile NAME`` (as ``doradus --profile NAME tui``), and the token file of the profile in use."""
    from doradus._control import profiles
    from doradus.cli._profile import profile_errors

    with profile_errors(reporter):
        if name:
            profiles.activate(profiles.load_profile(name))
            reporter.info(f"Loaded profile: {name}")
        found = profiles.active_profile()
    if found and found.token_file and not opts.get("token_file"):
        token = Path(found.token_file).expanduser()
        opts["token_file"] = str(token if token.is_absolute() else found.source.parent / token)


def _fail(reporter: Reporter, message: str, fix: str, code: int) -> NoReturn:
    reporter.error(message)
    reporter.info(f"Suggested fix: {fix}")
    sys.exit(code)


@click.command(context_settings=CONTEXT)
@click.option(
    "-d",
    "--dataflow",
    metavar="NAME",
    help="Show this dataflow first: a name, an id or an id prefix (default: the first running one).",
)
@click.option(
    "--refresh",
    metavar="SECONDS",
    help="Seconds between updates, 0.1 to 60 (500ms works too) [default: [tui] refresh, else 1].",
)
@click.option(
    "--theme",
    metavar="NAME",
    help="A Textual theme: nord, gruvbox, textual-light, … [default: textual-dark].",
)
@click.option(
    "--columns",
    metavar="A,B,C",
    help=f"Columns of the nodes table, from: {', '.join(COLUMNS)} (node is always shown).",
)
@click.option("--profile", "profile_name", metavar="NAME", help="Use [profiles.NAME] of doradus.toml.")
@connection_options
def tui(
    dataflow: str | None,
    refresh: str | None,
    theme: str | None,
    columns: str | None,
    profile_name: str | None,
    **opts: Any,
) -> None:
    """Watch, search and steer running dataflows in a live terminal UI.

    Shows every dataflow, the nodes of one (state, rates, latency, drops, CPU, memory,
    restarts, errors), a node's detail with sparklines, live logs and the graph; pauses,
    resumes, restarts and stops nodes or dataflows and changes a node's env or args.
    Press ? in it for the keys. Needs a coordinator (`doradus up`) and Textual
    (`pip install 'doradus[tui]'`).
    """
    from doradus._control.profiles import ProfileError

    reporter = Reporter(color=False if opts["no_color"] else None)
    if importlib.util.find_spec("textual") is None:
        _fail(reporter, "doradus tui needs Textual, which is not installed", INSTALL_FIX, 1)
    _use_profile(profile_name, opts, reporter)
    from doradus._tui.settings import resolve_settings

    try:
        settings = resolve_settings(theme=theme, columns=columns, refresh=refresh)
    except ProfileError as exc:
        _fail(reporter, str(exc), exc.fix, 2)
    client = make_client(opts)
    with failures(reporter):
        client.get("/dataflows")
        chosen = str(client.get(f"/dataflows/{dataflow}")["id"]) if dataflow else None
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        _fail(
            reporter,
            "doradus tui needs a terminal",
            "run it in a terminal (over SSH: ssh -t HOST doradus tui)",
            2,
        )
    _run(client, settings, chosen)


def _run(client: ControlClient, settings: Settings, dataflow: str | None) -> None:
    """Hand the terminal to the app; its requests never retry (a retry line would break the screen)."""
    from doradus._control.client import ControlClient
    from doradus._tui.app import DoradusTui
    from doradus._tui.feed import make_feed

    quiet = ControlClient(client.address, retries=0, token=client.token)
    app = DoradusTui(
        client=quiet, settings=settings, dataflow=dataflow, feed=make_feed(client, dataflow, settings.refresh)
    )
    app.run()
