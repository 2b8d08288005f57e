"""``doradus graph``: a dataflow as Mermaid text or a self-contained HTML page.

Example::

    $ doradus graph dataflow.yml > dataflow.mmd
    $ doradus graph dataflow.yml --html dataflow.html --open
"""

from __future__ import annotations

import sys
import tempfile
import webbrowser
from pathlib import Path

import click

from doradus.cli._options import CONTEXT
from doradus.cli._render import Reporter


@click.command(context_settings=CONTEXT)
@click.argument("dataflow", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--mermaid", is_flag=True, help="Print the Mermaid text (the default without --html/--open).")
@click.option(
    "--html",
    "html_out",
    type=click.Path(path_type=Path, dir_okay=False, writable=True),
    metavar="OUT.html",
    help="Write a self-contained HTML page (Mermaid bundled, no network needed).",
)
@click.option(
    "--open",
    "open_page",
    is_flag=True,
    help="Open the HTML page in a browser (written to a temporary file without --html).",
)
@click.option("--no-color", is_flag=True, help="Plain output.")
def graph(dataflow: Path, mermaid: bool, html_out: Path | None, open_page: bool, no_color: bool) -> None:
    """Draw DATAFLOW: nodes, timers, logs and edges labelled `output → input`.

    Prints Mermaid flowchart text (paste it into Markdown on GitHub, or
    https://mermaid.live); --html writes a page that renders it offline.
    Exits 2 when the dataflow is invalid, with each problem at file:line:column.
    """
    from doradus._dataflow.diagram import html_page, mermaid_text
    from doradus._dataflow.loader import load_dataflow
    from doradus._exceptions import DescriptorError

    reporter = Reporter(color=False if no_color else None)
    try:
        flow = load_dataflow(dataflow)
    except DescriptorError as exc:
        reporter.problems(exc.problems)
        reporter.error(f"{dataflow}: {len(exc.problems)} error(s)")
        sys.exit(2)
    if mermaid or (html_out is None and not open_page):
        click.echo(mermaid_text(flow), nl=False)
    if html_out is None and not open_page:
        return
    target = html_out or Path(tempfile.gettempdir()) / f"doradus-graph-{flow.name}.html"
    try:
        target.write_text(html_page(flow), encoding="utf-8")
    except OSError as exc:
        reporter.error(f"cannot write {target}: {exc.strerror or exc}")
        reporter.info("Suggested fix: choose a writable path for --html")
        sys.exit(2)
    reporter.success(f"wrote {target}")
    if open_page:
        click.echo(str(target.resolve()))
        webbrowser.open(target.resolve().as_uri())
