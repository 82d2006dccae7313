"""One message in, replies out: per-chat order, engine, localizer, one transaction, send.

For each chat, messages are handled one at a time in arrival order (a per-chat lock,
and the session is loaded only after taking it, so two messages never both start from
the same old state); on PostgreSQL the store's hold on the chat extends that lock to every
process on the database (Store.hold_chat). Each turn's new session, replies and handovers are committed in
one transaction before anything is sent; replies are deleted from the outbox only once
the transport confirms them, so a crash at any point resends rather than loses.

A reply the platform refuses for good (blocked, empty, malformed) is dropped; one it cannot
take for now is tried again with a per-message backoff and dropped after
``limits.SEND_GIVE_UP_SECONDS``. Either way it never holds up other chats, and a held
reply keeps its chat's later replies behind it. A volunteer whose message is dropped is
told at once. A platform that reports a failure only later (WhatsApp's failed status)
sends an UNDELIVERED message through the intake: it is logged, counted, and the
volunteer who wrote the message is told, in one transaction with the report leaving the
inbox. ``Dispatcher.stats`` counts what happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace

from bot import limits
from bot.engine.events import Forget, Handover, Param, Say, ServiceCard
from bot.engine.runtime import Turn, reprompt, resume, takes_while_queued
from bot.engine.session import Session
from bot.engine.system_text import SYSTEM_TEXT
from bot.errors import DeliveryRefused, TransportError
from bot.flowspec.library import FlowLibrary
from bot.handover.desk import DeskResult, HandoverDesk, Undelivered
from bot.handover.model import Status as QueueStatus
from bot.i18n.localizer import Localizer
from bot.messages import Inbound, InboundKind, Outbound
from bot.services.model import Directory
from bot.storage.base import PendingMessage, Store, TurnRecord
from bot.text.languages import hinted_language
from bot.transports.base import Transport

__all__ = ["Dispatcher", "merge_turn"]

log = logging.getLogger(__name__)


_EMPTY_DIRECTORY = Directory()


def _no_directory() -> Directory:
    return _EMPTY_DIRECTORY


@dataclass
class _ChatGate:
    """Per-chat lock; dropped when no one is waiting for it."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


@dataclass
class _Retry:
    """A reply the platform could not take yet. Kept in memory only: after a restart the
    outbox still holds the reply and its give-up clock starts again, so a restart costs at
    most one more bounded round of tries, never a loss."""

    chat_key: str
    first_failed: float
    attempts: int = 0
    next_try: float = 0.0


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
        typing_after: float = 0.3,
        desk: HandoverDesk | None = None,
        directory: Callable[[], Directory] | None = None,
    ) -> None:
        self.store = store
        self.library = library
        #: The directory of services that flows' ``services`` steps show (none: empty).
        self.directory: Callable[[], Directory] = directory or _no_directory
        self.localizer = localizer
        self.transport = transport
        #: For retry backoffs of replies the platform could not take yet.
        self.clock = clock
        #: Pre-set language for new chats (the console's --lang); None asks the person.
        self.default_language = default_language
        #: Show "typing..." only when a turn's own work (the engine and rendering its
        #: replies: a live machine translation) takes longer than this. Time waiting for
        #: the chat's lock or the database does not count: under load every turn waits
        #: there, and a "typing..." for each would be one more request per message.
        self.typing_after = typing_after
        #: The volunteer desk; None runs flows only (handovers are still recorded).
        self.desk = desk
        self._gates: dict[str, _ChatGate] = {}
        self._background: set[asyncio.Task[None]] = set()
        #: Outbox id -> retry state of replies kept after a temporary failure.
        self._retries: dict[int, _Retry] = {}
        #: Replies "sent", "dropped" (refused for good), "retried" (a temporary failure,
        #: kept), "given_up" (still failing after SEND_GIVE_UP_SECONDS), "undelivered"
        #: (accepted, then reported failed by the platform) and "typing" actions shown,
        #: for logs and benchmarks.
        self.stats: Counter[str] = Counter()

    # -- public -------------------------------------------------------------------------
    def is_crisis(self, inbound: Inbound) -> bool:
        """True when the message holds a safeguarding phrase: it is answered at once,
        however fast the person is typing (the engine then starts the safety flow)."""
        if inbound.kind is not InboundKind.TEXT or not inbound.text:
            return False
        found = self.library().flow_for_safeguarding(inbound.text,
                                                     self.localizer.safeguarding_aliases())
        return found is not None

    async def handle(self, inbound: Inbound, also_read: Sequence[Inbound] = ()) -> None:
        """Handle one message. ``also_read``: earlier messages of the same chat, read and
        answered together with this one (a burst); the reply says they were read."""
        try:
            elsewhere = await self._handle(inbound, also_read)
        except Exception:  # the turn was not saved: say so, rather than stay silent
            log.exception("a turn failed (update %s); asking the person to send again",
                          inbound.update_id)
            await self._apologise(inbound, also_read)
            return
        # Replies to other chats (a relay, an offer) go out under THEIR lock, taken only
        # after this chat's is released: two chats relaying to each other cannot deadlock.
        await self.deliver(elsewhere)

    async def handle_burst(self, messages: Sequence[Inbound]) -> None:
        """Messages of one chat that came faster than they can be answered one by one.

        Every one is read. In a chat with a volunteer (or from a volunteer) each is passed
        on. Otherwise each crisis message gets its reply, and of the others the last is
        answered, with a note that the earlier ones were read too.
        """
        reports = [m for m in messages if m.kind is InboundKind.UNDELIVERED]
        for report in reports:  # about our messages, not from the person: each on its own
            await self.handle(report)
        messages = [m for m in messages if m.kind is not InboundKind.UNDELIVERED]
        if not messages:
            return
        state = await self.store.load_turn_state(messages[0].chat_key, None)
        if self.desk is not None and (state.volunteer is not None or (
                state.entry is not None and state.entry.status is QueueStatus.ASSIGNED)):
            for inbound in messages:
                await self.handle(inbound)
            return
        read: list[Inbound] = []
        for inbound in messages:
            if self.is_crisis(inbound):
                await self.handle(inbound, also_read=read)
                read = []
            else:
                read.append(inbound)
        if read:
            await self.handle(read[-1], also_read=read[:-1])

    async def _apologise(self, inbound: Inbound, also_read: Sequence[Inbound] = ()) -> None:
        """Best effort, straight to the transport: the database may be what failed. The
        message leaves the inbox, so a restart does not answer what the person resends."""
        ids = [m.update_id for m in (*also_read, inbound) if m.update_id is not None]
        with contextlib.suppress(Exception):
            await self.store.discard(ids)
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

    @contextlib.contextmanager
    def _typing_if_slow(self, chat_key: str, since: float | None = None) -> Iterator[None]:
        """Show "typing..." if the work inside (begun at ``since``, loop time) is still
        going ``typing_after`` seconds in. The transport sends it in the background: no
        reply ever waits for it."""
        loop = asyncio.get_running_loop()
        start = loop.time() if since is None else since
        timer = loop.call_at(start + self.typing_after, self._show_typing, chat_key)
        try:
            yield
        finally:
            timer.cancel()

    def _show_typing(self, chat_key: str) -> None:
        self.stats["typing"] += 1
        task = asyncio.ensure_future(self.transport.typing(chat_key))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _handle(self, inbound: Inbound, also_read: Sequence[Inbound]) -> set[str]:
        """Handle one message under its chat's lock; returns other chats now owed messages."""
        chat_key = inbound.chat_key
        read_ids = tuple(m.update_id for m in also_read if m.update_id is not None)
        async with self._gate(chat_key):
            state = await self.store.load_turn_state(chat_key, inbound.update_id)
            if state.duplicate:
                log.info("duplicate update %s ignored", inbound.update_id)
                return set()
            update_id = inbound.update_id
            if inbound.kind is InboundKind.UNDELIVERED:
                return await self._undelivered(inbound)
            elsewhere: set[str] = set()
            volunteer = state.volunteer
            if self.desk is not None and volunteer is None and inbound.alias:
                # Registered by their other key (WhatsApp: the phone number, not the user id).
                volunteer = await self.desk.store.volunteer(inbound.alias)
            if self.desk is not None and volunteer is not None:
                result = await self.desk.volunteer_turn(inbound, volunteer)
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
            work_started = asyncio.get_running_loop().time()  # the lock and the load are behind
            turn = resume(self.library(), session, inbound, self.localizer.aliases,
                          self.localizer.keyword_aliases(), self.localizer.safeguarding_aliases(),
                          self.localizer.distress_aliases(), self.directory())
            if also_read:
                read = Say("system.burst_read", SYSTEM_TEXT["system.burst_read"],
                           {"count": Param(str(len(also_read) + 1))})
                turn = Turn(turn.session, (read, *turn.events))
            elsewhere |= await self._commit_and_send(chat_key, turn, update_id, read_ids,
                                                     work_started=work_started)
            if self.desk is not None and any(isinstance(e, Handover) for e in turn.events):
                queued = await self.desk.queued(chat_key, turn.session.language)
                elsewhere |= await self._send_own(chat_key, queued)
            return elsewhere

    async def _undelivered(self, report: Inbound) -> set[str]:
        """The platform could not deliver a message it had accepted: log, count, tell the
        volunteer who wrote it. The notice and the report's leaving the inbox are one
        transaction, so a crash neither loses the notice nor sends it twice."""
        self.stats["undelivered"] += 1
        meta = report.meta
        log.warning("the platform reports message %s (%s) to %s undelivered: error %s: %s",
                    meta.get("message_id", "?"), meta.get("key") or "unknown", report.chat_key,
                    meta.get("code") or "?", report.text)
        notices: list[Outbound] = []
        if self.desk is not None:
            lost = Undelivered(report.chat_key, meta.get("key", ""),
                               {k: meta[k] for k in ("from", "handover") if meta.get(k)},
                               meta.get("preview", ""), meta.get("media", ""))
            notices = await self.desk.undelivered_notices(lost, report.text, gave_up=False)
        record = TurnRecord(report.chat_key, None, notices, (), report.update_id)
        pending = await self.store.commit_turn(record)
        return await self._send_own(report.chat_key, pending)

    async def _commit_desk(self, chat_key: str, result: DeskResult,
                           update_id: str | None) -> set[str]:
        record = TurnRecord(chat_key, None, result.outbound, (), update_id, result.seen)
        pending = await self.store.commit_turn(record) + result.queued
        return await self._send_own(chat_key, pending)

    async def _send_own(self, chat_key: str, pending: list[PendingMessage]) -> set[str]:
        """Send this chat's messages now; return the other chats that have some waiting."""
        owed = await self._send([p for p in pending if p.message.chat_key == chat_key])
        return owed | {p.message.chat_key for p in pending if p.message.chat_key != chat_key}

    async def deliver(self, chat_keys: set[str]) -> None:
        """Send what waits in the outbox for these chats, each under its own lock. Chats
        of another transport (a volunteer on the console, the person on Telegram) are left
        for the process serving that transport."""
        todo = set(chat_keys)
        while todo:  # sending may owe a volunteer a notice; desk notices owe nothing more
            chat_key = min(todo)
            todo.discard(chat_key)
            if not self.transport.owns(chat_key):
                continue
            async with self._gate(chat_key):
                todo |= await self._send(await self.store.pending(chat_key))

    async def tick(self) -> None:
        """One round of the desk's clock: delayed offers and silence timeouts. Shared by the
        processes on a database: :meth:`keep_flushing` runs it only in the one leading."""
        if self.desk is not None:
            pending = await self.desk.tick()
            await self.deliver({p.message.chat_key for p in pending})

    async def reopen(self, chat_key: str) -> None:
        """Resend anything unsent, then ask the current question again (after a restart)."""
        async with self._gate(chat_key):
            unsent = await self.store.pending(chat_key)
            owed = await self._send(unsent)
            session = await self.store.load_session(chat_key)
            # Unless the unsent replies already asked the current question.
            if session is not None and session.flow is not None and \
                    not any(p.message.token == session.token for p in unsent):
                owed |= await self._commit_and_send(chat_key, reprompt(self.library(), session),
                                                    None)
        await self.deliver(owed)

    async def flush_outbox(self) -> None:
        """Send replies left unsent by a crash, a platform outage, or another process.

        Each chat's replies are sent under that chat's lock, so a reply being sent by a
        turn in progress is never sent a second time from here.
        """
        await self.deliver({p.message.chat_key for p in await self.store.pending()})

    async def follow_outbox(self, wait: float = 30.0) -> None:
        """Deliver at once what turns in other processes queued for chats this one serves
        (a relay, an offer; PostgreSQL's NOTIFY), until cancelled. Only a hint: the outbox is
        the copy and keep_flushing its fallback."""
        while True:
            try:
                await self.deliver(await self.store.outbox_news(wait))
            except Exception:
                log.exception("delivering announced messages failed; the flush loop retries")
                await asyncio.sleep(1.0)

    async def keep_flushing(self, interval: float = 30.0, tick_every: float = 15.0) -> None:
        """Every ``interval`` seconds, send what the outbox holds for this process's chats;
        every ``tick_every`` seconds (at the next flush after), run the desk's clock if this
        process leads the shared timers. Until cancelled.

        The flush is per process and runs in every one: a message is sent by the process
        whose transport owns its chat, whichever process wrote it (the console's two
        terminals each own one chat). The desk's clock is shared: it reads and changes the
        one queue all processes on the database hold, so it runs in one of them at a time
        (:meth:`Store.lead_timers`, asked before each round, so another takes over within a
        round when that one stops or dies). What it writes for chats of other processes
        waits in the outbox for their own flush.
        """
        last_tick: float | None = None
        while True:
            await asyncio.sleep(interval)
            try:
                await self.flush_outbox()
                if (last_tick is None or time.monotonic() - last_tick >= tick_every) and \
                        await self.store.lead_timers():
                    last_tick = time.monotonic()
                    await self.tick()
            except Exception:  # a retry loop must outlive one bad round; the next may work
                log.exception("outbox retry failed; trying again in %.0f s", interval)

    # -- internals ----------------------------------------------------------------------
    def _gate(self, chat_key: str) -> _GateContext:
        return _GateContext(self._gates, chat_key, self.store)

    def _new_session(self) -> Session:
        if self.default_language is not None:
            return Session(language=self.default_language, started=True)
        return Session()

    async def _commit_and_send(self, chat_key: str, turn: Turn, update_id: str | None,
                               also_read: Sequence[str] = (), *,
                               work_started: float | None = None) -> set[str]:
        """Commit the turn, send its replies; returns other chats now owed messages.
        ``work_started``: when the turn's own work began (loop time), for "typing..."."""
        outbound: list[Outbound] = []
        handovers: list[Handover] = []
        with self._typing_if_slow(chat_key, work_started):
            for event in turn.events:
                if isinstance(event, Say):
                    outbound.append(await self.localizer.render(event, chat_key,
                                                                turn.session.language))
                elif isinstance(event, ServiceCard):
                    outbound.append(await self.localizer.render_service(event, chat_key,
                                                                        turn.session.language))
                elif isinstance(event, Handover):
                    handovers.append(event)
        if self.transport.merge_up_to:
            outbound = merge_turn(outbound, self.transport.merge_up_to)
        record = TurnRecord(chat_key, turn.session, outbound, handovers, update_id,
                            also_read=also_read)
        pending = await self.store.commit_turn(record)
        owed = await self._send(pending)
        if any(isinstance(event, Forget) for event in turn.events):
            await self.store.forget(chat_key)
            log.info("a chat asked to be forgotten; its data was deleted")
        return owed

    async def _send(self, pending: list[PendingMessage]) -> set[str]:
        """Send in order, under the lock of every chat in ``pending``; returns the chats now
        owed a notice (volunteers whose message could not be delivered).

        Refused for good: that message is dropped and the next one sent. Failed for now: it
        stays in the outbox with a backoff, and so do its chat's later messages (order within
        a chat), while other chats' messages still go.
        """
        pending = await self._behind_held(pending)
        done: list[int] = []  # sent, or dropped: either way out of the outbox
        held: set[str] = set()  # chats whose next message must wait
        owed: set[str] = set()
        try:
            for item in pending:
                chat_key = item.message.chat_key
                if chat_key in held:
                    continue
                retry = self._retries.get(item.id)
                if retry is not None and self.clock() < retry.next_try:
                    held.add(chat_key)
                    continue
                try:
                    await self.transport.send(item.message)
                except DeliveryRefused as exc:
                    self.stats["dropped"] += 1
                    log.warning("message %s (%s) to %s refused for good, dropped: %s",
                                item.id, item.message.key, chat_key, exc)
                    owed |= await self._tell_sender(item, exc.reason, gave_up=False)
                except TransportError as exc:
                    if self._keep_for_retry(item, exc):
                        held.add(chat_key)
                        continue
                    self.stats["given_up"] += 1
                    log.warning("message %s (%s) to %s still failing after %.0f min, dropped: %s",
                                item.id, item.message.key, chat_key,
                                limits.SEND_GIVE_UP_SECONDS / 60, exc)
                    owed |= await self._tell_sender(item, exc.reason, gave_up=True)
                else:
                    self.stats["sent"] += 1
                self._retries.pop(item.id, None)
                done.append(item.id)
        finally:
            await self.store.mark_sent(done)
        return owed

    async def _behind_held(self, pending: list[PendingMessage]) -> list[PendingMessage]:
        """For chats with a reply kept for retry, everything the outbox holds for them, in
        order: new replies must not overtake the one kept."""
        if not self._retries:
            return pending
        troubled = {r.chat_key for r in self._retries.values()} & \
            {p.message.chat_key for p in pending}
        if not troubled:
            return pending
        out = [p for p in pending if p.message.chat_key not in troubled]
        for chat_key in sorted(troubled):
            stored = await self.store.pending(chat_key)
            present = {p.id for p in stored}
            for gone in [i for i, r in self._retries.items()
                         if r.chat_key == chat_key and i not in present]:
                del self._retries[gone]  # left the outbox another way (a /forget)
            out += stored
        return out

    def _keep_for_retry(self, item: PendingMessage, exc: TransportError) -> bool:
        """Note a temporary failure; False once the message has failed for too long."""
        now = self.clock()
        retry = self._retries.setdefault(item.id, _Retry(item.message.chat_key, now))
        deadline = retry.first_failed + limits.SEND_GIVE_UP_SECONDS
        if now >= deadline:
            return False
        retry.attempts += 1
        backoff = min(limits.SEND_RETRY_MAX_SECONDS,
                      limits.SEND_RETRY_FIRST_SECONDS * 2 ** (retry.attempts - 1))
        # The last try falls on the deadline, so giving up never waits a whole backoff more.
        retry.next_try = min(now + max(backoff, exc.retry_after or 0.0), deadline)
        self.stats["retried"] += 1
        log.warning("could not deliver message %s (%s) to %s, trying again in %.0f s: %s",
                    item.id, item.message.key, item.message.chat_key, retry.next_try - now, exc)
        return True

    async def _tell_sender(self, item: PendingMessage, reason: str, *, gave_up: bool) -> set[str]:
        """A volunteer's relayed message was dropped: queue a desk notice for them."""
        if self.desk is None:
            return set()
        try:
            notices = await self.desk.undelivered(item.message, reason, gave_up=gave_up)
        except Exception:  # the notice must not stop delivery of the other messages
            log.exception("could not queue a notice about undelivered message %s", item.id)
            return set()
        return {p.message.chat_key for p in notices}


def merge_turn(messages: list[Outbound], limit: int) -> list[Outbound]:
    """Join adjacent messages of one turn into as few as fit in ``limit`` characters.

    A message with buttons ends a group (its buttons belong under its own text); messages
    in different languages or directions are never joined.
    """
    merged: list[Outbound] = []
    for message in messages:
        last = merged[-1] if merged else None
        if (last is not None and not last.buttons and last.language == message.language
                and last.rtl == message.rtl and last.attachment is None
                and message.attachment is None
                and len(last.text) + 2 + len(message.text) <= limit):
            merged[-1] = replace(message, text=f"{last.text}\n\n{message.text}",
                                 key=f"{last.key}+{message.key}",
                                 meta={**last.meta, **message.meta},
                                 about=tuple(dict.fromkeys((*last.about, *message.about))))
        else:
            merged.append(message)
    return merged


class _GateContext:
    """This process's lock on the chat, then the store's hold on it across processes
    (Store.hold_chat: PostgreSQL's advisory lock; nothing on SQLite), left in reverse order."""

    def __init__(self, gates: dict[str, _ChatGate], chat_key: str, store: Store) -> None:
        self.gates = gates
        self.chat_key = chat_key
        self.store = store

    async def __aenter__(self) -> _ChatGate:
        gate = self.gates.setdefault(self.chat_key, _ChatGate())
        gate.users += 1
        try:
            await gate.lock.acquire()
        except BaseException:
            self._leave(gate)
            raise
        self.gate = gate
        self.hold = self.store.hold_chat(self.chat_key)
        try:
            await self.hold.__aenter__()
        except BaseException:
            gate.lock.release()
            self._leave(gate)
            raise
        return gate

    async def __aexit__(self, *exc: object) -> None:
        try:
            await self.hold.__aexit__(None, None, None)
        finally:
            self.gate.lock.release()
            self._leave(self.gate)

    def _leave(self, gate: _ChatGate) -> None:
        gate.users -= 1
        if gate.users == 0:
            del self.gates[self.chat_key]
