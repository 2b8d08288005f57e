"""``doradus init`` (the wizard) and ``doradus new``: starter dataflows and nodes.

Example::

    $ doradus init --yes --node camera --node detector --node sink
    $ doradus new node filter
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from doradus._project.templates import (
    DATAFLOW_FILE,
    DEFAULT_LOG_LEVEL,
    DEFAULT_NODES,
    LOG_LEVEL_VAR,
    LOG_LEVELS,
    RUNTIMES,
    Project,
    dataflow_name_problem,
    default_name,
    node_id_problem,
    normalize_log_level,
    render_standalone_node,
    schema_path,
    write_project,
)
from doradus.cli._options import CONTEXT
from doradus.cli._render import Reporter


def _usage_error(reporter: Reporter, message: str, fix: str) -> None:
    reporter.error(message)
    reporter.info(f"Suggested fix: {fix}")
    sys.exit(2)


def _checked_nodes(reporter: Reporter, nodes: tuple[str, ...]) -> tuple[str, ...]:
    for index, node_id in enumerate(nodes):
        problem = node_id_problem(node_id, nodes[:index])
        if problem:
            _usage_error(reporter, f"--node {node_id!r}: {problem}", "pick another id, e.g. `--node my_node`")
    return nodes


def _checked_name(reporter: Reporter, name: str) -> str:
    problem = dataflow_name_problem(name)
    if problem:
        _usage_error(reporter, f"--name: {problem}", "e.g. `--name my-robot`")
    return name


def _say(text: str, fg: str, color: bool, *, bold: bool = False, err: bool = False) -> None:
    """A line in colour, or plain when colour is off (``NO_COLOR``, ``--no-color``, no terminal)."""
    click.echo(click.style(text, fg=fg, bold=bold) if color else text, err=err)


def _complain(text: str, color: bool) -> None:
    """A refused answer, in red."""
    _say(text, "red", color, err=True)


def _ask_name(default: str, color: bool) -> str:
    while True:
        name = str(click.prompt("Name your dataflow", default=default)).strip()
        problem = dataflow_name_problem(name)
        if problem is None:
            return name
        _complain(problem, color)


def _ask_nodes(color: bool) -> tuple[str, ...]:
    nodes: list[str] = []
    while True:
        label = "Add a node" if not nodes else "Add another node"
        node_id = str(
            click.prompt(f"{label} (leave empty to finish)", default="", show_default=False)
        ).strip()
        if not node_id:
            return tuple(nodes)
        problem = node_id_problem(node_id, nodes)
        if problem:
            _complain(f"{problem}; try another", color)
            continue
        nodes.append(node_id)


def _ask_log_level(default: str, color: bool) -> str:
    while True:
        answer = str(click.prompt("Configure logging level", default=default))
        level = normalize_log_level(answer)
        if level:
            return level
        _complain(f"{answer!r} is not a level: choose one of {', '.join(LOG_LEVELS)}", color)


def _wizard(
    name: str | None, nodes: tuple[str, ...], log_level: str | None, folder: Path, color: bool
) -> Project:
    """Ask for what the flags left open."""
    _say("Welcome to Doradus! Let's set up your dataflow.", "blue", color, bold=True)
    chosen_name = name or _ask_name(default_name(folder), color)
    click.echo(f"Runtimes available now: {', '.join(RUNTIMES)} (nodes run as processes on this machine).")
    click.prompt("Select a runtime environment", default=RUNTIMES[0], type=click.Choice(RUNTIMES))
    if not nodes:
        nodes = _ask_nodes(color)
        if not nodes:
            click.echo(f"No nodes added: using {' and '.join(f'`{n}`' for n in DEFAULT_NODES)}.")
            nodes = DEFAULT_NODES
    level = log_level or _ask_log_level(DEFAULT_LOG_LEVEL, color)
    return Project(chosen_name, nodes, level, folder)


def _save(reporter: Reporter, project: Project, force: bool) -> None:
    try:
        written = write_project(project, force=force)
    except FileExistsError:
        _usage_error(
            reporter,
            f"{project.dataflow_path} already exists",
            "pass --force to overwrite it, or --output-dir to write elsewhere",
        )
        return
    for path in written.written:
        reporter.success(f"wrote {path}")
    for path in written.kept:
        reporter.warning(f"kept the existing {path} (--force overwrites it)")


def _done(reporter: Reporter, project: Project) -> None:
    where = DATAFLOW_FILE if project.folder.resolve() == Path.cwd() else str(project.dataflow_path)
    message = f"Configuration saved! Use `doradus run {where}` to begin."
    _say(message, "green", reporter.color, bold=True)


@click.command(context_settings=CONTEXT)
@click.option("--name", help="Dataflow name (default: the folder's name).")
@click.option("--node", "nodes", multiple=True, metavar="ID", help="Add a node (repeatable, in chain order).")
@click.option(
    "--log-level",
    type=click.Choice(LOG_LEVELS, case_sensitive=False),
    help=f"Logging level, stored as {LOG_LEVEL_VAR} in the dataflow's env (default: INFO).",
)
@click.option("--runtime", type=click.Choice(RUNTIMES), default="local", show_default=True)
@click.option("-y", "--yes", is_flag=True, help="Ask nothing: use the flags and the defaults.")
@click.option(
    "--output-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    help="Folder to write into (created if needed; default: the current folder).",
)
@click.option("--force", is_flag=True, help="Overwrite an existing dataflow.yaml and node files.")
@click.option("--no-color", is_flag=True, help="Plain output.")
def init(
    name: str | None,
    nodes: tuple[str, ...],
    log_level: str | None,
    runtime: str,
    yes: bool,
    output_dir: Path,
    force: bool,
    no_color: bool,
) -> None:
    """Set up a dataflow: dataflow.yaml plus one Python file per node.

    Asks questions when run in a terminal; with --yes (or without a terminal)
    it uses the flags and the defaults (nodes `sender` and `receiver`). The
    nodes form a chain: a timer drives the first, each next one reads the
    previous one's output. Existing node files are kept unless --force.
    """
    reporter = Reporter(color=False if no_color else None)
    if name is not None:
        _checked_name(reporter, name)
    _checked_nodes(reporter, nodes)
    level = normalize_log_level(log_level) if log_level else None
    interactive = not yes and sys.stdin.isatty()
    if interactive:
        project = _wizard(name, nodes, level, output_dir, reporter.color)
        prompt = f"Save configuration as `{DATAFLOW_FILE}`?"
        if project.dataflow_path.exists() and not force:
            prompt = f"`{project.dataflow_path}` exists. Overwrite it?"
            force = True
        if not click.confirm(prompt, default=True):
            reporter.warning("Nothing saved.")
            return
    else:
        project = Project(
            name or default_name(output_dir), nodes or DEFAULT_NODES, level or DEFAULT_LOG_LEVEL, output_dir
        )
    _save(reporter, project, force)
    _done(reporter, project)


@click.group(context_settings=CONTEXT)
def new() -> None:
    """Create a node or a dataflow from a template."""


@new.command("node", context_settings=CONTEXT)
@click.argument("node_id", metavar="NAME")
@click.option(
    "--dir",
    "folder",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    help="Folder for NAME.py (default: the current folder).",
)
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
@click.option("--no-color", is_flag=True, help="Plain output.")
def new_node(node_id: str, folder: Path, force: bool, no_color: bool) -> None:
    """Write NAME.py: a Python node that forwards its inputs, ready to edit."""
    reporter = Reporter(color=False if no_color else None)
    problem = node_id_problem(node_id)
    if problem:
        _usage_error(reporter, problem, "pick another name, e.g. `doradus new node my_node`")
    path = folder / f"{node_id}.py"
    if path.exists() and not force:
        _usage_error(reporter, f"{path} already exists", "pass --force to overwrite it, or pick another name")
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(render_standalone_node(node_id, path.name))
    reporter.success(f"wrote {path}")
    reporter.info(
        f"Add it to your dataflow: `- id: {node_id}` with `path: {path.name}` (see the file's docstring)"
    )


@new.command("dataflow", context_settings=CONTEXT)
@click.argument("name", required=False, default="my-dataflow")
@click.option("--node", "nodes", multiple=True, metavar="ID", help="Add a node (repeatable, in chain order).")
@click.option("--no-color", is_flag=True, help="Plain output.")
def new_dataflow(name: str, nodes: tuple[str, ...], no_color: bool) -> None:
    """Create folder NAME holding a runnable starter dataflow (like `init --yes`)."""
    reporter = Reporter(color=False if no_color else None)
    _checked_name(reporter, name)
    _checked_nodes(reporter, nodes)
    folder = Path(name)
    if folder.exists() and any(folder.iterdir()):
        _usage_error(
            reporter, f"{folder} exists and is not empty", "pick another NAME, or use `doradus init`"
        )
    project = Project(name, nodes or DEFAULT_NODES, DEFAULT_LOG_LEVEL, folder)
    _save(reporter, project, force=False)
    _done(reporter, project)


@click.command(context_settings=CONTEXT)
@click.option("--path", "show_path", is_flag=True, help="Print where the installed file is, not its text.")
def schema(show_path: bool) -> None:
    """Print the JSON Schema of dataflow files, for editors to complete and check keys.

    Files `init` and `new` write start with `# yaml-language-server: $schema=` and the path
    `--path` prints. Start your own files with that line too, or keep a copy beside them
    (`doradus schema > dataflow.schema.json`) and name it by its relative path.
    """
    path = schema_path()
    click.echo(str(path) if show_path else path.read_text(encoding="utf-8"), nl=show_path)


ALL_COMMANDS = {"init": init, "new": new, "schema": schema}
"""Command name → command, for ``cli/_main.py`` to register."""
