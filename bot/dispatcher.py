"""One message in, replies out: per-chat order, engine, localizer, one transaction, send.

For each chat, messages are handled one at a time in arrival order (a per-chat lock,
and the session is loaded only after taking it, so two messages never both start from
the same old state). Each turn's new session, replies and handovers are committed in
one transaction before anything is sent; replies are deleted from the outbox only once
the transport confirms them, so a crash at any point resends rather than loses.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from bot import limits
from bot.engine.events import Event, Forget, Handover, Say
from bot.engine.runtime import Turn, reprompt, resume, takes_while_queued
from bot.engine.session import Session
from bot.engine.system_text import SYSTEM_TEXT
from bot.errors import DeliveryRefused, TransportError
from bot.flowspec.library import FlowLibrary
from bot.handover.desk import DeskResult, HandoverDesk
from bot.i18n.localizer import Localizer
from bot.messages import Inbound, Outbound
from bot.storage.base import PendingMessage, Store, TurnRecord
from bot.text.languages import hinted_language
from bot.transports.base import Transport

__all__ = ["Dispatcher", "merge_turn"]

log = logging.getLogger(__name__)


@dataclass
class _ChatGate:
    """Per-chat lock and recent-message times; dropped when no one is waiting."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0
    recent: deque[float] = field(default_factory=deque)
    warned: bool = False


class Dispatcher:
    def __init__(
        self,
        store: Store,
        library: Callable[[], FlowLibrary],
        localizer: Localizer,
        transport: Transport,
        *,
        clock: Callable[[], float] = time.monotonic,
        default_language: str | None = None,
        rate_limit: bool = True,
        typing_after: float = 0.3,
        desk: HandoverDesk | None = None,
    ) -> None:
        self.store = store
        self.library = library
        self.localizer = localizer
        self.transport = transport
        self.clock = clock
        #: Pre-set language for new chats (the console's --lang); None asks the person.
        self.default_language = default_language
        #: Off for the local console: one person typing (or a script) is not a flood.
        self.rate_limit = rate_limit
        #: Show "typing..." only for a turn slower than this (live translation, a slow
        #: disk): for the usual few-millisecond turn it would only add a request.
        self.typing_after = typing_after
        #: The volunteer desk; None runs flows only (handovers are still recorded).
        self.desk = desk
        self._gates: dict[str, _ChatGate] = {}
        self._background: set[asyncio.Task[None]] = set()

    # -- public -------------------------------------------------------------------------
    async def handle(self, inbound: Inbound) -> None:
        loop = asyncio.get_running_loop()
        typing = loop.call_later(self.typing_after, self._show_typing, inbound.chat_key)
        try:
            elsewhere = await self._handle(inbound)
        except Exception:  # the turn was not saved: say so, rather than stay silent
            log.exception("a turn failed (update %s); asking the person to send again",
                          inbound.update_id)
            await self._apologise(inbound)
            return
        finally:
            typing.cancel()
        # Replies to other chats (a relay, an offer) go out under THEIR lock, taken only
        # after this chat's is released: two chats relaying to each other cannot deadlock.
        await self.deliver(elsewhere)

    async def _apologise(self, inbound: Inbound) -> None:
        """Best effort, straight to the transport: the database may be what failed."""
        language: str | None = None
        with contextlib.suppress(Exception):
            session = await self.store.load_session(inbound.chat_key)
            language = session.language if session is not None else None
        language = language or hinted_language(inbound.language_hint)
        try:
            sorry = Say("system.error", SYSTEM_TEXT["system.error"])
            await self.transport.send(await self.localizer.render(sorry, inbound.chat_key, language))
        except Exception:
            log.exception("could not tell the person their message was not saved")

    def _show_typing(self, chat_key: str) -> None:
        task = asyncio.ensure_future(self.transport.typing(chat_key))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _handle(self, inbound: Inbound) -> set[str]:
        """Handle one message under its chat's lock; returns other chats now owed messages."""
        chat_key = inbound.chat_key
        async with self._gate(chat_key) as gate:
            state = await self.store.load_turn_state(chat_key, inbound.update_id)
            if state.duplicate:
                log.info("duplicate update %s ignored", inbound.update_id)
                return set()
            update_id = inbound.update_id
            elsewhere: set[str] = set()
            if self.desk is not None and state.volunteer is not None:
                result = await self.desk.volunteer_turn(inbound, state.volunteer)
                return await self._commit_desk(chat_key, result, update_id)
            if self.desk is not None and state.entry is not None:
                flows = state.session is None or takes_while_queued(
                    self.library(), state.session, inbound, self.localizer.keyword_aliases(),
                    self.localizer.safeguarding_aliases())
                desk_result = await self.desk.user_turn(inbound, state.entry, for_flows=flows)
                if desk_result is not None:
                    elsewhere = await self._commit_desk(chat_key, desk_result, update_id)
                    if not desk_result.run_engine:
                        return elsewhere
                    update_id = None  # recorded with the desk's part of this turn
            session = self._new_session() if state.session is None else state.session
            if self.rate_limit and self._too_fast(gate):
                turn = self._slow_down(session, gate)
            else:
                turn = resume(self.library(), session, inbound, self.localizer.aliases,
                              self.localizer.keyword_aliases(), self.localizer.safeguarding_aliases(),
                              self.localizer.distress_aliases())
            handed_over = await self._commit_and_send(chat_key, turn, update_id)
            if handed_over and self.desk is not None:
                queued = await self.desk.queued(chat_key, turn.session.language)
                elsewhere |= await self._send_own(chat_key, queued)
            return elsewhere

    async def _commit_desk(self, chat_key: str, result: DeskResult,
                           update_id: str | None) -> set[str]:
        record = TurnRecord(chat_key, None, result.outbound, (), update_id, result.seen)
        pending = await self.store.commit_turn(record) + result.queued
        return await self._send_own(chat_key, pending)

    async def _send_own(self, chat_key: str, pending: list[PendingMessage]) -> set[str]:
        """Send this chat's messages now; return the other chats that have some waiting."""
        await self._send([p for p in pending if p.message.chat_key == chat_key])
        return {p.message.chat_key for p in pending if p.message.chat_key != chat_key}

    async def deliver(self, chat_keys: set[str]) -> None:
        """Send what waits in the outbox for these chats, each under its own lock. Chats
        of another transport (a volunteer on the console, the person on Telegram) are left
        for the process serving that transport."""
        for chat_key in sorted(chat_keys):
            if not self.transport.owns(chat_key):
                continue
            async with self._gate(chat_key):
                await self._send(await self.store.pending(chat_key))

    async def tick(self) -> None:
        """The desk's clock: delayed offers and silence timeouts."""
        if self.desk is not None:
            pending = await self.desk.tick()
            await self.deliver({p.message.chat_key for p in pending})

    async def reopen(self, chat_key: str) -> None:
        """Resend anything unsent, then ask the current question again (after a restart)."""
        async with self._gate(chat_key):
            unsent = await self.store.pending(chat_key)
            await self._send(unsent)
            session = await self.store.load_session(chat_key)
            if session is None or session.flow is None:
                return
            if any(p.message.token == session.token for p in unsent):
                return  # the unsent replies already ask the current question
            await self._commit_and_send(chat_key, reprompt(self.library(), session), None)

    async def flush_outbox(self) -> None:
        """Send replies left unsent by a crash, a platform outage, or another process.

        Each chat's replies are sent under that chat's lock, so a reply being sent by a
        turn in progress is never sent a second time from here.
        """
        await self.deliver({p.message.chat_key for p in await self.store.pending()})

    async def keep_flushing(self, interval: float = 30.0, tick_every: float = 15.0) -> None:
        """Retry unsent replies every ``interval`` seconds and run the desk's clock, until
        cancelled."""
        last_tick = 0.0
        while True:
            await asyncio.sleep(interval)
            try:
                await self.flush_outbox()
                if time.monotonic() - last_tick >= tick_every:
                    last_tick = time.monotonic()
                    await self.tick()
            except Exception:  # a retry loop must outlive one bad round; the next may work
                log.exception("outbox retry failed; trying again in %.0f s", interval)

    # -- internals ----------------------------------------------------------------------
    def _gate(self, chat_key: str) -> _GateContext:
        return _GateContext(self._gates, chat_key, self.clock)

    def _new_session(self) -> Session:
        if self.default_language is not None:
            return Session(language=self.default_language, started=True)
        return Session()

    def _too_fast(self, gate: _ChatGate) -> bool:
        now = self.clock()
        gate.recent.append(now)
        while gate.recent and now - gate.recent[0] > limits.RATE_WINDOW_SECONDS:
            gate.recent.popleft()
        if len(gate.recent) <= limits.RATE_MESSAGES_MAX:
            gate.warned = False
            return False
        return True

    def _slow_down(self, session: Session, gate: _ChatGate) -> Turn:
        """Over the rate: say so once per burst, then stay quiet; the session is unchanged."""
        events: tuple[Event, ...] = ()
        if not gate.warned:
            gate.warned = True
            events = (Say("system.slow_down", SYSTEM_TEXT["system.slow_down"]),)
        return Turn(session, events)

    async def _commit_and_send(self, chat_key: str, turn: Turn, update_id: str | None) -> bool:
        """Commit the turn, send its replies; True when it handed the chat to a person."""
        outbound: list[Outbound] = []
        handovers: list[Handover] = []
        for event in turn.events:
            if isinstance(event, Say):
                outbound.append(await self.localizer.render(event, chat_key, turn.session.language))
            elif isinstance(event, Handover):
                handovers.append(event)
        if self.transport.merge_up_to:
            outbound = merge_turn(outbound, self.transport.merge_up_to)
        record = TurnRecord(chat_key, turn.session, outbound, handovers, update_id)
        pending = await self.store.commit_turn(record)
        await self._send(pending)
        if any(isinstance(event, Forget) for event in turn.events):
            await self.store.forget(chat_key)
            self._gates.get(chat_key, _ChatGate()).recent.clear()
            log.info("a chat asked to be forgotten; its data was deleted")
        return bool(handovers)

    async def _send(self, pending: list[PendingMessage]) -> None:
        done: list[int] = []  # sent, or refused for good: either way out of the outbox
        try:
            for item in pending:
                try:
                    await self.transport.send(item.message)
                except DeliveryRefused as exc:
                    log.warning("message to %s refused for good, dropped: %s",
                                item.message.chat_key, exc)
                done.append(item.id)
        except TransportError as exc:
            # Left in the outbox: the next start-up (or reopen) sends it again.
            log.warning("could not deliver to %s, kept for retry: %s",
                        pending[len(done)].message.chat_key, exc)
        finally:
            await self.store.mark_sent(done)


def merge_turn(messages: list[Outbound], limit: int) -> list[Outbound]:
    """Join adjacent messages of one turn into as few as fit in ``limit`` characters.

    A message with buttons ends a group (its buttons belong under its own text); messages
    in different languages or directions are never joined.
    """
    merged: list[Outbound] = []
    for message in messages:
        last = merged[-1] if merged else None
        if (last is not None and not last.buttons and last.language == message.language
                and last.rtl == message.rtl
                and len(last.text) + 2 + len(message.text) <= limit):
            merged[-1] = replace(message, text=f"{last.text}\n\n{message.text}",
                                 key=f"{last.key}+{message.key}",
                                 meta={**last.meta, **message.meta})
        else:
            merged.append(message)
    return merged


class _GateContext:
    def __init__(self, gates: dict[str, _ChatGate], chat_key: str,
                 clock: Callable[[], float]) -> None:
        self.gates = gates
        self.chat_key = chat_key
        self.clock = clock  # the one the rate limit's times were read from

    async def __aenter__(self) -> _ChatGate:
        gate = self.gates.setdefault(self.chat_key, _ChatGate())
        gate.users += 1
        await gate.lock.acquire()
        self.gate = gate
        return gate

    async def __aexit__(self, *exc: object) -> None:
        self.gate.lock.release()
        self.gate.users -= 1
        if self.gate.users == 0 and len(self.gates) > _GATES_SWEEP_AT:
            _sweep(self.gates, self.clock())


#: Idle gates are swept once this many chats have one, so memory stays bounded.
_GATES_SWEEP_AT = 4096


def _sweep(gates: dict[str, _ChatGate], now: float) -> None:
    for key in [k for k, g in gates.items() if g.users == 0 and
                (not g.recent or now - g.recent[-1] > limits.RATE_WINDOW_SECONDS)]:
        del gates[key]
