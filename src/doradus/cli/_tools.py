"""``doradus version``, ``doradus completion`` and ``doradus doctor``.

Example::

    $ doradus doctor --output json | jq '.checks[] | select(.status != "ok")'
    $ eval "$(doradus completion bash)"
"""

from __future__ import annotations

import sys

import click

from doradus.cli._options import CONTEXT, output_option
from doradus.cli._render import Reporter, emit_data

SHELLS = ("bash", "zsh", "fish")
COMPLETE_VAR = "_DORADUS_COMPLETE"
_INSTALL = {
    "bash": 'add to ~/.bashrc:  eval "$(doradus completion bash)"',
    "zsh": 'add to ~/.zshrc:  eval "$(doradus completion zsh)"',
    "fish": "run:  doradus completion fish > ~/.config/fish/completions/doradus.fish",
}
_ICONS = {"ok": ("✓", "green"), "warn": ("!", "yellow"), "fail": ("✗", "red")}


@click.command(context_settings=CONTEXT)
@output_option
def version(output: str) -> None:
    """Show the versions of Doradus, Python, pyarrow and numpy, and the platform."""
    from doradus._project.doctor import version_info

    info = version_info()
    if output != "table":
        emit_data(info, output)
        return
    width = max(len(key) for key in info)
    for key, value in info.items():
        click.echo(f"{key.replace('_', ' '):<{width}}  {value if value is not None else 'not installed'}")


@click.command(context_settings=CONTEXT)
@click.argument("shell", type=click.Choice(SHELLS))
def completion(shell: str) -> None:
    """Print the shell completion script for SHELL (bash, zsh or fish)."""
    from click.shell_completion import get_completion_class

    root = click.get_current_context().find_root().command
    completer = get_completion_class(shell)
    if completer is None:  # click knows the three shells offered; guard for a future click
        raise click.BadParameter(f"click has no completion for {shell}", param_hint="SHELL")
    click.echo(completer(root, {}, "doradus", COMPLETE_VAR).source())
    click.echo(f"# To install, {_INSTALL[shell]}", err=True)


@click.command(context_settings=CONTEXT)
@output_option
@click.option("--no-color", is_flag=True, help="Plain output.")
def doctor(output: str, no_color: bool) -> None:
    """Check this machine for Doradus: Python, shared memory, sockets, ports, brokers.

    Each failure comes with a suggested fix. Exits 0 when no required check
    fails (warnings are for optional parts), 1 otherwise.
    """
    from doradus._project.doctor import healthy, run_checks

    checks = run_checks()
    ok = healthy(checks)
    if output != "table":
        emit_data({"healthy": ok, "checks": [c.as_dict() for c in checks]}, output)
    else:
        reporter = Reporter(color=False if no_color else None)
        width = max(len(c.name) for c in checks)
        for check in checks:
            icon, colour = _ICONS[check.status]
            click.secho(
                f"{icon} {check.name:<{width}}  {check.detail}", fg=colour if reporter.color else None
            )
            if check.fix:
                click.echo(f"  {'':<{width}}  Suggested fix: {check.fix}")
        failed = sum(c.status == "fail" for c in checks)
        if ok:
            reporter.success("Doradus is ready to run on this machine")
        else:
            reporter.error(f"{failed} required check(s) failed")
    sys.exit(0 if ok else 1)


ALL_COMMANDS = {"version": version, "completion": completion, "doctor": doctor}
"""Command name → command, for ``cli/_main.py`` to register."""
