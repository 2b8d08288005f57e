"""How ``doradus node list`` and ``doradus node info`` lay out a node's API object (`NodeInfo`).

Cells are plain text for `doradus.cli._render.print_table` (states coloured as ``status`` does);
a value not measured yet shows as ``-``.

Example:
    >>> list_rows([{"dataflow": "demo", "node": "cam", "state": "running", "pid": 42, "machine": "vm"}])[1]
    [['demo', 'cam', '[blue]running[/blue]', 'vm', '42', '-', '-', '-']]
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from doradus.cli._status import CELLS, latency

LIST_COLUMNS = ["Dataflow", "Node", "Status", "Machine", "PID", "Restarts", "CPU", "Memory"]
"""The columns of ``doradus node list`` (numbers from ``PID`` on)."""
INPUT_COLUMNS = ["Input", "Source", "Policy", "Queue", "Rate", "Received", "Dropped", "Queued", "p50 latency"]
"""The inputs table of ``doradus node info`` (numbers from ``Queue`` on)."""
OUTPUT_COLUMNS = ["Output", "Format", "Backend", "Read by", "Rate", "Sent", "Bytes"]
"""The outputs table of ``doradus node info`` (numbers from ``Rate`` on)."""


def _show(value: Any, fmt: str = "{}") -> str:
    return "-" if value is None else fmt.format(value)


def size(value: float | None) -> str:
    """A byte count for people: ``512 B``, ``3.2 KiB``, ``41.0 MiB``, ``1.2 GiB``.

    Example:
        >>> size(512), size(3300), size(43_000_000), size(None)
        ('512 B', '3.2 KiB', '41.0 MiB', '-')
    """
    if value is None:
        return "-"
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if value >= scale:
            return f"{value / scale:.1f} {unit}"
    return f"{value:.0f} B"


def list_rows(nodes: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """The columns and one row per node of ``doradus node list``.

    Example:
        >>> node = {"dataflow": "d", "node": "n", "state": "failed", "exit_code": 1, "restarts": 2}
        >>> list_rows([node])[1][0][2]
        '[red]failed[/red] (exit 1)'
    """
    cells: dict[str, Callable[[dict[str, Any]], str]] = {
        **CELLS,
        "Machine": lambda n: _show(n.get("machine")),
    }
    return LIST_COLUMNS, [[cells[column](node) for column in LIST_COLUMNS] for node in nodes]


def info_lines(node: dict[str, Any]) -> list[str]:
    """The lines above ``doradus node info``'s tables: who, where, state, process, rates, parameters.

    Example:
        >>> lines = info_lines({"node": "cam", "dataflow": "demo", "dataflow_id": "01a2", "state": "running",
        ...                     "machine": "vm", "kind": "python", "parameters": {"gain": 2}})
        >>> lines[0], lines[-1]
        ("Node 'cam' of dataflow 'demo' (01a2)", '    gain = 2')
    """
    state = str(node.get("state"))
    if node.get("exit_code") is not None:
        state += f" (exit {node['exit_code']})"
    program = node.get("kind") or "-"
    if node.get("path"):
        program += f" ({node['path']})"
    lines = [
        f"Node {node['node']!r} of dataflow {node['dataflow']!r} ({node['dataflow_id']})",
        f"  State:      {state}",
        *([f"  Reason:     {node['reason']}"] if node.get("reason") else []),
        f"  Machine:    {node.get('machine') or '-'}    PID: {_show(node.get('pid'))}",
        f"  Program:    {program}",
        f"  Restarts:   {_show(node.get('restarts'))}",
        f"  CPU:        {_show(node.get('cpu_percent'), '{:.1f}%')}    "
        f"Memory: {size(node.get('memory_bytes'))}",
        f"  Rates:      in {_show(node.get('input_rate'), '{:.1f}/s')}, out "
        f"{_show(node.get('output_rate'), '{:.1f}/s')}; p50 latency {latency(node.get('p50_latency_us'))}",
    ]
    params = node.get("parameters") or {}
    lines.append(f"  Parameters: {len(params) or 'none'}")
    lines.extend(f"    {key} = {json.dumps(value)}" for key, value in sorted(params.items()))
    return lines


def input_rows(node: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """The columns and one row per input of ``doradus node info``.

    Example:
        >>> input_rows({"inputs": {"x": {"source": "a/out", "queue_size": 10, "received": 5}}})[1]
        [['x', 'a/out', '-', '10', '-', '5', '0', '0', '-']]
    """
    rows = [
        [
            input_id,
            _show(stats.get("source")),
            _show(stats.get("queue_policy")),
            _show(stats.get("queue_size")),
            _show(stats.get("rate"), "{:.1f}/s"),
            str(stats.get("received", 0)),
            str(stats.get("dropped", 0)),
            str(stats.get("queued", 0)),
            latency(stats.get("p50_latency_us")),
        ]
        for input_id, stats in sorted(node["inputs"].items())
    ]
    return INPUT_COLUMNS, rows


def output_rows(node: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """The columns and one row per output of ``doradus node info``.

    Example:
        >>> out = {"sent": 3, "bytes": 24, "data_format": "arrow", "backends": ["shm"], "receivers": ["b/x"]}
        >>> output_rows({"outputs": {"out": out}})[1]
        [['out', 'arrow', 'shm', 'b/x', '-', '3', '24 B']]
    """
    rows = [
        [
            output,
            _show(stats.get("data_format")),
            ", ".join(stats.get("backends") or []) or "-",
            ", ".join(stats.get("receivers") or []) or "-",
            _show(stats.get("rate"), "{:.1f}/s"),
            str(stats.get("sent", 0)),
            size(stats.get("bytes", 0)),
        ]
        for output, stats in sorted(node["outputs"].items())
    ]
    return OUTPUT_COLUMNS, rows
