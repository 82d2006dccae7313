"""The typed model of a flow file, after strict reading and before validation of links.

A flow is a list of steps. Control falls through to the next step unless a step says
``next``. Every piece of text a person sees gets a stable localisation key derived from
the flow id and step id, so translators and the engine agree on names without staff
having to invent them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum

__all__ = [
    "END",
    "MENU",
    "SPEC_VERSION",
    "AskStep",
    "Branch",
    "Button",
    "ChooseLanguageStep",
    "Condition",
    "EndStep",
    "Flow",
    "ForgetStep",
    "GotoStep",
    "HandoverStep",
    "MenuStep",
    "Next",
    "Priority",
    "SayStep",
    "ServicesStep",
    "Step",
    "Target",
]

#: A {placeholder} for a saved answer; doubled braces {{like this}} are literal text.
PLACEHOLDER = re.compile(r"(?<!\{)\{([a-z][a-z0-9_]*)\}(?!\})")

#: The newest flow-file format this code understands. Files with a higher number are refused.
SPEC_VERSION = 1

#: Special targets for ``next``.
END = "END"
MENU = "MENU"


class Priority(StrEnum):
    """Order in the volunteer queue: crisis first, then near deadlines, then the rest."""

    CRISIS = "crisis"
    DEADLINE = "deadline"
    NORMAL = "normal"

    @property
    def rank(self) -> int:
        return {"crisis": 0, "deadline": 1, "normal": 2}[self.value]


@dataclass(frozen=True)
class Target:
    """Where control goes: a step in this flow, another flow's start, the main menu, or END."""

    step: str | None = None
    flow: str | None = None
    end: bool = False
    menu: bool = False
    line: int = 0

    @classmethod
    def parse(cls, raw: str, line: int) -> Target:
        if raw == END:
            return cls(end=True, line=line)
        if raw == MENU:
            return cls(menu=True, line=line)
        if raw.startswith("flow:"):
            return cls(flow=raw.removeprefix("flow:").strip(), line=line)
        return cls(step=raw, line=line)

    def __str__(self) -> str:
        if self.end:
            return END
        if self.menu:
            return MENU
        return f"flow:{self.flow}" if self.flow else str(self.step)


@dataclass(frozen=True)
class Condition:
    """One named condition, e.g. ``answer_is: {letter_when: this_week}``.

    ``name`` is a key of :data:`bot.engine.conditions.CONDITIONS`; ``variable`` and
    ``values`` are its arguments (``values`` is empty for ``answered``).
    """

    name: str
    variable: str
    values: tuple[str, ...]
    line: int


@dataclass(frozen=True)
class Branch:
    """``- if: <condition>  then: <target>``; a branch without a condition is the ``else``."""

    condition: Condition | None
    target: Target


#: ``next`` is either one target or an ordered list of branches ending with an ``else``.
Next = Target | tuple[Branch, ...]


@dataclass(frozen=True)
class Button:
    id: str
    label: str
    key: str
    next: Target | None
    line: int


@dataclass(frozen=True)
class _StepBase:
    id: str
    flow: str
    line: int
    next: Next | None

    @property
    def key(self) -> str:
        """Localisation key of this step's text."""
        return f"{self.flow}.{self.id}"


@dataclass(frozen=True)
class SayStep(_StepBase):
    text: str


@dataclass(frozen=True)
class AskStep(_StepBase):
    """A question: with buttons when ``buttons`` is non-empty, free text otherwise."""

    text: str
    buttons: tuple[Button, ...]
    save: str | None

    @property
    def free_text(self) -> bool:
        return not self.buttons


@dataclass(frozen=True)
class MenuStep(_StepBase):
    """A question whose buttons are every flow that has a ``menu`` position."""

    text: str


@dataclass(frozen=True)
class ChooseLanguageStep(_StepBase):
    """A question whose buttons are the languages the bot offers, each in its own script."""

    text: str


@dataclass(frozen=True)
class HandoverStep(_StepBase):
    queue: str
    priority: Priority
    summary: str


@dataclass(frozen=True)
class GotoStep(_StepBase):
    """Only moves control: ``goto: flow:find_help`` or a list of if/then/else branches."""


@dataclass(frozen=True)
class EndStep(_StepBase):
    pass


@dataclass(frozen=True)
class ForgetStep(_StepBase):
    """Says ``text``, then deletes everything stored about the chat and ends."""

    text: str


@dataclass(frozen=True)
class ServicesStep(_StepBase):
    """Shows at most three services of the directory that fit what the person needs
    (the answer ``need``, through ``tags``) and where they are (the first of the answers
    ``place`` that names a place), local ones first; then goes on like a ``say``."""

    text: str  # said before the services
    none_text: str  # said instead when none fits
    need: str
    #: A ``need`` button id -> the directory tags it means (a tag id stands for itself).
    tags: tuple[tuple[str, tuple[str, ...]], ...]
    place: tuple[str, ...]
    #: Said when a typed place is not in the directory (before what was found nearby).
    unknown_place_text: str | None = None

    @property
    def none_key(self) -> str:
        return f"{self.key}.none"

    @property
    def unknown_place_key(self) -> str:
        return f"{self.key}.unknown_place"

    def tags_for(self, answer: str) -> tuple[str, ...]:
        for button_id, tags in self.tags:
            if button_id == answer:
                return tags
        return (answer,) if answer else ()

    def texts(self) -> dict[str, str]:
        """Localisation key -> English text of every text this step can say."""
        out = {self.key: self.text, self.none_key: self.none_text}
        if self.unknown_place_text is not None:
            out[self.unknown_place_key] = self.unknown_place_text
        return out


Step = (SayStep | AskStep | MenuStep | ChooseLanguageStep | HandoverStep | GotoStep | EndStep
        | ForgetStep | ServicesStep)
QUESTION_STEPS = (AskStep, MenuStep, ChooseLanguageStep)


@dataclass(frozen=True)
class Flow:
    id: str
    path: str
    spec_version: int
    title: str
    steps: tuple[Step, ...]
    menu_order: int | None = None
    keywords: tuple[str, ...] = ()
    command: str | None = None
    interrupt: bool = False
    #: Phrases looked for inside every message, at any step: finding one starts this flow.
    safeguarding: tuple[str, ...] = ()
    #: Words looked for inside a message nothing else understood at the main menu (or when
    #: idle): a frightened person's first words start this flow instead of "not understood".
    distress: tuple[str, ...] = ()
    #: Flows this one wins over when one message holds words of both (keywords, distress
    #: words or safeguarding phrases); transitive, so a chain orders a whole set of flows.
    outranks: tuple[str, ...] = ()
    _index: dict[str, int] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._index.update({step.id: i for i, step in enumerate(self.steps)})

    @property
    def title_key(self) -> str:
        return f"{self.id}.title"

    def step(self, step_id: str) -> Step | None:
        index = self._index.get(step_id)
        return None if index is None else self.steps[index]

    def step_after(self, step_id: str) -> Step | None:
        """The step that control falls through to, or None at the end of the list."""
        index = self._index.get(step_id)
        if index is None or index + 1 >= len(self.steps):
            return None
        return self.steps[index + 1]

    def strings(self) -> dict[str, str]:
        """Every localisation key of this flow with its English source text."""
        out = {self.title_key: self.title}
        for step in self.steps:
            if isinstance(step, SayStep | MenuStep | ChooseLanguageStep | ForgetStep):
                out[step.key] = step.text
            elif isinstance(step, AskStep):
                out[step.key] = step.text
                out.update({b.key: b.label for b in step.buttons})
            elif isinstance(step, ServicesStep):
                out.update(step.texts())
        return out
