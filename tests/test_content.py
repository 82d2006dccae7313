"""Content rules checked over the shipped flows in flows/ (not fixtures).

* A message must read comfortably on a phone: every English text a person is sent (say, ask,
  menu, language and forget texts) is at most PHONE_TEXT_MAX characters. Longer content is
  split by meaning into several ``say`` steps. Translations may run longer (Hindi is about a
  fifth longer than English); the platform limits they must fit are checked by the validator.
* Every phone number and link shown to a person has a ``# Source:`` comment in its step, and
  every ``# Source:`` comment says when it was checked (docs/flow-format.md, "What flows may
  say").
"""

from __future__ import annotations

import re
from pathlib import Path

from bot.flowspec.library import FlowLibrary
from bot.flowspec.model import (
    AskStep,
    ChooseLanguageStep,
    Flow,
    ForgetStep,
    MenuStep,
    SayStep,
    ServicesStep,
)
from bot.limits import PHONE_MESSAGE_CHARS
from tests.conftest import FLOWS_DIR

#: About what a phone shows without much scrolling (issue 10: "keep each message under about
#: 600 characters in English"); the Telegram transport joins a turn's messages only up to it.
PHONE_TEXT_MAX = PHONE_MESSAGE_CHARS

_TEXT_STEPS = (SayStep, AskStep, MenuStep, ChooseLanguageStep, ForgetStep)
_LINK = re.compile(r"https?://[^\s]+")
#: UK phone numbers as the flows write them (0808 8010 503, 08000 121 700, 0345 345 4 345)
#: and the short emergency and helpline numbers.
_PHONE = re.compile(r"(?<!\d)(?:0\d{2,4}(?: ?\d){5,8}|999|111|116 123)(?!\d)")
_DATED = re.compile(r"(?:checked|not re-checked live)\b.*\b\d{4}-\d{2}\b")


def _texts(library: FlowLibrary) -> list[tuple[str, str]]:
    texts = [(step.key, step.text) for flow in library.flows.values() for step in flow.steps
             if isinstance(step, _TEXT_STEPS)]
    return texts + [item for flow in library.flows.values() for step in flow.steps
                    if isinstance(step, ServicesStep) for item in step.texts().items()]


def test_every_english_text_fits_a_phone_screen(library: FlowLibrary) -> None:
    texts = _texts(library)
    assert len(texts) > 50  # the shipped flows, not an empty folder
    too_long = [f"{key}: {len(text)} characters" for key, text in texts if len(text) > PHONE_TEXT_MAX]
    assert not too_long, (f"longer than {PHONE_TEXT_MAX} characters; split by meaning into "
                          "several 'say' steps:\n" + "\n".join(too_long))


def _step_comments(flow: Flow) -> dict[str, list[str]]:
    """The comment lines of each step: from its '- id:' line to the next step's."""
    lines = (FLOWS_DIR / Path(flow.path).name).read_text(encoding="utf-8").splitlines()
    starts = [step.line for step in flow.steps] + [len(lines) + 1]
    return {step.id: [line.strip() for line in lines[start - 1:end - 1]
                      if line.strip().startswith("#")]
            for step, start, end in zip(flow.steps, starts, starts[1:], strict=False)}


def test_every_number_and_link_has_a_dated_source(library: FlowLibrary) -> None:
    problems: list[str] = []
    checked = 0
    for flow in library.flows.values():
        comments = _step_comments(flow)
        for step in flow.steps:
            if not isinstance(step, _TEXT_STEPS):
                continue
            sources = [c for c in comments[step.id] if c.startswith("# Source:")]
            for found in _LINK.findall(step.text) + _PHONE.findall(step.text):
                checked += 1
                if not any(found in source for source in sources):
                    problems.append(f"{flow.path}:{step.line}: '{found}' in step '{step.id}' "
                                    "has no '# Source:' comment naming it")
            problems += [f"{flow.path}:{step.line}: source without a date: {source}"
                         for source in sources if not _DATED.search(source)]
    assert checked > 30
    assert not problems, "\n".join(problems)
