"""How dataflows are doing: ``doradus status`` (one dataflow) and ``doradus top`` (live, every node).

Both tables come from one row builder, `node_rows`, over the nodes' API objects; the
columns each shows are `STATUS_COLUMNS` and `TOP_COLUMNS`.

Example::

    $ doradus status demo && doradus top --once --output json
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import click

from doradus._control.client import ControlClient
from doradus._control.dataflows import node_snapshot
from doradus.cli._options import (
    CONTEXT,
    connection_options,
    failures,
    make_client,
    output_option,
    parse_duration,
)
from doradus.cli._render import Reporter, clock, console, emit_data, make_table, print_table, styled_status


def _show(value: Any, fmt: str = "{}") -> str:
    return "-" if value is None else fmt.format(value)


def _memory(value: int | None) -> str:
    return "-" if value is None else f"{value / 2**20:.1f} MiB"


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}/s"


def latency(us: float | None) -> str:
    """``123 µs``, ``4.56 ms`` or ``1.23 s``.

    Example:
        >>> latency(250.0), latency(4560.0), latency(None)
        ('250 µs', '4.56 ms', '-')
    """
    if us is None:
        return "-"
    if us < 1000:
        return f"{us:.0f} µs"
    if us < 1_000_000:
        return f"{us / 1000:.2f} ms"
    return f"{us / 1_000_000:.2f} s"


def _node_state(node: dict[str, Any]) -> str:
    state = styled_status(str(node["state"]))
    code = node.get("exit_code")
    return state if code is None else f"{state} (exit {code})"


CELLS: dict[str, Callable[[dict[str, Any]], str]] = {
    "Dataflow": lambda n: str(n["dataflow"]),
    "Node": lambda n: str(n["node"]),
    "Status": _node_state,
    "PID": lambda n: _show(n.get("pid")),
    "CPU": lambda n: _show(n.get("cpu_percent"), "{:.1f}%"),
    "Memory": lambda n: _memory(n.get("memory_bytes")),
    "Input rate": lambda n: _rate(n.get("input_rate")),
    "Output rate": lambda n: _rate(n.get("output_rate")),
    "p50 latency": lambda n: latency(n.get("p50_latency_us")),
    "Dropped": lambda n: _show(n.get("dropped")),
    "BP timeouts": lambda n: _show(n.get("backpressure_timeouts")),
    "Restarts": lambda n: _show(n.get("restarts")),
    "Errors": lambda n: _show(n.get("errors")),
}
"""Column title → its cell for one node (the node's API object, plus ``node`` and ``dataflow``)."""
STATUS_COLUMNS = [
    "Node",
    "Status",
    "PID",
    "CPU",
    "Memory",
    "Input rate",
    "Output rate",
    "p50 latency",
    "Dropped",
    "BP timeouts",
    "Restarts",
    "Errors",
]
"""The columns of ``doradus status``."""
TOP_COLUMNS = ["Dataflow", "Node", "Status", "PID", "CPU", "Memory", "Input rate", "Output rate", "Dropped"]
"""The columns of ``doradus top``."""


def node_rows(nodes: Iterable[dict[str, Any]], columns: Sequence[str]) -> list[list[str]]:
    """One table row per node: the cell of each of ``columns`` (titles of `CELLS`).

    Example:
        >>> node_rows([{"node": "camera", "state": "running", "pid": 42}], ["Node", "PID", "Memory"])
        [['camera', '42', '-']]
    """
    cells = [CELLS[column] for column in columns]
    return [[cell(node) for cell in cells] for node in nodes]


@click.command(context_settings=CONTEXT)
@click.argument("name_or_id")
@output_option
@connection_options
def status(name_or_id: str, output: str, **opts: Any) -> None:
    """One dataflow and each node's state, pid, CPU, memory, rates, p50 latency, dropped, restarts, errors.

    Rates are messages/s over the last second; nodes report every second. Below the
    table, why a node is in its state when that needs saying (not ready, not reading its
    inputs, ended by the watchdog).
    """
    reporter = Reporter(color=False if opts["no_color"] else None)
    with failures(reporter):
        flow = make_client(opts).get(f"/dataflows/{name_or_id}")
    if output != "table":
        emit_data(flow, output)
        return
    title = f"{flow['name']} ({flow['id']}): {flow['status']}"
    nodes = [{"node": node_id, **node} for node_id, node in flow["nodes"].items()]
    print_table(title, STATUS_COLUMNS, node_rows(nodes, STATUS_COLUMNS), right=2)
    for line in reason_lines(nodes):
        click.echo(line)


def reason_lines(nodes: Iterable[dict[str, Any]]) -> list[str]:
    """One line per node whose state has a reason, below the table.

    Example:
        >>> reason_lines([{"node": "sink", "state": "running", "reason": "not ready 7s after it started"},
        ...               {"node": "camera", "state": "running"}])
        ['  sink (running): not ready 7s after it started']
    """
    return [f"  {n['node']} ({n['state']}): {n['reason']}" for n in nodes if n.get("reason")]


def _top_table(nodes: list[dict[str, Any]]) -> Any:
    flows = len({n["dataflow_id"] for n in nodes})
    title = f"doradus top: {flows} dataflow(s), {len(nodes)} node(s) at {clock(time.time())}"
    return make_table(title, TOP_COLUMNS, node_rows(nodes, TOP_COLUMNS), right=3)


@click.command(context_settings=CONTEXT)
@click.argument("name_or_id", required=False)
@click.option("--once", is_flag=True, help="Print one snapshot and exit.")
@click.option(
    "--interval", metavar="DURATION", default="1s", show_default=True, help="Time between refreshes."
)
@output_option
@connection_options
def top(name_or_id: str | None, once: bool, interval: str, output: str, **opts: Any) -> None:
    """Live CPU, memory and message rates of each node of the running dataflows (or of NAME_OR_ID).

    The table refreshes every --interval until Ctrl-C. With --output json or
    yaml, each refresh prints one snapshot (a list of node objects, one JSON
    line each refresh); --once prints a single snapshot and exits.
    """
    reporter = Reporter(color=False if opts["no_color"] else None)
    period = max(0.1, parse_duration(interval, "--interval"))
    client = make_client(opts)
    with failures(reporter):
        try:
            if once:
                nodes = node_snapshot(client, name_or_id)
                if output == "table":
                    console().print(_top_table(nodes))
                else:
                    emit_data(nodes, output)
                return
            if output != "table":
                _top_data(client, name_or_id, output, period)
            _top_tables(client, name_or_id, period)
        except KeyboardInterrupt:
            return


def _top_data(client: ControlClient, name_or_id: str | None, output: str, period: float) -> None:
    """Each refresh, one snapshot: a JSON line, or a YAML document after ``---``."""
    while True:
        nodes = node_snapshot(client, name_or_id)
        if output == "json":
            click.echo(json.dumps(nodes, sort_keys=True))
        else:
            click.echo("---")
            emit_data(nodes, output)
        time.sleep(period)


def _top_tables(client: ControlClient, name_or_id: str | None, period: float) -> None:
    """The table, redrawn in place on a terminal; piped, one table per refresh (no cursor tricks)."""
    if not sys.stdout.isatty():
        while True:
            console().print(_top_table(node_snapshot(client, name_or_id)))
            time.sleep(period)
    from rich.live import Live

    with Live(_top_table(node_snapshot(client, name_or_id)), console=console(), auto_refresh=False) as live:
        while True:
            time.sleep(period)
            live.update(_top_table(node_snapshot(client, name_or_id)), refresh=True)


ALL_COMMANDS = {"status": status, "top": top}
"""Command name → command, for ``cli/_main.py`` to register."""
