"""Where the graph view puts each node: layers from sources to sinks, an order in each layer.

The layout is a small layered one. Each node's layer is its longest distance from a
source (edges that close a cycle are set aside and listed under the drawing); an edge
that skips layers passes through a one-row waypoint in each layer it crosses, so every
drawn segment joins two neighbouring layers. The order inside a layer follows the
average position of each node's neighbours, a few sweeps down and up, which keeps
crossings few on the graphs dataflows have. Pure and deterministic: the same graph
gives the same layout.

Example:
    >>> layout = lay_out(["camera", "detector", "sink"],
    ...                  [("camera", "detector"), ("detector", "sink"), ("camera", "sink")])
    >>> [[v.name for v in layer] for layer in layout.layers]
    [['camera'], ['detector', None], ['sink']]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

SWEEPS = 4
"""Ordering passes (each one down then up)."""


@dataclass(eq=False)
class Vertex:
    """A node, or a waypoint (``name`` None) of an edge that skips layers.

    ``ins`` and ``outs`` are the segments (indexes in `Layout.segments`) that arrive
    and leave, in the order they attach from top to bottom.
    """

    name: str | None
    layer: int
    ins: list[int] = field(default_factory=list)
    outs: list[int] = field(default_factory=list)
    position: int = 0
    """Its place in its layer, from the top."""


@dataclass(frozen=True)
class Segment:
    """A piece of an edge between two neighbouring layers.

    ``edge`` is the index of the edge it belongs to; ``first`` says it leaves the
    edge's source (where the edge's label goes).
    """

    source: Vertex
    target: Vertex
    edge: int
    first: bool


@dataclass
class Layout:
    """The layers (top to bottom inside each), the segments, and the edges left out (cycles)."""

    layers: list[list[Vertex]]
    segments: list[Segment]
    back_edges: list[int]
    """Indexes of the edges that close a cycle: not drawn, listed instead."""


def _back_edges(names: Sequence[str], edges: Sequence[tuple[str, str]]) -> set[int]:
    """Edges that go back to a node still on the depth-first path (they close cycles)."""
    outgoing: dict[str, list[tuple[int, str]]] = {name: [] for name in names}
    for index, (source, target) in enumerate(edges):
        outgoing[source].append((index, target))
    back: set[int] = set()
    state: dict[str, int] = {}  # 1: on the path, 2: done
    for root in names:
        if root in state:
            continue
        stack: list[tuple[str, int]] = [(root, 0)]
        state[root] = 1
        while stack:
            name, next_child = stack.pop()
            children = outgoing[name]
            if next_child >= len(children):
                state[name] = 2
                continue
            stack.append((name, next_child + 1))
            index, child = children[next_child]
            if state.get(child) == 1:
                back.add(index)
            elif child not in state:
                state[child] = 1
                stack.append((child, 0))
    return back


def _layers(names: Sequence[str], edges: Sequence[tuple[str, str]], skip: set[int]) -> dict[str, int]:
    """Each node's longest distance from a source, over the edges not skipped."""
    layer = dict.fromkeys(names, 0)
    for _ in range(len(names)):
        changed = False
        for index, (source, target) in enumerate(edges):
            if index not in skip and source != target and layer[target] < layer[source] + 1:
                layer[target] = layer[source] + 1
                changed = True
        if not changed:
            break
    return layer


def lay_out(names: Sequence[str], edges: Sequence[tuple[str, str]]) -> Layout:
    """Layers, waypoints and order for ``names`` joined by ``edges`` (source, target) pairs.

    Edges may name nodes missing from ``names``: they are added after them.

    Example:
        >>> cycle = lay_out(["a", "b"], [("a", "b"), ("b", "a")])
        >>> [[v.name for v in layer] for layer in cycle.layers], cycle.back_edges
        ([['a'], ['b']], [1])
    """
    names = list(dict.fromkeys([*names, *(n for edge in edges for n in edge)]))
    back = _back_edges(names, edges) | {i for i, (s, t) in enumerate(edges) if s == t}
    depth = _layers(names, edges, back)
    layers: list[list[Vertex]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    vertex: dict[str, Vertex] = {}
    for name in names:
        vertex[name] = Vertex(name, depth[name])
        layers[depth[name]].append(vertex[name])
    segments: list[Segment] = []
    for index, (source, target) in enumerate(edges):
        if index in back:
            continue
        previous = vertex[source]
        for middle in range(depth[source] + 1, depth[target] + 1):
            hop = vertex[target] if middle == depth[target] else Vertex(None, middle)
            if hop.name is None:
                layers[middle].append(hop)
            segments.append(Segment(previous, hop, index, first=previous is vertex[source]))
            previous = hop
    _order(layers, segments)
    for number, segment in enumerate(segments):
        segment.source.outs.append(number)
        segment.target.ins.append(number)
    for layer in layers:
        for vertex_ in layer:
            vertex_.ins.sort(key=lambda s: segments[s].source.position)
            vertex_.outs.sort(key=lambda s: segments[s].target.position)
    return Layout(layers, segments, sorted(back))


def _order(layers: list[list[Vertex]], segments: list[Segment]) -> None:
    """Reorder each layer by its neighbours' mean position (barycenters), down then up."""
    for layer in layers:
        for position, vertex in enumerate(layer):
            vertex.position = position
    above: dict[int, list[Vertex]] = {}
    below: dict[int, list[Vertex]] = {}
    for segment in segments:
        above.setdefault(id(segment.target), []).append(segment.source)
        below.setdefault(id(segment.source), []).append(segment.target)
    for _ in range(SWEEPS):
        for neighbours, order in ((above, range(1, len(layers))), (below, range(len(layers) - 2, -1, -1))):
            for number in order:
                layer = layers[number]

                def centre(vertex: Vertex, found: dict[int, list[Vertex]] = neighbours) -> float:
                    others = found.get(id(vertex), [])
                    return sum(o.position for o in others) / len(others) if others else vertex.position

                layer.sort(key=lambda v: (centre(v), v.position))
                for position, vertex in enumerate(layer):
                    vertex.position = position
