"""Pictures of a dataflow: Mermaid flowchart text and a self-contained HTML page.

`mermaid_text` draws one box per node (its id and kind), a small rounded
node per timer, a ``logs`` node for log inputs (dotted edges) and a
subgraph per ``operators:`` node; every edge is labelled
``output → input``. `html_page` wraps that text with the Mermaid library
bundled in ``doradus/_assets`` so the page renders with no network at all.

Guarantees: both functions are pure and deterministic (same dataflow, same
text); every piece of user text is escaped, so ids and labels cannot break
out of the Mermaid syntax or the HTML page.

Example:
    >>> from pathlib import Path
    >>> from doradus._dataflow.model import Dataflow, NodeSpec
    >>> print(mermaid_text(Dataflow(Path("df.yml"), (NodeSpec("cam", "python"),))), end="")
    flowchart TB
        n_cam["cam<br/>python"]
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from importlib import resources

from doradus._dataflow.model import Dataflow, InputSpec, LogSource, NodeSource, NodeSpec, TimerSource

__all__ = ["html_page", "mermaid_text"]

MERMAID_ASSET = "mermaid.min.js"
"""The bundled Mermaid library, a file of the ``doradus._assets`` folder."""

LOGS_ID = "dora_logs"

_ESCAPES = {
    "#": "#35;",  # first: the other replacements introduce `#`
    '"': "#quot;",
    "<": "#lt;",
    ">": "#gt;",
    "&": "#amp;",
    "`": "#96;",
    "|": "#124;",
    "\n": " ",
    "\r": " ",
}
_UNSAFE_ID = re.compile(r"[^A-Za-z0-9_]")
_TIME_UNITS = ((10**9, "s"), (10**6, "ms"), (10**3, "µs"), (1, "ns"))
_INDENT = "    "


def escape_label(text: str) -> str:
    """Escape text for a quoted Mermaid label, with Mermaid's ``#name;`` entities.

    Args:
        text: Any text (an id, an output name).

    Returns:
        The text with quotes, angle brackets and other syntax characters
        replaced, safe inside ``"..."`` in a Mermaid definition.

    Example:
        >>> escape_label('say "hi" <now>')
        'say #quot;hi#quot; #lt;now#gt;'
    """
    return "".join(_ESCAPES.get(char, char) for char in text)


def timer_label(source: TimerSource) -> str:
    """A short human label for a timer: ``timer 20 ms`` or ``timer 50 Hz``.

    Args:
        source: The timer input source.

    Returns:
        The label (unescaped).

    Example:
        >>> timer_label(TimerSource("dora/timer/millis/20", 20_000_000))
        'timer 20 ms'
        >>> timer_label(TimerSource("dora/timer/hz/50", 20_000_000))
        'timer 50 Hz'
    """
    parts = source.source.split("/")
    if len(parts) == 4 and parts[2].lower() in ("hz", "hertz", "freq"):
        return f"timer {parts[3]} Hz"
    for size, unit in _TIME_UNITS:
        if source.interval_ns % size == 0:
            return f"timer {source.interval_ns // size} {unit}"
    return f"timer {source.interval_ns} ns"  # pragma: no cover - the 1 ns unit always divides


def mermaid_text(dataflow: Dataflow) -> str:
    """Draw a dataflow as a Mermaid ``flowchart TB`` definition.

    Args:
        dataflow: A validated dataflow (from `doradus._dataflow.loader.load_dataflow`).

    Returns:
        The Mermaid text, ending with a newline; deterministic for a given
        dataflow (nodes and edges in file order).

    Example:
        >>> from pathlib import Path
        >>> from doradus._dataflow.model import Dataflow, InputSpec, NodeSpec
        >>> tick = InputSpec("tick", TimerSource("dora/timer/millis/20", 20_000_000))
        >>> flow = Dataflow(Path("df.yml"), (NodeSpec("a", "python", inputs={"tick": tick}),))
        >>> print(mermaid_text(flow), end="")
        flowchart TB
            n_a["a<br/>python"]
            t_millis_20("timer 20 ms")
            t_millis_20 -- "tick" --> n_a
            classDef timer font-size:12px,stroke-dasharray:3 3
            class t_millis_20 timer
    """
    return _Drawing(dataflow).draw()


@dataclass
class _Drawing:
    """The state of one drawing: Mermaid ids allocated so far, and the lines."""

    dataflow: Dataflow
    ids: dict[tuple[str, ...], str] = field(default_factory=dict)
    taken: set[str] = field(default_factory=set)
    timers: dict[TimerSource, str] = field(default_factory=dict)
    has_logs: bool = False

    def draw(self) -> str:
        lines = ["flowchart TB"]
        for node in self.dataflow.nodes:
            lines.extend(self._node_lines(node))
        edges = [edge for node in self.dataflow.nodes for edge in self._edges(node)]
        for timer, timer_id in self.timers.items():
            label = escape_label(timer_label(timer))
            lines.append(f'{_INDENT}{timer_id}("{label}")')
        if self.has_logs:
            lines.append(f'{_INDENT}{LOGS_ID}[("logs")]')
        lines.extend(_INDENT + edge for edge in edges)
        lines.extend(self._classes())
        return "\n".join(lines) + "\n"

    def _mermaid_id(self, prefix: str, *key: str) -> str:
        """A unique Mermaid id for ``key``, readable and stable across runs."""
        if (prefix, *key) in self.ids:
            return self.ids[(prefix, *key)]
        base = prefix + "__".join(_UNSAFE_ID.sub("_", part) for part in key)
        candidate, counter = base, 1
        while candidate in self.taken:
            counter += 1
            candidate = f"{base}_{counter}"
        self.ids[(prefix, *key)] = candidate
        self.taken.add(candidate)
        return candidate

    def _node_lines(self, node: NodeSpec) -> list[str]:
        node_id = self._mermaid_id("n_", node.id)
        operators = _named_operators(node)
        if not operators:
            return [f'{_INDENT}{node_id}["{escape_label(node.id)}<br/>{node.kind}"]']
        lines = [
            f'{_INDENT}subgraph {node_id}["{escape_label(node.id)} (operators)"]',
            f"{_INDENT * 2}direction TB",
        ]
        for operator in operators:
            operator_id = self._mermaid_id("n_", node.id, operator)
            lines.append(f'{_INDENT * 2}{operator_id}["{escape_label(operator)}<br/>operator"]')
        lines.append(f"{_INDENT}end")
        return lines

    def _edges(self, node: NodeSpec) -> list[str]:
        return [self._edge(node, spec) for spec in node.inputs.values()]

    def _edge(self, node: NodeSpec, spec: InputSpec) -> str:
        target, input_id = self._endpoint(node, spec.id)
        source = spec.source
        if isinstance(source, TimerSource):
            timer_id = self._mermaid_id("t_", "_".join(source.source.split("/")[2:]))
            self.timers.setdefault(source, timer_id)
            return f'{timer_id} -- "{escape_label(input_id)}" --> {target}'
        if isinstance(source, LogSource):
            self.has_logs = True
            detail = source.source.removeprefix("dora/logs").strip("/")
            label = f"{detail} → {input_id}" if detail else input_id
            return f'{LOGS_ID} -. "{escape_label(label)}" .-> {target}'
        origin, output = self._origin(source)
        return f'{origin} -- "{escape_label(f"{output} → {input_id}")}" --> {target}'

    def _endpoint(self, node: NodeSpec, input_id: str) -> tuple[str, str]:
        """The Mermaid id receiving this input and the input's own id."""
        operator, _, own = input_id.partition("/")
        if own and operator in _named_operators(node):
            return self._mermaid_id("n_", node.id, operator), own
        return self._mermaid_id("n_", node.id), input_id

    def _origin(self, source: NodeSource) -> tuple[str, str]:
        """The Mermaid id sending this output and the output's own id."""
        operator, _, own = source.output.partition("/")
        node = next((n for n in self.dataflow.nodes if n.id == source.node), None)
        if node is not None and own and operator in _named_operators(node):
            return self._mermaid_id("n_", node.id, operator), own
        return self._mermaid_id("n_", source.node), source.output

    def _classes(self) -> list[str]:
        lines = []
        if self.timers:
            lines.append(f"{_INDENT}classDef timer font-size:12px,stroke-dasharray:3 3")
            lines.append(f"{_INDENT}class {','.join(self.timers.values())} timer")
        if self.has_logs:
            lines.append(f"{_INDENT}classDef logs font-size:12px")
            lines.append(f"{_INDENT}class {LOGS_ID} logs")
        return lines


def _named_operators(node: NodeSpec) -> list[str]:
    """The operator ids of an ``operators:`` node (empty for ``operator:`` and other nodes)."""
    return [operator.id for operator in node.operators if operator.id is not None]


def mermaid_library() -> str:
    """The bundled Mermaid library's JavaScript source.

    Returns:
        The content of ``doradus/_assets/mermaid.min.js``.

    Raises:
        FileNotFoundError: The asset is missing from the installation.

    Example:
        >>> "mermaid" in mermaid_library()[:200]
        True
    """
    return resources.files("doradus._assets").joinpath(MERMAID_ASSET).read_text(encoding="utf-8")


_LEGEND = (
    ("box", "a node: its id and kind (python, executable, operator, dynamic, shell)"),
    ("group", "an <code>operators:</code> node and its operators"),
    ("rounded", "a timer (<code>dora/timer/...</code>)"),
    ("cylinder", "log records (<code>dora/logs/...</code>), dotted edges"),
    ("arrow", "<code>output → input</code>: data flowing from a node's output to an input"),
)

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{csp}">
<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5rem; color: #222; }}
h1 {{ font-size: 1.3rem; margin: 0 0 .2rem; }}
.path {{ color: #666; font-size: .85rem; margin: 0 0 1rem; }}
.legend {{ font-size: .85rem; color: #444; border-top: 1px solid #ddd; margin-top: 1.5rem; }}
.legend dt {{ font-weight: 600; float: left; clear: left; width: 6rem; }}
.legend dd {{ margin: 0 0 .2rem 6.5rem; }}
</style>
</head>
<body>
<h1>{title}</h1>
<p class="path">{path}</p>
<pre class="mermaid">
{diagram}</pre>
<dl class="legend">
{legend}
</dl>
<script>
{library}
</script>
<script>
mermaid.initialize({{startOnLoad: true, securityLevel: "strict"}});
</script>
</body>
</html>
"""

# Nothing may be fetched: inline scripts and styles only (Mermaid writes <style> into its SVG).
_CSP = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; font-src data:"
)


def html_page(dataflow: Dataflow) -> str:
    """A single self-contained HTML page drawing the dataflow.

    The Mermaid library is inlined from the bundled asset and a
    Content-Security-Policy forbids every network fetch, so the page works
    offline and leaks nothing.

    Args:
        dataflow: A validated dataflow.

    Returns:
        The HTML text (UTF-8).

    Raises:
        ValueError: The bundled library contains ``</script`` and could not
            be inlined safely (a broken asset).

    Example:
        >>> from pathlib import Path
        >>> from doradus._dataflow.model import Dataflow, NodeSpec
        >>> page = html_page(Dataflow(Path("/tmp/df.yml"), (NodeSpec("cam", "python"),)))
        >>> "<script src=" in page, 'securityLevel: "strict"' in page
        (False, True)
    """
    library = mermaid_library()
    if "</script" in library.lower():
        raise ValueError(f"the bundled {MERMAID_ASSET} contains `</script` and cannot be inlined")
    legend = "\n".join(f"<dt>{term}</dt><dd>{text}</dd>" for term, text in _LEGEND)
    return _PAGE.format(
        csp=_CSP,
        title=html.escape(f"Dataflow {dataflow.name}"),
        path=html.escape(str(dataflow.path)),
        diagram=html.escape(mermaid_text(dataflow)),
        legend=legend,
        library=library,
    )
