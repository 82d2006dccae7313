"""A flow graph as Mermaid flowchart text, for staff to paste into any Mermaid viewer.

Node ids are generated (n0, n1, ...), so no step id can collide with a Mermaid keyword
such as ``end``. Every label is quoted, and inside it every character Mermaid or HTML could
read as syntax is written as a Mermaid entity code (``#quot;``, ``#35;``...), as are
invisible format characters (bidi marks, ZWNJ), which Mermaid decodes back when it draws.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from bot.diagram.graph import EdgeKind, FlowGraph, Node, Role

__all__ = ["ROLE_STYLES", "RoleStyle", "escape_label", "to_mermaid"]

#: Mermaid shape brackets per role (opening, closing), around a quoted label.
SHAPES: dict[Role, tuple[str, str]] = {
    Role.STEP: ("[", "]"),
    Role.QUESTION: ("(", ")"),
    Role.BRANCH: ("{", "}"),
    Role.HANDOVER: ("{{", "}}"),
    Role.FINISH: ("([", "])"),
    Role.FLOW: ("[[", "]]"),
    Role.TERMINAL: ("((", "))"),
}

@dataclass(frozen=True)
class RoleStyle:
    """How a role looks, the same in Mermaid and on the page."""

    name: str  # the Mermaid class
    fill: str
    stroke: str
    extra: str = ""  # more Mermaid style, e.g. a dashed border


ROLE_STYLES: dict[Role, RoleStyle] = {
    Role.STEP: RoleStyle("say", "#ffffff", "#546e7a"),
    Role.QUESTION: RoleStyle("question", "#e8f5e9", "#2e7d32"),
    Role.BRANCH: RoleStyle("branch", "#fffde7", "#9e9d24", "stroke-dasharray:4 3"),
    Role.HANDOVER: RoleStyle("handover", "#ffe0b2", "#e65100", "stroke-width:2px"),
    Role.FINISH: RoleStyle("finish", "#eceff1", "#455a64"),
    Role.FLOW: RoleStyle("flowlink", "#e3f2fd", "#1565c0"),
    Role.TERMINAL: RoleStyle("terminal", "#cfd8dc", "#37474f"),
}

_ENTITIES = {'"': "#quot;", "#": "#35;", "&": "#amp;", "<": "#lt;", ">": "#gt;",
             "|": "#124;", "`": "#96;", "%": "#37;", "\\": "#92;"}  # Mermaid reads \n as a line break


def escape_label(text: str) -> str:
    """Text that is safe inside a quoted Mermaid label, on one line."""
    out: list[str] = []
    for char in " ".join(text.split()):
        if char in _ENTITIES:
            out.append(_ENTITIES[char])
        elif unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp"):
            out.append(f"#{ord(char)};")
        else:
            out.append(char)
    return "".join(out)


def _node_label(node: Node) -> str:
    if node.step is None:
        return escape_label(f"flow: {node.title}" if node.role is Role.FLOW else node.title)
    head = f"{escape_label(node.title)}<br/>{escape_label(node.kind)}"
    return f"{head}: {escape_label(node.text)}" if node.text else head


def _comment(text: str) -> str:
    return " ".join(text.split()).replace("%%", "%")


def to_mermaid(graph: FlowGraph) -> str:
    ids = {node.id: f"n{i}" for i, node in enumerate(graph.nodes)}
    lines = [f"%% flow {_comment(graph.flow)} ({_comment(graph.path)}): {_comment(graph.title)}",
             "flowchart TD"]
    for node in graph.nodes:
        opening, closing = SHAPES[node.role]
        lines.append(f'    {ids[node.id]}{opening}"{_node_label(node)}"{closing}')
    for edge in graph.edges:
        arrow = "-.->" if edge.kind is EdgeKind.MENU_CHOICE else "-->"
        label = f'|"{escape_label(edge.label)}"|' if edge.label else ""
        lines.append(f"    {ids[edge.source]} {arrow}{label} {ids[edge.target]}")
    lines.append("    classDef start stroke-width:3px")
    for role, style in ROLE_STYLES.items():
        members = [ids[n.id] for n in graph.nodes if n.role is role]
        if members:
            extra = f",{style.extra}" if style.extra else ""
            lines.append(f"    classDef {style.name} fill:{style.fill},stroke:{style.stroke}{extra}")
            lines.append(f"    class {','.join(members)} {style.name}")
    if graph.steps:
        lines.append(f"    class {ids[graph.steps[0].id]} start")
    return "\n".join(lines) + "\n"
