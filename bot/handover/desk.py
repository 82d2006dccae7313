"""The volunteer desk: queueing a chat, offering it to volunteers, relaying messages.

Volunteers work from their own chat with the same bot. What they type is either a desk
command (/available, /away, /queue, /take, /done, /release, /transfer) or, while they hold
a chat, a message for the person. While a chat is held, the person's messages go to the
volunteer and no flow runs for them. Volunteers read and write English-language desk
messages; what passes between them and the person is shown as written, with an offline
machine translation beside it, labelled, when they do not share a language.

The desk changes queue state through the store and returns the messages to send; the
dispatcher commits and delivers them like any turn's replies.

Queues: a chat waits in the queue its flow (or a /transfer) named, for the volunteers who
serve it. A queue no registered volunteer serves is offered to every volunteer instead,
so no chat waits for no one; /transfer accepts only queues that someone serves.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from datetime import time as clock_time
from typing import Protocol
from zoneinfo import ZoneInfo

from bot import limits
from bot.engine.events import Choice, Param, Say
from bot.engine.system_text import SYSTEM_TEXT
from bot.errors import ConfigError, TranslationError
from bot.handover.model import ALL_QUEUES, QueueEntry, Status, Volunteer
from bot.i18n.localizer import Localizer
from bot.messages import Inbound, InboundKind, Outbound, OutButton
from bot.storage.base import PendingMessage
from bot.text.languages import LANGUAGES, language
from bot.text.normalize import is_blank
from bot.translation.base import MachineTranslator

__all__ = ["RELAY_KEY", "DeskResult", "DeskSettings", "HandoverDesk", "HandoverStore", "Removal",
           "parse_hours"]

log = logging.getLogger(__name__)

#: Callback data of the desk's own buttons (never a question token, which is "<n>.<i>").
LEAVE_CALLBACK = "leave"
TAKE_CALLBACK_PREFIX = "vt."
VOLUNTEER_COMMANDS = ("available", "away", "queue", "take", "done", "release", "transfer",
                      "start", "help")
#: Commands a person may use while talking to a volunteer; everything else is passed on.
USER_EXIT_COMMANDS = ("leave", "stop", "forget")
#: Outbound key of a volunteer's message to the person; its meta names the volunteer
#: ("from") and the chat ("handover"), so a failed delivery can be reported to them.
RELAY_KEY = "handover.relay"


class HandoverStore(Protocol):
    async def volunteers(self) -> list[Volunteer]: ...
    async def volunteer(self, chat_key: str) -> Volunteer | None: ...
    async def remove_volunteer(self, chat_key: str) -> bool:
        """Unregister, withdrawing their offers and what waits undelivered for them."""
        ...
    async def set_available(self, chat_key: str, available: bool) -> None: ...
    async def queue_entry(self, handover_id: int) -> QueueEntry | None: ...
    async def open_entry(self, chat_key: str) -> QueueEntry | None: ...
    async def held_by(self, volunteer: str) -> QueueEntry | None: ...
    async def entries(self, status: Status) -> list[QueueEntry]: ...
    async def offered_to(self, volunteer: str) -> set[int]: ...
    async def offers_of(self, handover_id: int) -> set[str]: ...
    async def record_offer(self, handover_id: int, volunteer: str,
                           messages: Sequence[Outbound]) -> list[PendingMessage]: ...
    async def take(self, handover_id: int, volunteer: str) -> bool: ...
    async def requeue(self, handover_id: int, queue: str | None = None) -> bool: ...
    async def close_entry(self, handover_id: int, reason: str) -> bool: ...
    async def enqueue(self, messages: Sequence[Outbound]) -> list[PendingMessage]: ...


def parse_hours(text: str) -> tuple[clock_time, clock_time]:
    """'09:00-21:00' -> (09:00, 21:00)."""
    try:
        start, end = (datetime.strptime(part.strip(), "%H:%M").time() for part in text.split("-"))
    except ValueError:
        raise ConfigError(f"BOT_VOLUNTEER_HOURS must look like 09:00-21:00, not {text!r}") from None
    return start, end


@dataclass(frozen=True)
class DeskSettings:
    #: Volunteers not speaking the person's language are offered the chat after this long.
    offer_delay_seconds: float = 120.0
    #: A volunteer silent this long has the chat returned to the queue.
    volunteer_timeout_seconds: float = 10 * 60.0
    #: A person silent this long in a chat with a volunteer has it closed, politely.
    user_timeout_seconds: float = 30 * 60.0
    #: Used for an honest wait estimate; measured figures should replace it.
    average_chat_minutes: float = 15.0
    hours: str = "09:00-21:00"  # "00:00-00:00" means around the clock
    timezone: str = "Europe/London"


@dataclass
class DeskResult:
    """What one message to the desk produced."""

    outbound: list[Outbound] = field(default_factory=list)
    #: (handover id, side) heard from, so silence timers restart.
    seen: tuple[int, str] | None = None
    #: Also run the flows for this message (the person left the volunteer with /stop).
    run_engine: bool = False
    #: Messages already in the outbox (offers to other volunteers) to deliver as well.
    queued: list[PendingMessage] = field(default_factory=list)


@dataclass(frozen=True)
class Removal:
    """What unregistering a volunteer did."""

    #: The chat they held, now waiting in the queue again (None if they held none).
    requeued: QueueEntry | None
    #: Notices and fresh offers, already in the outbox.
    pending: list[PendingMessage]


class HandoverDesk:
    def __init__(self, store: HandoverStore, localizer: Localizer,
                 translator: MachineTranslator | None = None,
                 settings: DeskSettings | None = None,
                 clock: Callable[[], float] = time.time,
                 flow_queues: Callable[[], Collection[str]] = frozenset) -> None:
        """``flow_queues`` gives the queues the flows now served hand chats to."""
        self.store = store
        self.localizer = localizer
        self.translator = translator
        self.settings = settings or DeskSettings()
        self.clock = clock
        self.flow_queues = flow_queues
        self._hours = parse_hours(self.settings.hours)
        try:
            self._zone = ZoneInfo(self.settings.timezone)
        except Exception as exc:  # ZoneInfoNotFoundError, or a malformed name
            raise ConfigError(f"unknown time zone {self.settings.timezone!r}: {exc}") from None

    # -- the person's side --------------------------------------------------------------
    async def queued(self, chat_key: str, language_code: str | None) -> list[PendingMessage]:
        """Right after a flow handed the chat over: tell the person, offer it to volunteers."""
        entry = await self.store.open_entry(chat_key)
        if entry is None or entry.status is not Status.WAITING:
            return []
        volunteers = await self.store.volunteers()
        if volunteers and not _served(entry.queue, volunteers):  # none at all: a desk not set up
            log.warning("chat #%s was handed to queue %r, which no registered volunteer serves; "
                        "it is offered to every volunteer instead", entry.id, entry.queue)
        notice = await self._queue_notice(entry)
        pending = await self.store.enqueue([notice])
        return pending + await self.offer()

    async def user_turn(self, inbound: Inbound, entry: QueueEntry) -> DeskResult | None:
        """A message from a person with a place in the queue; None lets the flows handle it."""
        leaving = (inbound.kind is InboundKind.BUTTON and inbound.button == LEAVE_CALLBACK) or (
            inbound.kind is InboundKind.COMMAND and inbound.command == "leave")
        if entry.status is Status.WAITING:
            if not leaving:
                return None  # flows keep running while a person waits
            await self.store.close_entry(entry.id, "left the queue")
            return DeskResult([await self._say(entry, "handover.left")])
        # With a volunteer.
        volunteer = await self.store.volunteer(entry.volunteer) if entry.volunteer else None
        exiting = leaving or (inbound.kind is InboundKind.COMMAND
                              and inbound.command in USER_EXIT_COMMANDS)
        if volunteer is None and not exiting:
            # Unregistered while holding the chat (and the removal did not get to requeue
            # it): nothing of the person's may reach them now.
            return DeskResult(await self._return_to_queue(entry))
        result = DeskResult(seen=(entry.id, "user"))
        if exiting:
            await self.store.close_entry(entry.id, "the person left")
            if volunteer is not None:
                result.outbound.append(_desk(volunteer.chat_key, f"#{entry.id}: the person ended "
                                             "the chat. It is closed. /queue shows who is waiting."))
            if leaving:
                result.outbound.append(await self._say(entry, "handover.left"))
            else:
                result.run_engine = True  # /stop or /forget: the flow does the rest
            return result
        if volunteer is None:  # pragma: no cover - handled above
            return None
        if inbound.kind is InboundKind.TEXT:
            text = await self._relay_text(inbound.text, entry.language, volunteer.languages[0],
                                          for_volunteer=True)
            result.outbound.append(_desk(volunteer.chat_key, f"#{entry.id}: {text}"))
        elif inbound.kind is InboundKind.MEDIA:
            result.outbound.append(_desk(volunteer.chat_key, f"#{entry.id}: [the person sent a "
                                         f"{inbound.media}; only text is passed on here]"))
            result.outbound.append(await self._say(entry, "handover.text_only"))
        else:  # a tap on an old flow button, or another command
            result.outbound.append(await self._say(entry, "handover.with_volunteer"))
        return result

    # -- the volunteer's side -------------------------------------------------------------
    async def volunteer_turn(self, inbound: Inbound, volunteer: Volunteer) -> DeskResult:
        holding = await self.store.held_by(volunteer.chat_key)
        seen = (holding.id, "volunteer") if holding else None
        if inbound.kind is InboundKind.BUTTON and inbound.button.startswith(TAKE_CALLBACK_PREFIX):
            number = inbound.button.removeprefix(TAKE_CALLBACK_PREFIX)
            return await self._take(volunteer, number, seen)
        if inbound.kind is InboundKind.COMMAND:
            return await self._command(volunteer, inbound.command, inbound.text.strip(), holding)
        if holding is None:
            return DeskResult([_desk(volunteer.chat_key, "You are not in a chat. /queue shows who is "
                                     "waiting; /available to be offered new chats.")])
        if inbound.kind is InboundKind.TEXT:
            if is_blank(inbound.text):  # the platform would refuse it, or show nothing
                return DeskResult([_desk(volunteer.chat_key, "Not sent: your message holds only "
                                         "spaces or invisible characters. Type your message "
                                         "again.")], seen=seen)
            text = await self._relay_text(inbound.text, volunteer.languages[0], holding.language,
                                          for_volunteer=False)
            lang = language(holding.language)
            return DeskResult([Outbound(holding.chat_key, text, language=lang.code, rtl=lang.rtl,
                                        key=RELAY_KEY, meta={"from": volunteer.chat_key,
                                                             "handover": str(holding.id)})],
                              seen=seen)
        return DeskResult([_desk(volunteer.chat_key, "Only text is passed on to the person.")],
                          seen=seen)

    async def _command(self, volunteer: Volunteer, command: str, argument: str,
                       holding: QueueEntry | None) -> DeskResult:
        me = volunteer.chat_key
        seen = (holding.id, "volunteer") if holding else None
        if command == "available":
            await self.store.set_available(me, True)
            confirm = _desk(me, "You are available: new chats in "
                            f"{', '.join(volunteer.queues)} will be offered to you.")
            return DeskResult([confirm], seen=seen, queued=await self.offer())
        if command == "away":
            await self.store.set_available(me, False)
            return DeskResult([_desk(me, "You are away: no new chats will be offered to you.")], seen=seen)
        if command == "queue":
            return DeskResult([await self._queue_listing(volunteer)], seen=seen)
        if command == "take":
            return await self._take(volunteer, argument, seen)
        if command in ("done", "release", "transfer"):
            if holding is None:
                return DeskResult([_desk(me, "You are not in a chat.")])
            return await self._finish(volunteer, holding, command, argument)
        return DeskResult([_desk(me, VOLUNTEER_HELP)], seen=seen)

    async def _take(self, volunteer: Volunteer, argument: str,
                    seen: tuple[int, str] | None) -> DeskResult:
        me = volunteer.chat_key
        if seen is not None:
            return DeskResult([_desk(me, f"You are still in chat #{seen[0]}. /done or /release "
                                     "it first.")], seen=seen)
        offered = await self.store.offered_to(me)
        waiting = [e for e in await self.store.entries(Status.WAITING) if e.id in offered]
        if argument:
            wanted = argument.lstrip("#")
            choice = next((e for e in waiting if str(e.id) == wanted), None)
        else:
            choice = waiting[0] if waiting else None
        if choice is None:
            reason = "That chat is not waiting for you" if argument else "No chat is waiting for you"
            return DeskResult([_desk(me, f"{reason}. /queue shows what you can take.")])
        if not await self.store.take(choice.id, me):
            return DeskResult([_desk(me, f"#{choice.id} was just taken by someone else. "
                                     "/queue shows who is still waiting.")])
        waited = max(0, round((self.clock() - choice.created_at) / 60))
        lang = language(choice.language)
        card = (f"You are now in chat #{choice.id}.\n"
                f"Language: {lang.english_name} ({lang.native_name})"
                + ("" if volunteer.speaks(choice.language) else
                   " - you do not speak it: messages come with a machine translation") + "\n"
                f"Priority: {choice.priority.value}. Waited {waited} min.\n"
                f"From the conversation: {choice.summary}\n\n"
                "Type to reply. /done when finished, /release to put the chat back in the queue, "
                "/transfer QUEUE to pass it to another team.")
        joined = await self._say(choice, "handover.joined")
        return DeskResult([_desk(me, card), joined], seen=(choice.id, "volunteer"))

    async def _finish(self, volunteer: Volunteer, entry: QueueEntry, command: str,
                      argument: str) -> DeskResult:
        me = volunteer.chat_key
        if command == "done":
            await self.store.close_entry(entry.id, "done")
            return DeskResult([_desk(me, f"#{entry.id} is closed. Thank you."),
                               await self._say(entry, "handover.closed")])
        queue = None
        if command == "transfer":
            queue = argument.strip().lower()
            served = sorted(await self._served_queues())
            if queue not in served:
                known = ", ".join(served) if served else "none (use /release)"
                first = (f"No volunteer serves a queue called {queue!r}." if queue else
                         "Say which queue, e.g. /transfer " + (served[0] if served else "legal") + ".")
                return DeskResult([_desk(me, f"{first} Queues you can transfer to: {known}. "
                                         f"Chat #{entry.id} is still with you.")],
                                  seen=(entry.id, "volunteer"))
        await self.store.requeue(entry.id, queue)
        moved = await self.store.queue_entry(entry.id)
        assert moved is not None
        told = await self._say(moved, "handover.released")
        where = f"to the {queue} queue" if queue else "back to the queue"
        return DeskResult([_desk(me, f"#{entry.id} went {where}."), told], queued=await self.offer())

    # -- the queue's clock ----------------------------------------------------------------
    async def offer(self) -> list[PendingMessage]:
        """Offer waiting chats: at once to available volunteers of the queue who speak the
        person's language, after ``offer_delay_seconds`` to the other available ones."""
        now = self.clock()
        volunteers = await self.store.volunteers()
        available = [v for v in volunteers if v.available]
        pending: list[PendingMessage] = []
        if not available:
            return pending
        for entry in await self.store.entries(Status.WAITING):
            already = await self.store.offers_of(entry.id)
            served = _served(entry.queue, volunteers)  # else: offered to everyone
            for volunteer in available:
                if volunteer.chat_key in already or (served and not volunteer.serves(entry.queue)):
                    continue
                if volunteer.speaks(entry.language) or now - entry.created_at >= \
                        self.settings.offer_delay_seconds:
                    if not served:
                        log.info("offering #%s of unserved queue %r to %s", entry.id, entry.queue,
                                 volunteer.chat_key)
                    pending += await self.store.record_offer(
                        entry.id, volunteer.chat_key, [self._offer_message(entry, volunteer, served)])
        return pending

    async def remove_volunteer(self, chat_key: str) -> Removal | None:
        """Unregister a volunteer (None if there is no such volunteer). The chat they hold
        goes back to the queue and the person is told their place is kept; their offers are
        withdrawn and nothing more is delivered to them but a last notice."""
        if await self.store.volunteer(chat_key) is None:
            return None
        # Requeue first, unregister last: a removal cut short is finished by running it
        # again (and the queue's clock requeues a chat whose holder is no longer registered).
        held = await self.store.held_by(chat_key)
        notices = [] if held is None else await self._return_to_queue(held)
        requeued = await self.store.queue_entry(held.id) if held is not None and notices else None
        if not await self.store.remove_volunteer(chat_key):
            return None  # removed meanwhile by someone else
        farewell = "You are no longer registered as a volunteer on this desk."
        if requeued is not None:
            farewell += f" Chat #{requeued.id} went back to the queue."
        notices.append(_desk(chat_key, farewell))
        pending = await self.store.enqueue(notices)
        return Removal(requeued, pending + await self.offer())

    async def undelivered(self, message: Outbound, reason: str, *,
                          gave_up: bool) -> list[PendingMessage]:
        """A message to a person was dropped: if a volunteer wrote it, tell them why."""
        sender = message.meta.get("from")
        if message.key != RELAY_KEY or not sender:
            return []
        tried = (f", and it still failed after {limits.SEND_GIVE_UP_SECONDS / 60:.0f} minutes of "
                 "trying" if gave_up else "")
        text = (f"#{message.meta.get('handover', '?')}: your message was not delivered to the "
                f"person: {reason}{tried}.\nIt began: {_preview(message.text)}")
        return await self.store.enqueue([_desk(sender, text)])

    async def _return_to_queue(self, entry: QueueEntry) -> list[Outbound]:
        """Requeue a chat whose volunteer left; the person is told (once)."""
        if not await self.store.requeue(entry.id):
            return []  # someone else moved it first
        log.info("chat #%s went back to the queue: %s is no longer a volunteer", entry.id,
                 entry.volunteer)
        moved = await self.store.queue_entry(entry.id)
        return [] if moved is None else [await self._say(moved, "handover.released")]

    async def _served_queues(self) -> set[str]:
        """Queues some registered volunteer serves, among those with a name: named in a
        volunteer's queues or by a flow. A "*" volunteer serves every name, but only names
        somebody uses count, so a typo is not a queue."""
        volunteers = await self.store.volunteers()
        named = {q for v in volunteers for q in v.queues if q != ALL_QUEUES}
        return {q for q in named | set(self.flow_queues()) if _served(q, volunteers)}

    async def tick(self) -> list[PendingMessage]:
        """Run every few seconds: delayed offers, and chats where someone went silent."""
        now = self.clock()
        notices: list[Outbound] = []
        registered = {v.chat_key for v in await self.store.volunteers()}
        for entry in await self.store.entries(Status.ASSIGNED):
            if entry.volunteer not in registered:  # unregistered while holding it
                notices += await self._return_to_queue(entry)
            elif entry.volunteer and (entry.volunteer_seen_at or now) < \
                    now - self.settings.volunteer_timeout_seconds:
                await self.store.requeue(entry.id)
                notices.append(_desk(entry.volunteer, f"#{entry.id} went back to the queue: no reply "
                                     f"from you for {self.settings.volunteer_timeout_seconds / 60:.0f} min."))
                moved = await self.store.queue_entry(entry.id)
                if moved is not None:
                    notices.append(await self._say(moved, "handover.released"))
            elif (entry.user_seen_at or now) < now - self.settings.user_timeout_seconds:
                await self.store.close_entry(entry.id, "the person went silent")
                notices.append(await self._say(entry, "handover.user_timeout"))
                if entry.volunteer:
                    notices.append(_desk(entry.volunteer, f"#{entry.id} is closed: no reply from the "
                                         f"person for {self.settings.user_timeout_seconds / 60:.0f} min."))
        pending = await self.store.enqueue(notices)
        return pending + await self.offer()

    # -- messages -------------------------------------------------------------------------
    def _offer_message(self, entry: QueueEntry, volunteer: Volunteer, served: bool) -> Outbound:
        lang = language(entry.language)
        waited = max(0, round((self.clock() - entry.created_at) / 60))
        note = "" if volunteer.speaks(entry.language) else \
            " (not one of your languages: messages will come with a machine translation)"
        queue = entry.queue + ("" if served else
                               " (no volunteer serves this queue, so it is offered to everyone)")
        text = (f"New chat waiting: #{entry.id}\nQueue: {queue}\nLanguage: {lang.english_name} "
                f"({lang.native_name}){note}\nPriority: {entry.priority.value}. Waiting {waited} min.\n"
                f"{entry.summary}\n\n/take {entry.id} to reply.")
        return Outbound(volunteer.chat_key, text, (OutButton(f"{TAKE_CALLBACK_PREFIX}{entry.id}",
                                                             f"Take #{entry.id}"),), key="desk.offer")

    async def _queue_listing(self, volunteer: Volunteer) -> Outbound:
        offered = await self.store.offered_to(volunteer.chat_key)
        waiting = [e for e in await self.store.entries(Status.WAITING) if e.id in offered]
        if not waiting:
            return _desk(volunteer.chat_key, "No chat is waiting for you.")
        now = self.clock()
        lines = [f"#{e.id} · {language(e.language).english_name} · {e.priority.value} · waiting "
                 f"{max(0, round((now - e.created_at) / 60))} min · {e.summary[:120]}" for e in waiting]
        return _desk(volunteer.chat_key, "Waiting for you, most urgent first:\n" + "\n".join(lines)
                     + "\n\n/take ID to reply.")

    async def _queue_notice(self, entry: QueueEntry) -> Outbound:
        waiting = await self.store.entries(Status.WAITING)
        position = next((i for i, e in enumerate(waiting, start=1) if e.id == entry.id), len(waiting))
        if not self._in_hours():
            wait_key = "handover.out_of_hours"
            params = {"hours": Param(self.settings.hours)}
        else:
            volunteers = await self.store.volunteers()
            served = _served(entry.queue, volunteers)  # else every volunteer is offered it
            matching = [v for v in volunteers if v.available and (v.serves(entry.queue) or not served)]
            if not matching:
                wait_key, params = "handover.no_one_online", {}
            else:
                minutes = math.ceil(position / len(matching)) * self.settings.average_chat_minutes
                wait_key, params = "handover.wait_estimate", {"minutes": Param(f"{minutes:.0f}")}
        wait = await self.localizer.render(Say(wait_key, SYSTEM_TEXT[wait_key], params),
                                           entry.chat_key, entry.language)
        say = Say("handover.queued", SYSTEM_TEXT["handover.queued"],
                  {"position": Param(str(position)), "wait": Param(wait.text)},
                  (Choice("handover.leave_button", SYSTEM_TEXT["handover.leave_button"],
                          LEAVE_CALLBACK),))
        return await self.localizer.render(say, entry.chat_key, entry.language)

    async def _say(self, entry: QueueEntry, key: str) -> Outbound:
        return await self.localizer.render(Say(key, SYSTEM_TEXT[key]), entry.chat_key, entry.language)

    async def _relay_text(self, text: str, source: str | None, target: str | None, *,
                          for_volunteer: bool) -> str:
        """The message as written, then a labelled translation when they do not share a
        language. A greeting or short reply comes from the phrase book (the catalogs), the
        rest from the offline model; what they typed is never cached (see
        bot/translation/translator.py), so /forget leaves nothing of it behind."""
        source_code, target_code = language(source).code, language(target).code
        if source_code == target_code:
            return text
        translated = self.localizer.short_phrase(text, source_code, target_code)
        if translated is None and self.translator is not None and \
                self.translator.supports(source_code, target_code):
            try:
                translated = await self.translator.translate(text, source_code, target_code)
            except TranslationError as exc:
                log.warning("relay translation %s->%s failed: %s", source_code, target_code, exc)
        if for_volunteer:
            if translated is None:
                return f"{text}\n[no machine translation from {LANGUAGES[source_code].english_name}]"
            return f"{text}\n[machine translation, may be wrong]: {translated}"
        if translated is None:
            return text
        label = self.localizer.system_text("system.machine_translated", target_code) or \
            SYSTEM_TEXT["system.machine_translated"]
        return f"{text}\n\n{label}\n{translated}"

    def _in_hours(self) -> bool:
        now = datetime.fromtimestamp(self.clock(), self._zone).time()
        start, end = self._hours
        if start == end:  # "00:00-00:00": around the clock
            return True
        return start <= now < end if start < end else (now >= start or now < end)


def _desk(chat_key: str, text: str) -> Outbound:
    """A message of the volunteer desk (volunteers read the desk in English)."""
    return Outbound(chat_key, text, key="desk")


def _served(queue: str, volunteers: Sequence[Volunteer]) -> bool:
    return any(v.serves(queue) for v in volunteers)


def _preview(text: str, limit: int = 80) -> str:
    """The start of a message, on one line; invisible text spelled out (e.g. '\\u3000')."""
    if is_blank(text):
        return ascii(text)[:limit]
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit - 1] + "…"


VOLUNTEER_HELP = (
    "Volunteer desk:\n"
    "/available - be offered new chats\n"
    "/away - stop being offered chats\n"
    "/queue - chats waiting for you, most urgent first\n"
    "/take [ID] - take the most urgent chat, or chat ID\n"
    "/done - close the chat you are in\n"
    "/release - put it back in the queue\n"
    "/transfer QUEUE - pass it to another team's queue\n"
    "Anything else you type goes to the person you are chatting with."
)
