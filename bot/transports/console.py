"""A chat on stdin/stdout, for trying flows locally and for scripted (piped) conversations.

Buttons print as numbered lines ``[1] Label``; the person answers with the number or the
label. Each line read is handled completely before the next is read (the app waits for
it), so piped input gives the same transcript every time. End of input ends the chat cleanly.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from typing import Any, TextIO

from bot.errors import DeliveryRefused
from bot.messages import Attachment, Inbound, InboundKind, Outbound
from bot.transports.base import InboundHandler, MediaFile

__all__ = ["ConsoleTransport"]

_LRI, _PDI = "\u2067", "\u2069"  # right-to-left isolate around RTL lines for the terminal


class ConsoleTransport:
    name = "console"
    merge_up_to = 0  # one printed block per message reads best in a terminal

    async def typing(self, chat_key: str) -> None:
        return None

    def owns(self, chat_key: str) -> bool:
        return chat_key == self.chat_key

    def __init__(self, user: str = "local", stdin: TextIO | None = None,
                 stdout: TextIO | None = None) -> None:
        self.chat_key = f"console:{user}"
        self._in = stdin or sys.stdin
        self._out = stdout or sys.stdout
        self._stopping = asyncio.Event()

    async def fetch(self, attachment: Attachment) -> MediaFile:
        raise DeliveryRefused("the local chat holds no files",
                              reason="files cannot be passed on in the local chat")

    async def send(self, message: Outbound, media: MediaFile | None = None) -> None:
        lines = [message.text] if message.text or message.attachment is None else []
        if message.attachment is not None:  # a terminal shows what came, not the file
            lines.append(f"[{message.attachment.kind}]")
        lines += [f"[{i}] {b.label}" for i, b in enumerate(message.buttons, start=1)]
        self._out.write("\n".join(lines) + "\n\n")
        self._out.flush()

    async def run(self, handler: InboundHandler) -> None:
        interactive = self._in.isatty()
        while not self._stopping.is_set():
            if interactive:
                self._out.write("> ")
                self._out.flush()
            line = await self._readline()
            if not line:  # end of input, or stopped
                return
            text = line.rstrip("\r\n")
            if not text.strip():
                continue
            inbound = Inbound.from_text(self.chat_key, text)
            if inbound.kind is InboundKind.TEXT and text.strip().startswith("<") and \
                    text.strip().endswith(">"):
                # "<sticker>", "<voice>": lets a script try what a media message gets.
                inbound = Inbound(self.chat_key, InboundKind.MEDIA, media=text.strip()[1:-1])
            await handler([inbound])

    async def _readline(self) -> str:
        """A line from a daemon thread: a stop must not wait for the person to type (an
        executor thread blocked in readline would hold up the interpreter's exit)."""
        loop = asyncio.get_running_loop()
        line: asyncio.Future[str] = loop.create_future()

        def read() -> None:
            try:
                text = self._in.readline()
            except (OSError, ValueError):  # stdin closed under us
                text = ""
            loop.call_soon_threadsafe(_settle, line, text)

        threading.Thread(target=read, name="console-stdin", daemon=True).start()
        stopping = asyncio.ensure_future(self._stopping.wait())
        waiters: list[asyncio.Future[Any]] = [line, stopping]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
        return line.result() if line.done() else ""

    async def stop(self) -> None:
        self._stopping.set()

    async def close(self) -> None:
        return None


def _settle(future: asyncio.Future[str], value: str) -> None:
    if not future.done():
        future.set_result(value)
