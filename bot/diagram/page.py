"""A flow graph drawn as inline SVG in one self-contained HTML page that works offline.

The page loads nothing: no script library, no font, no image (its Content-Security-Policy
forbids every fetch). Boxes are sized here from DejaVu Sans advance widths measured in
Chromium, placed by bot/diagram/layout.py, and the Mermaid source is included for staff
to paste elsewhere. A small script checks, once the browser has laid the page out, that
no two boxes overlap, that each text fits its box and that no arrow runs through a box
(other than its own two and its label), and writes the result into the page
(``#layout-check``), where the browser test reads it.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Iterator

from bot.diagram.graph import FlowGraph, Node, Role
from bot.diagram.layout import Box, Layout, LayoutEdge, layered_layout
from bot.diagram.mermaid import ROLE_STYLES
from bot.text.bidi import FSI, PDI, isolate_ltr_spans

__all__ = ["text_width", "to_html", "wrap"]

FONT_PX = 12.0
LINE_PX = 15.0
_PAD_X, _PAD_Y = 10.0, 6.0
_NODE_TEXT_PX = 180.0  # widest line in a node box before wrapping
_LABEL_TEXT_PX = 130.0
_EXCERPT_LINES, _LABEL_LINES = 3, 2
#: Extra width for shapes whose sides slant or carry marks (hexagon, stadium, subroutine).
_SHAPE_EXTRA = {Role.HANDOVER: 16.0, Role.FINISH: 12.0, Role.TERMINAL: 12.0, Role.FLOW: 10.0}
#: Readable on a phone: the diagram is never drawn smaller than this share of its size
#: (12 px text stays at 10 px or more); a wider diagram scrolls sideways in its frame.
_MIN_SCALE = 0.85

# Advance widths of DejaVu Sans (em) for ASCII 32..126, regular and bold, measured with
# getComputedTextLength() in Chromium 150. Other characters: see _char_width.
_ASCII = "".join(chr(c) for c in range(32, 127))
_REGULAR = (
    0.32, 0.4, 0.46, 0.84, 0.64, 0.95, 0.78, 0.27, 0.39, 0.39, 0.5, 0.84, 0.32, 0.36, 0.32, 0.34,
    0.64, 0.64, 0.64, 0.64, 0.64, 0.64, 0.64, 0.64, 0.64, 0.64, 0.34, 0.34, 0.84, 0.84, 0.84,
    0.53, 1.0, 0.71, 0.69, 0.7, 0.77, 0.63, 0.58, 0.77, 0.75, 0.29, 0.29, 0.66, 0.56, 0.86,
    0.75, 0.79, 0.6, 0.79, 0.69, 0.63, 0.6, 0.73, 0.68, 0.99, 0.69, 0.61, 0.69, 0.39, 0.34,
    0.39, 0.84, 0.5, 0.5, 0.61, 0.63, 0.55, 0.63, 0.62, 0.34, 0.63, 0.63, 0.28, 0.28, 0.58,
    0.28, 0.97, 0.63, 0.61, 0.63, 0.63, 0.4, 0.52, 0.39, 0.63, 0.59, 0.82, 0.59, 0.59, 0.52,
    0.64, 0.34, 0.64, 0.84)
_BOLD = (
    0.35, 0.46, 0.52, 0.84, 0.7, 1.0, 0.87, 0.31, 0.46, 0.46, 0.52, 0.84, 0.38, 0.42, 0.38, 0.37,
    0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.4, 0.4, 0.84, 0.84, 0.84, 0.58, 1.0,
    0.77, 0.76, 0.73, 0.83, 0.68, 0.68, 0.82, 0.84, 0.37, 0.37, 0.77, 0.64, 1.0, 0.84, 0.85,
    0.73, 0.85, 0.77, 0.68, 0.7, 0.81, 0.77, 1.1, 0.77, 0.72, 0.73, 0.46, 0.37, 0.46, 0.84, 0.5,
    0.5, 0.67, 0.72, 0.59, 0.72, 0.68, 0.41, 0.72, 0.71, 0.34, 0.34, 0.67, 0.34, 1.04, 0.71,
    0.69, 0.72, 0.72, 0.49, 0.6, 0.48, 0.71, 0.65, 0.92, 0.65, 0.65, 0.58, 0.71, 0.37, 0.71,
    0.84)
_WIDTHS = {False: dict(zip(_ASCII, _REGULAR, strict=True)),
           True: dict(zip(_ASCII, _BOLD, strict=True))}


def _char_width(char: str, bold: bool) -> float:
    known = _WIDTHS[bold].get(char)
    if known is not None:
        return known
    if unicodedata.category(char) in ("Mn", "Me", "Cf"):
        return 0.0  # combining marks and ZWNJ take no room of their own
    if unicodedata.east_asian_width(char) in ("W", "F"):
        return 1.05
    return 0.8  # generous for other scripts and for fallback fonts


def text_width(text: str, bold: bool = False) -> float:
    """Estimated width in px of ``text`` at FONT_PX."""
    return sum(_char_width(c, bold) for c in text.replace("\u00a0", " ")) * FONT_PX


#: Embeddings, overrides and isolates in a text could reorder the lines drawn after them:
#: the page drops them and isolates each line itself (_text).
_BIDI_CONTROLS = dict.fromkeys(map(ord, "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"))
_NBSP = "\u00a0"


def _plain(text: str) -> str:
    """Text to draw: without bidi controls, and with the spaces inside a number (0808 8010
    503) made unbreakable, so that a phone number stays on one line."""
    return re.sub(r"(?<=\d) (?=\d)", _NBSP, " ".join(text.translate(_BIDI_CONTROLS).split()))


def wrap(text: str, max_px: float, max_lines: int, bold: bool = False) -> list[str]:
    """Greedy word wrap at spaces (not at no-break spaces); a word wider than a line is cut;
    more lines than allowed end with …"""
    lines: list[str] = []
    current = ""
    for word in text.split(" "):
        if not word:
            continue
        while text_width(word, bold) > max_px:  # cut a very long word (a link)
            cut = len(word) - 1
            while cut > 1 and text_width(word[:cut], bold) > max_px:
                cut -= 1
            if current:
                lines.append(current)
                current = ""
            lines.append(word[:cut])
            word = word[cut:]
        candidate = f"{current} {word}" if current else word
        if current and text_width(candidate, bold) > max_px:
            lines.append(current)
            current = word
        else:
            current = candidate
    if current:
        lines.append(current)
    if len(lines) > max_lines:
        last = lines[max_lines - 1]
        while last and text_width(last + "…", bold) > max_px:
            last = last[:-1]
        lines = [*lines[:max_lines - 1], last.rstrip() + "…"]
    return lines


def _node_lines(node: Node) -> list[tuple[str, str]]:
    """(text, css class) per line of a node's box."""
    if node.role is Role.TERMINAL:
        return [(node.title, "title")]
    if node.role is Role.FLOW:
        return [("flow", "kind"), *((line, "title") for line in wrap(node.title, _NODE_TEXT_PX, 2,
                                                                      bold=True))]
    lines = [(line, "title") for line in wrap(node.title, _NODE_TEXT_PX, 2, bold=True)]
    lines.append((node.kind, "kind"))
    lines += [(line, "") for line in wrap(_plain(node.text), _NODE_TEXT_PX, _EXCERPT_LINES)]
    return lines


def _box(lines: list[tuple[str, str]], extra: float = 0.0) -> Box:
    widest = max(text_width(text, bold=style == "title") for text, style in lines)
    return Box(max(widest + 2 * _PAD_X + extra, 56.0), len(lines) * LINE_PX + 2 * _PAD_Y)


def _label_lines(label: str) -> list[str]:
    return wrap(_plain(label), _LABEL_TEXT_PX, _LABEL_LINES)


def _label_box(lines: list[str]) -> Box:
    return Box(max(text_width(line) for line in lines) + 8, len(lines) * LINE_PX + 4)


def _fmt(value: float) -> str:
    return f"{value:.1f}".removesuffix(".0")


def _shape(role: Role, cx: float, cy: float, box: Box) -> str:
    x0, y0, x1, y1 = cx - box.width / 2, cy - box.height / 2, cx + box.width / 2, cy + box.height / 2
    style = ROLE_STYLES[role]
    paint = f'fill="{style.fill}" stroke="{style.stroke}"'
    if role is Role.HANDOVER:
        points = [(x0 + 8, y0), (x1 - 8, y0), (x1, cy), (x1 - 8, y1), (x0 + 8, y1), (x0, cy)]
        joined = " ".join(f"{_fmt(px)},{_fmt(py)}" for px, py in points)
        return f'<polygon class="shape" points="{joined}" {paint} stroke-width="2"/>'
    radius = {Role.QUESTION: 10.0, Role.FINISH: box.height / 2,
              Role.TERMINAL: box.height / 2}.get(role, 3.0)
    dash = ' stroke-dasharray="4 3"' if role is Role.BRANCH else ""
    rect = (f'<rect class="shape" x="{_fmt(x0)}" y="{_fmt(y0)}" width="{_fmt(box.width)}" '
            f'height="{_fmt(box.height)}" rx="{_fmt(radius)}" {paint}{dash}/>')
    if role is Role.FLOW:  # a subroutine: bars inside both ends
        bars = "".join(f'<line x1="{_fmt(bx)}" y1="{_fmt(y0)}" x2="{_fmt(bx)}" y2="{_fmt(y1)}" '
                       f'stroke="{style.stroke}"/>' for bx in (x0 + 5, x1 - 5))
        return rect + bars
    return rect


def _bidi_line(line: str) -> str:
    """A line in right-to-left script reads in its own direction, whatever the lines around
    it, with numbers and links inside it kept in order (as the bot sends them)."""
    line = line.replace(_NBSP, " ")
    if any(unicodedata.bidirectional(c) in ("R", "AL") for c in line):
        return f"{FSI}{isolate_ltr_spans(line)}{PDI}"
    return line


def _text(lines: list[tuple[str, str]], cx: float, top: float) -> str:
    spans = []
    for i, (raw, style) in enumerate(lines):
        line = _bidi_line(raw)
        y = top + LINE_PX * (i + 0.75)
        css = f' class="{style}"' if style else ""
        spans.append(f'<tspan x="{_fmt(cx)}" y="{_fmt(y)}"{css}>{html.escape(line)}</tspan>')
    return f'<text text-anchor="middle">{"".join(spans)}</text>'


def _path(points: tuple[tuple[float, float], ...]) -> str:
    """Through every point, leaving and entering each one vertically."""
    (x, y), rest = points[0], points[1:]
    parts = [f"M{_fmt(x)},{_fmt(y)}"]
    for nx, ny in rest:
        if abs(nx - x) < 0.5 and abs(ny - y) < 0.5:
            continue  # a box as tall as its layer: nothing to draw
        if abs(nx - x) < 0.5 or abs(ny - y) < 0.5:
            parts.append(f"L{_fmt(nx)},{_fmt(ny)}")
        else:
            half = (ny - y) / 2
            parts.append(f"C{_fmt(x)},{_fmt(y + half)} {_fmt(nx)},{_fmt(ny - half)} "
                         f"{_fmt(nx)},{_fmt(ny)}")
        x, y = nx, ny
    return " ".join(parts)


def _data(node: Node) -> str:
    attrs = {"data-kind": node.kind, "data-role": node.role.value}
    if node.step is not None:
        attrs["data-step"] = node.step
        attrs["data-line"] = str(node.line)
    elif node.role is Role.FLOW:
        attrs["data-flow"] = node.title
    else:
        attrs["data-terminal"] = node.title
    return " ".join(f'{key}="{html.escape(value)}"' for key, value in attrs.items())


def _svg(graph: FlowGraph) -> tuple[str, Layout]:
    node_lines = [_node_lines(node) for node in graph.nodes]
    boxes = [_box(lines, _SHAPE_EXTRA.get(node.role, 0.0))
             for node, lines in zip(graph.nodes, node_lines, strict=True)]
    index = {node.id: i for i, node in enumerate(graph.nodes)}
    label_lines = [_label_lines(edge.label) if edge.label else [] for edge in graph.edges]
    edges = [LayoutEdge(index[e.source], index[e.target], _label_box(lines) if lines else None)
             for e, lines in zip(graph.edges, label_lines, strict=True)]
    layout = layered_layout(boxes, edges)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_fmt(layout.width)} '
             f'{_fmt(layout.height)}" width="{_fmt(layout.width)}" height="{_fmt(layout.height)}" '
             f'role="img" aria-labelledby="diagram-title">',
             f'<title id="diagram-title">{html.escape(graph.title)} ({html.escape(graph.flow)})</title>',
             '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
             'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
             'fill="#546e7a"/></marker></defs>', '<g class="edges">']
    for number, (edge, path) in enumerate(zip(graph.edges, layout.edges, strict=True)):
        css = "edge back" if path.upward else "edge"
        parts.append(f'<path class="{css}" d="{_path(path.points)}" data-edge="{number}" '
                     f'data-source-node="{index[edge.source]}" data-target-node="'
                     f'{index[edge.target]}" data-from="{html.escape(graph.node(edge.source).title)}" '
                     f'data-to="{html.escape(graph.node(edge.target).title)}" '
                     f'data-kind="{edge.kind.value}" marker-end="url(#arrow)"/>')
    parts.append('</g><g class="edge-labels">')
    for number, (edge, path, wrapped, spec) in enumerate(
            zip(graph.edges, layout.edges, label_lines, edges, strict=True)):
        if path.label_at is None or spec.label is None:
            continue
        lx, ly = path.label_at
        size = spec.label
        parts.append(f'<g class="edge-label" data-edge="{number}" '
                     f'data-label="{html.escape(edge.label)}">'
                     f'<rect x="{_fmt(lx - size.width / 2)}" y="{_fmt(ly - size.height / 2)}" '
                     f'width="{_fmt(size.width)}" height="{_fmt(size.height)}" rx="3"/>'
                     + _text([(line, "") for line in wrapped], lx, ly - size.height / 2 + 2)
                     + "</g>")
    parts.append('</g><g class="nodes">')
    for number, (node, lines, box, (cx, cy)) in enumerate(
            zip(graph.nodes, node_lines, boxes, layout.centres, strict=True)):
        start = " start" if graph.steps and node is graph.steps[0] else ""
        parts.append(f'<g class="node role-{node.role.value}{start}" data-node="{number}" '
                     f'{_data(node)}>'
                     + _shape(node.role, cx, cy, box)
                     + _text(lines, cx, cy - box.height / 2 + _PAD_Y) + "</g>")
    parts.append("</g></svg>")
    return "".join(parts), layout


def _outline(graph: FlowGraph) -> Iterator[str]:
    """The same graph as a list, for reading on a small screen or with a screen reader."""
    for node in graph.steps:
        ways = [f"{html.escape(e.label)} → {html.escape(graph.node(e.target).title)}" if e.label
                else f"→ {html.escape(graph.node(e.target).title)}"
                for e in graph.edges if e.source == node.id]
        text = f": {html.escape(node.text)}" if node.text else ""
        yield (f'<li data-list-step="{html.escape(node.title)}"><code>{html.escape(node.title)}'
               f"</code> ({html.escape(node.kind)}, line {node.line}){text}"
               + (f'<br><span class="ways">{"; ".join(ways)}</span>' if ways else "") + "</li>")


_LEGEND = (
    (Role.STEP, "says something"), (Role.QUESTION, "a question (buttons or typed answer)"),
    (Role.BRANCH, "goto: only moves on"), (Role.HANDOVER, "handover to a volunteer"),
    (Role.FINISH, "end or forget"), (Role.FLOW, "starts another flow"),
    (Role.TERMINAL, "END or MENU"),
)

_CSS = """
body{font-family:"DejaVu Sans","Liberation Sans",Arial,sans-serif;margin:0;padding:12px;
color:#263238;background:#fafafa;line-height:1.4;overflow-wrap:anywhere}
h1{font-size:1.25rem;margin:0 0 4px}
.meta{margin:0 0 8px;font-size:.9rem}
.legend{display:flex;flex-wrap:wrap;gap:4px 14px;list-style:none;padding:0;margin:0 0 10px;
font-size:.85rem}
.legend span{display:inline-block;width:14px;height:10px;border:1px solid;margin-right:4px;
vertical-align:middle}
.diagram{overflow:auto;-webkit-overflow-scrolling:touch;border:1px solid #cfd8dc;
background:#fff;max-height:85vh}
.diagram svg{display:block;height:auto;width:100%%}
svg text{font-family:"DejaVu Sans",sans-serif;font-size:%(font)spx;fill:#263238}
svg .title{font-weight:bold}
svg .kind{fill:#607d8b;font-style:italic}
svg .edge{fill:none;stroke:#546e7a;stroke-width:1.3}
svg .edge.back{stroke-dasharray:5 3}
svg .edge-label rect{fill:#fff;stroke:#b0bec5}
svg .node.start .shape{stroke-width:3}
details{margin-top:10px}
pre{white-space:pre-wrap;word-break:break-all;background:#fff;border:1px solid #cfd8dc;
padding:8px;font-size:.8rem}
ol{padding-left:1.5em}
li{margin-bottom:6px;overflow-wrap:anywhere}
.ways{color:#546e7a;font-size:.9em}
#layout-check{font-size:.75rem;color:#78909c}
"""

#: The page may fetch nothing at all: no script, style sheet, font or image from anywhere.
_POLICY = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'"

# Runs once the page is laid out; the browser test reads what it writes.
_CHECK_SCRIPT = """
(function () {
  var out = document.getElementById('layout-check');
  var svg = document.querySelector('.diagram svg');
  var boxes = [].slice.call(svg.querySelectorAll('.node, .edge-label')).map(function (g) {
    return g.getBoundingClientRect();
  });
  var overlaps = 0, i, j;
  for (i = 0; i < boxes.length; i++) {
    for (j = i + 1; j < boxes.length; j++) {
      var a = boxes[i], b = boxes[j];
      if (a.left < b.right - 0.5 && b.left < a.right - 0.5 &&
          a.top < b.bottom - 0.5 && b.top < a.bottom - 0.5) { overlaps++; }
    }
  }
  var overflows = 0;
  [].slice.call(svg.querySelectorAll('.node, .edge-label')).forEach(function (g) {
    var shape = g.querySelector('.shape, rect').getBBox(), text = g.querySelector('text').getBBox();
    if (text.x < shape.x - 1 || text.x + text.width > shape.x + shape.width + 1 ||
        text.y < shape.y - 1 || text.y + text.height > shape.y + shape.height + 1) { overflows++; }
  });
  // An edge may touch only its own two boxes and its own label on its way.
  function inside(pt, b) {
    return pt.x > b.x + 1 && pt.x < b.x + b.width - 1 && pt.y > b.y + 1 && pt.y < b.y + b.height - 1;
  }
  var shapes = [].slice.call(svg.querySelectorAll('.node')).map(function (g) {
    return {key: 'n' + g.getAttribute('data-node'), box: g.querySelector('.shape').getBBox()};
  }).concat([].slice.call(svg.querySelectorAll('.edge-label')).map(function (g) {
    return {key: 'e' + g.getAttribute('data-edge'), box: g.querySelector('rect').getBBox()};
  }));
  var crossing = 0;
  [].slice.call(svg.querySelectorAll('path.edge')).forEach(function (path) {
    var own = ['n' + path.getAttribute('data-source-node'), 'n' + path.getAttribute('data-target-node'),
               'e' + path.getAttribute('data-edge')];
    var length = path.getTotalLength(), hit = false, d, k;
    for (d = 0; d <= length && !hit; d += 3) {
      var pt = path.getPointAtLength(d);
      for (k = 0; k < shapes.length && !hit; k++) {
        hit = own.indexOf(shapes[k].key) < 0 && inside(pt, shapes[k].box);
      }
    }
    if (hit) { crossing++; }
  });
  var scale = svg.getBoundingClientRect().width / svg.viewBox.baseVal.width;
  var steps = svg.querySelectorAll('.node[data-step]').length;
  var wide = document.documentElement.scrollWidth > window.innerWidth + 1;
  out.setAttribute('data-boxes', boxes.length);
  out.setAttribute('data-steps', steps);
  out.setAttribute('data-overlaps', overlaps);
  out.setAttribute('data-overflows', overflows);
  out.setAttribute('data-font-px', (%(font)s * scale).toFixed(1));
  out.setAttribute('data-page-wider-than-screen', wide);
  out.setAttribute('data-edges-through-boxes', crossing);
  out.setAttribute('data-status', overlaps + overflows + crossing === 0 ? 'ok' : 'bad');
  out.textContent = 'Layout check: ' + steps + ' steps, ' + boxes.length + ' boxes, ' +
    overlaps + ' overlapping, ' + overflows + ' with text outside, ' + crossing +
    ' arrows through a box.';
})();
"""


def to_html(graph: FlowGraph, mermaid: str) -> str:
    svg, layout = _svg(graph)
    # Never narrower than _MIN_SCALE of its size: wider diagrams scroll in their frame.
    sizing = (f"min-width:{_fmt(layout.width * _MIN_SCALE)}px;"
              f"max-width:{_fmt(layout.width)}px")
    svg = svg.replace("<svg ", f'<svg style="{sizing}" ', 1)
    legend = "".join(f'<li><span style="background:{ROLE_STYLES[role].fill};border-color:'
                     f'{ROLE_STYLES[role].stroke}"></span>{html.escape(text)}</li>'
                     for role, text in _LEGEND)
    title = html.escape(graph.title)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="{_POLICY}">
<title>{title}: flow diagram</title>
<style>{_CSS % {"font": _fmt(FONT_PX)}}</style>
</head>
<body>
<h1>{title}</h1>
<p class="meta">Flow <code>{html.escape(graph.flow)}</code> in <code>{html.escape(graph.path)}</code>:
{len(graph.steps)} steps. Buttons and branches are the labels on the arrows; dashed arrows go back up.
Made by <code>python -m bot graph {html.escape(graph.flow)} --html</code>.</p>
<ul class="legend">{legend}</ul>
<div class="diagram">{svg}</div>
<details><summary>Steps as a list</summary><ol>{"".join(_outline(graph))}</ol></details>
<details><summary>Mermaid source (paste into any Mermaid viewer)</summary>
<pre>{html.escape(mermaid)}</pre></details>
<p id="layout-check" data-status="pending">Layout check did not run (scripts are off).</p>
<script>{_CHECK_SCRIPT % {"font": _fmt(FONT_PX)}}</script>
</body>
</html>
"""
