"""``doradus profile list`` and ``doradus profile show NAME``.

Example::

    $ doradus profile list
    $ doradus profile show staging --output json
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

import click

from doradus._control.profiles import PROFILE_KEYS, ProfileError, config_files, load_profile, load_profiles
from doradus.cli._options import CONTEXT, output_option
from doradus.cli._render import Reporter, emit_data, plain_table


@contextmanager
def profile_errors(reporter: Reporter) -> Iterator[None]:
    """Render a `ProfileError` as cause + ``Suggested fix:`` and exit 2.

    Example::

        with profile_errors(reporter):
            load_profile("staging")
    """
    try:
        yield
    except ProfileError as exc:
        reporter.error(str(exc))
        reporter.info(f"Suggested fix: {exc.fix}")
        sys.exit(2)


@click.group(context_settings=CONTEXT)
def profile() -> None:
    """Named settings from doradus.toml (use one with `doradus --profile NAME …`)."""


@profile.command("list", context_settings=CONTEXT)
@output_option
@click.option("--no-color", is_flag=True, help="Plain output.")
def list_profiles(output: str, no_color: bool) -> None:
    """Every profile, from the project's doradus.toml and the user's."""
    reporter = Reporter(color=False if no_color else None)
    with profile_errors(reporter):
        profiles = load_profiles()
    if output != "table":
        emit_data([p.to_dict() for p in profiles.values()], output)
        return
    if not profiles:
        files = ", ".join(str(path) for path in config_files()) or "no doradus.toml found"
        reporter.info(f"no profiles ({files}); add a [profiles.NAME] table to doradus.toml")
        return
    rows = [[p.name, p.coordinator or "-", p.output or "-", str(p.source)] for p in profiles.values()]
    click.echo(plain_table(["NAME", "COORDINATOR", "OUTPUT", "SOURCE"], rows))


@profile.command("show", context_settings=CONTEXT)
@click.argument("name")
@output_option
@click.option("--no-color", is_flag=True, help="Plain output.")
def show_profile(name: str, output: str, no_color: bool) -> None:
    """The settings of profile NAME and the file it comes from."""
    reporter = Reporter(color=False if no_color else None)
    with profile_errors(reporter):
        found = load_profile(name)
    if output != "table":
        emit_data(found.to_dict(), output)
        return
    rows = [["name", found.name], ["source", str(found.source)]]
    rows += [[key, getattr(found, key) or "-"] for key in PROFILE_KEYS]
    click.echo(plain_table(["KEY", "VALUE"], rows))
