"""``doradus logs``: search, follow or count the log records of a dataflow or of a run on disk.

Parses the filters into a `LogQuery`, asks ``doradus._control.logs`` for the records, and
renders them: text lines (the terminal formatter's), JSON lines, CSV or YAML.

Example::

    $ doradus logs demo --level warn --since 10m
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable
from typing import Any

import click

from doradus._observability.records import LEVELS
from doradus.cli._options import CONTEXT, connection_options, failures, make_client
from doradus.cli._render import Reporter, plain_table

logs_output_option = click.option(
    "--output",
    "--format",
    "output",
    type=click.Choice(["text", "json", "csv", "yaml"]),
    default="text",
    show_default=True,
    help="text for people; json (one object per line), csv (header + rows) or yaml (a list) for scripts.",
)
"""``--output text|json|csv|yaml`` (``--format`` alias): the ``logs`` variant of `output_option`."""


@click.command(context_settings=CONTEXT)
@click.argument("name_or_id")
@click.option("--node", "nodes", metavar="ID", multiple=True, help="Only this node's records (repeatable).")
@click.option("--level", metavar="LEVEL", help=f"Only LEVEL and more severe ({' '.join(LEVELS)}).")
@click.option("--filter", "levels", metavar="LEVELS", help="Only these exact levels, comma separated.")
@click.option("--grep", metavar="REGEX", help="Only records whose message or fields match REGEX.")
@click.option(
    "--since",
    metavar="WHEN",
    help="Only records at or after WHEN: 30s, 10m, 2h, 1d ago, or an ISO 8601 time.",
)
@click.option("--until", metavar="WHEN", help="Only records at or before WHEN (same forms as --since).")
@click.option(
    "--tail", type=click.IntRange(min=0), help="Only the last N matching records (--follow: of the backlog)."
)
@click.option(
    "--follow", "-f", is_flag=True, help="Keep printing new matching records until the dataflow ends."
)
@click.option(
    "--group-by",
    type=click.Choice(["node", "level", "minute"]),
    help="Count records per node, level or minute.",
)
@logs_output_option
@connection_options
def logs(
    name_or_id: str,
    nodes: tuple[str, ...],
    level: str | None,
    levels: str | None,
    grep: str | None,
    since: str | None,
    until: str | None,
    tail: int | None,
    follow: bool,
    group_by: str | None,
    output: str,
    **opts: Any,
) -> None:
    """Search the log records of a dataflow, or of a run folder on disk.

    NAME_OR_ID is a dataflow on the coordinator, or a run folder (out/<run-id>),
    a logs.jsonl file, or a run id whose folder is under ./out/ (read from disk:
    no coordinator needed). Every given filter must hold. Text lines are
    TIME LEVEL NODE | message key=value..., coloured by level on a terminal.
    """
    from doradus._control.logs import find_logs
    from doradus._observability import query as lq

    reporter = Reporter(color=False if opts["no_color"] else None)
    try:
        query = lq.build_query(
            node=nodes, level=level, levels=levels, grep=grep, since=since, until=until, tail=tail
        )
    except lq.QueryError as exc:
        raise click.BadParameter(
            f"{exc.message}. Suggested fix: {exc.fix}", param_hint=f"--{exc.param}"
        ) from exc
    if follow and group_by:
        raise click.UsageError("--group-by counts records already there: drop --follow or --group-by")
    with failures(reporter):
        found = find_logs(name_or_id, query, follow=follow, connect=lambda: make_client(opts))
    if group_by:
        _print_groups(lq.group_records(found.records, group_by), group_by, output)
        return
    color = (
        output == "text"
        and not opts["no_color"]
        and "NO_COLOR" not in os.environ
        and (sys.stdout.isatty() or bool(os.environ.get("FORCE_COLOR")))
    )
    try:
        _print_records(found.records, found.nodes, output, color, follow)
    except KeyboardInterrupt:
        return


def _print_groups(rows: list[dict[str, Any]], group_by: str, output: str) -> None:
    """The rows of `group_records` as a table, CSV, YAML or JSON lines."""
    from doradus._observability.query import GROUP_COLUMNS, to_csv
    from doradus._observability.records import short_timestamp

    if output == "text":
        table = [
            [row["key"], str(row["count"]), short_timestamp({"timestamp": row["first"]}),
             short_timestamp({"timestamp": row["last"]}), row["sample"]]
            for row in rows
        ]  # fmt: skip
        click.echo(plain_table([group_by.upper(), "COUNT", "FIRST", "LAST", "SAMPLE"], table))
    elif output == "csv":
        click.echo(to_csv(rows, GROUP_COLUMNS), nl=False)
    elif output == "yaml":
        import yaml

        click.echo(yaml.safe_dump(rows, sort_keys=False), nl=False)
    else:
        for row in rows:
            click.echo(json.dumps(row, sort_keys=False))


def _print_records(
    records: Iterable[dict[str, Any]], nodes: list[str], output: str, color: bool, follow: bool
) -> None:
    """Each record as it comes: a text line, a JSON line (sorted keys), a CSV row or a YAML item."""
    import yaml

    from doradus._observability.query import csv_header, csv_row
    from doradus._observability.records import NO_NODE
    from doradus._observability.terminal import RecordFormatter

    if output == "yaml" and not follow:
        click.echo(yaml.safe_dump(list(records), sort_keys=True), nl=False)
        return
    if output == "text" and not follow:  # the node column fits every node printed
        records = list(records)
        nodes = [*nodes, *(str(r.get("node") or NO_NODE) for r in records)]
    formatter = RecordFormatter(nodes, fmt="text", color=color)
    if output == "csv":
        click.echo(csv_header(), nl=False)
    for record in records:
        if output == "text":
            click.echo(formatter.format(record), color=color)
        elif output == "json":
            click.echo(json.dumps(record, sort_keys=True, ensure_ascii=False))
        elif output == "csv":
            click.echo(csv_row(record), nl=False)
        else:
            click.echo(yaml.safe_dump([record], sort_keys=True), nl=False)


ALL_COMMANDS = {"logs": logs}
"""Command name → command, for ``cli/_main.py`` to register."""
