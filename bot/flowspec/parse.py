"""Turn one flow file's text into a :class:`Flow`, collecting every problem with its line.

Parsing never raises for bad content: it returns the problems it found so that staff see
all of them at once, each as ``path:line: message`` with a hint on how to fix it.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from typing import Any, TypedDict

from bot.errors import Problem
from bot.flowspec.conditions import CONDITIONS, parse_arguments
from bot.flowspec.model import (
    SPEC_VERSION,
    AskStep,
    Branch,
    Button,
    ChooseLanguageStep,
    Condition,
    EndStep,
    Flow,
    ForgetStep,
    GotoStep,
    HandoverStep,
    MenuStep,
    Next,
    Priority,
    SayStep,
    ServicesStep,
    Step,
    Target,
)
from bot.flowspec.strict_yaml import YamlList, YamlMap, YamlSyntaxError, load_yaml
from bot.services.model import TAGS, tag_hint

__all__ = ["IDENTIFIER", "Collector", "parse_flow", "string_list", "text_field"]

IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
ID_HINT = "use lower-case letters, digits and _ only, starting with a letter (at most 32)"

FLOW_KEYS = ("spec_version", "id", "title", "menu", "keywords", "command", "interrupt",
             "safeguarding", "distress", "outranks", "steps", "description")
STEP_KINDS = ("say", "ask", "menu", "choose_language", "handover", "goto", "end", "forget",
              "services")
STEP_KEYS = (*STEP_KINDS, "id", "buttons", "save", "next", "note")
BUTTON_KEYS = ("id", "label", "next")
HANDOVER_KEYS = ("queue", "priority", "summary")
SERVICES_KEYS = ("say", "none", "unknown_place", "need", "tags", "place")
RESERVED_STEP_IDS = ("title",)


class _StepFields(TypedDict):
    """The fields every step kind shares, gathered before the kind is known."""

    id: str
    flow: str
    line: int
    next: Next | None


class Collector:
    """Problems found in one file, each with its line and a hint; a file is read whole."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.problems: list[Problem] = []

    def add(self, line: int, message: str, hint: str = "") -> None:
        self.problems.append(Problem(self.path, line, message, hint))

    def unknown_keys(self, node: YamlMap, allowed: Iterable[str], where: str) -> None:
        allowed = tuple(allowed)
        for key in node:
            if key in allowed:
                continue
            value = node[key]
            close = difflib.get_close_matches(key, allowed, n=1)
            if close:
                hint = f"did you mean '{close[0]}'?"
            elif value is None and " " not in key:
                # {text: Not sure, honestly} makes a key 'honestly': the comma split the text.
                hint = ("a comma inside { } starts a new key; put the whole text in quotes, "
                        'e.g. label: "Not sure, honestly"')
            else:
                hint = "allowed here: " + ", ".join(allowed)
            self.add(node.line_of(key), f"unknown key '{key}' in {where}", hint)


def parse_flow(text: str, path: str) -> tuple[Flow | None, list[Problem]]:
    """Read one flow file. Returns the flow (None if unusable) and every problem found."""
    out = Collector(path)
    try:
        data = load_yaml(text)
    except YamlSyntaxError as exc:
        out.add(exc.line, exc.message, exc.hint)
        return None, out.problems
    if not isinstance(data, YamlMap):
        out.add(1, "a flow file must be a mapping starting with 'spec_version:'",
                "start the file with: spec_version: 1")
        return None, out.problems

    out.unknown_keys(data, FLOW_KEYS, "the flow")
    version = data.get("spec_version")
    if "spec_version" not in data:
        out.add(1, "missing 'spec_version'", f"add 'spec_version: {SPEC_VERSION}' as the first line")
        version = SPEC_VERSION
    elif not isinstance(version, int) or isinstance(version, bool) or version < 1:
        out.add(data.line_of("spec_version"), "'spec_version' must be a whole number",
                f"write spec_version: {SPEC_VERSION}")
        version = SPEC_VERSION
    elif version > SPEC_VERSION:
        out.add(data.line_of("spec_version"),
                f"spec_version {version} is newer than this bot understands ({SPEC_VERSION})",
                "upgrade the bot, or write the flow in the older format")
        return None, out.problems

    flow_id = text_field(out, data, "id", "the flow", required=True)
    if flow_id and not IDENTIFIER.match(flow_id):
        out.add(data.line_of("id"), f"flow id '{flow_id}' is not a valid id", ID_HINT)
    flow_id = flow_id or "?"
    title = text_field(out, data, "title", "the flow", required=True) or ""

    menu_order = data.get("menu")
    if menu_order is not None and (not isinstance(menu_order, int) or isinstance(menu_order, bool)):
        out.add(data.line_of("menu"), "'menu' is the flow's position in the main menu",
                "write a whole number such as menu: 10, or remove it to hide the flow")
        menu_order = None
    keywords = string_list(out, data, "keywords")
    safeguarding = string_list(out, data, "safeguarding")
    distress = string_list(out, data, "distress")
    outranks = string_list(out, data, "outranks")
    for other in outranks:
        if not IDENTIFIER.match(other):
            out.add(data.line_of("outranks"), f"'outranks' names '{other}', which is not a flow id",
                    "write flow ids, e.g. outranks: [asylum_process]")
    command = data.get("command")
    if command is not None and (not isinstance(command, str) or not IDENTIFIER.match(command)):
        out.add(data.line_of("command"), "'command' must be a command name such as human",
                "write it without the slash: command: human")
        command = None
    interrupt = data.get("interrupt", False)
    if not isinstance(interrupt, bool):
        out.add(data.line_of("interrupt"), "'interrupt' must be true or false",
                "write interrupt: true (only true/false are accepted, not yes/no)")
        interrupt = False

    steps_raw = data.get("steps")
    steps: list[Step] = []
    if not isinstance(steps_raw, YamlList) or not steps_raw:
        out.add(data.line_of("steps"), "the flow needs a non-empty list of 'steps'",
                "add steps:, then one '- id: ...' entry per step")
    else:
        for index, raw in enumerate(steps_raw):
            step = _parse_step(out, flow_id, raw, steps_raw.line_of(index))
            if step is not None:
                steps.append(step)

    flow = Flow(
        id=flow_id, path=path, spec_version=version, title=title, steps=tuple(steps),
        menu_order=menu_order, keywords=tuple(keywords), command=command, interrupt=interrupt,
        safeguarding=tuple(safeguarding), distress=tuple(distress), outranks=tuple(outranks),
    )
    return flow, out.problems


def text_field(out: Collector, node: YamlMap, key: str, where: str, *, required: bool) -> str | None:
    if key not in node:
        if required:
            out.add(node.line, f"missing '{key}' in {where}", f"add '{key}: ...'")
        return None
    value = node[key]
    if isinstance(value, bool | int):
        # Unquoted true/false/numbers where text was meant: say what YAML made of it.
        out.add(node.line_of(key), f"'{key}' must be text, but YAML read {value!r}",
                f'put it in quotes: {key}: "{str(value).lower()}"')
        return None
    if not isinstance(value, str) or not value.strip():
        out.add(node.line_of(key), f"'{key}' in {where} must be non-empty text")
        return None
    return value.strip()


def string_list(out: Collector, node: YamlMap, key: str) -> list[str]:
    value = node.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        out.add(node.line_of(key), f"'{key}' must be a list of words or phrases",
                f"write {key}: [refused, appeal] or one per line under it")
        return []
    return [v.strip() for v in value]


def _parse_step(out: Collector, flow_id: str, raw: Any, line: int) -> Step | None:
    if not isinstance(raw, YamlMap):
        out.add(line, "each step must be a mapping starting with '- id: ...'")
        return None
    line = raw.line
    out.unknown_keys(raw, STEP_KEYS, "a step")
    step_id = text_field(out, raw, "id", "a step", required=True)
    if step_id is None:
        return None
    if not IDENTIFIER.match(step_id) or step_id in RESERVED_STEP_IDS:
        out.add(raw.line_of("id"), f"step id '{step_id}' is not a valid id",
                ID_HINT + ("; 'title' is reserved" if step_id in RESERVED_STEP_IDS else ""))
    where = f"step '{step_id}'"
    kinds = [k for k in STEP_KINDS if k in raw]
    if len(kinds) != 1:
        found = " and ".join(kinds) if kinds else "none"
        out.add(line, f"{where} must have exactly one of: {', '.join(STEP_KINDS)} (found {found})",
                "split it into separate steps, one action each")
        return None
    kind = kinds[0]
    nxt = _parse_next(out, raw, "next") if "next" in raw else None
    for extra in ("buttons", "save"):
        if extra in raw and kind != "ask":
            out.add(raw.line_of(extra), f"'{extra}' only belongs on an 'ask' step")
    base = _StepFields(id=step_id, flow=flow_id, line=line, next=nxt)

    if kind == "say":
        return SayStep(**base, text=text_field(out, raw, "say", where, required=True) or "")
    if kind == "menu":
        return MenuStep(**base, text=text_field(out, raw, "menu", where, required=True) or "")
    if kind == "choose_language":
        text = text_field(out, raw, "choose_language", where, required=True) or ""
        return ChooseLanguageStep(**base, text=text)
    if kind == "ask":
        return _parse_ask(out, raw, base, flow_id, step_id)
    if kind == "handover":
        return _parse_handover(out, raw, base)
    if kind == "services":
        return _parse_services(out, raw, base)
    if kind == "forget":
        if nxt is not None:
            out.add(raw.line_of("next"), f"{where} deletes the conversation, so 'next' is never used")
        return ForgetStep(**base, text=text_field(out, raw, "forget", where, required=True) or "")
    if kind == "goto":
        if nxt is not None:
            out.add(raw.line_of("next"), f"{where} has both 'goto' and 'next'",
                    "a goto step already says where to go; remove 'next'")
        base["next"] = _parse_next(out, raw, "goto")
        return GotoStep(**base)
    if raw["end"] is not True:
        out.add(raw.line_of("end"), "write 'end: true' to finish the conversation here")
    if nxt is not None:
        out.add(raw.line_of("next"), f"{where} ends the flow, so 'next' is never used")
    return EndStep(**base)


def _parse_ask(out: Collector, raw: YamlMap, base: _StepFields, flow_id: str,
               step_id: str) -> AskStep:
    text = text_field(out, raw, "ask", f"step '{step_id}'", required=True) or ""
    buttons: list[Button] = []
    buttons_raw = raw.get("buttons")
    if buttons_raw is not None and not isinstance(buttons_raw, YamlList):
        out.add(raw.line_of("buttons"), "'buttons' must be a list",
                "write one '- {id: yes, label: \"Yes\"}' per line")
    elif buttons_raw is not None:
        for index, b in enumerate(buttons_raw):
            button = _parse_button(out, b, buttons_raw.line_of(index), f"{flow_id}.{step_id}")
            if button is not None:
                buttons.append(button)
    save = raw.get("save")
    if save is not None and (not isinstance(save, str) or not IDENTIFIER.match(save)):
        out.add(raw.line_of("save"), "'save' names the answer, e.g. save: letter_when", ID_HINT)
        save = None
    return AskStep(**base, text=text, buttons=tuple(buttons), save=save)


def _parse_button(out: Collector, raw: Any, line: int, step_key: str) -> Button | None:
    if not isinstance(raw, YamlMap):
        out.add(line, "each button must be a mapping with an id and a label",
                '- {id: yes, label: "Yes"}')
        return None
    out.unknown_keys(raw, BUTTON_KEYS, "a button")
    button_id = text_field(out, raw, "id", "a button", required=True)
    label = text_field(out, raw, "label", "a button", required=True)
    if button_id is None or label is None:
        return None
    if not IDENTIFIER.match(button_id):
        out.add(raw.line_of("id"), f"button id '{button_id}' is not a valid id", ID_HINT)
    target = _parse_next(out, raw, "next") if "next" in raw else None
    if isinstance(target, tuple):
        out.add(raw.line_of("next"), "a button's 'next' must be one step, not a list of branches",
                "point the button at a goto step that holds the branches")
        target = None
    return Button(id=button_id, label=label, key=f"{step_key}.{button_id}", next=target,
                  line=raw.line)


def _parse_handover(out: Collector, raw: YamlMap, base: _StepFields) -> HandoverStep | None:
    spec = raw["handover"]
    if not isinstance(spec, YamlMap):
        out.add(raw.line_of("handover"), "'handover' needs queue, priority and summary",
                "handover: {queue: legal, priority: deadline, summary: \"...\"}")
        return None
    out.unknown_keys(spec, HANDOVER_KEYS, "a handover")
    queue = text_field(out, spec, "queue", "the handover", required=True) or "general"
    if not IDENTIFIER.match(queue):
        out.add(spec.line_of("queue"), f"queue name '{queue}' is not a valid id", ID_HINT)
    priority_raw = spec.get("priority", Priority.NORMAL.value)
    try:
        priority = Priority(priority_raw)
    except ValueError:
        choices = ", ".join(p.value for p in Priority)
        out.add(spec.line_of("priority"), f"unknown priority '{priority_raw}'", f"use one of: {choices}")
        priority = Priority.NORMAL
    summary = text_field(out, spec, "summary", "the handover", required=True) or ""
    return HandoverStep(**base, queue=queue, priority=priority, summary=summary)


def _parse_services(out: Collector, raw: YamlMap, base: _StepFields) -> ServicesStep | None:
    spec = raw["services"]
    example = ('services: {say: "These services may help:", none: "...", need: need, '
               "place: [town, region, nation]}")
    if not isinstance(spec, YamlMap):
        out.add(raw.line_of("services"), "'services' needs say, none, need and place", example)
        return None
    where = "the services step"
    out.unknown_keys(spec, SERVICES_KEYS, where)
    text = text_field(out, spec, "say", where, required=True) or ""
    none_text = text_field(out, spec, "none", where, required=True) or ""
    unknown_place = text_field(out, spec, "unknown_place", where, required=False)
    need = text_field(out, spec, "need", where, required=True) or ""
    if need and not IDENTIFIER.match(need):
        out.add(spec.line_of("need"), "'need' names the saved answer that says what is needed",
                ID_HINT)
    place = string_list(out, spec, "place")
    if "place" not in spec:
        out.add(spec.line, "missing 'place' in the services step",
                "name the saved answers that say where the person is, most precise first: "
                "place: [town, region, nation]")
    tags: list[tuple[str, tuple[str, ...]]] = []
    tags_raw = spec.get("tags")
    if tags_raw is not None and not isinstance(tags_raw, YamlMap):
        out.add(spec.line_of("tags"), "'tags' maps each button of the need question to tags",
                "tags: {legal: [legal_advice], housing: [housing, asylum_support]}")
    elif tags_raw is not None:
        for button_id, value in tags_raw.items():
            listed = [value] if isinstance(value, str) else value
            if not isinstance(listed, list) or not all(isinstance(v, str) for v in listed):
                out.add(tags_raw.line_of(button_id), f"tags of '{button_id}' must be a list of tags",
                        f"{button_id}: [legal_advice]")
                continue
            for tag in listed:
                if tag not in TAGS:
                    out.add(tags_raw.line_of(button_id), f"unknown tag '{tag}'", tag_hint(tag))
            tags.append((button_id, tuple(t for t in listed if t in TAGS)))
    return ServicesStep(**base, text=text, none_text=none_text, need=need, tags=tuple(tags),
                        place=tuple(place), unknown_place_text=unknown_place)


def _parse_next(out: Collector, node: YamlMap, key: str) -> Next | None:
    value = node[key]
    line = node.line_of(key)
    if isinstance(value, str) and value.strip():
        return Target.parse(value.strip(), line)
    if not isinstance(value, YamlList) or not value:
        out.add(line, f"'{key}' must be a step id, flow:<id>, MENU, END or a list of branches",
                "e.g. next: ask_date   or   next: flow:find_help")
        return None
    branches: list[Branch] = []
    for index, entry in enumerate(value):
        entry_line = value.line_of(index)
        if not isinstance(entry, YamlMap):
            out.add(entry_line, "each branch is '- if: ...' with 'then: ...', or a last '- else: ...'")
            continue
        if "else" in entry:
            out.unknown_keys(entry, ("else",), "an else branch")
            if index != len(value) - 1:
                out.add(entry_line, "'else' must be the last branch")
            target = entry["else"]
            if isinstance(target, str) and target.strip():
                branches.append(Branch(None, Target.parse(target.strip(), entry_line)))
            else:
                out.add(entry_line, "'else' needs a step id, flow:<id>, MENU or END")
            continue
        out.unknown_keys(entry, ("if", "then"), "a branch")
        condition = _parse_condition(out, entry.get("if"), entry.line_of("if"))
        then = entry.get("then")
        if not isinstance(then, str) or not then.strip():
            out.add(entry_line, "a branch needs 'then: <step id>'")
            continue
        if condition is not None:
            branches.append(Branch(condition, Target.parse(then.strip(), entry.line_of("then"))))
    if branches and branches[-1].condition is not None:
        out.add(line, "a list of branches must end with '- else: <step>'",
                "add '- else: <step id>' so every answer has somewhere to go")
    return tuple(branches)


def _parse_condition(out: Collector, raw: Any, line: int) -> Condition | None:
    names = ", ".join(CONDITIONS)
    if not isinstance(raw, YamlMap) or len(raw) != 1:
        out.add(line, "'if' needs exactly one condition", f"conditions: {names}")
        return None
    name, args = next(iter(raw.items()))
    if name not in CONDITIONS:
        close = difflib.get_close_matches(name, CONDITIONS, n=1)
        out.add(line, f"unknown condition '{name}'",
                f"did you mean '{close[0]}'?" if close else f"conditions: {names}")
        return None
    parsed = parse_arguments(name, args)
    if isinstance(parsed, str):
        out.add(line, parsed)
        return None
    variable, values = parsed
    return Condition(name=name, variable=variable, values=values, line=line)
