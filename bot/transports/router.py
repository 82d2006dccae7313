"""Several transports as one: Telegram and WhatsApp served by one process, one intake.

The dispatcher has one transport. This one owns several and passes each call to the
transport whose chat keys it concerns ("telegram:..." to Telegram, "whatsapp:..." to
WhatsApp), so a volunteer on Telegram can talk with a person on WhatsApp: each side's
messages go out through its own platform.

Files: a message whose attachment one platform holds and another must deliver (a
WhatsApp voice note for a Telegram volunteer) is fetched from the first into memory and
handed to the second with the message; the bytes are dropped once it is sent.

Receiving: every transport runs side by side, feeding the same handler (the intake).
``run`` returns once all of them have; if one fails (a port in use, a refused token), the
others are stopped and its error is raised, so a bot is never left serving half.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

from bot.errors import DeliveryRefused, TransportError
from bot.messages import Attachment, Outbound
from bot.transports.base import InboundHandler, MediaFile, Transport

__all__ = ["RoutingTransport"]


class RoutingTransport:
    name = "router"

    def __init__(self, transports: Sequence[Transport]) -> None:
        if not transports:
            raise ValueError("a router needs at least one transport")
        names = [t.name for t in transports]
        if len(set(names)) != len(names):
            raise ValueError(f"transports must have distinct names, got {names}")
        self.transports = tuple(transports)
        merges = [t.merge_up_to for t in transports]
        # The dispatcher joins a turn's messages before it knows the platform: join only as
        # far as every platform reads well (0 for any means none are joined).
        self.merge_up_to = 0 if 0 in merges else min(merges)

    def owns(self, chat_key: str) -> bool:
        return any(t.owns(chat_key) for t in self.transports)

    def transport_for(self, chat_key: str) -> Transport | None:
        return next((t for t in self.transports if t.owns(chat_key)), None)

    async def typing(self, chat_key: str) -> None:
        transport = self.transport_for(chat_key)
        if transport is not None:
            await transport.typing(chat_key)

    async def send(self, message: Outbound, media: MediaFile | None = None) -> None:
        transport = self.transport_for(message.chat_key)
        if transport is None:
            raise DeliveryRefused(f"no transport delivers to {message.chat_key!r}",
                                  reason="the chat is on an app this bot does not serve")
        attachment = message.attachment
        if attachment is not None and media is None and attachment.source != transport.name:
            media = await self.fetch(attachment)
        await transport.send(message, media)

    async def fetch(self, attachment: Attachment) -> MediaFile:
        source = next((t for t in self.transports if t.name == attachment.source), None)
        if source is None:
            raise DeliveryRefused(f"no transport holds {attachment.ref!r}",
                                  reason="the file is on an app this bot does not serve now")
        return await source.fetch(attachment)

    async def run(self, handler: InboundHandler) -> None:
        tasks = [asyncio.ensure_future(t.run(handler)) for t in self.transports]
        try:
            pending = set(tasks)
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                failed = next((t for t in done if not t.cancelled() and t.exception()), None)
                if failed is not None:
                    await self.stop()
                    await asyncio.wait(pending, timeout=15.0)
                    error = failed.exception()
                    assert error is not None
                    if isinstance(error, TransportError):
                        raise error
                    raise TransportError(f"a transport stopped with an error: {error!r}") from error
        finally:
            for task in tasks:
                if not task.done():
                    task.cancel()
            for task in tasks:
                with contextlib.suppress(BaseException):
                    await task

    async def stop(self) -> None:
        await asyncio.gather(*(t.stop() for t in self.transports), return_exceptions=True)

    async def close(self) -> None:
        results = await asyncio.gather(*(t.close() for t in self.transports),
                                       return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            raise errors[0]
