"""Volunteers and places in the queue, as plain data."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from bot.flowspec.model import Priority

__all__ = ["ALL_QUEUES", "QueueEntry", "Status", "Volunteer"]

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
