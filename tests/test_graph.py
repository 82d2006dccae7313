"""`python -m bot graph`: the Mermaid text of every shipped flow, read back by a strict parser
of our own (tests/support/mermaid_check.py), and labels that try to break the syntax."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.__main__ import main
from bot.diagram.graph import FlowGraph, Role, flow_graph
from bot.diagram.mermaid import to_mermaid
from bot.flowspec.library import FlowLibrary
from bot.flowspec.model import (
    AskStep,
    ChooseLanguageStep,
    EndStep,
    Flow,
    ForgetStep,
    GotoStep,
    HandoverStep,
    MenuStep,
    SayStep,
    Step,
    Target,
    _StepBase,
)
from tests.conftest import FLOWS_DIR
from tests.support.mermaid_check import MermaidError, Parsed, parse_flowchart
from tests.support.odd_labels import ODD_LABELS, load_odd_labels

SHIPPED = sorted(p.stem for p in FLOWS_DIR.glob("*.yaml"))


def _where(flow: Flow, step: Step, target: Target | None) -> str:
    """The label of the node a target leads to, worked out here from the flow itself."""
    if target is None:
        index = flow.steps.index(step)
        if index + 1 < len(flow.steps):
            return _step_label(flow.steps[index + 1])
        return "END"
    if target.end:
        return "END"
    if target.menu:
        return "MENU"
    if target.flow:
        return f"flow: {target.flow}"
    found = flow.step(target.step or "")
    assert found is not None
    return _step_label(found)


def _step_label(step: Step) -> str:
    kind = {SayStep: "say", AskStep: "ask", HandoverStep: "handover", MenuStep: "menu",
            EndStep: "end", ForgetStep: "forget", GotoStep: "goto",
            ChooseLanguageStep: "choose_language"}.get(type(step))
    if kind is None:  # a kind added later: its YAML key, from the class name (ServicesStep)
        kind = re.sub(r"(?<!^)(?=[A-Z])", "_", type(step).__name__.removesuffix("Step")).lower()
    return f"{step.id}\n{kind}"


def _edges_from(parsed: Parsed, source: str) -> list[tuple[str, str]]:
    """(label, target label) of every edge leaving ``source``."""
    return [(label, parsed.nodes[target][1]) for s, _, label, target in parsed.edges if s == source]


def _node_of(parsed: Parsed, step: Step) -> str:
    """The one node whose label starts with the step's id and kind."""
    head = _step_label(step)
    found = [nid for nid, (_, label) in parsed.nodes.items()
             if label == head or label.startswith(head + ":")]
    assert len(found) == 1, (step.id, found)
    return found[0]


def _strip(labels: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Target labels cut after the kind (excerpts are not what is checked here)."""
    return [(label, target.split(":")[0] if "\n" in target else target) for label, target in labels]


@pytest.mark.parametrize("flow_id", SHIPPED)
def test_mermaid_of_every_shipped_flow(library: FlowLibrary, flow_id: str) -> None:
    flow = library.flows[flow_id]
    text = to_mermaid(flow_graph(flow, library.menu()))
    parsed = parse_flowchart(text)
    # A node per step, and nothing else but links out of the flow and END/MENU.
    step_nodes = {step.id: _node_of(parsed, step) for step in flow.steps}
    assert len(set(step_nodes.values())) == len(flow.steps)
    others = set(parsed.nodes) - set(step_nodes.values())
    assert all(parsed.nodes[n][1] in ("END", "MENU") or parsed.nodes[n][1].startswith("flow: ")
               for n in others)
    assert parsed.classes.get("start") == {step_nodes[flow.steps[0].id]}
    for step in flow.steps:
        node = step_nodes[step.id]
        out = _strip(_edges_from(parsed, node))
        if isinstance(step, HandoverStep):
            assert parsed.nodes[node][0] == "hexagon"
            assert node in parsed.classes["handover"]
        if isinstance(step, AskStep) and step.buttons:
            # An edge per button, labelled with the button's words, to where it leads.
            expected = [(b.label, _where(flow, step, b.next or step.next)) for b in step.buttons]
            assert out == _strip(expected), step.id
        elif isinstance(step, MenuStep):
            assert [label for label, _ in out] == [f.title for f in library.menu()]
            assert all(target.startswith("flow: ") for _, target in out)
        elif isinstance(step, EndStep | ForgetStep):
            assert out == [("", "END")]
        elif isinstance(step.next, tuple):  # branches: one edge each, labelled with the condition
            assert out[-1][0] == "else" and all(label.startswith("if ") for label, _ in out[:-1])
            assert [t for _, t in out] == [_where(flow, step, b.target) for b in step.next]
        else:  # next, or falling through to the step below
            following = step.next if isinstance(step.next, Target) else None
            assert [t for _, t in out] == [_where(flow, step, following)], step.id
    # Links out of the flow are subroutine nodes of their own class, each once.
    for node in others:
        shape, label = parsed.nodes[node]
        if label.startswith("flow: "):
            assert shape == "subroutine" and node in parsed.classes["flowlink"]
            assert label.removeprefix("flow: ") in library.flows
        else:
            assert shape == "circle" and node in parsed.classes["terminal"]


def test_every_link_to_another_flow_is_marked(library: FlowLibrary) -> None:
    linked = 0
    for flow in library.flows.values():
        parsed = parse_flowchart(to_mermaid(flow_graph(flow, library.menu())))
        targets = {label for shape, label in parsed.nodes.values() if shape == "subroutine"}
        wanted = {f"flow: {t.flow}" for s in flow.steps for t in _targets(s) if t.flow}
        if isinstance(flow.steps[0], MenuStep):
            wanted |= {f"flow: {f.id}" for f in library.menu()}
        assert targets == wanted, flow.id
        linked += len(wanted)
    assert linked >= 10  # the shipped flows link to each other a lot: the check has work to do


def _targets(step: Step) -> list[Target]:
    out: list[Target] = []
    if isinstance(step.next, Target):
        out.append(step.next)
    elif isinstance(step.next, tuple):
        out += [b.target for b in step.next]
    if isinstance(step, AskStep):
        out += [b.next for b in step.buttons if b.next is not None]
    return out


@pytest.fixture(scope="module")
def odd_library(tmp_path_factory: pytest.TempPathFactory) -> FlowLibrary:
    return load_odd_labels(tmp_path_factory.mktemp("drafts"))


def test_labels_that_look_like_syntax_stay_text(odd_library: FlowLibrary) -> None:
    flow = odd_library.flows["odd_labels"]
    text = to_mermaid(flow_graph(flow, odd_library.menu()))
    parsed = parse_flowchart(text)  # raises on a quote, a stray '#', '<' or '>' in a label
    ask = flow.steps[0]
    assert isinstance(ask, AskStep)
    node = _node_of(parsed, ask)
    # Decoded, every label reads as the flow wrote it (the excerpt of the text is cut at 60).
    assert parsed.nodes[node][1] == "end\nask: " + ask.text[:59].rstrip() + "…"
    assert [label for label, _ in _edges_from(parsed, node)] == [b.label for b in ask.buttons]
    persian = flow.steps[1]
    assert isinstance(persian, SayStep)
    assert parsed.nodes[_node_of(parsed, persian)][1] == f"persian\nsay: {persian.text}"
    # Invisible characters travel as entity codes, never raw, so no viewer reorders the syntax.
    assert "\u202e" not in text and "\u200c" not in text and "#8238;" in text and "#8204;" in text
    assert all(re.fullmatch(r"n\d+", node_id) for node_id in parsed.nodes)  # never 'end'
    assert "%% done" not in text.split("\n", 1)[1]


@pytest.mark.parametrize("broken", [
    'flowchart TD\n    n0["a "quoted" word"]\n',
    'flowchart TD\n    n0["#not an entity"]\n',
    'flowchart TD\n    n0["<script>"]\n',
    'flowchart TD\n    n0["a"]\n    n0 --> n1\n',
    'flowchart TD\n    n0["a"}\n',
    'flowchart TD\n    end["a"]\n',
    'graph TD\n    n0["a"]\n',
    'flowchart TD\n    n0["a"]\n    class n0 nowhere\n',
    'flowchart TD\n    n0["a \\n b"]\n',
])
def test_the_checker_refuses_broken_mermaid(broken: str) -> None:
    with pytest.raises(MermaidError):
        parse_flowchart(broken)


@dataclass(frozen=True)
class FutureStep(_StepBase):
    """A step kind bot/diagram has never heard of (as a new kind would be before its shape)."""

    text: str


def test_a_step_kind_the_graph_does_not_know_is_a_plain_node() -> None:
    steps = (SayStep("hello", "newkind", 3, None, "Hi"),
             FutureStep("services", "newkind", 5, None, "Services near you"),
             SayStep("bye", "newkind", 8, Target(end=True), "Bye"))
    flow = Flow("newkind", "newkind.yaml", 1, "New kind", steps)  # type: ignore[arg-type]
    graph: FlowGraph = flow_graph(flow)
    node = graph.node("step:services")
    assert (node.role, node.kind, node.text) == (Role.STEP, "future", "Services near you")
    assert [(e.source, e.target) for e in graph.edges] == [
        ("step:hello", "step:services"), ("step:services", "step:bye"), ("step:bye", "END")]
    parsed = parse_flowchart(to_mermaid(graph))
    assert parsed.nodes["n1"] == ("rectangle", "services\nfuture: Services near you")


def test_cli_prints_mermaid_and_writes_the_page(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    page = tmp_path / "claim_refused.html"
    assert main(["graph", "claim_refused", "--html", str(page)]) == 0
    captured = capsys.readouterr()
    parsed = parse_flowchart(captured.out)
    assert len([n for n in parsed.nodes.values() if "\n" in n[1]]) == 17
    assert f"wrote {page} (17 steps)" in captured.err
    assert page.read_text(encoding="utf-8").count('data-step="') == 17


def test_cli_draws_a_draft_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    draft = tmp_path / "odd_labels.yaml"
    draft.write_text(ODD_LABELS, encoding="utf-8")
    assert main(["graph", str(draft)]) == 0
    assert "%% flow odd_labels" in capsys.readouterr().out


def test_cli_unknown_flow_lists_the_flows(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["graph", "claim_refuse"]) == 1
    err = capsys.readouterr().err
    assert "there is no flow called 'claim_refuse'; did you mean 'claim_refused'?" in err
    assert "flows: " + ", ".join(SHIPPED) in err


def test_cli_unwritable_page_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["graph", "stop", "--html", str(tmp_path / "no" / "such" / "dir.html")]) == 1
    assert "cannot write" in capsys.readouterr().err
