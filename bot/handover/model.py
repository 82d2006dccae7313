"""Volunteers and places in the queue, as plain data."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from bot.flowspec.model import Priority

__all__ = ["ALL_QUEUES", "DueEntry", "OfferQuery", "OffersOwed", "QueueEntry", "Status", "Volunteer"]

#: A volunteer whose queues include this sees every queue.
ALL_QUEUES = "*"


class Status(StrEnum):
    WAITING = "waiting"
    ASSIGNED = "assigned"
    CLOSED = "closed"


@dataclass(frozen=True)
class Volunteer:
    chat_key: str  # "telegram:12345" or "console:NAME"
    name: str
    languages: tuple[str, ...]
    queues: tuple[str, ...]
    available: bool = False

    def serves(self, queue: str) -> bool:
        return ALL_QUEUES in self.queues or queue in self.queues

    def speaks(self, language: str | None) -> bool:
        return (language or "en") in self.languages


@dataclass(frozen=True)
class QueueEntry:
    id: int
    chat_key: str
    flow: str
    queue: str
    priority: Priority
    summary: str
    language: str | None
    created_at: float
    status: Status
    volunteer: str | None = None
    assigned_at: float | None = None
    user_seen_at: float | None = None
    volunteer_seen_at: float | None = None

    @property
    def order(self) -> tuple[int, float]:
        """Queue order: crisis first, then near deadlines, then the rest; oldest first."""
        return (self.priority.rank, self.created_at)


@dataclass(frozen=True)
class OfferQuery:
    """Which waiting chats a round of offers owes to whom: the desk's rules, as parameters
    of one set-based query. A chat is owed to an available volunteer who was not offered it
    yet, serves its queue (or nobody registered serves that queue), and speaks the person's
    language unless the chat was queued at or before ``speakers_only_after``."""

    #: The volunteers available now.
    volunteers: tuple[Volunteer, ...]
    now: float
    speakers_only_after: float
    #: Queues some registered volunteer serves; None: every queue (someone serves "*").
    served: frozenset[str] | None
    #: Of the volunteers, those owed every waiting chat they may see (they just became
    #: available, or joined); the others are owed only chats due for offering (new, requeued,
    #: or just past the delay).
    fresh: frozenset[str] = frozenset()


@dataclass(frozen=True)
class DueEntry:
    """A waiting chat due for offering (queued, requeued, or at the end of its delay)."""

    id: int
    created_at: float


@dataclass(frozen=True)
class OffersOwed:
    #: (volunteer chat key, chat), in queue order.
    owed: tuple[tuple[str, QueueEntry], ...]
    due: tuple[DueEntry, ...]
