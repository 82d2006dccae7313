"""What the dispatcher needs from storage: SQLite (one machine, bot/storage/sqlite.py) or
PostgreSQL (several processes and machines, bot/storage/postgres.py)."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Protocol

from bot.engine.events import Handover
from bot.engine.session import Session
from bot.handover.model import QueueEntry, Volunteer
from bot.messages import Inbound, Outbound

__all__ = ["PendingMessage", "Purged", "Store", "TurnRecord", "TurnState"]


@dataclass(frozen=True)
class TurnRecord:
    """Everything one turn changes, written in one transaction before any reply is sent."""

    chat_key: str
    session: Session | None  # None: the turn leaves the session as it is (a relayed message)
    outbound: Sequence[Outbound] = ()  # replies, to this chat or another (a relay)
    handovers: Sequence[Handover] = ()
    update_id: str | None = None
    #: (handover id, "user" | "volunteer"): who was just heard from in a chat with a person.
    seen: tuple[int, str] | None = None
    #: Update ids of earlier messages of a burst, read and answered together with this turn.
    also_read: Sequence[str] = ()


@dataclass(frozen=True)
class TurnState:
    """What the dispatcher needs to route one message, read in one trip in the common case."""

    session: Session | None
    duplicate: bool  # this platform update was handled already
    volunteer: Volunteer | None = None  # the sender is a registered volunteer
    entry: QueueEntry | None = None  # the sender's open place in the volunteer queue


@dataclass(frozen=True)
class PendingMessage:
    id: int
    message: Outbound = field(compare=False)


@dataclass(frozen=True)
class Purged:
    """What a retention purge deleted, by kind: counts only, never whose or what."""

    sessions: int = 0  # idle past the retention period
    handovers: int = 0  # closed, with no activity in the period
    offers: int = 0  # of those handovers: which volunteers were shown them
    undelivered: int = 0  # outbox messages the platform never took in the period
    update_ids: int = 0  # past both the period and the redelivery window
    #: False: a reader kept deleted data on disk for now (SQLite: old pages in the WAL;
    #: PostgreSQL: a table it was reading could not be rewritten).
    wal_cleared: bool = True

    @property
    def total(self) -> int:
        return self.sessions + self.handovers + self.offers + self.undelivered + self.update_ids


class Store(Protocol):
    async def load_session(self, chat_key: str) -> Session | None: ...

    async def load_turn_state(self, chat_key: str, update_id: str | None) -> TurnState: ...

    async def commit_turn(self, turn: TurnRecord) -> list[PendingMessage]:
        """Save the turn atomically; returns the replies now waiting in the outbox."""
        ...

    async def mark_sent(self, message_ids: Sequence[int]) -> None: ...

    async def receive(self, inbounds: Sequence[Inbound]) -> list[Inbound]:
        """Save arriving messages before the platform is told they arrived; returns the new
        ones (a redelivered message, waiting or handled already, is left out)."""
        ...

    async def inbox(self) -> list[tuple[Inbound, float]]:
        """Messages saved but not handled yet, oldest first, with their arrival times."""
        ...

    async def discard(self, update_ids: Sequence[str]) -> None:
        """Drop unhandled messages from the inbox (their turn failed; the person was told)."""
        ...

    async def pending(self, chat_key: str | None = None) -> list[PendingMessage]:
        """Replies saved but not yet confirmed sent (after a crash), oldest first."""
        ...

    async def forget(self, chat_key: str) -> None:
        """Delete everything stored about one chat, also from the disk: no copy may stay
        readable in the database file or its journal once this returns."""
        ...

    async def purge(self, older_than: timedelta) -> Purged:
        """Delete what is older than the retention period (idle sessions, closed handovers
        and their offers, undelivered messages, update ids past the redelivery window), and
        scrub it from the disk as :meth:`forget` does."""
        ...

    def hold_chat(self, chat_key: str) -> contextlib.AbstractAsyncContextManager[None]:
        """Serve this chat alone among every process on the database until left: entered
        inside the process's own per-chat lock, before the turn's load, and left after its
        commits and sends."""
        ...

    async def outbox_news(self, wait: float) -> set[str]:
        """Chats other turns (in this or another process) queued messages for, waiting up to
        ``wait`` seconds for the first: a hint to deliver now. The outbox stays the copy,
        and polling it the fallback."""
        ...

    async def lead_timers(self) -> bool:
        """True while this process is the one that runs the shared timers (delayed offers,
        silence timeouts, the retention purge); asked again before each round, so another
        process takes over when the leader stops or dies."""
        ...

    async def close(self) -> None: ...
