"""What the engine asks the rest of the house to do. The engine itself does nothing."""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.flowspec.model import Priority

__all__ = ["Choice", "Event", "Forget", "Handover", "LanguageSet", "Param", "Say"]


@dataclass(frozen=True)
class Param:
    """A value for a {placeholder}: typed text, or a button label the localizer can translate."""

    text: str
    key: str | None = None


@dataclass(frozen=True)
class Choice:
    key: str  # localisation key of the label ("" when the label is already final, e.g. a language name)
    label: str  # English (or final) label
    callback: str  # "<token>.<index>"


@dataclass(frozen=True)
class Say:
    key: str
    text: str  # English source, with {placeholders}
    params: dict[str, Param] = field(default_factory=dict)
    choices: tuple[Choice, ...] = ()
    token: int | None = None  # set when this message asks a question
    #: Render in this language instead of the chat's (a first guess before one is chosen).
    language: str | None = None


@dataclass(frozen=True)
class Handover:
    """Hand the chat to a person. ``summary`` is for the volunteer, filled from answers."""

    flow: str
    step: str
    queue: str
    priority: Priority
    summary: str


@dataclass(frozen=True)
class LanguageSet:
    language: str


@dataclass(frozen=True)
class Forget:
    """Delete everything stored about this chat, once the replies before it are sent."""


Event = Say | Handover | LanguageSet | Forget
