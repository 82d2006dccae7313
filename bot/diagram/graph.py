"""A flow as a directed graph: one node per step, one labelled edge per way on.

Buttons become edges labelled with their English label, branches edges labelled with their
condition, ``next`` and falling through unlabelled edges. Places outside the flow get their
own nodes: each linked flow (``flow:<id>``) once, and the END and MENU terminals. A step
kind this module does not know still becomes a plain node, with its ``next`` followed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum

from bot.flowspec.model import (
    AskStep,
    Branch,
    ChooseLanguageStep,
    Condition,
    EndStep,
    Flow,
    ForgetStep,
    GotoStep,
    HandoverStep,
    MenuStep,
    Step,
    Target,
)

__all__ = ["Edge", "EdgeKind", "FlowGraph", "Node", "Role", "flow_graph", "step_kind"]

#: How much of a step's text a node shows; the whole text is in the flow file.
EXCERPT_CHARS = 60


class Role(StrEnum):
    """What a node is, which decides its shape in a picture."""

    STEP = "step"  # says something (or a kind without a shape of its own)
    QUESTION = "question"  # waits for the person: ask, menu, choose_language
    BRANCH = "branch"  # goto: only moves on
    HANDOVER = "handover"  # passes the chat to a volunteer
    FINISH = "finish"  # end, forget: the conversation stops here
    FLOW = "flow"  # another flow, started from here
    TERMINAL = "terminal"  # END or MENU


class EdgeKind(StrEnum):
    BUTTON = "button"
    BRANCH = "branch"
    NEXT = "next"
    MENU_CHOICE = "menu"


@dataclass(frozen=True)
class Node:
    id: str  # unique in the graph: step:<id>, flow:<id>, END, MENU
    role: Role
    kind: str  # the step's kind (say, ask, ...), or flow / END / MENU
    title: str  # the step id, the linked flow id, END or MENU
    text: str = ""  # an excerpt of the step's English text, on one line
    line: int = 0

    @property
    def step(self) -> str | None:
        return self.title if self.id.startswith("step:") else None


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    label: str
    kind: EdgeKind
    line: int = 0


@dataclass(frozen=True)
class FlowGraph:
    flow: str
    title: str
    path: str
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]

    def node(self, node_id: str) -> Node:
        return next(n for n in self.nodes if n.id == node_id)

    @property
    def steps(self) -> tuple[Node, ...]:
        return tuple(n for n in self.nodes if n.step is not None)


END_ID, MENU_ID = "END", "MENU"


def step_kind(step: Step) -> str:
    """The key that makes the step in YAML: SayStep -> say, ChooseLanguageStep -> choose_language."""
    name = type(step).__name__.removesuffix("Step")
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _role(step: Step) -> Role:
    if isinstance(step, AskStep | MenuStep | ChooseLanguageStep):
        return Role.QUESTION
    if isinstance(step, GotoStep):
        return Role.BRANCH
    if isinstance(step, HandoverStep):
        return Role.HANDOVER
    if isinstance(step, EndStep | ForgetStep):
        return Role.FINISH
    return Role.STEP


def _excerpt(step: Step) -> str:
    if isinstance(step, HandoverStep):
        text = f"{step.queue} queue, {step.priority.value}"
    else:
        # Generic on purpose: any kind with a ``text`` shows it.
        raw = getattr(step, "text", "")
        text = " ".join(raw.split()) if isinstance(raw, str) else ""
    if len(text) > EXCERPT_CHARS:
        text = text[:EXCERPT_CHARS - 1].rstrip() + "…"
    return text


def _condition_label(condition: Condition | None) -> str:
    if condition is None:
        return "else"
    if condition.name == "answered":
        return f"if {condition.variable} answered"
    if condition.name == "language_is":
        return "if language is " + " or ".join(condition.values)
    return f"if {condition.variable} is " + " or ".join(condition.values)


def flow_graph(flow: Flow, menu_flows: Sequence[Flow] = ()) -> FlowGraph:
    """The graph of one flow. ``menu_flows`` are the flows a ``menu`` step offers (the
    library's menu, in order); without them a menu step leads to MENU."""
    nodes: dict[str, Node] = {}
    for step in flow.steps:
        nodes[f"step:{step.id}"] = Node(f"step:{step.id}", _role(step), step_kind(step), step.id,
                                        _excerpt(step), step.line)
    edges: list[Edge] = []

    def node_for(target: Target | None, after: Step) -> str:
        if target is None:  # falls through to the step below, or off the end
            below = flow.step_after(after.id)
            if below is not None:
                return f"step:{below.id}"
            target = Target(end=True)
        if target.end:
            nodes.setdefault(END_ID, Node(END_ID, Role.TERMINAL, END_ID, END_ID))
            return END_ID
        if target.menu:
            nodes.setdefault(MENU_ID, Node(MENU_ID, Role.TERMINAL, MENU_ID, MENU_ID))
            return MENU_ID
        if target.flow is not None:
            node_id = f"flow:{target.flow}"
            nodes.setdefault(node_id, Node(node_id, Role.FLOW, "flow", target.flow))
            return node_id
        return f"step:{target.step}"

    for step in flow.steps:
        source = f"step:{step.id}"
        for label, kind, target, line in _ways_on(step, menu_flows):
            edges.append(Edge(source, node_for(target, step), label, kind, line or step.line))
    # Steps first in file order, then the places outside the flow in the order first met.
    ordered = [n for n in nodes.values() if n.step is not None]
    ordered += [n for n in nodes.values() if n.step is None]
    return FlowGraph(flow.id, flow.title, flow.path, tuple(ordered), tuple(edges))


def _ways_on(step: Step, menu_flows: Sequence[Flow]
             ) -> Iterator[tuple[str, EdgeKind, Target | None, int]]:
    """(label, kind, target, line) for every way on from ``step``; a None target falls through."""
    if isinstance(step, MenuStep):
        if not menu_flows:
            yield "a topic", EdgeKind.MENU_CHOICE, Target(menu=True), 0
        for other in menu_flows:
            yield other.title, EdgeKind.MENU_CHOICE, Target(flow=other.id), 0
        return
    if isinstance(step, EndStep | ForgetStep):
        yield "", EdgeKind.NEXT, Target(end=True), 0
        return
    default = list(_next_targets(step.next))
    if isinstance(step, AskStep) and step.buttons:
        for button in step.buttons:
            if button.next is not None:
                yield button.label, EdgeKind.BUTTON, button.next, button.line
                continue
            # A button without its own next takes the step's next (its branches, after saving).
            for condition, target in default:
                label = f"{button.label} ({condition})" if condition else button.label
                yield label, EdgeKind.BUTTON, target, button.line
        return
    answer = ("typed answer" if isinstance(step, AskStep)
              else "language chosen" if isinstance(step, ChooseLanguageStep) else "")
    for condition, target in default:
        label = ", ".join(part for part in (answer, condition) if part)
        kind = EdgeKind.BRANCH if condition else EdgeKind.NEXT
        yield label, kind, target, target.line if target is not None else 0


def _next_targets(nxt: Target | tuple[Branch, ...] | None) -> Iterator[tuple[str, Target | None]]:
    if nxt is None or isinstance(nxt, Target):
        yield "", nxt
        return
    for branch in nxt:
        yield _condition_label(branch.condition), branch.target
