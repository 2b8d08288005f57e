"""``doradus build FILE [--node X]``: each node's build commands, with progress and a log file.

Example::

    $ doradus build dataflow.yml
    Building 2 nodes (logs: /p/out/build-<node>.txt)
    ✓ camera done in 1.20s
    - plot skipped (no build commands)
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import click

from doradus.cli._options import CONTEXT, parse_env
from doradus.cli._render import Reporter


class _Display:
    """One line per node: a rich spinner while it builds on a terminal, plain lines otherwise."""

    def __init__(self, reporter: Reporter) -> None:
        self.reporter = reporter
        self._status: Any = None
        self._console: Any = None
        if reporter.color:
            from rich.console import Console

            self._console = Console(stderr=True, highlight=False)

    def start(self, node_id: str) -> None:
        if self._console is not None:
            self._status = self._console.status(f"building [bold]{node_id}[/]…", spinner="dots")
            self._status.start()

    def line(self, text: str, style: str) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None
        if self._console is not None:
            self._console.print(text, style=style, markup=False)
        else:
            click.echo(text, err=True)


@click.command(context_settings=CONTEXT)
@click.argument("dataflow", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--node", "nodes", multiple=True, metavar="ID", help="Build only this node (repeatable).")
@click.option(
    "--env", "env", multiple=True, metavar="K=V", help="Set an environment variable for every build."
)
@click.option("--no-color", is_flag=True, help="Plain output (also when NO_COLOR is set or not a terminal).")
def build(dataflow: Path, nodes: tuple[str, ...], env: tuple[str, ...], no_color: bool) -> None:
    """Run the `build` commands of every node of DATAFLOW (or of --node X).

    Each line of a node's `build:` is one command, run with /bin/sh in the
    dataflow's folder with the node's environment; the output goes to
    out/build-<node>.txt next to DATAFLOW. Exit 0 when every build succeeded,
    1 when one failed (its last lines, a suggested fix and the log's path are
    printed), 2 for a bad dataflow or an unknown node.
    """
    from doradus._dataflow.loader import load_dataflow
    from doradus._dataflow.problems import closest
    from doradus._exceptions import DescriptorError
    from doradus._project.build import BuildResult, build_dataflow, build_log_path

    reporter = Reporter(color=False if no_color else None)
    extra_env = parse_env(env)
    try:
        flow = load_dataflow(dataflow, extra_env=extra_env)
    except DescriptorError as exc:
        reporter.problems(exc.problems)
        sys.exit(2)
    reporter.problems(flow.warnings)
    known = [n.id for n in flow.nodes]
    for node_id in nodes:
        if node_id not in known:
            guess = closest(node_id, known)
            reporter.error(f"no node {node_id!r} in {dataflow}")
            hint = f"did you mean `{guess}`? " if guess else ""
            reporter.info(f"Suggested fix: {hint}nodes: {', '.join(known)}")
            sys.exit(2)
    selected = [flow.node(n) for n in nodes] if nodes else list(flow.nodes)
    to_build = sum(1 for n in selected if n.build)
    log_pattern = build_log_path(flow, "<node>")
    reporter.info(f"Building {to_build} node(s) of {flow.name!r} (logs: {log_pattern})")
    display = _Display(reporter)
    started = time.monotonic()

    def on_done(result: BuildResult) -> None:
        if result.status == "ok":
            display.line(f"✓ {result.node_id} done in {result.duration:.2f}s", "green")
        elif result.status == "failed":
            display.line(f"✗ {result.node_id} failed after {result.duration:.2f}s", "red")
        elif result.status == "skipped":
            display.line(f"- {result.node_id} skipped (no build commands)", "dim")
        else:
            display.line(f"- {result.node_id} not built (an earlier build failed)", "yellow")

    results = build_dataflow(
        flow,
        nodes=nodes or None,
        extra_env=extra_env,
        on_start=lambda node: display.start(node.id),
        on_done=on_done,
    )
    failed = [r for r in results if r.status == "failed"]
    if not failed:
        built = sum(1 for r in results if r.status == "ok")
        skipped = len(results) - built
        reporter.success(
            f"build finished in {time.monotonic() - started:.2f}s: {built} built, {skipped} skipped"
        )
        return
    for result in failed:
        reporter.error(
            f"Build failed: node {result.node_id} (command `{result.command}`, exit code {result.returncode})"
        )
        if result.tail:
            reporter.warning(f"Last {len(result.tail)} line(s) of its output:")
            for line in result.tail:
                reporter.warning(f"    {line}")
        reporter.info(f"Suggested fix: {result.fix}")
        reporter.info(f"Full log: {result.log_path}")
    sys.exit(1)
