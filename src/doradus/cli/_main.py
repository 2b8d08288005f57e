"""The ``doradus`` group: global options, profiles, and where each command is defined.

``run`` and ``check`` are registered here (``run`` is the command felt on every use); every
other command's module is imported only when that command is used (`_LAZY_COMMANDS`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from doradus.cli._options import CONTEXT
from doradus.cli._render import Reporter
from doradus.cli._run import check, run

_LAZY_COMMANDS = {
    "coordinator": "doradus.cli._cluster",
    "daemon": "doradus.cli._cluster",
    "up": "doradus.cli._cluster",
    "destroy": "doradus.cli._cluster",
    "down": "doradus.cli._cluster",
    "start": "doradus.cli._dataflows",
    "stop": "doradus.cli._dataflows",
    "restart": "doradus.cli._dataflows",
    "clean": "doradus.cli._dataflows",
    "list": "doradus.cli._dataflows",
    "status": "doradus.cli._status",
    "top": "doradus.cli._status",
    "logs": "doradus.cli._logs",
    "node": "doradus.cli._nodes",
    "param": "doradus.cli._params",
    "topic": "doradus.cli._topics",
    "init": "doradus.cli._project",
    "new": "doradus.cli._project",
    "schema": "doradus.cli._project",
    "version": "doradus.cli._tools",
    "completion": "doradus.cli._tools",
    "doctor": "doradus.cli._tools",
    "graph": "doradus.cli._graph",
    "build": "doradus.cli._build",
    "profile": "doradus.cli._profile",
    "tui": "doradus.cli._tui",
    "record": "doradus.cli._recording",
    "replay": "doradus.cli._recording",
    "recording": "doradus.cli._recording",
}
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

    from doradus._control import profiles as _profiles
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


cli.add_command(run)
cli.add_command(check)
cli.add_command(check, name="validate")


def main() -> None:
    """Entry point of the ``doradus`` console script."""
    cli()
