"""The typed model of the directory of services (services/*.yaml), after strict reading.

Places form a tree: the whole UK at the root, then nations, regions and towns, each naming
the place it is in. A service serves one or more places; it serves a person whose place is
one of them or lies inside one of them. Every fact of an entry has a source and the date
it was checked, so the staff member who keeps the directory knows what to check again.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum

__all__ = ["FACTS", "TAGS", "UK", "Directory", "Place", "PlaceKind", "Service", "Source", "tag_hint"]

#: What a service helps with: one fixed list (id -> the words staff and volunteers read).
TAGS: dict[str, str] = {
    "legal_advice": "legal advice",
    "asylum_support": "asylum support",
    "housing": "housing",
    "food_and_essentials": "food and essentials",
    "health": "health",
    "mental_health": "mental health",
    "family_tracing": "family tracing and reunion",
    "women": "women",
    "children_and_young_people": "children and young people",
    "lgbtq": "LGBTQ+",
    "destitution": "destitution",
    "detention": "detention",
    "trafficking_and_exploitation": "trafficking and exploitation",
    "english_classes": "English classes",
    "social_and_community": "social and community",
}

def tag_hint(written: str) -> str:
    """How to fix a tag that is not one of TAGS: its id when its words were written, else
    the closest tag (by id, or by the first word of one), else the list."""
    by_words = {label.casefold(): tag for tag, label in TAGS.items()}
    if written.casefold() in by_words:
        return f"write it as '{by_words[written.casefold()]}'"
    heads = {tag.split("_")[0]: tag for tag in TAGS}
    close = difflib.get_close_matches(written, list(TAGS), n=1) or [
        heads[h] for h in difflib.get_close_matches(written.split("_")[0], list(heads), n=1)]
    return f"did you mean '{close[0]}'?" if close else "use one of: " + ", ".join(TAGS)


#: The facts of an entry that need a source (everything but its id and its sources).
FACTS = ("name", "tags", "serves", "languages", "interpreters", "phone", "web", "address",
         "hours", "referral")

#: The root of the places: the whole UK. Built in; staff never write it in places.yaml.
UK = "uk"


class PlaceKind(StrEnum):
    UK = "uk"
    NATION = "nation"
    REGION = "region"
    TOWN = "town"


@dataclass(frozen=True)
class Place:
    id: str
    name: str
    kind: PlaceKind
    #: The place this one is in (a nation's is the UK); None only for the UK itself.
    within: str | None
    #: Other names a person may type for it, in any language (staff add them).
    spellings: tuple[str, ...] = ()
    path: str = ""
    line: int = 0


@dataclass(frozen=True)
class Source:
    """Where some facts of an entry come from, and when someone last checked them there."""

    source: str
    checked: date
    facts: tuple[str, ...]
    line: int = 0


@dataclass(frozen=True)
class Service:
    id: str
    name: str
    tags: tuple[str, ...]
    #: Place ids; ``uk`` for the whole UK.
    serves: tuple[str, ...]
    sources: tuple[Source, ...]
    #: Language codes it works in (ps, fa, ar...), as staff wrote them.
    languages: tuple[str, ...] = ()
    #: True when it provides interpreters; None when the entry does not say.
    interpreters: bool | None = None
    phone: str | None = None
    web: str | None = None
    address: str | None = None
    hours: str | None = None
    #: True when a referral is needed, False when people may contact it themselves.
    referral: bool | None = None
    path: str = ""
    line: int = 0

    @property
    def checked(self) -> date:
        """When its least recently checked fact was checked."""
        return min(s.checked for s in self.sources)

    def speaks(self, code: str | None) -> bool:
        return code is not None and code in self.languages


@dataclass(frozen=True)
class Directory:
    places: dict[str, Place] = field(default_factory=dict)
    services: tuple[Service, ...] = ()

    def __post_init__(self) -> None:
        self.places.setdefault(UK, Place(UK, "United Kingdom", PlaceKind.UK, None))

    def service(self, service_id: str) -> Service | None:
        return next((s for s in self.services if s.id == service_id), None)

    def chain(self, place_id: str) -> list[str]:
        """The place and every place it is in, up to the UK (unknown ids: the UK only)."""
        out: list[str] = []
        current: str | None = place_id if place_id in self.places else UK
        while current is not None and current not in out:
            out.append(current)
            current = self.places[current].within if current in self.places else None
        return out
