"""The contract every transport (console, Telegram, WhatsApp, memory) fulfils."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from bot.messages import Inbound, Outbound

__all__ = ["InboundHandler", "Transport"]

#: What a transport calls for every message it receives (the dispatcher's ``handle``).
InboundHandler = Callable[[Inbound], Awaitable[None]]


class Transport(Protocol):
    #: Prefix of chat keys from this transport, e.g. "telegram" for "telegram:12345".
    name: str
    #: 0: send a turn's messages one by one. N > 0: the dispatcher joins a turn's adjacent
    #: messages into one of at most N characters (Telegram delivers about one message per
    #: second to a chat, so four short messages in a row would arrive over four seconds).
    merge_up_to: int

    def owns(self, chat_key: str) -> bool:
        """True for chats this transport delivers to (others are another process's)."""
        ...

    async def typing(self, chat_key: str) -> None:
        """Show that a reply is being prepared (a slow turn); a no-op where unsupported."""
        ...

    async def send(self, message: Outbound) -> None:
        """Deliver one message. Raises TransportError when the platform refuses for good."""
        ...

    async def run(self, handler: InboundHandler) -> None:
        """Receive messages and pass each to ``handler`` until stopped or input ends."""
        ...
