"""The volunteer desk: queueing a chat, offering it to volunteers, relaying messages.

Volunteers work from their own chat with the same bot (on Telegram or WhatsApp, whichever
app the person uses). What they type is either a desk command (/available, /away, /queue,
/take, /done, /release, /transfer, /invite, /services) or, while they hold a chat, a message
for the person. ``/services TAG [PLACE]`` lists services of the directory, with a button to
send each to the person, in the person's language. While a chat is held, the person's
messages go to the volunteer and no flow runs for them. Voice notes, audio, photos and
documents pass both ways as the files themselves (the platform holds them; the outbox holds
only a reference until they are delivered). Volunteers read and write English-language desk
messages; what passes between them and the person is shown as written, with an offline
machine translation beside it, labelled, when they do not share a language.

The desk changes queue state through the store and returns the messages to send; the
dispatcher commits and delivers them like any turn's replies.

Queues: a chat waits in the queue its flow (or a /transfer) named, for the volunteers who
serve it. A queue no registered volunteer serves is offered to every volunteer instead,
so no chat waits for no one; /transfer accepts only queues that someone serves.
"""

from __future__ import annotations

import asyncio
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
from bot.engine.events import Choice, Param, Say, ServiceCard
from bot.engine.system_text import SYSTEM_TEXT
from bot.errors import ConfigError, TranslationError
from bot.flowspec.model import Priority
from bot.handover.model import ALL_QUEUES, OfferQuery, OffersOwed, QueueEntry, Status, Volunteer
from bot.i18n.localizer import Localizer
from bot.messages import RELAYED_MEDIA, REOPEN_TEMPLATE, Inbound, InboundKind, Outbound, OutButton
from bot.services.matching import find_place, matching_services
from bot.services.model import TAGS, UK, Directory, Service
from bot.storage.base import PendingMessage
from bot.text.languages import LANGUAGES, language
from bot.text.normalize import is_blank
from bot.translation.base import MachineTranslator

__all__ = ["MEDIA_KEY", "RELAY_KEY", "DeskResult", "DeskSettings", "HandoverDesk", "HandoverStore",
           "Removal", "Undelivered", "parse_hours"]

log = logging.getLogger(__name__)

#: Callback data of the desk's own buttons (never a question token, which is "<n>.<i>").
LEAVE_CALLBACK = "leave"
TAKE_CALLBACK_PREFIX = "vt."
#: "vq.<page>": a page of /queue.
QUEUE_CALLBACK_PREFIX = "vq."
#: "vs.<chat id>.<service id>": send that service of the directory to the person in that
#: chat (held by the volunteer: a list from an earlier chat sends nothing to the next one).
SEND_SERVICE_CALLBACK_PREFIX = "vs."
VOLUNTEER_COMMANDS = ("available", "away", "queue", "take", "done", "release", "transfer",
                      "invite", "services", "start", "help")
#: Commands a person may use while talking to a volunteer; everything else is passed on.
USER_EXIT_COMMANDS = ("leave", "stop", "forget")
#: Outbound key of a volunteer's message to the person; its meta names the volunteer
#: ("from") and the chat ("handover"), so a failed delivery can be reported to them.
RELAY_KEY = "handover.relay"
#: Outbound key of a file the person sent, passed to the volunteer; meta "handover".
MEDIA_KEY = "desk.media"
_MEDIA_NAMES = {"voice": "a voice note", "audio": "an audio file", "photo": "a photo",
                "document": "a document"}


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
    async def entries(self, status: Status) -> list[QueueEntry]:
        """Every entry of that status, in queue order (the desk reads only the assigned)."""
        ...
    async def queue_position(self, handover_id: int) -> int | None:
        """A waiting chat's place in the whole queue, 1 first; None if it is not waiting."""
        ...
    async def waiting_for(self, volunteer: str, *, limit: int,
                          offset: int = 0) -> list[QueueEntry]:
        """Waiting chats offered to the volunteer, in queue order, a page at a time."""
        ...
    async def waiting_counts(self, volunteer: str) -> dict[tuple[Priority, str | None], int]:
        """Waiting chats offered to the volunteer, counted by priority and language."""
        ...
    async def offered_entry(self, volunteer: str, handover_id: int) -> QueueEntry | None:
        """The chat, if it waits and was offered to the volunteer."""
        ...
    async def offers_owed(self, query: OfferQuery) -> OffersOwed:
        """What a round of offers owes under the desk's rules, read in one query."""
        ...
    async def record_offers(self, offers: Sequence[tuple[int, str]],
                            messages: Sequence[Outbound],
                            settle: Sequence[tuple[int, float | None]] = (),
                            due_by: float = 0.0) -> list[PendingMessage]:
        """A round's offers (handover id, volunteer) and their messages, together with when
        each chat read as due by ``due_by`` is next due (None: not unless requeued)."""
        ...
    async def take(self, handover_id: int, volunteer: str) -> bool: ...
    async def requeue(self, handover_id: int, queue: str | None = None) -> bool: ...
    async def close_entry(self, handover_id: int, reason: str) -> bool: ...
    async def enqueue(self, messages: Sequence[Outbound]) -> list[PendingMessage]: ...
    async def set_summary(self, handover_id: int, summary: str) -> bool: ...


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
class Undelivered:
    """A message the platform would not deliver, as far as the sender's notice needs it."""

    chat_key: str  # whom it was for
    key: str  # its Outbound.key
    meta: dict[str, str]  # its Outbound.meta: "from" (the volunteer), "handover" (the chat)
    preview: str  # its text, or how it began
    media: str = ""  # the kind of file it carried, if any

    @classmethod
    def of(cls, message: Outbound) -> Undelivered:
        return cls(message.chat_key, message.key, dict(message.meta), message.text,
                   message.attachment.kind if message.attachment is not None else "")


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
                 flow_queues: Callable[[], Collection[str]] = frozenset,
                 directory: Callable[[], Directory] = Directory) -> None:
        """``flow_queues`` gives the queues the flows now served hand chats to;
        ``directory`` the directory of services that /services lists."""
        self.store = store
        self.directory = directory
        self.localizer = localizer
        self.translator = translator
        self.settings = settings or DeskSettings()
        self.clock = clock
        self.flow_queues = flow_queues
        self._hours = parse_hours(self.settings.hours)
        # Rounds of offers run one at a time, so two never read the same chats as owed.
        self._offering = asyncio.Lock()
        # What the last round saw: the available volunteers and the queues served. Anyone
        # new or changed since then is owed every waiting chat they may see, not only chats
        # due; a change in who serves what makes everyone fresh.
        self._last_round: tuple[frozenset[Volunteer], frozenset[str] | None] | None = None
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
        notice = await self._queue_notice(entry, volunteers)
        pending = await self.store.enqueue([notice])
        return pending + await self.offer(volunteers)

    async def user_turn(self, inbound: Inbound, entry: QueueEntry, *,
                        for_flows: bool = True) -> DeskResult | None:
        """A message from a person with a place in the queue; None lets the flows handle it.

        While waiting, ``for_flows`` says whether the flows answer the message (see
        bot.engine.runtime.takes_while_queued: taps, commands, safeguarding phrases...).
        Otherwise what the person typed is kept for the volunteer, who sees it on the
        summary card, and they are told they are still in the queue, and their place."""
        leaving = (inbound.kind is InboundKind.BUTTON and inbound.button == LEAVE_CALLBACK) or (
            inbound.kind is InboundKind.COMMAND and inbound.command == "leave")
        if entry.status is Status.WAITING:
            if leaving:
                await self.store.close_entry(entry.id, "left the queue")
                return DeskResult([await self._say(entry, "handover.left")])
            if for_flows:
                return None  # flows keep running while a person waits
            typed = " ".join(inbound.text.split()) if inbound.kind is InboundKind.TEXT else ""
            if typed and len(entry.summary) < _SUMMARY_KEEP_MAX:
                mark = "" if _WAITING_NOTES in entry.summary else _WAITING_NOTES
                room = _SUMMARY_KEEP_MAX - len(entry.summary)
                note = typed if len(typed) <= room else typed[:room].rstrip() + " [...]"
                await self.store.set_summary(entry.id, f"{entry.summary}{mark}\n- {note}")
            notice = await self._queue_notice(entry, await self.store.volunteers(),
                                              "handover.still_waiting")
            return DeskResult([notice])
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
                                             "the chat. It is closed. /queue shows who is waiting.",
                                             entry))
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
            result.outbound.append(_desk(volunteer.chat_key, f"#{entry.id}: {text}", entry))
        elif inbound.kind is InboundKind.MEDIA and inbound.attachment is not None and \
                inbound.attachment.kind in RELAYED_MEDIA:
            text = f"#{entry.id}: {_MEDIA_NAMES[inbound.attachment.kind]} from the person"
            if inbound.text.strip():  # its caption, translated like a message
                caption = await self._relay_text(inbound.text, entry.language,
                                                 volunteer.languages[0], for_volunteer=True)
                text += f":\n{caption}"
            result.outbound.append(Outbound(volunteer.chat_key, text, key=MEDIA_KEY,
                                            meta={"handover": str(entry.id)},
                                            attachment=inbound.attachment,
                                            about=(entry.chat_key,)))
        elif inbound.kind is InboundKind.MEDIA:
            result.outbound.append(_desk(volunteer.chat_key, f"#{entry.id}: [the person sent a "
                                         f"{inbound.media}; only text, voice notes, photos and "
                                         "documents are passed on here]", entry))
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
        if inbound.kind is InboundKind.BUTTON and inbound.button.startswith(QUEUE_CALLBACK_PREFIX):
            page = inbound.button.removeprefix(QUEUE_CALLBACK_PREFIX)
            return DeskResult([await self._queue_listing(volunteer, page)], seen=seen)
        if inbound.kind is InboundKind.BUTTON and \
                inbound.button.startswith(SEND_SERVICE_CALLBACK_PREFIX):
            chat_id, _, service_id = inbound.button.removeprefix(
                SEND_SERVICE_CALLBACK_PREFIX).partition(".")
            return await self._send_service(volunteer, holding, _number(chat_id), service_id)
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
        if inbound.kind is InboundKind.MEDIA and inbound.attachment is not None and \
                inbound.attachment.kind in RELAYED_MEDIA:
            caption = ""
            if inbound.text.strip():
                caption = await self._relay_text(inbound.text, volunteer.languages[0],
                                                 holding.language, for_volunteer=False)
            lang = language(holding.language)
            return DeskResult([Outbound(holding.chat_key, caption, language=lang.code, rtl=lang.rtl,
                                        key=RELAY_KEY, meta={"from": volunteer.chat_key,
                                                             "handover": str(holding.id)},
                                        attachment=inbound.attachment)], seen=seen)
        return DeskResult([_desk(volunteer.chat_key, "Only text, voice notes, audio, photos and "
                                 "documents are passed on to the person.")], seen=seen)

    async def _command(self, volunteer: Volunteer, command: str, argument: str,
                       holding: QueueEntry | None) -> DeskResult:
        me = volunteer.chat_key
        seen = (holding.id, "volunteer") if holding else None
        if command == "available":
            await self.store.set_available(me, True)
            confirm = _desk(me, "You are available: new chats in "
                            f"{', '.join(volunteer.queues)} will be offered to you.")
            return DeskResult([confirm], seen=seen, queued=await self.offer(fresh={me}))
        if command == "away":
            await self.store.set_available(me, False)
            return DeskResult([_desk(me, "You are away: no new chats will be offered to you.")], seen=seen)
        if command == "queue":
            return DeskResult([await self._queue_listing(volunteer, argument)], seen=seen)
        if command == "take":
            return await self._take(volunteer, argument, seen)
        if command == "services":
            return DeskResult([self._services_listing(volunteer, argument, holding)], seen=seen)
        if command in ("done", "release", "transfer"):
            if holding is None:
                return DeskResult([_desk(me, "You are not in a chat.")])
            return await self._finish(volunteer, holding, command, argument)
        if command == "invite":
            if holding is None:
                return DeskResult([_desk(me, "You are not in a chat.")])
            invite = await self._say(holding, "handover.invite")
            invite = Outbound(invite.chat_key, invite.text, language=invite.language, rtl=invite.rtl,
                              key=invite.key, meta={"template": REOPEN_TEMPLATE, "from": me,
                                                    "handover": str(holding.id)})
            return DeskResult([invite, _desk(me, f"#{holding.id}: the person was asked to write "
                                             "again (on WhatsApp, with the approved invitation). "
                                             "Their reply comes here; you are told if it cannot "
                                             "be delivered.", holding)], seen=seen)
        return DeskResult([_desk(me, VOLUNTEER_HELP)], seen=seen)

    async def _take(self, volunteer: Volunteer, argument: str,
                    seen: tuple[int, str] | None) -> DeskResult:
        me = volunteer.chat_key
        if seen is not None:
            return DeskResult([_desk(me, f"You are still in chat #{seen[0]}. /done or /release "
                                     "it first.")], seen=seen)
        if argument:
            number = _number(argument.lstrip("#"))
            choice = None if number is None else await self.store.offered_entry(me, number)
        else:
            first = await self.store.waiting_for(me, limit=1)
            choice = first[0] if first else None
        if choice is None:
            reason = "That chat is not waiting for you" if argument else "No chat is waiting for you"
            return DeskResult([_desk(me, f"{reason}. /queue shows what you can take.")])
        if not await self.store.take(choice.id, me):
            return DeskResult([_desk(me, f"#{choice.id} was just taken by someone else. "
                                     "/queue shows who is still waiting.")])
        waited = max(0, round((self.clock() - choice.created_at) / 60))
        lang = language(choice.language)
        summary, _, notes = choice.summary.partition(_WAITING_NOTES)
        if notes:  # what the person typed while waiting, translated where needed
            lines = [await self._relay_text(line.removeprefix("- "), choice.language,
                                            volunteer.languages[0], for_volunteer=True)
                     for line in notes.strip("\n").split("\n- ")]
            summary += _WAITING_NOTES + "".join(f"\n- {line}" for line in lines)
        card = (f"You are now in chat #{choice.id}.\n"
                f"Language: {lang.english_name} ({lang.native_name})"
                + ("" if volunteer.speaks(choice.language) else
                   " - you do not speak it: messages come with a machine translation") + "\n"
                f"Priority: {choice.priority.value}. Waited {waited} min.\n"
                f"From the conversation: {summary}\n\n"
                "Type to reply. /done when finished, /release to put the chat back in the queue, "
                "/transfer QUEUE to pass it to another team.")
        joined = await self._say(choice, "handover.joined")
        # Outside WhatsApp's 24-hour window the approved invitation to write again goes instead;
        # if neither can be delivered, the volunteer is told (it is "from" them).
        joined = Outbound(joined.chat_key, joined.text, language=joined.language, rtl=joined.rtl,
                          key=joined.key, meta={"template": REOPEN_TEMPLATE, "from": me,
                                                "handover": str(choice.id)})
        return DeskResult([_desk(me, card, choice), joined], seen=(choice.id, "volunteer"))

    async def _finish(self, volunteer: Volunteer, entry: QueueEntry, command: str,
                      argument: str) -> DeskResult:
        me = volunteer.chat_key
        if command == "done":
            await self.store.close_entry(entry.id, "done")
            return DeskResult([_desk(me, f"#{entry.id} is closed. Thank you.", entry),
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
                                         f"Chat #{entry.id} is still with you.", entry)],
                                  seen=(entry.id, "volunteer"))
        await self.store.requeue(entry.id, queue)
        moved = await self.store.queue_entry(entry.id)
        assert moved is not None
        told = await self._say(moved, "handover.released")
        where = f"to the {queue} queue" if queue else "back to the queue"
        return DeskResult([_desk(me, f"#{entry.id} went {where}.", entry), told],
                          queued=await self.offer())

    # -- the directory of services ----------------------------------------------------------
    def _services_listing(self, volunteer: Volunteer, argument: str,
                          holding: QueueEntry | None) -> Outbound:
        """``/services TAG [PLACE]``: the entries that fit, most local first, each with a
        button that sends it to the person held; an unknown tag gets the list of tags."""
        me = volunteer.chat_key
        directory = self.directory()
        tag, rest = _tag_and_rest(argument)
        if tag is None:
            first = f"No tag called {argument.split()[0]!r}.\n" if argument.strip() else ""
            return _desk(me, f"{first}Say what the person needs, and where if you like: "
                         "/services TAG [PLACE], e.g. /services housing Glasgow.\nTags:\n"
                         + "\n".join(f"{tag_id} - {label}" for tag_id, label in TAGS.items()))
        place = find_place(directory, rest) if rest else None
        lines: list[str] = []
        if rest and place is None:
            lines.append(f"No place called {rest!r} in the directory (services/places.yaml): "
                         "showing services for the whole UK.")
        where = f" for {place.name}" if place else ""
        found = matching_services(directory, [tag], place.id if place else None,
                                  holding.language if holding else None, limits.BUTTONS_MAX)
        if not found:
            lines.append(f"No {TAGS[tag]} service{where} in the directory yet.")
            return _desk(me, "\n".join(lines))
        lines.append(f"{TAGS[tag].capitalize()}{where}, most local first:")
        lines += [f"{i}. {_service_line(directory, s)}" for i, s in enumerate(found, start=1)]
        if holding is None:
            lines += ["", "Take a chat to send one of these to the person."]
            return _desk(me, "\n".join(lines))
        lines += ["", f"Tap Send N to send it to #{holding.id}, in their language."]
        buttons = tuple(OutButton(f"{SEND_SERVICE_CALLBACK_PREFIX}{holding.id}.{s.id}", f"Send {i}")
                        for i, s in enumerate(found, start=1))
        return Outbound(me, "\n".join(lines), buttons, key="desk", about=(holding.chat_key,))

    async def _send_service(self, volunteer: Volunteer, holding: QueueEntry | None,
                            listed_for: int | None, service_id: str) -> DeskResult:
        me = volunteer.chat_key
        if holding is None:
            return DeskResult([_desk(me, "You are not in a chat, so there is no one to send it to.")])
        seen = (holding.id, "volunteer")
        if listed_for != holding.id:
            return DeskResult([_desk(me, f"That list was for chat #{listed_for}; you are now in "
                                     f"#{holding.id}. Nothing was sent: /services again.",
                                     holding)],
                              seen=seen)
        directory = self.directory()
        service = directory.service(service_id)
        if service is None:  # the directory changed since the list was sent
            return DeskResult([_desk(me, "That service is no longer in the directory. "
                                     "/services lists what is there now.")], seen=seen)
        card = await self.localizer.render_service(ServiceCard.of(directory, service),
                                                   holding.chat_key, holding.language)
        card = Outbound(card.chat_key, card.text, language=card.language, rtl=card.rtl, key=card.key,
                        meta={**card.meta, "from": me, "handover": str(holding.id)})
        return DeskResult([card, _desk(me, f"#{holding.id}: sent {service.name}.", holding)],
                          seen=seen)

    # -- the queue's clock ----------------------------------------------------------------
    async def offer(self, volunteers: Sequence[Volunteer] | None = None, *,
                    fresh: Collection[str] = ()) -> list[PendingMessage]:
        """A round of offers: waiting chats go at once to available volunteers of their
        queue who speak the person's language, and after ``offer_delay_seconds`` to the
        other available ones. Each volunteer is sent the most urgent few in full, then how
        many more wait (all of them in /queue) with a line and a Take button for each crisis
        chat among them, so a crisis is never left behind a page.

        A round reads only chats due (queued, requeued, past their delay), and all waiting
        chats only for volunteers in ``fresh`` (who just said /available) or new or changed
        since this desk's last round. ``volunteers``: every registered one, if just read.
        """
        async with self._offering:
            registered = volunteers if volunteers is not None else await self.store.volunteers()
            return await self._offer_round(registered, set(fresh))

    async def _offer_round(self, registered: Sequence[Volunteer],
                           fresh: set[str]) -> list[PendingMessage]:
        now = self.clock()
        delay = self.settings.offer_delay_seconds
        available = tuple(v for v in registered if v.available)
        served = _served_names(registered)
        last = self._last_round
        if last is None or last[1] != served:
            fresh = {v.chat_key for v in available}
        else:
            fresh |= {v.chat_key for v in available if v not in last[0]}
        if not available:
            self._last_round = (frozenset(), served)
            return []  # chats stay due for the next round that has someone to offer them to
        found = await self.store.offers_owed(OfferQuery(available, now, now - delay, served,
                                                        frozenset(fresh)))
        owed: dict[str, list[QueueEntry]] = {}
        for key, entry in found.owed:
            owed.setdefault(key, []).append(entry)
        messages: list[Outbound] = []
        for volunteer in available:
            chats = owed.get(volunteer.chat_key, [])
            for entry in chats[:limits.DESK_OFFERS_PER_ROUND]:
                is_served = served is None or entry.queue in served
                if not is_served:
                    log.info("offering #%s of unserved queue %r to %s", entry.id, entry.queue,
                             volunteer.chat_key)
                messages.append(self._offer_message(entry, volunteer, is_served))
            messages += self._more_waiting(volunteer, chats[limits.DESK_OFFERS_PER_ROUND:])
        # Due again when the delay ends, for the volunteers who do not speak the language.
        settle = [(due.id, due.created_at + delay if now < due.created_at + delay else None)
                  for due in found.due]
        pending = await self.store.record_offers([(e.id, key) for key, e in found.owed],
                                                 messages, settle, due_by=now)
        self._last_round = (frozenset(available), served)
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

    async def undelivered(self, message: Outbound | Undelivered, reason: str, *,
                          gave_up: bool) -> list[PendingMessage]:
        """A message was dropped: queue the notices :meth:`undelivered_notices` gives."""
        notices = await self.undelivered_notices(message, reason, gave_up=gave_up)
        return await self.store.enqueue(notices) if notices else []

    async def undelivered_notices(self, message: Outbound | Undelivered, reason: str, *,
                                  gave_up: bool) -> list[Outbound]:
        """Who must hear that a message did not arrive, and what they are told.

        A volunteer's message to the person (or one sent on their behalf: the notice that
        they joined, an invitation): the volunteer, why. A person's file for the volunteer:
        the volunteer, that it came and could not be passed on, and the person, to type.
        """
        lost = message if isinstance(message, Undelivered) else Undelivered.of(message)
        tried = (f", and it still failed after {limits.SEND_GIVE_UP_SECONDS / 60:.0f} minutes of "
                 "trying" if gave_up else "")
        number = lost.meta.get("handover", "")
        if lost.key == MEDIA_KEY:
            entry = await self.store.queue_entry(int(number)) if number.isdigit() else None
            what = _MEDIA_NAMES.get(lost.media, "a file")
            notices = [_desk(lost.chat_key, f"#{number or '?'}: the person sent {what}, but it "
                             f"could not be passed on to you: {reason}{tried}. They are asked to "
                             "type their message instead.", entry)]
            if entry is not None and entry.status is Status.ASSIGNED:
                notices.append(await self._say(entry, "handover.text_only"))
            return notices
        sender = lost.meta.get("from")
        if not sender and lost.key == RELAY_KEY and number.isdigit():
            entry = await self.store.queue_entry(int(number))  # the volunteer holding the chat
            sender = entry.volunteer if entry is not None else None
        if not sender:
            return []
        began = (f"It was {_MEDIA_NAMES.get(lost.media, 'a file')}." if lost.media else
                 f"It began: {_preview(lost.preview)}")
        what = "the notice that you joined" if lost.key == "handover.joined" else "your message"
        text = f"#{number or '?'}: {what} was not delivered to the person: {reason}{tried}.\n{began}"
        # About the person it was for: it quotes how the message to them began.
        return [Outbound(sender, text, key="desk", about=(lost.chat_key,))]

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
        volunteers = await self.store.volunteers()
        registered = {v.chat_key for v in volunteers}
        for entry in await self.store.entries(Status.ASSIGNED):
            if entry.volunteer not in registered:  # unregistered while holding it
                notices += await self._return_to_queue(entry)
            elif entry.volunteer and (entry.volunteer_seen_at or now) < \
                    now - self.settings.volunteer_timeout_seconds:
                await self.store.requeue(entry.id)
                notices.append(_desk(entry.volunteer, f"#{entry.id} went back to the queue: no reply "
                                     f"from you for {self.settings.volunteer_timeout_seconds / 60:.0f} min.",
                                     entry))
                moved = await self.store.queue_entry(entry.id)
                if moved is not None:
                    notices.append(await self._say(moved, "handover.released"))
            elif (entry.user_seen_at or now) < now - self.settings.user_timeout_seconds:
                await self.store.close_entry(entry.id, "the person went silent")
                notices.append(await self._say(entry, "handover.user_timeout"))
                if entry.volunteer:
                    notices.append(_desk(entry.volunteer, f"#{entry.id} is closed: no reply from the "
                                         f"person for {self.settings.user_timeout_seconds / 60:.0f} min.",
                                         entry))
        pending = await self.store.enqueue(notices)
        return pending + await self.offer(volunteers)

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
                                                             f"Take #{entry.id}"),), key="desk.offer",
                        about=(entry.chat_key,))

    def _more_waiting(self, volunteer: Volunteer, chats: Sequence[QueueEntry]) -> list[Outbound]:
        """The rest of a round for one volunteer: how many more wait, by priority, and a
        line with a Take button for each crisis chat among them (never left to /queue)."""
        if not chats:
            return []
        by_priority: dict[Priority, int] = {}
        for entry in chats:
            by_priority[entry.priority] = by_priority.get(entry.priority, 0) + 1
        head = (f"And {len(chats)} more waiting for you ({_by_priority(by_priority)}): /queue "
                "lists them, most urgent first.")
        crisis = [e for e in chats if e.priority is Priority.CRISIS]
        if not crisis:
            return [_desk(volunteer.chat_key, head)]
        now = self.clock()
        messages = []
        for start in range(0, len(crisis), limits.BUTTONS_MAX):
            part = crisis[start:start + limits.BUTTONS_MAX]
            lines = [head + "\n\nCrisis, answer first:" if start == 0 else
                     "More crisis chats waiting for you:"]
            lines += [self._line(e, now, with_queue=True) for e in part]
            messages.append(Outbound(volunteer.chat_key, "\n".join(lines), _take_buttons(part),
                                     key="desk", about=tuple(e.chat_key for e in part)))
        return messages

    def _line(self, entry: QueueEntry, now: float, *, with_queue: bool = False) -> str:
        queue = f" · {entry.queue}" if with_queue else ""
        return (f"#{entry.id} · {entry.priority.value} · {language(entry.language).english_name}"
                f"{queue} · waiting {_minutes(now - entry.created_at)} min · "
                f"{_preview(entry.summary, limits.DESK_QUEUE_SUMMARY_CHARS)}")

    async def _queue_listing(self, volunteer: Volunteer, argument: str = "") -> Outbound:
        """A summary of the chats waiting for the volunteer and a page of them, most urgent
        first, with Take buttons; the first page holds every crisis chat."""
        me = volunteer.chat_key
        page = _number(argument) if argument.strip() else 1
        if page is None or page < 1:
            return _desk(me, "Say which page of the queue, e.g. /queue 2.")
        counts = await self.store.waiting_counts(me)
        total = sum(counts.values())
        if not total:
            return _desk(me, "No chat is waiting for you.")
        crisis = sum(n for (priority, _), n in counts.items() if priority is Priority.CRISIS)
        first = max(limits.DESK_QUEUE_PAGE, min(crisis, limits.DESK_QUEUE_FIRST_PAGE_MAX))
        pages = 1 + math.ceil(max(0, total - first) / limits.DESK_QUEUE_PAGE)
        if page > pages:
            return _desk(me, f"The queue has {_count(pages, 'page')} for you now "
                         f"({_count(total, 'chat')}). /queue shows the first.")
        offset = 0 if page == 1 else first + (page - 2) * limits.DESK_QUEUE_PAGE
        size = first if page == 1 else limits.DESK_QUEUE_PAGE
        chats = await self.store.waiting_for(me, limit=size, offset=offset)
        by_priority: dict[Priority, int] = {}
        by_language: dict[str, int] = {}
        for (priority, code), n in counts.items():
            by_priority[priority] = by_priority.get(priority, 0) + n
            name = language(code).english_name
            by_language[name] = by_language.get(name, 0) + n
        now = self.clock()
        lines = [f"{_count(total, 'chat')} waiting for you.",
                 f"By priority: {_by_priority(by_priority)}",
                 "By language: " + ", ".join(f"{n} {name}" for name, n in
                                             sorted(by_language.items(), key=lambda i: (-i[1], i[0]))),
                 "",
                 f"Most urgent first, {offset + 1}-{offset + len(chats)} of {total}:"]
        lines += [self._line(e, now) for e in chats]
        more = page < pages
        lines += ["", "Tap Take, or /take ID, to reply."
                  + (f" /queue {page + 1} for the next page." if more else "")]
        # A button a line, within a question's limit, with room for "More".
        buttons = _take_buttons(chats[:limits.BUTTONS_MAX - 1])
        if more:
            buttons += (OutButton(f"{QUEUE_CALLBACK_PREFIX}{page + 1}", f"More (page {page + 1})"),)
        return Outbound(me, "\n".join(lines), buttons, key="desk",
                        about=tuple(e.chat_key for e in chats))

    async def _queue_notice(self, entry: QueueEntry, volunteers: Sequence[Volunteer],
                            key: str = "handover.queued") -> Outbound:
        position = await self.store.queue_position(entry.id) or 1  # None: taken meanwhile
        if not self._in_hours():
            wait_key = "handover.out_of_hours"
            params = {"hours": Param(self.settings.hours)}
        else:
            served = _served(entry.queue, volunteers)  # else every volunteer is offered it
            matching = [v for v in volunteers if v.available and (v.serves(entry.queue) or not served)]
            if not matching:
                wait_key, params = "handover.no_one_online", {}
            else:
                minutes = math.ceil(position / len(matching)) * self.settings.average_chat_minutes
                wait_key, params = "handover.wait_estimate", {"minutes": Param(f"{minutes:.0f}")}
        wait = await self.localizer.render(Say(wait_key, SYSTEM_TEXT[wait_key], params),
                                           entry.chat_key, entry.language)
        say = Say(key, SYSTEM_TEXT[key],
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


#: Heads what a waiting person typed, kept in the summary for the volunteer who takes the chat.
_WAITING_NOTES = "\nWhile waiting, the person wrote:"
#: The summary (with what was kept) stops growing here: enough for a volunteer to read first.
_SUMMARY_KEEP_MAX = 2000


def _desk(chat_key: str, text: str, about: QueueEntry | None = None) -> Outbound:
    """A message of the volunteer desk (volunteers read the desk in English); ``about``: the
    person's chat it names or quotes (a /forget of theirs deletes it undelivered)."""
    return Outbound(chat_key, text, key="desk", about=() if about is None else (about.chat_key,))


def _tag_and_rest(argument: str) -> tuple[str | None, str]:
    """'legal advice Glasgow' -> ('legal_advice', 'Glasgow'): a tag's id or its words
    (the longest that fit), or the start of one tag's id ('legal'), then the place."""
    words = argument.split()
    labels = {label.casefold().replace(" ", "_"): tag for tag, label in TAGS.items()}
    for n in range(len(words), 0, -1):
        typed = "_".join(words[:n]).casefold()
        tag = typed if typed in TAGS else labels.get(typed)
        if tag is not None:
            return tag, " ".join(words[n:])
    if words:
        starting = [tag for tag in TAGS if tag.startswith(words[0].casefold())]
        if len(starting) == 1:
            return starting[0], " ".join(words[1:])
    return None, ""


def _service_line(directory: Directory, service: Service) -> str:
    """One entry as a volunteer reads it: name, where, contacts, languages, last checked."""
    where = "whole UK" if UK in service.serves else ", ".join(
        directory.places[p].name for p in service.serves if p in directory.places)
    parts = [service.name, where, *(v for v in (service.phone, service.web) if v)]
    if service.languages:
        parts.append("speaks " + ", ".join(service.languages))
    if service.interpreters:
        parts.append("interpreters")
    if service.referral:
        parts.append("referral needed")
    parts.append(f"checked {service.checked.isoformat()}")
    return " · ".join(parts)


def _served(queue: str, volunteers: Sequence[Volunteer]) -> bool:
    return any(v.serves(queue) for v in volunteers)


def _served_names(volunteers: Sequence[Volunteer]) -> frozenset[str] | None:
    """The queues registered volunteers serve; None when one serves every queue."""
    if any(ALL_QUEUES in v.queues for v in volunteers):
        return None
    return frozenset(q for v in volunteers for q in v.queues)


def _by_priority(counts: dict[Priority, int]) -> str:
    """'2 crisis, 5 normal': most urgent first."""
    return ", ".join(f"{counts[p]} {p.value}" for p in sorted(counts, key=lambda p: p.rank))


def _take_buttons(chats: Sequence[QueueEntry]) -> tuple[OutButton, ...]:
    return tuple(OutButton(f"{TAKE_CALLBACK_PREFIX}{e.id}", f"Take #{e.id}") for e in chats)


def _number(text: str) -> int | None:
    """A chat or page number as typed; None unless it is one (ASCII digits, a sane size)."""
    text = text.strip()
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 15 else None


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _minutes(seconds: float) -> int:
    return max(0, round(seconds / 60))


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
    "/queue [PAGE] - chats waiting for you, most urgent first\n"
    "/take [ID] - take the most urgent chat, or chat ID\n"
    "/done - close the chat you are in\n"
    "/release - put it back in the queue\n"
    "/transfer QUEUE - pass it to another team's queue\n"
    "/services TAG [PLACE] - services from the directory, to send one to the person\n"
    "/invite - ask the person to write again (WhatsApp lets the bot write only within 24 hours "
    "of their last message)\n"
    "Anything else you type goes to the person you are chatting with: text, voice notes, "
    "photos and documents."
)
