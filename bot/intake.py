"""Durable intake: a message is saved before the platform is told it arrived, then handled.

    transport --accept(batch)--> store.receive (inbox, one trip) --> per-chat queue
        --> Dispatcher.handle, one message at a time per chat, chats side by side

``accept`` returns once the batch is in the database; only then does a transport confirm
it to the platform (advance Telegram's getUpdates offset, answer a webhook). A message
leaves the inbox in the transaction of the turn that handled it, so a crash at any moment
leaves it either handled or waiting, and :meth:`Intake.recover` hands what waits to the
dispatcher after a restart. Redeliveries are recognised by update id and never queued twice.

Flood control: a chat whose messages come faster than RATE_MESSAGES_MAX in
RATE_WINDOW_SECONDS is not answered message by message. Its messages are all read: a crisis
message is answered at once, and the rest wait until the person pauses, to be answered
together (see :meth:`bot.dispatcher.Dispatcher.handle_burst`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace

from bot import limits
from bot.dispatcher import Dispatcher
from bot.messages import Inbound
from bot.storage.base import Store

__all__ = ["Intake"]

log = logging.getLogger(__name__)

_local_ids = itertools.count(1)


@dataclass
class _Chat:
    queue: deque[Inbound] = field(default_factory=deque)
    #: Whether each queued message is a crisis message (checked once, on arrival).
    crisis_flags: deque[bool] = field(default_factory=deque)
    arrivals: deque[float] = field(default_factory=deque)  # monotonic times, last window only
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    worker: asyncio.Task[None] | None = None


class Intake:
    def __init__(self, store: Store, dispatcher: Dispatcher, *, flood_control: bool = True,
                 quiet_seconds: float = limits.BURST_QUIET_SECONDS,
                 burst_wait_max: float = limits.BURST_WAIT_MAX_SECONDS,
                 clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.dispatcher = dispatcher
        #: Off for the local console: one person typing (or a piped script) is not a flood.
        self.flood_control = flood_control
        #: A burst ends when the person has sent nothing for this long ...
        self.quiet_seconds = quiet_seconds
        #: ... or when its first message has waited this long, whichever is first.
        self.burst_wait_max = burst_wait_max
        self.clock = clock
        self.wall_clock = wall_clock
        self._chats: dict[str, _Chat] = {}
        self._stopping = False
        self._working = 0  # chats with a worker running
        self._idle = asyncio.Event()
        self._idle.set()

    # -- taking messages ------------------------------------------------------------------
    async def accept(self, inbounds: Sequence[Inbound]) -> None:
        """Save the messages, then queue the new ones for handling. Returns once they are
        in the database: the caller may then confirm them to the platform. Raises
        StorageError (or whatever the store raised) when they could not be saved."""
        if self._stopping:
            raise RuntimeError("the intake is stopping; messages are not taken any more")
        named = [m if m.update_id is not None else replace(m, update_id=_local_id(m))
                 for m in inbounds]
        for inbound in await self.store.receive(named):
            self._enqueue(inbound, self.clock())

    async def recover(self, owns: Callable[[str], bool] | None = None) -> int:
        """Queue the messages a crash or a stop left in the inbox; returns how many.
        ``owns``: the chats this process serves (its transport's). Another process's
        messages are left to it: it may be answering them right now (two local chats on
        one database), and only it can deliver the answer."""
        waiting = [(inbound, at) for inbound, at in await self.store.inbox()
                   if owns is None or owns(inbound.chat_key)]
        now, wall = self.clock(), self.wall_clock()
        for inbound, received_at in waiting:
            # Arrival times as they were, so a backlog of one chat is read as the burst it was.
            self._enqueue(inbound, now - max(0.0, wall - received_at))
        if waiting:
            log.info("%d message(s) saved before the last stop are being answered", len(waiting))
        return len(waiting)

    def _enqueue(self, inbound: Inbound, arrived: float) -> None:
        chat = self._chats.get(inbound.chat_key)
        if chat is None:
            chat = self._chats[inbound.chat_key] = _Chat()
        crisis = self.flood_control and self.dispatcher.is_crisis(inbound)
        chat.queue.append(inbound)
        chat.crisis_flags.append(crisis)
        chat.arrivals.append(arrived)
        chat.wake.set()
        if chat.worker is None:
            self._working += 1
            self._idle.clear()
            chat.worker = asyncio.ensure_future(self._work(inbound.chat_key, chat))

    # -- handling -------------------------------------------------------------------------
    async def _work(self, chat_key: str, chat: _Chat) -> None:
        try:
            while chat.queue and not self._stopping:
                if self.flood_control and self._flooding(chat):
                    await self._wait_for_pause(chat)
                    if self._stopping:
                        break
                    burst = list(chat.queue)
                    chat.queue.clear()
                    chat.crisis_flags.clear()
                    await self._guarded(self.dispatcher.handle_burst(burst), burst)
                else:
                    inbound = chat.queue.popleft()
                    chat.crisis_flags.popleft()
                    await self._guarded(self.dispatcher.handle(inbound), [inbound])
        finally:
            # No await between the last look at the queue and this: a message queued from
            # now on starts a new worker.
            chat.worker = None
            self._working -= 1
            if not chat.queue:
                self._chats.pop(chat_key, None)
            if not self._working:
                self._idle.set()

    @staticmethod
    async def _guarded(handling: Awaitable[None], messages: Sequence[Inbound]) -> None:
        # The dispatcher answers its own failures; anything escaping it must not end the
        # chat's worker (the messages stay in the inbox for the next start).
        try:
            await handling
        except Exception:
            log.exception("handling %d message(s) of a chat failed; they stay in the inbox",
                          len(messages))

    def _flooding(self, chat: _Chat) -> bool:
        horizon = self.clock() - limits.RATE_WINDOW_SECONDS
        while chat.arrivals and chat.arrivals[0] < horizon:
            chat.arrivals.popleft()
        return len(chat.arrivals) > limits.RATE_MESSAGES_MAX

    async def _wait_for_pause(self, chat: _Chat) -> None:
        """Until the person pauses, a crisis message arrives, or the stop begins."""
        deadline = self.clock() + self.burst_wait_max
        while not self._stopping and not any(chat.crisis_flags):
            now = self.clock()
            last = chat.arrivals[-1] if chat.arrivals else now
            left = min(self.quiet_seconds - (now - last), deadline - now)
            if left <= 0:
                return
            chat.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(chat.wake.wait(), left)

    # -- stopping -------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return not self._idle.is_set()

    async def drain(self, timeout: float | None = None) -> bool:  # noqa: ASYNC109
        """Wait until every queued message is handled (the console, at end of input).
        True when all were; otherwise they stay queued (and in the inbox)."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def stop(self, timeout: float) -> int:  # noqa: ASYNC109 - a bound, not a cancel scope
        """Take no more messages, let the turns in flight finish (bounded by ``timeout``);
        returns how many messages stay in the inbox for the next start."""
        self._stopping = True
        for chat in self._chats.values():
            chat.wake.set()  # a chat waiting for a burst to end stops waiting
        workers = [c.worker for c in self._chats.values() if c.worker is not None]
        if workers:
            _, late = await asyncio.wait(workers, timeout=timeout)
            for task in late:  # still waiting on the database or a platform after the bound
                task.cancel()
            if late:
                await asyncio.wait(late, timeout=1.0)
                log.warning("%d turn(s) did not finish within %.0f s of the stop; their "
                            "messages are answered after the restart", len(late), timeout)
        return sum(len(c.queue) for c in self._chats.values())


def _local_id(inbound: Inbound) -> str:
    """An update id for a transport without its own (the console): unique per process."""
    return f"{inbound.chat_key}:{os.getpid()}:{time.time_ns()}:{next(_local_ids)}"
