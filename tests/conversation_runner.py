"""Golden conversations: user turns and the message keys and handovers the bot answers with.

A case file (tests/conversations/*.yaml) is a list of cases::

    - name: refusal letter this week goes to a volunteer
      lang: en                 # optional: start with this language (skips the language question)
      turns:
        - {send: hi, expect: [choose_language.pick]}
        - {tap: 1, expect: [choose_language.privacy, main_menu.choose]}
        - {send: "1", expect: [...]}
        - {command: /human, expect: [...]}
        - {media: sticker, expect: [system.media, ...]}

``desk: true`` runs the case with the volunteer desk (no volunteer online, hours around
the clock), so what a person sees while waiting in the queue is checked too.

``tap: N`` taps the Nth button of the last question. ``expect`` lists the keys of the
messages sent, in order, with ``handover:<queue>:<priority>`` where the chat was handed
to a person. Assertions are on keys, not text, so one case covers every language.
Run ``pytest tests/test_conversations.py --update`` to rewrite every ``expect`` from what
the bot does now (review the diff before committing it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bot.dispatcher import Dispatcher
from bot.flowspec.library import FlowLibrary
from bot.flowspec.model import AskStep, EndStep, GotoStep, HandoverStep
from bot.handover.desk import DeskSettings, HandoverDesk
from bot.i18n.localizer import Localizer
from bot.messages import Inbound, InboundKind, Outbound
from bot.services.load import default_services_dir, load_directory
from bot.services.model import Directory
from bot.storage.sqlite import SqliteStore
from bot.transports.memory import MemoryTransport

CASES_DIR = Path(__file__).parent / "conversations"
TURN_KINDS = ("send", "tap", "command", "media")


@dataclass
class Coverage:
    """What the cases walked through: message keys seen, buttons tapped, handover steps hit."""

    keys: set[str] = field(default_factory=set)
    buttons: set[str] = field(default_factory=set)
    handover_steps: set[str] = field(default_factory=set)

    def missing(self, library: FlowLibrary) -> list[str]:
        out: list[str] = []
        for flow in library.flows.values():
            for step in flow.steps:
                if isinstance(step, GotoStep | EndStep):
                    continue  # they say nothing; the steps they lead to are checked instead
                if isinstance(step, HandoverStep):
                    if step.key not in self.handover_steps:
                        out.append(f"{flow.path}:{step.line}: handover step '{step.id}' never reached")
                elif step.key not in self.keys:
                    out.append(f"{flow.path}:{step.line}: step '{step.id}' never reached")
                if isinstance(step, AskStep):
                    out += [f"{flow.path}:{b.line}: button '{b.id}' of step '{step.id}' never tapped"
                            for b in step.buttons if b.key not in self.buttons]
        return out


def load_cases() -> list[tuple[str, dict[str, Any]]]:
    cases = []
    for file in sorted(CASES_DIR.glob("*.yaml")):
        for case in yaml.safe_load(file.read_text(encoding="utf-8")) or []:
            cases.append((f"{file.stem}: {case['name']}", case | {"_file": str(file)}))
    return cases


_SHIPPED: dict[int, tuple[FlowLibrary, Localizer]] = {}
_DIRECTORY: list[Directory] = []


def shipped_directory() -> Directory:
    """The directory of services in services/, loaded once."""
    if not _DIRECTORY:
        _DIRECTORY.append(load_directory(default_services_dir()))
    return _DIRECTORY[0]


def shipped_localizer(library: FlowLibrary) -> Localizer:
    """A Localizer with locales/ for ``library``, loaded once per library."""
    cached = _SHIPPED.get(id(library))
    if cached is None or cached[0] is not library:
        from bot.app import load_catalog_set
        from bot.config import Settings

        catalogs = load_catalog_set(Settings.from_env({}), library)
        cached = _SHIPPED[id(library)] = (library, Localizer(catalogs))
    return cached[1]


async def run_case(case: dict[str, Any], library: FlowLibrary, db_path: Path,
                   coverage: Coverage | None = None, localizer: Localizer | None = None,
                   languages: set[str] | None = None) -> list[list[str]]:
    """Play a case against a fresh database; returns the actual keys of every turn.

    ``localizer`` defaults to one with the shipped catalogs, so words typed in any language
    work as they do in the bot. ``languages`` collects the language every message was sent in."""
    store = await SqliteStore.open(db_path)
    transport = MemoryTransport()
    localizer = localizer or shipped_localizer(library)
    desk = HandoverDesk(store, localizer, None, DeskSettings(hours="00:00-00:00")) \
        if case.get("desk") else None
    directory = shipped_directory()
    dispatcher = Dispatcher(store, lambda: library, localizer, transport,
                            default_language=case.get("lang"), desk=desk,
                            directory=lambda: directory)
    chat = "test:case"
    actual: list[list[str]] = []
    last_question: Outbound | None = None
    seen_handovers = 0
    try:
        for number, turn in enumerate(case["turns"], start=1):
            kinds = [k for k in TURN_KINDS if k in turn]
            assert len(kinds) == 1, f"turn {number}: use exactly one of {TURN_KINDS}"
            kind = kinds[0]
            if kind == "tap":
                assert last_question is not None, f"turn {number}: no question to tap"
                index = int(turn["tap"]) - 1
                assert 0 <= index < len(last_question.buttons), (
                    f"turn {number}: the question has {len(last_question.buttons)} buttons")
                button = last_question.buttons[index]
                if coverage is not None and button.key:
                    coverage.buttons.add(button.key)
                inbound = Inbound(chat, InboundKind.BUTTON, button=button.callback)
            elif kind == "media":
                inbound = Inbound(chat, InboundKind.MEDIA, media=str(turn["media"]))
            else:
                text = str(turn[kind])
                if coverage is not None and last_question is not None and text.isdigit():
                    index = int(text) - 1
                    if 0 <= index < len(last_question.buttons):
                        coverage.buttons.add(last_question.buttons[index].key)
                inbound = Inbound.from_text(chat, text)
            await dispatcher.handle(inbound)
            sent = transport.take()
            keys = [m.key for m in sent]
            if languages is not None:
                languages.update(m.language for m in sent)
            handovers = await store.handovers(chat)
            for h in handovers[seen_handovers:]:
                keys.append(f"handover:{h['queue']}:{h['priority']}")
                if coverage is not None:
                    coverage.handover_steps.add(f"{h['flow']}.{h['step']}")
            seen_handovers = len(handovers)
            if coverage is not None:
                coverage.keys.update(m.key for m in sent)
            questions = [m for m in sent if m.buttons]
            if questions:
                last_question = questions[-1]
            actual.append(keys)
    finally:
        await store.close()
    return actual


def write_expectations(file: Path, updates: dict[str, list[list[str]]]) -> None:
    """Rewrite ``expect`` of each named case in ``file``, keeping everything else."""
    cases = yaml.safe_load(file.read_text(encoding="utf-8")) or []
    header = [line for line in file.read_text(encoding="utf-8").splitlines()
              if line.startswith("#")]
    lines = [*header, ""] if header else []
    for case in cases:
        if case["name"] in updates:
            for turn, keys in zip(case["turns"], updates[case["name"]], strict=True):
                turn["expect"] = keys
        lines.append(f"- name: {_scalar(case['name'])}")
        if case.get("lang"):
            lines.append(f"  lang: {case['lang']}")
        if case.get("desk"):
            lines.append("  desk: true")
        lines.append("  turns:")
        for turn in case["turns"]:
            kind = next(k for k in TURN_KINDS if k in turn)
            expect = ", ".join(turn.get("expect", []))
            lines.append(f"    - {{{kind}: {_scalar(turn[kind], in_braces=True)}, expect: [{expect}]}}")
    file.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _scalar(value: Any, *, in_braces: bool = False) -> str:
    if in_braces and isinstance(value, str) and any(ch in value for ch in ",[]{}#:?'\""):
        # Inside {send: ...} a comma or bracket would end the text: write it JSON-quoted,
        # which YAML reads as a double-quoted string.
        return json.dumps(value, ensure_ascii=False)
    return yaml.safe_dump(value, default_flow_style=True, allow_unicode=True,
                          width=10_000).strip().removesuffix("...").strip()
