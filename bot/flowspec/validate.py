"""Checks that need the whole flow or the whole set of flows: links, reachability, limits.

Each check adds a Problem with the line of the offending step, so that a staff member
can open the file at that line and see what to change.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterator, Mapping

from bot import limits
from bot.errors import Problem
from bot.flowspec.conditions import CONDITIONS
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
    ServicesStep,
    Step,
    Target,
)
from bot.flowspec.required import FIRST_CONTACT_FLOW, MAIN_MENU_FLOW, required_flow_problems
from bot.text.normalize import normalize

__all__ = ["FIRST_CONTACT_FLOW", "MAIN_MENU_FLOW", "outranked_by", "step_reached", "successors",
           "validate_flow", "validate_library"]

# Looser than model.PLACEHOLDER on purpose: it also catches {Bad Names} to report them.
_PLACEHOLDER = re.compile(r"(?<!\{)\{([^{}]*)\}(?!\})")


def successors(flow: Flow, step: Step) -> Iterator[Target | None]:
    """Every place control can go after ``step``; None means fall through to the next step."""
    if isinstance(step, EndStep | MenuStep | ForgetStep):  # a menu choice leaves the flow
        return
    if isinstance(step.next, Target):
        yield step.next
    elif isinstance(step.next, tuple):
        yield from (branch.target for branch in step.next)
    if isinstance(step, AskStep) and step.buttons:
        yield from (b.next for b in step.buttons if b.next is not None)
        if step.next is None and any(b.next is None for b in step.buttons):
            yield None
    elif step.next is None:
        yield None


def step_reached(flow: Flow, step: Step, target: Target | None) -> str | None:
    """The id of the step in this flow that a target leads to, if it stays in the flow."""
    if target is None:
        after = flow.step_after(step.id)
        return after.id if after else None
    return target.step


def validate_flow(flow: Flow) -> list[Problem]:
    problems: list[Problem] = []

    def add(line: int, message: str, hint: str = "") -> None:
        problems.append(Problem(flow.path, line, message, hint))

    seen: dict[str, int] = {}
    for step in flow.steps:
        if step.id in seen:
            add(step.line, f"duplicate step id '{step.id}' (first on line {seen[step.id]})",
                "give each step its own id")
        else:
            seen[step.id] = step.line
    step_ids = list(seen)

    # Links to steps that do not exist.
    for step in flow.steps:
        for target in successors(flow, step):
            if target is not None and target.step is not None and target.step not in seen:
                close = difflib.get_close_matches(target.step, step_ids, n=1)
                hint = f"did you mean '{close[0]}'?" if close else (
                    "use a step id from this file, flow:<id>, MENU or END")
                add(target.line or step.line, f"'{target.step}' is not a step in this flow", hint)

    # Reachability from the first step.
    if flow.steps:
        reached: set[str] = set()
        todo = [flow.steps[0].id]
        while todo:
            current = todo.pop()
            if current in reached or current not in seen:
                continue
            reached.add(current)
            here = flow.step(current)
            assert here is not None
            todo.extend(
                nid for t in successors(flow, here) if (nid := step_reached(flow, here, t)) is not None
            )
        for step in flow.steps:
            if step.id not in reached:
                add(step.line, f"step '{step.id}' can never be reached",
                    "point a 'next', a button or a branch at it, or delete it")
        problems.extend(_loops_without_question(flow))

    # Answers: conditions and placeholders must name answers this flow saves.
    saved: dict[str, AskStep] = {}
    for step in flow.steps:
        if isinstance(step, AskStep) and step.save:
            saved[step.save] = step
    for step in flow.steps:
        branches = step.next if isinstance(step.next, tuple) else ()
        for branch in branches:
            cond = branch.condition
            if cond is None or not CONDITIONS[cond.name].reads_answer:
                continue
            source = saved.get(cond.variable)
            if source is None:
                add(cond.line, f"no step saves an answer called '{cond.variable}'",
                    "add 'save: " + cond.variable + "' to the question that asks for it")
                continue
            ids = {b.id for b in source.buttons}
            for value in cond.values:
                if ids and value not in ids:
                    add(cond.line, f"'{value}' is not a button of step '{source.id}'",
                        "use one of: " + ", ".join(sorted(ids)))
        if isinstance(step, ServicesStep):
            problems.extend(_services_step_problems(flow, step, saved))
        for text, line in _texts_of(step):
            for name in _PLACEHOLDER.findall(text):
                if name not in saved:
                    add(line, f"placeholder '{{{name}}}' names no saved answer",
                        "use {answer_name} with a 'save:' name from this flow, "
                        "or double the braces {{ }} to show them literally")

    # Platform limits (the strictest platform we support decides).
    for step in flow.steps:
        if isinstance(step, AskStep) and step.buttons:
            problems.extend(_button_problems(flow, step))
        if (isinstance(step, AskStep | MenuStep | ChooseLanguageStep)
                and len(step.text) > limits.QUESTION_TEXT_MAX):
            add(step.line, f"question text is {len(step.text)} characters; "
                f"the limit is {limits.QUESTION_TEXT_MAX}",
                "move the explanation into a 'say' step before the question")
        if isinstance(step, SayStep) and len(step.text) > limits.SAY_TEXT_MAX:
            add(step.line, f"message is {len(step.text)} characters; the limit is "
                f"{limits.SAY_TEXT_MAX}", "split it into two 'say' steps")
    return problems


def _services_step_problems(flow: Flow, step: ServicesStep,
                            saved: Mapping[str, AskStep]) -> Iterator[Problem]:
    """A services step reads answers: they must be saved by questions of this flow."""
    for name in (step.need, *step.place):
        if name and name not in saved:
            yield Problem(flow.path, step.line, f"step '{step.id}': no step saves an answer "
                          f"called '{name}'", f"add 'save: {name}' to the question that asks for it")
    need = saved.get(step.need)
    if need is not None and need.buttons:
        ids = {b.id for b in need.buttons}
        for button_id, _ in step.tags:
            if button_id not in ids:
                yield Problem(flow.path, step.line, f"step '{step.id}': '{button_id}' in 'tags' is "
                              f"not a button of step '{need.id}'", "use one of: " + ", ".join(sorted(ids)))


def _texts_of(step: Step) -> Iterator[tuple[str, int]]:
    if isinstance(step, SayStep | AskStep | MenuStep | ChooseLanguageStep | ForgetStep):
        yield step.text, step.line
    if isinstance(step, ServicesStep):
        yield from ((text, step.line) for text in step.texts().values())
    if isinstance(step, HandoverStep):
        yield step.summary, step.line


def _button_problems(flow: Flow, step: AskStep) -> Iterator[Problem]:
    count = len(step.buttons)
    if count > limits.BUTTONS_MAX:
        yield Problem(flow.path, step.line, f"{count} buttons; a question may have at most "
                      f"{limits.BUTTONS_MAX}", "split the question in two")
    longest = limits.button_label_max(count)
    seen: set[str] = set()
    for button in step.buttons:
        if button.id in seen:
            yield Problem(flow.path, button.line, f"duplicate button id '{button.id}'",
                          "give each button of a question its own id")
        seen.add(button.id)
        if len(button.label) > longest:
            yield Problem(
                flow.path, button.line,
                f"button label '{button.label}' is {len(button.label)} characters; with {count} "
                f"buttons the limit is {longest}",
                "shorten the label (WhatsApp cuts longer ones); put detail in the question")


def _loops_without_question(flow: Flow) -> Iterator[Problem]:
    """A cycle of steps that never waits for the user would spin forever."""
    passive = {s.id: s for s in flow.steps
               if isinstance(s, SayStep | GotoStep | HandoverStep | ServicesStep)}
    graph = {
        sid: {n for t in successors(flow, s) if (n := step_reached(flow, s, t)) in passive}
        for sid, s in passive.items()
    }
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done

    def visit(node: str) -> str | None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return nxt
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = 2
        return None

    for sid in graph:
        if sid not in state and (found := visit(sid)):
            step = passive[found]
            yield Problem(flow.path, step.line, f"steps loop back to '{found}' without asking anything",
                          "add a question to the loop or point one 'next' elsewhere")
            return


def validate_library(flows: Mapping[str, Flow], folder: str | None = None) -> list[Problem]:
    """Checks across files: links to other flows, shared commands and keywords, required flows.

    ``folder`` is where a whole library was read from: only a whole library must hold the
    required flows (see bot/flowspec/required.py); loose files are checked on their own.
    """
    problems: list[Problem] = []
    for flow in flows.values():
        for step in flow.steps:
            for target in successors(flow, step):
                if target is not None and target.flow is not None and target.flow not in flows:
                    close = difflib.get_close_matches(target.flow, list(flows), n=1)
                    problems.append(Problem(
                        flow.path, target.line or step.line,
                        f"there is no flow called '{target.flow}'",
                        f"did you mean 'flow:{close[0]}'?" if close else "flows: " + ", ".join(sorted(flows)),
                    ))

    def commands_and_keywords(flow: Flow) -> list[tuple[str, str]]:
        names = [f"/{flow.command}"] if flow.command else []
        names += [kw.casefold() for kw in flow.keywords]
        return [(name, name) for name in names]

    def safeguarding_phrases(flow: Flow) -> list[tuple[str, str]]:
        return [(folded, phrase) for phrase in flow.safeguarding if (folded := normalize(phrase))]

    for flow, name, other in _claimed_twice(flows, commands_and_keywords):
        problems.append(Problem(flow.path, 1, f"'{name}' is already used by flow "
                                f"'{other.id}' ({other.path})", "use it in one flow only"))
    for flow in sorted(flows.values(), key=lambda f: f.path):
        problems.extend(Problem(flow.path, 1, f"safeguarding phrase '{phrase}' has no words",
                                "write words, such as: kill myself")
                        for phrase in flow.safeguarding if not normalize(phrase))
    for flow, phrase, other in _claimed_twice(flows, safeguarding_phrases):
        problems.append(Problem(flow.path, 1, f"safeguarding phrase '{phrase}' is also in "
                                f"flow '{other.id}' ({other.path})",
                                "a phrase can start one flow only"))
    problems.extend(_word_list_problems(flows))
    menu = [f for f in flows.values() if f.menu_order is not None]
    if len(menu) > limits.BUTTONS_MAX:
        problems.append(Problem(menu[0].path, 1, f"{len(menu)} flows have a 'menu' position; the "
                                f"main menu holds at most {limits.BUTTONS_MAX}",
                                "remove 'menu:' from the least used flows"))
    for flow in menu:
        if len(flow.title) > limits.WHATSAPP_LIST_ROW_CHARS:
            problems.append(Problem(flow.path, 1, f"title '{flow.title}' is too long for a menu "
                                    f"button ({limits.WHATSAPP_LIST_ROW_CHARS} characters at most)",
                                    "shorten the title"))
    if folder is not None and flows:
        problems.extend(required_flow_problems(flows, folder))
    return problems


def _claimed_twice(flows: Mapping[str, Flow],
                   names: Callable[[Flow], list[tuple[str, str]]]) -> Iterator[tuple[Flow, str, Flow]]:
    """(flow, name as written, the flow that had it first) for every name that a second
    flow claims. ``names`` gives a flow's (comparison key, name as written) pairs; flows
    are taken in file order, so the first file keeps the name."""
    owners: dict[str, Flow] = {}
    for flow in sorted(flows.values(), key=lambda f: f.path):
        for key, shown in names(flow):
            other = owners.setdefault(key, flow)
            if other is not flow:
                yield flow, shown, other


def outranked_by(flows: Mapping[str, Flow]) -> dict[str, frozenset[str]]:
    """For each flow id, every flow id that outranks it directly or through a chain
    (A outranks B, B outranks C: A outranks C). Unknown ids are ignored here."""
    direct: dict[str, set[str]] = {fid: set() for fid in flows}
    for flow in flows.values():
        for lower in flow.outranks:
            if lower in direct:
                direct[lower].add(flow.id)
    closed: dict[str, frozenset[str]] = {}
    for fid in flows:
        seen: set[str] = set()
        todo = list(direct[fid])
        while todo:
            higher = todo.pop()
            if higher not in seen:
                seen.add(higher)
                todo.extend(direct.get(higher, ()))
        closed[fid] = frozenset(seen)
    return closed


def _word_list_problems(flows: Mapping[str, Flow]) -> list[Problem]:
    """Distress words (one flow each, with words in them) and 'outranks' (existing flows,
    never in a circle, so that which flow a message starts is always decided)."""
    problems: list[Problem] = []

    def distress_words(flow: Flow) -> list[tuple[str, str]]:
        return [(folded, word) for word in flow.distress if (folded := normalize(word))]

    for flow in sorted(flows.values(), key=lambda f: f.path):
        problems.extend(Problem(flow.path, 1, f"distress word '{word}' has no words",
                                "write words, such as: scared")
                        for word in flow.distress if not normalize(word))
        for lower in flow.outranks:
            if lower == flow.id:
                problems.append(Problem(flow.path, 1, f"flow '{flow.id}' cannot outrank itself",
                                        "remove it from 'outranks'"))
            elif lower not in flows:
                close = difflib.get_close_matches(lower, list(flows), n=1)
                problems.append(Problem(flow.path, 1, f"'outranks' names '{lower}', and there is "
                                        "no flow called that",
                                        f"did you mean '{close[0]}'?" if close else
                                        "flows: " + ", ".join(sorted(flows))))
    for flow, word, other in _claimed_twice(flows, distress_words):
        problems.append(Problem(flow.path, 1, f"distress word '{word}' is also in flow "
                                f"'{other.id}' ({other.path})", "a word can start one flow only"))
    ranks = outranked_by(flows)
    for flow in sorted(flows.values(), key=lambda f: f.path):
        if flow.id in ranks[flow.id]:
            problems.append(Problem(flow.path, 1, f"'outranks' goes round in a circle back to "
                                    f"'{flow.id}'", "flows must be in one order: remove one "
                                    "of the 'outranks' entries"))
    return problems
