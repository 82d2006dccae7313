"""What the engine asks the rest of the house to do. The engine itself does nothing."""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.flowspec.model import Priority
from bot.services.model import UK, Directory, Service

__all__ = ["Choice", "Event", "Forget", "Handover", "LanguageSet", "Param", "Say", "ServiceCard"]


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


@dataclass(frozen=True)
class ServiceCard:
    """Show one service of the directory: its own name and contacts as written, the labels
    in the person's language (the localizer renders it)."""

    service: Service
    #: The names of the places it serves, as the directory writes them (empty: the whole UK).
    areas: tuple[str, ...] = ()
    #: Render in this language instead of the chat's (a first guess before one is chosen).
    language: str | None = None

    @classmethod
    def of(cls, directory: Directory, service: Service, language: str | None = None) -> ServiceCard:
        areas = () if UK in service.serves else tuple(
            directory.places[p].name for p in service.serves if p in directory.places)
        return cls(service, areas, language)


Event = Say | Handover | LanguageSet | Forget | ServiceCard
