"""An in-memory transport for tests and benchmarks: feed Inbound, collect Outbound."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from bot.errors import DeliveryRefused, TransportError
from bot.messages import Attachment, Inbound, Outbound
from bot.transports.base import InboundHandler, MediaFile

__all__ = ["MemoryTransport"]


class MemoryTransport:
    name = "memory"
    merge_up_to = 0  # tests assert on each message's key

    async def typing(self, chat_key: str) -> None:
        self.typed.append(chat_key)

    def owns(self, chat_key: str) -> bool:
        return True  # tests see every chat's messages

    def __init__(self, inbound: Iterable[Inbound] = ()) -> None:
        self.sent: list[Outbound] = []
        self.typed: list[str] = []
        self._queue: asyncio.Queue[Inbound | None] = asyncio.Queue()
        for message in inbound:
            self._queue.put_nowait(message)
        #: Set to make the next ``send`` calls fail (to test the outbox).
        self.fail_next = 0
        #: Chat key -> the error every send to that chat raises, until removed.
        self.fail_chats: dict[str, TransportError] = {}
        #: Attachment ref -> the file, for tests of media relay.
        self.files: dict[str, MediaFile] = {}
        #: The bytes passed with each sent message that had them (in order).
        self.media: list[MediaFile] = []

    async def fetch(self, attachment: Attachment) -> MediaFile:
        found = self.files.get(attachment.ref)
        if found is None:
            raise DeliveryRefused(f"memory transport holds no file {attachment.ref!r}",
                                  reason="the file is no longer available")
        return found

    async def send(self, message: Outbound, media: MediaFile | None = None) -> None:
        if self.fail_next:
            self.fail_next -= 1
            raise TransportError("memory transport told to fail")
        failure = self.fail_chats.get(message.chat_key)
        if failure is not None:
            raise failure
        self.sent.append(message)
        if media is not None:
            self.media.append(media)

    def feed(self, message: Inbound | None) -> None:
        """Queue a message for ``run``; None ends it."""
        self._queue.put_nowait(message)

    async def run(self, handler: InboundHandler) -> None:
        while (message := await self._queue.get()) is not None:
            await handler([message])

    async def stop(self) -> None:
        self._queue.put_nowait(None)

    async def close(self) -> None:
        return None

    def take(self) -> list[Outbound]:
        sent, self.sent = self.sent, []
        return sent
