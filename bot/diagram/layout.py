"""Layered (Sugiyama-style) placement of a small directed graph: pure geometry.

1. Cycles are broken by turning round the back edges a depth-first search from node 0
   finds (they are drawn pointing up).
2. Layers by longest path, doubled: between two node layers there is always a layer
   for edge labels, so a label takes part in the ordering and never sits on a node.
3. Edges longer than one layer get a dummy vertex in each layer they cross.
4. Order within layers: barycentre sweeps, down then up, keeping the order with the
   fewest crossings.
5. x: each vertex pulled towards the mean of its neighbours, then packed at minimum
   gaps by a left pass and a right pass whose average keeps the order.

Graphs here are flows of a few dozen steps, so the simple quadratic steps are fine.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Box", "EdgePath", "Layout", "LayoutEdge", "layered_layout"]

_DUMMY_WIDTH = 10.0  # room for an edge passing between boxes
_LOOP_WIDTH = 28.0  # how far a self-loop reaches to the right of its node


@dataclass(frozen=True)
class Box:
    width: float
    height: float


@dataclass(frozen=True)
class LayoutEdge:
    source: int
    target: int
    label: Box | None = None


@dataclass(frozen=True)
class EdgePath:
    points: tuple[tuple[float, float], ...]  # from the source's border to the target's
    label_at: tuple[float, float] | None  # centre of the label box
    upward: bool  # drawn against the layer order (a back edge)


@dataclass(frozen=True)
class Layout:
    width: float
    height: float
    centres: tuple[tuple[float, float], ...]  # one per input box
    edges: tuple[EdgePath, ...]  # one per input edge


def _break_cycles(count: int, edges: Sequence[LayoutEdge]) -> set[int]:
    """Indexes of the edges a depth-first search from node 0 meets as back edges."""
    succ: list[list[tuple[int, int]]] = [[] for _ in range(count)]
    for index, edge in enumerate(edges):
        if edge.source != edge.target:
            succ[edge.source].append((edge.target, index))
    state = [0] * count  # 0 new, 1 on the path, 2 done
    back: set[int] = set()
    for root in range(count):
        if state[root]:
            continue
        state[root] = 1
        stack = [(root, iter(succ[root]))]
        while stack:
            node, ahead = stack[-1]
            step = next(ahead, None)
            if step is None:
                state[node] = 2
                stack.pop()
                continue
            target, index = step
            if state[target] == 1:
                back.add(index)
            elif state[target] == 0:
                state[target] = 1
                stack.append((target, iter(succ[target])))
    return back


def _longest_path_ranks(count: int, arcs: Sequence[tuple[int, int]]) -> list[int]:
    rank = [0] * count
    incoming = [0] * count
    out: list[list[int]] = [[] for _ in range(count)]
    for u, v in arcs:
        out[u].append(v)
        incoming[v] += 1
    ready = [v for v in range(count) if incoming[v] == 0]
    while ready:
        u = ready.pop(0)
        for v in out[u]:
            rank[v] = max(rank[v], rank[u] + 1)
            incoming[v] -= 1
            if incoming[v] == 0:
                ready.append(v)
    return rank


def _crossings(layers: list[list[int]], down: list[list[int]], pos: list[int]) -> int:
    total = 0
    for layer in layers[:-1]:
        segments = [(pos[u], pos[v]) for u in layer for v in down[u]]
        for i, (a1, b1) in enumerate(segments):
            for a2, b2 in segments[i + 1:]:
                if (a1 - a2) * (b1 - b2) < 0:
                    total += 1
    return total


def _order(layers: list[list[int]], up: list[list[int]], down: list[list[int]],
           sweeps: int) -> list[list[int]]:
    pos = [0] * sum(len(layer) for layer in layers)

    def number() -> None:
        for layer in layers:
            for i, v in enumerate(layer):
                pos[v] = i

    number()
    best = [list(layer) for layer in layers]
    fewest = _crossings(layers, down, pos)
    for sweep in range(sweeps):
        downward = sweep % 2 == 0
        indexes = range(1, len(layers)) if downward else range(len(layers) - 2, -1, -1)
        for li in indexes:
            neighbours = up if downward else down

            def barycentre(v: int, neighbours: list[list[int]] = neighbours) -> float:
                near = neighbours[v]
                return sum(pos[n] for n in near) / len(near) if near else float(pos[v])

            layers[li].sort(key=barycentre)
            for i, v in enumerate(layers[li]):
                pos[v] = i
        found = _crossings(layers, down, pos)
        if found < fewest:
            fewest, best = found, [list(layer) for layer in layers]
        if fewest == 0:
            break
    return best


def _pack(layer: list[int], want: dict[int, float], widths: list[float], gap: float,
          x: list[float]) -> None:
    """Place a layer's vertices as near ``want`` as their order and gaps allow."""
    if not layer:
        return
    left: list[float] = []
    for i, v in enumerate(layer):
        least = left[-1] + (widths[layer[i - 1]] + widths[v]) / 2 + gap if i else -1e18
        left.append(max(want[v], least))
    right = [0.0] * len(layer)
    for i in range(len(layer) - 1, -1, -1):
        v = layer[i]
        most = right[i + 1] - (widths[v] + widths[layer[i + 1]]) / 2 - gap \
            if i + 1 < len(layer) else 1e18
        right[i] = min(want[v], most)
    for i, v in enumerate(layer):
        x[v] = (left[i] + right[i]) / 2


def layered_layout(boxes: Sequence[Box], edges: Sequence[LayoutEdge], *, gap: float = 24.0,
                   layer_gap: float = 16.0, margin: float = 12.0, sweeps: int = 12) -> Layout:
    count = len(boxes)
    loops: dict[int, float] = {}  # node -> room its self-loops need on the right
    loop_labels: dict[int, float] = {}  # node -> height of its self-loops' labels, stacked
    for edge in edges:
        if edge.source == edge.target:
            label = edge.label.width + 6 if edge.label else 0.0
            loops[edge.source] = max(loops.get(edge.source, 0.0), _LOOP_WIDTH + label)
            if edge.label:
                loop_labels[edge.source] = loop_labels.get(edge.source, 0.0) + edge.label.height
    back = _break_cycles(count, edges)
    arcs = [(e.target, e.source) if i in back else (e.source, e.target)
            for i, e in enumerate(edges) if e.source != e.target]
    node_rank = [2 * r for r in _longest_path_ranks(count, arcs)]

    widths = [b.width + loops.get(i, 0.0) for i, b in enumerate(boxes)]
    heights = [max(b.height, loop_labels.get(i, 0.0)) for i, b in enumerate(boxes)]
    rank = list(node_rank)
    chains: list[list[int]] = []  # per input edge, its vertices top to bottom
    label_vertex: list[int | None] = []
    for index, edge in enumerate(edges):
        if edge.source == edge.target:
            chains.append([edge.source])
            label_vertex.append(None)
            continue
        top, bottom = (edge.target, edge.source) if index in back else (edge.source, edge.target)
        chain = [top]
        label_rank = node_rank[bottom] - 1 if index in back else node_rank[top] + 1
        holder: int | None = None
        for r in range(node_rank[top] + 1, node_rank[bottom]):
            vertex = len(widths)
            is_label = edge.label is not None and r == label_rank
            widths.append(edge.label.width if is_label and edge.label else _DUMMY_WIDTH)
            heights.append(edge.label.height if is_label and edge.label else 0.0)
            rank.append(r)
            chain.append(vertex)
            if is_label:
                holder = vertex
        chain.append(bottom)
        chains.append(chain)
        label_vertex.append(holder)

    total = len(widths)
    layers: list[list[int]] = [[] for _ in range(max(rank, default=0) + 1)]
    for v in range(total):
        layers[rank[v]].append(v)
    up: list[list[int]] = [[] for _ in range(total)]
    down: list[list[int]] = [[] for _ in range(total)]
    for chain in chains:
        for a, b in itertools.pairwise(chain):
            down[a].append(b)
            up[b].append(a)
    layers = _order(layers, up, down, sweeps)

    x = [0.0] * total
    for layer in layers:
        _pack(layer, {v: 0.0 for v in layer}, widths, gap, x)
    for round_ in range(16):
        toward = (up, down, None)[round_ % 3]
        ordered = layers if toward is not down else layers[::-1]
        for layer in ordered:
            want: dict[int, float] = {}
            for v in layer:
                near = up[v] + down[v] if toward is None else toward[v]
                want[v] = sum(x[n] for n in near) / len(near) if near else x[v]
            _pack(layer, want, widths, gap, x)
    least = min((x[v] - widths[v] / 2 for v in range(total)), default=0.0)
    x = [value - least + margin for value in x]
    width = max((x[v] + widths[v] / 2 for v in range(total)), default=0.0) + margin

    y = [0.0] * total
    band = [(0.0, 0.0)] * total  # top and bottom of each vertex's layer
    layer_top = margin
    for layer in layers:
        tallest = max((heights[v] for v in layer), default=0.0)
        for v in layer:
            y[v] = layer_top + tallest / 2
            band[v] = (layer_top, layer_top + tallest)
        layer_top += tallest + layer_gap
    height = layer_top - layer_gap + margin

    # A node with a self-loop sits at the left of its widened slot.
    centres = [(x[i] - loops.get(i, 0.0) / 2, y[i]) for i in range(count)]

    def centre(v: int) -> tuple[float, float]:
        return centres[v] if v < count else (x[v], y[v])

    paths: list[EdgePath] = []
    stacked: dict[int, float] = {}  # node -> top of its next self-loop label
    for index, edge in enumerate(edges):
        chain = chains[index]
        holder = label_vertex[index]
        if edge.source == edge.target:
            node = edge.source
            label_top = stacked.get(node, centres[node][1] - loop_labels.get(node, 0.0) / 2)
            paths.append(_self_loop(centres[node], boxes[node], edge.label, label_top))
            stacked[node] = label_top + (edge.label.height if edge.label else 0.0)
            continue
        first, last = centre(chain[0]), centre(chain[-1])
        # Straight down inside every layer (from a box's border to the layer's edge, through
        # each dummy and its label), so that an edge bends only in the gaps between layers,
        # where there are no boxes.
        points = [(first[0], first[1] + boxes[chain[0]].height / 2), (first[0], band[chain[0]][1])]
        for v in chain[1:-1]:
            points += [(x[v], band[v][0]), (x[v], band[v][1])]
        points += [(last[0], band[chain[-1]][0]), (last[0], last[1] - boxes[chain[-1]].height / 2)]
        upward = index in back
        if upward:
            points.reverse()
        label_at = (x[holder], y[holder]) if holder is not None else None
        paths.append(EdgePath(tuple(points), label_at, upward))
    return Layout(width, height, tuple(centres), tuple(paths))


def _self_loop(at: tuple[float, float], box: Box, label: Box | None, top: float) -> EdgePath:
    """A loop out of the right side of the box and back; its label beside it, ``top`` down."""
    cx, cy = at
    side = cx + box.width / 2
    points = ((side, cy - box.height / 4), (side + _LOOP_WIDTH - 6, cy - box.height / 4),
              (side + _LOOP_WIDTH - 6, cy + box.height / 4), (side, cy + box.height / 4))
    label_at = (side + _LOOP_WIDTH + label.width / 2, top + label.height / 2) if label else None
    return EdgePath(points, label_at, False)
