"""The layered layout on its own (no browser): boxes and edge labels never overlap, layers go
down, back edges and self-loops are drawn, edges end on their nodes' borders."""

from __future__ import annotations

import random

import pytest

from bot.diagram.layout import Box, Layout, LayoutEdge, layered_layout


def _rects(boxes: list[Box], edges: list[LayoutEdge], layout: Layout
           ) -> list[tuple[float, float, float, float]]:
    rects = [(x - b.width / 2, y - b.height / 2, x + b.width / 2, y + b.height / 2)
             for b, (x, y) in zip(boxes, layout.centres, strict=True)]
    for edge, path in zip(edges, layout.edges, strict=True):
        if edge.label is not None:
            assert path.label_at is not None
            x, y = path.label_at
            rects.append((x - edge.label.width / 2, y - edge.label.height / 2,
                          x + edge.label.width / 2, y + edge.label.height / 2))
    return rects


def _overlaps(rects: list[tuple[float, float, float, float]]) -> list[tuple[int, int]]:
    return [(i, j) for i, a in enumerate(rects) for j, b in enumerate(rects[i + 1:], i + 1)
            if a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]]


def _random_graph(seed: int) -> tuple[list[Box], list[LayoutEdge]]:
    rng = random.Random(seed)
    count = rng.randint(2, 25)
    boxes = [Box(rng.uniform(40, 200), rng.uniform(20, 80)) for _ in range(count)]
    edges = [LayoutEdge(i, i + 1) for i in range(count - 1)]  # a spine, as a flow has
    for _ in range(rng.randint(0, 2 * count)):
        label = Box(rng.uniform(20, 140), rng.uniform(14, 34)) if rng.random() < 0.6 else None
        edges.append(LayoutEdge(rng.randrange(count), rng.randrange(count), label))
    return boxes, edges


@pytest.mark.parametrize("seed", range(100))
def test_random_graphs_with_cycles_loops_and_labels_never_overlap(seed: int) -> None:
    boxes, edges = _random_graph(seed)
    layout = layered_layout(boxes, edges)
    rects = _rects(boxes, edges, layout)
    assert _overlaps(rects) == []
    assert all(r[0] >= 0 and r[2] <= layout.width and r[1] >= 0 and r[3] <= layout.height
               for r in rects)
    for edge, path in zip(edges, layout.edges, strict=True):
        (sx, sy), (tx, ty) = path.points[0], path.points[-1]
        source, target = rects[edge.source], rects[edge.target]
        assert source[0] - 0.01 <= sx <= source[2] + 0.01 and source[1] - 0.01 <= sy <= source[3] + 0.01
        assert target[0] - 0.01 <= tx <= target[2] + 0.01 and target[1] - 0.01 <= ty <= target[3] + 0.01
        if edge.source != edge.target:
            assert path.upward == (layout.centres[edge.target][1] < layout.centres[edge.source][1])


def test_a_chain_goes_straight_down_and_a_loop_back_is_upward() -> None:
    boxes = [Box(100, 40)] * 3
    edges = [LayoutEdge(0, 1), LayoutEdge(1, 2), LayoutEdge(2, 0, Box(60, 16))]
    layout = layered_layout(boxes, edges)
    xs = [x for x, _ in layout.centres]
    ys = [y for _, y in layout.centres]
    assert ys[0] < ys[1] < ys[2]
    assert [p.upward for p in layout.edges] == [False, False, True]
    assert xs[0] - 50 < xs[1] < xs[0] + 50  # the second step is below the first
    assert _overlaps(_rects(boxes, edges, layout)) == []


def test_siblings_are_centred_under_their_parent() -> None:
    boxes = [Box(80, 30)] * 4
    layout = layered_layout(boxes, [LayoutEdge(0, 1), LayoutEdge(0, 2), LayoutEdge(0, 3)])
    parent = layout.centres[0][0]
    children = sorted(x for x, _ in layout.centres[1:])
    assert children[0] < parent < children[2]
    assert abs(children[1] - parent) < 1.0
