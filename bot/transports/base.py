"""The contract every transport (console, Telegram, WhatsApp, memory, router) fulfils."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from bot.messages import Attachment, Inbound, Outbound

__all__ = ["InboundHandler", "MediaFile", "Transport"]

#: What a transport calls with the messages it receives (bot.intake.Intake.accept). It
#: returns once they are saved; only then may the transport confirm them to the platform.
#: If it raises, they were not saved: leave them unconfirmed, so the platform sends them again.
InboundHandler = Callable[[Sequence[Inbound]], Awaitable[None]]


@dataclass(frozen=True)
class MediaFile:
    """The bytes of an attachment, in memory only while it is passed from one platform to
    another (never written to the database or the disk)."""

    data: bytes
    mime_type: str = ""
    file_name: str = ""


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
        """Show that a reply is being prepared (a slow turn). Returns at once, and no send
        waits for it; a no-op where unsupported."""
        ...

    async def send(self, message: Outbound, media: MediaFile | None = None) -> None:
        """Deliver one message. Raises TransportError when the platform refuses for good.

        A message with an attachment this transport holds itself is sent from the
        platform's copy; one held by another platform needs its bytes in ``media``
        (bot.transports.router fetches them), else it is refused."""
        ...

    async def fetch(self, attachment: Attachment) -> MediaFile:
        """Download a file this transport's platform holds (raises TransportError)."""
        ...

    async def run(self, handler: InboundHandler) -> None:
        """Receive messages and pass them to ``handler`` until :meth:`stop` or the input
        ends. Sending keeps working after it returns, until :meth:`close`."""
        ...

    async def stop(self) -> None:
        """Stop receiving (run returns soon); messages can still be sent."""
        ...

    async def close(self) -> None:
        """Release what the transport holds (connections); nothing is sent after."""
        ...
