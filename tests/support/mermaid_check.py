"""A strict reader for the small subset of Mermaid flowchart syntax `python -m bot graph` writes.

Written independently of bot/diagram/mermaid.py, from Mermaid's grammar: a quoted label
ends at the first '"', so a label may hold no '"'; '#...;' is an entity code, so every '#'
must start a well-formed one; labels are HTML, so no raw '<' or '>' but our own <br/>.
Every line must be one of the forms below, every edge must join declared nodes, and every
class must be defined. Raises MermaidError naming the line; returns what it read, with
labels decoded back to plain text, so tests can compare them with the flow.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field

__all__ = ["MermaidError", "Parsed", "parse_flowchart"]

_SHAPES = {  # opening -> (closing, shape name), longest openings first when matching
    "{{": ("}}", "hexagon"), "([": ("])", "stadium"), "[[": ("]]", "subroutine"),
    "((": ("))", "circle"), "[": ("]", "rectangle"), "(": (")", "rounded"), "{": ("}", "rhombus"),
}
_ID = r"[A-Za-z][A-Za-z0-9_]*"
_LABEL = r'"(?P<label>[^"]*)"'
_NODE = re.compile(rf"^    (?P<id>{_ID})(?P<open>\{{\{{|\(\[|\[\[|\(\(|\[|\(|\{{){_LABEL}"
                   r"(?P<close>\}\}|\]\)|\]\]|\)\)|\]|\)|\})$")
_EDGE = re.compile(rf"^    (?P<source>{_ID}) (?P<arrow>-->|-\.->)(?:\|{_LABEL}\|)? (?P<target>{_ID})$")
_CLASSDEF = re.compile(rf"^    classDef (?P<name>{_ID}) (?P<style>[a-z-]+:[^,\s]+(?: [^,\s]+)*"
                       r"(?:,[a-z-]+:[^,\s]+(?: [^,\s]+)*)*)$")
_CLASS = re.compile(rf"^    class (?P<ids>{_ID}(?:,{_ID})*) (?P<name>{_ID})$")
_ENTITY = re.compile(r"#(?:\d+|[a-z]+);")
_RESERVED = {"end", "graph", "flowchart", "subgraph", "class", "classDef", "click", "style"}


class MermaidError(ValueError):
    pass


@dataclass
class Parsed:
    nodes: dict[str, tuple[str, str]] = field(default_factory=dict)  # id -> (shape, decoded label)
    edges: list[tuple[str, str, str, str]] = field(default_factory=list)  # source, arrow, label, target
    classes: dict[str, set[str]] = field(default_factory=dict)  # class -> node ids

    def node_with_label(self, text: str) -> str:
        found = [nid for nid, (_, label) in self.nodes.items() if label == text]
        if len(found) != 1:
            raise AssertionError(f"{len(found)} nodes labelled {text!r}")
        return found[0]


def _decode(raw: str, number: int) -> str:
    if '"' in raw or "\n" in raw:
        raise MermaidError(f"line {number}: quote or newline inside a label")
    if "\\n" in raw:
        raise MermaidError(f"line {number}: a literal \\n, which Mermaid draws as a line break")
    rest = raw.replace("<br/>", "\n")
    if "<" in rest or ">" in rest:
        raise MermaidError(f"line {number}: raw < or > in a label: {raw!r}")
    for match in re.finditer("#", rest):
        if not _ENTITY.match(rest, match.start()):
            raise MermaidError(f"line {number}: '#' that starts no entity code in {raw!r}")
    def entity(match: re.Match[str]) -> str:
        name = match.group(0)[1:-1]
        if name.isdigit():
            return chr(int(name))
        decoded = html.unescape(f"&{name};")
        if decoded == f"&{name};":
            raise MermaidError(f"line {number}: unknown entity #{name};")
        return decoded

    return _ENTITY.sub(entity, rest)


def parse_flowchart(text: str) -> Parsed:
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    body = [(i + 1, line) for i, line in enumerate(lines) if not line.startswith("%%")]
    for number, line in enumerate(lines, 1):
        if line.startswith("%%{"):
            raise MermaidError(f"line {number}: a comment that Mermaid reads as a directive")
    if not body or body[0][1] != "flowchart TD":
        raise MermaidError("the first line that is not a comment must be 'flowchart TD'")
    parsed = Parsed()
    defined: set[str] = set()
    used_classes: list[tuple[int, str]] = []
    for number, line in body[1:]:
        if match := _NODE.match(line):
            node_id, opening = match["id"], match["open"]
            closing, shape = _SHAPES[opening]
            if match["close"] != closing:
                raise MermaidError(f"line {number}: {opening} closed by {match['close']}")
            if node_id in parsed.nodes or node_id.lower() in _RESERVED:
                raise MermaidError(f"line {number}: node id {node_id} declared twice or reserved")
            parsed.nodes[node_id] = (shape, _decode(match["label"], number))
        elif match := _EDGE.match(line):
            for end in (match["source"], match["target"]):
                if end not in parsed.nodes:
                    raise MermaidError(f"line {number}: edge to undeclared node {end}")
            label = _decode(match["label"], number) if match["label"] is not None else ""
            if match["label"] is not None and not label:
                raise MermaidError(f"line {number}: empty edge label")
            parsed.edges.append((match["source"], match["arrow"], label, match["target"]))
        elif match := _CLASSDEF.match(line):
            defined.add(match["name"])
        elif match := _CLASS.match(line):
            for node_id in match["ids"].split(","):
                if node_id not in parsed.nodes:
                    raise MermaidError(f"line {number}: class for undeclared node {node_id}")
            parsed.classes.setdefault(match["name"], set()).update(match["ids"].split(","))
            used_classes.append((number, match["name"]))
        else:
            raise MermaidError(f"line {number}: not a line of a flowchart: {line!r}")
    for number, name in used_classes:
        if name not in defined:
            raise MermaidError(f"line {number}: class {name} has no classDef")
    return parsed
