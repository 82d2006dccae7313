"""What the dispatcher needs from storage. One implementation today: SQLite."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from bot.engine.events import Handover
from bot.engine.session import Session
from bot.messages import Outbound

__all__ = ["PendingMessage", "Store", "TurnRecord"]


@dataclass(frozen=True)
class TurnRecord:
    """Everything one turn changes, written in one transaction before any reply is sent."""

    chat_key: str
    session: Session
    outbound: Sequence[Outbound] = ()
    handovers: Sequence[Handover] = ()
    update_id: str | None = None


@dataclass(frozen=True)
class PendingMessage:
    id: int
    message: Outbound = field(compare=False)


class Store(Protocol):
    async def load_session(self, chat_key: str) -> Session | None: ...

    async def load_turn_state(self, chat_key: str, update_id: str | None) -> tuple[Session | None, bool]:
        """The chat's session, and True if ``update_id`` was handled already (a duplicate)."""
        ...

    async def is_processed(self, update_id: str) -> bool:
        """True when this platform update was already handled (a duplicate delivery)."""
        ...

    async def commit_turn(self, turn: TurnRecord) -> list[PendingMessage]:
        """Save the turn atomically; returns the replies now waiting in the outbox."""
        ...

    async def mark_sent(self, message_ids: Sequence[int]) -> None: ...

    async def pending(self, chat_key: str | None = None) -> list[PendingMessage]:
        """Replies saved but not yet confirmed sent (after a crash), oldest first."""
        ...

    async def forget(self, chat_key: str) -> None:
        """Delete everything stored about one chat."""
        ...

    async def close(self) -> None: ...
