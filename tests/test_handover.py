"""The volunteer desk with the real dispatcher and SQLite: queueing, offers, relay, races."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bot.__main__ import main
from bot.dispatcher import Dispatcher
from bot.flowspec.library import load_library
from bot.handover.desk import DeskSettings, HandoverDesk
from bot.handover.model import Status, Volunteer
from bot.i18n.catalog import CatalogSet
from bot.i18n.localizer import Localizer
from bot.messages import Inbound, InboundKind, Outbound
from bot.storage.sqlite import SqliteStore
from bot.translation.argos_models import install_models
from bot.translation.translator import OfflineTranslator
from bot.transports.console import ConsoleTransport
from bot.transports.memory import MemoryTransport
from tests.conftest import Backend
from tests.support.offline import NetworkGuard
from tests.support.tiny_argos import build_tiny_model

FIXTURES = Path(__file__).parent / "fixtures" / "flows"
USER = "test:user"
FA = Volunteer("test:farid", "Farid", ("fa", "prs", "en"), ("*",))
EN = Volunteer("test:emma", "Emma", ("en",), ("legal", "general"))
AWAY = Volunteer("test:zara", "Zara", ("fa",), ("*",))
ALWAYS = "00:00-00:00"


@dataclass
class Desk:
    store: Any  # SqliteStore or PostgresStore
    dispatcher: Dispatcher
    transport: MemoryTransport
    shift: list[float] = field(default_factory=lambda: [0.0])

    async def send(self, chat: str, text: str, update_id: str | None = None) -> list[Outbound]:
        await self.dispatcher.handle(Inbound.from_text(chat, text, update_id))
        return self.transport.take()

    async def tap(self, chat: str, callback: str) -> list[Outbound]:
        await self.dispatcher.handle(Inbound(chat, InboundKind.BUTTON, button=callback))
        return self.transport.take()

    def later(self, seconds: float) -> None:
        self.shift[0] += seconds


def texts(messages: list[Outbound], chat: str) -> list[str]:
    return [m.text for m in messages if m.chat_key == chat]


async def make_desk(db: Path | Backend, *, translator: OfflineTranslator | None = None,
                    hours: str = ALWAYS, shift: list[float] | None = None,
                    catalog: CatalogSet | None = None) -> Desk:
    shift = shift if shift is not None else [0.0]
    clock = lambda: time.time() + shift[0]  # noqa: E731
    store = await (db.open(clock) if isinstance(db, Backend) else SqliteStore.open(db, clock=clock))
    library = load_library([FIXTURES])
    localizer = Localizer(catalog or CatalogSet(), translator)
    desk = HandoverDesk(store, localizer, translator,
                        DeskSettings(offer_delay_seconds=120, volunteer_timeout_seconds=600,
                                     user_timeout_seconds=1800, hours=hours),
                        clock=lambda: time.time() + shift[0], flow_queues=library.handover_queues)
    transport = MemoryTransport()
    dispatcher = Dispatcher(store, lambda: library, localizer, transport, desk=desk)
    return Desk(store, dispatcher, transport, shift)


@pytest.fixture
async def desk(tmp_path: Path) -> AsyncIterator[Desk]:
    made = await make_desk(tmp_path / "bot.sqlite3")
    for volunteer in (FA, EN, AWAY):
        await made.store.add_volunteer(volunteer)
    yield made
    await made.store.close()


async def hand_over(desk: Desk, chat: str = USER, language_number: str = "4") -> list[Outbound]:
    """A person picks a language (4 = فارسی), opens 'talk to a person' (menu item 2)."""
    await desk.send(chat, "hi")
    await desk.send(chat, language_number)
    return await desk.send(chat, "2")


async def test_unregistered_person_cannot_use_volunteer_commands(desk: Desk) -> None:
    await desk.send(USER, "hi")
    replies = await desk.send(USER, "/take")
    assert [m.key for m in replies] == ["system.unknown_command", "choose_language.pick"]
    assert await desk.store.entries(Status.WAITING) == []


async def test_queued_person_is_told_place_and_wait_and_language_speakers_are_offered_first(
        desk: Desk) -> None:
    await desk.send(FA.chat_key, "/available")
    await desk.send(EN.chat_key, "/available")
    replies = await hand_over(desk)
    notice = next(m for m in replies if m.key == "handover.queued")
    assert notice.chat_key == USER and notice.language == "en"  # no fa catalog in this test
    assert "Your place in the queue: 1." in notice.text
    assert "about 15 minutes" in notice.text
    assert [b.label for b in notice.buttons] == ["Leave the queue"]
    offers = [m for m in replies if m.key == "desk.offer"]
    assert [m.chat_key for m in offers] == [FA.chat_key]  # speaks Persian; Zara is away
    assert "Language: Persian (فارسی)" in offers[0].text and "Asked for a person" in offers[0].text
    # Emma does not speak Persian: she is offered the chat only after the delay.
    desk.later(60)
    await desk.dispatcher.tick()
    assert desk.transport.take() == []
    desk.later(90)
    await desk.dispatcher.tick()
    [late] = desk.transport.take()
    assert late.chat_key == EN.chat_key and "machine translation" in late.text
    await desk.dispatcher.tick()
    assert desk.transport.take() == []  # offered once only


async def test_two_volunteers_racing_for_one_chat_one_wins(desk: Desk) -> None:
    for v in (FA, EN):
        await desk.send(v.chat_key, "/available")
    await hand_over(desk)
    desk.later(500)
    await desk.dispatcher.tick()  # both have been offered it now
    [entry] = await desk.store.entries(Status.WAITING)
    desk.transport.take()
    await asyncio.gather(*(desk.dispatcher.handle(Inbound.from_text(v.chat_key, f"/take {entry.id}"))
                           for v in (FA, EN)))
    sent = desk.transport.take()
    won = [m.chat_key for m in sent if m.text.startswith(f"You are now in chat #{entry.id}")]
    lost = [m.chat_key for m in sent if "was just taken by someone else" in m.text]
    assert len(won) == 1 and len(lost) == 1 and set(won + lost) == {FA.chat_key, EN.chat_key}
    assert [m.key for m in sent if m.chat_key == USER] == ["handover.joined"]
    taken = await desk.store.queue_entry(entry.id)
    assert taken is not None and taken.status is Status.ASSIGNED and taken.volunteer == won[0]


async def test_relay_both_ways_and_no_flows_while_held(desk: Desk) -> None:
    await desk.send(FA.chat_key, "/available")
    await hand_over(desk)
    card = await desk.send(FA.chat_key, "/take")
    assert "Language: Persian (فارسی)" in card[0].text and "From the conversation:" in card[0].text
    to_volunteer = await desk.send(USER, "1")  # would pick a menu item; here it is a message
    assert texts(to_volunteer, FA.chat_key)[0].endswith(": 1")
    assert texts(to_volunteer, USER) == []
    to_user = await desk.send(FA.chat_key, "Hello, I am Farid. How can I help?")
    assert texts(to_user, USER) == ["Hello, I am Farid. How can I help?"]
    sticker = await desk.dispatcher.handle(Inbound(USER, InboundKind.MEDIA, media="sticker"))
    assert sticker is None
    sent = desk.transport.take()
    assert "[the person sent a sticker" in texts(sent, FA.chat_key)[0]
    assert [m.key for m in sent if m.chat_key == USER] == ["handover.text_only"]
    done = await desk.send(FA.chat_key, "/done")
    assert [m.key for m in done if m.chat_key == USER] == ["handover.closed"]
    after = await desk.send(USER, "hello")
    assert [m.key for m in after] == ["main_menu.choose"]  # flows run again


async def test_volunteer_sees_only_chats_offered_to_them(desk: Desk) -> None:
    await desk.send(EN.chat_key, "/available")
    await hand_over(desk)  # Persian: not offered to Emma yet
    [entry] = await desk.store.entries(Status.WAITING)
    listing = await desk.send(EN.chat_key, "/queue")
    assert texts(listing, EN.chat_key) == ["No chat is waiting for you."]
    refused = await desk.send(EN.chat_key, f"/take {entry.id}")
    assert "That chat is not waiting for you" in texts(refused, EN.chat_key)[0]
    assert (await desk.store.queue_entry(entry.id)).status is Status.WAITING  # type: ignore[union-attr]


async def test_priority_crisis_then_deadline_then_oldest(desk: Desk, tmp_path: Path) -> None:
    await desk.send(FA.chat_key, "/available")
    # normal (talk to a person), then deadline (claim refused), then another normal
    await hand_over(desk, "test:a")
    for text in ("hi", "4", "1", "1", "details"):
        await desk.send("test:b", text)
    await hand_over(desk, "test:c")
    order = [e.chat_key for e in await desk.store.entries(Status.WAITING)]
    assert order == ["test:b", "test:a", "test:c"]
    listing = texts(await desk.send(FA.chat_key, "/queue"), FA.chat_key)[0]
    assert listing.index("deadline") < listing.index("normal")
    card = await desk.send(FA.chat_key, "/take")
    assert "Priority: deadline" in card[0].text


async def test_leave_release_transfer_and_timeouts(desk: Desk) -> None:
    await desk.send(FA.chat_key, "/available")
    replies = await hand_over(desk)
    leave = next(m for m in replies if m.key == "handover.queued").buttons[0].callback
    left = await desk.tap(USER, leave)
    assert [m.key for m in left] == ["handover.left"]
    assert await desk.store.entries(Status.WAITING) == []

    await hand_over(desk, "test:second")
    await desk.send(FA.chat_key, "/take")
    released = await desk.send(FA.chat_key, "/release")
    assert [m.key for m in released if m.chat_key == "test:second"] == ["handover.released"]
    await desk.send(FA.chat_key, "/take")
    moved = await desk.send(FA.chat_key, "/transfer legal")
    [entry] = await desk.store.entries(Status.WAITING)
    assert entry.queue == "legal" and "went to the legal queue" in texts(moved, FA.chat_key)[0]

    await desk.send(FA.chat_key, f"/take {entry.id}")
    desk.later(601)  # the volunteer went silent: back to the queue
    await desk.dispatcher.tick()
    sent = desk.transport.take()
    assert "went back to the queue" in texts(sent, FA.chat_key)[0]
    assert (await desk.store.queue_entry(entry.id)).status is Status.WAITING  # type: ignore[union-attr]

    await desk.send(FA.chat_key, f"/take {entry.id}")
    await desk.send(FA.chat_key, "Are you there?")
    for _ in range(3):
        desk.later(500)
        await desk.send(FA.chat_key, "Hello?")  # the volunteer keeps trying...
    desk.later(400)  # ...but the person has been silent for 1900 s: closed politely
    await desk.dispatcher.tick()
    sent = desk.transport.take()
    assert [m.key for m in sent if m.chat_key == "test:second"] == ["handover.user_timeout"]
    assert (await desk.store.queue_entry(entry.id)).status is Status.CLOSED  # type: ignore[union-attr]


async def test_out_of_hours_notice(tmp_path: Path) -> None:
    made = await make_desk(tmp_path / "bot.sqlite3", hours="03:00-03:01")
    try:
        replies = await hand_over(made)
        notice = next(m for m in replies if m.key == "handover.queued")
        assert "Volunteers are here 03:00-03:01 (UK time)" in notice.text
        assert "call 999" in notice.text
    finally:
        await made.store.close()


async def test_restart_in_the_middle_of_a_relay_loses_nothing(tmp_path: Path) -> None:
    db = tmp_path / "bot.sqlite3"
    first = await make_desk(db)
    await first.store.add_volunteer(FA)
    await first.send(FA.chat_key, "/available")
    await hand_over(first)
    await first.send(FA.chat_key, "/take")
    first.transport.fail_next = 1  # the platform is down as the person writes
    await first.send(USER, "My letter says I must leave", update_id="u-1")
    await first.store.close()  # the process dies here

    second = await make_desk(db)
    try:
        await second.dispatcher.flush_outbox()
        resent = second.transport.take()
        assert [m.text.endswith("My letter says I must leave") for m in resent] == [True]
        # The platform redelivers the same update after the restart: relayed once only.
        assert await second.send(USER, "My letter says I must leave", update_id="u-1") == []
        reply = await second.send(FA.chat_key, "Thank you. Do you have the date?")
        assert texts(reply, USER) == ["Thank you. Do you have the date?"]
    finally:
        await second.store.close()


def desk_of(made: Desk) -> HandoverDesk:
    assert made.dispatcher.desk is not None
    return made.dispatcher.desk


async def test_removing_a_volunteer_who_holds_a_chat_requeues_it_and_cuts_them_off(
        desk: Desk) -> None:
    for v in (FA, EN):
        await desk.send(v.chat_key, "/available")
    await hand_over(desk, "test:a")
    desk.later(150)
    await desk.dispatcher.tick()  # Emma is offered the chat too, after the delay
    await desk.send(FA.chat_key, "/take")
    await hand_over(desk, "test:b")  # offered to Farid, who is busy
    assert len(await desk.store.offered_to(FA.chat_key)) == 2
    desk.transport.take()

    removal = await desk_of(desk).remove_volunteer(FA.chat_key)
    assert removal is not None and removal.requeued is not None
    await desk.dispatcher.deliver({p.message.chat_key for p in removal.pending})
    sent = desk.transport.take()
    assert [m.key for m in sent if m.chat_key == "test:a"] == ["handover.released"]
    assert texts(sent, FA.chat_key) == [
        f"You are no longer registered as a volunteer on this desk. Chat #{removal.requeued.id} "
        "went back to the queue."]
    assert removal.requeued.status is Status.WAITING and removal.requeued.volunteer is None
    assert await desk.store.offered_to(FA.chat_key) == set()
    assert await desk.store.volunteer(FA.chat_key) is None

    after = await desk.send("test:a", "Hello? Are you still there?")
    assert texts(after, FA.chat_key) == [] and texts(after, "test:a")  # the flows answer
    card = await desk.send(EN.chat_key, f"/take {removal.requeued.id}")  # still offered to Emma
    assert texts(card, EN.chat_key)[0].startswith(f"You are now in chat #{removal.requeued.id}")
    assert texts(await desk.send("test:a", "yes"), EN.chat_key)[0].startswith(
        f"#{removal.requeued.id}: yes")


async def test_a_removal_cut_short_is_healed_by_the_person_s_next_message_and_the_clock(
        desk: Desk) -> None:
    await desk.send(FA.chat_key, "/available")
    await hand_over(desk, "test:a")
    await desk.send(FA.chat_key, "/take")
    await hand_over(desk, "test:b")
    await desk.send(AWAY.chat_key, "/available")
    await desk.send(AWAY.chat_key, "/take")
    # Only the volunteers' rows went (the process died before requeueing their chats).
    assert await desk.store.remove_volunteer(FA.chat_key)
    assert await desk.store.remove_volunteer(AWAY.chat_key)
    desk.transport.take()
    sent = await desk.send("test:a", "My letter came today")
    assert [m.key for m in sent] == ["handover.released"]
    await desk.dispatcher.tick()
    sent = desk.transport.take()
    assert [(m.chat_key, m.key) for m in sent] == [("test:b", "handover.released")]
    assert [e.chat_key for e in await desk.store.entries(Status.WAITING)] == ["test:a", "test:b"]


def test_volunteers_remove_command_returns_the_held_chat_to_the_queue(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "bot.sqlite3"
    volunteer = Volunteer("console:farid", "Farid", ("fa", "en"), ("*",))

    async def hold() -> None:
        made = await make_desk(db)
        try:
            await made.store.add_volunteer(volunteer)
            await made.send(volunteer.chat_key, "/available")
            await hand_over(made)
            await made.send(volunteer.chat_key, "/take")
        finally:
            await made.store.close()

    asyncio.run(hold())
    assert main(["volunteers", "remove", volunteer.chat_key, "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "removed console:farid" in out and "went back to the queue" in out

    async def deliver() -> list[Outbound]:
        made = await make_desk(db)  # the running bot's next outbox round
        try:
            await made.dispatcher.flush_outbox()
            assert await made.store.entries(Status.ASSIGNED) == []
            return made.transport.take()
        finally:
            await made.store.close()

    sent = asyncio.run(deliver())
    [told] = [m for m in sent if m.chat_key == USER]
    assert (told.key, told.language) == ("handover.released", "fa")  # the shipped Persian catalog
    assert [m.text.split(".")[0] for m in sent if m.chat_key == volunteer.chat_key] == [
        "You are no longer registered as a volunteer on this desk"]


async def test_transfer_accepts_only_queues_someone_serves(desk: Desk) -> None:
    await desk.store.add_volunteer(Volunteer("test:hana", "Hana", ("en",), ("housing",)))
    await desk.send(FA.chat_key, "/available")
    await hand_over(desk)
    await desk.send(FA.chat_key, "/take")
    for typed, first in (("/transfer lgeal", "No volunteer serves a queue called 'lgeal'."),
                         ("/transfer", "Say which queue, e.g. /transfer general.")):
        [reply] = texts(await desk.send(FA.chat_key, typed), FA.chat_key)
        # Flow queues (general, legal) and volunteers' named ones; "*" adds no name.
        assert reply == (f"{first} Queues you can transfer to: general, housing, legal, safeguarding. "
                         "Chat #1 is still with you.")
    held = await desk.store.held_by(FA.chat_key)
    assert held is not None and held.queue == "general"
    moved = await desk.send(FA.chat_key, "/transfer Housing")
    assert "went to the housing queue" in texts(moved, FA.chat_key)[0]


async def test_a_chat_in_a_queue_nobody_serves_is_offered_to_every_volunteer(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    made = await make_desk(tmp_path / "bot.sqlite3")
    lena = Volunteer("test:lena", "Lena", ("en",), ("legal",))
    try:
        await made.store.add_volunteer(lena)
        await made.send(lena.chat_key, "/available")
        replies = await hand_over(made, language_number="1")  # "talk to a person": general
        notice = next(m for m in replies if m.key == "handover.queued")
        assert "about 15 minutes" in notice.text  # not told that no one is there
        [offer] = [m for m in replies if m.chat_key == lena.chat_key]
        assert "Queue: general (no volunteer serves this queue, so it is offered to everyone)" \
            in offer.text
        assert "queue 'general', which no registered volunteer serves" in caplog.text
        await made.send(lena.chat_key, "/take")
        # Nor may she pass it on to that queue: no one would see it there.
        [reply] = texts(await made.send(lena.chat_key, "/transfer general"), lena.chat_key)
        assert reply.startswith("No volunteer serves a queue called 'general'. Queues you can "
                                "transfer to: legal.")
    finally:
        await made.store.close()


@pytest.fixture
def translator(tmp_path: Path, no_network_attempts: NetworkGuard) -> Iterator[OfflineTranslator]:
    packages = tmp_path / "packages"
    models = tmp_path / "models"
    install_models([build_tiny_model(models, "fa", "en", {"سلام": "hello", "دوست": "friend"}),
                    build_tiny_model(models, "en", "fa", {"hello": "سلام", "friend": "دوست"})],
                   packages)
    made = OfflineTranslator(packages, timeout=10)
    yield made
    made.close()


async def test_relay_adds_a_labelled_machine_translation(tmp_path: Path,
                                                         translator: OfflineTranslator) -> None:
    made = await make_desk(tmp_path / "bot.sqlite3", translator=translator)
    try:
        await made.store.add_volunteer(EN)
        await made.send(EN.chat_key, "/available")
        await hand_over(made)
        made.later(500)
        await made.dispatcher.tick()
        await made.send(EN.chat_key, "/take")
        to_volunteer = texts(await made.send(USER, "سلام دوست"), EN.chat_key)[0]
        assert to_volunteer.endswith("سلام دوست\n[machine translation, may be wrong]: hello friend")
        to_user = texts(await made.send(EN.chat_key, "hello friend"), USER)[0]
        # The original as written, then the labelled translation (as the volunteer sees it).
        assert to_user == "hello friend\n\n(Translated by a computer. It may have mistakes.)\nسلام دوست"
    finally:
        await made.store.close()


async def test_console_volunteer_in_another_process_gets_relayed_messages(tmp_path: Path) -> None:
    """Two processes on one SQLite file: each delivers only its own console's messages."""
    db = tmp_path / "bot.sqlite3"
    volunteer = Volunteer("console:vol", "Vol", ("en",), ("*",))
    user_side = await make_desk(db)
    volunteer_side = await make_desk(db)
    user_out: list[str] = []
    volunteer_out: list[str] = []
    user_console = _Console("console:alice", user_out)
    volunteer_console = _Console("console:vol", volunteer_out)
    user_side.dispatcher.transport = user_console
    volunteer_side.dispatcher.transport = volunteer_console
    try:
        await user_side.store.add_volunteer(volunteer)
        await volunteer_side.send("console:vol", "/available")
        for text in ("hi", "1", "2"):
            await user_side.send("console:alice", text)
        assert not any("New chat waiting" in t for t in volunteer_out)  # not this process's
        await volunteer_side.dispatcher.flush_outbox()  # its half-second poll
        assert any("New chat waiting" in t for t in volunteer_out)
        await volunteer_side.send("console:vol", "/take")
        await user_side.dispatcher.flush_outbox()
        assert user_out[-1].startswith("A volunteer has joined this chat.")
    finally:
        await user_side.store.close()
        await volunteer_side.store.close()


class _Console(ConsoleTransport):
    def __init__(self, chat_key: str, out: list[str]) -> None:
        super().__init__(user=chat_key.partition(":")[2])
        self.out = out

    async def send(self, message: Outbound) -> None:
        self.out.append(message.text)


def test_volunteers_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "bot.sqlite3")
    assert main(["volunteers", "add", "12345", "--name", "Farid", "--languages", "fa,prs,en",
                 "--queues", "legal,general", "--db", db]) == 0
    assert "registered Farid (telegram:12345)" in capsys.readouterr().out
    assert main(["volunteers", "add", "console:vol", "--name", "Local", "--languages", "en",
                 "--db", db]) == 0
    assert main(["volunteers", "list", "--db", db]) == 0
    listing = capsys.readouterr().out
    assert "telegram:12345" in listing and "fa,prs,en" in listing and "away" in listing
    assert main(["volunteers", "add", "x", "--name", "X", "--languages", "en", "--db", db]) == 1
    assert main(["volunteers", "add", "1", "--name", "X", "--languages", "xx", "--db", db]) == 1
    assert "unknown language(s) xx" in capsys.readouterr().err
    assert main(["volunteers", "remove", "12345", "--db", db]) == 0
    assert main(["volunteers", "remove", "12345", "--db", db]) == 1


async def test_typing_while_waiting_is_kept_for_the_volunteer_and_says_the_place(
        tmp_path: Path, translator: OfflineTranslator) -> None:
    made = await make_desk(tmp_path / "bot.sqlite3", translator=translator)
    try:
        await hand_over(made, "test:first")  # someone else is ahead in the queue
        await hand_over(made)
        replies = await made.send(USER, "سلام دوست")  # Persian, while waiting
        [notice] = replies
        assert notice.key == "handover.still_waiting"
        assert "Your place in the queue: 2." in notice.text
        assert "they will see what you wrote here" in notice.text
        assert [b.label.strip("\u2068\u2069") for b in notice.buttons] == ["Leave the queue"]
        await made.send(USER, "my letter\nsays Friday")
        entry = await made.store.open_entry(USER)
        assert entry is not None and entry.status is Status.WAITING
        assert entry.summary == ("Asked for a person\nWhile waiting, the person wrote:"
                                 "\n- سلام دوست\n- my letter says Friday")
        assert [m.key for m in await made.send(USER, "menu")] == ["main_menu.choose"]  # flows
        await made.send(USER, "2")  # a topic that hands over again: that is a new place
        replaced = await made.store.queue_entry(entry.id)
        assert replaced is not None and replaced.status is Status.CLOSED
    finally:
        await made.store.close()


async def test_the_volunteer_card_shows_what_was_written_while_waiting_translated(
        tmp_path: Path, translator: OfflineTranslator) -> None:
    made = await make_desk(tmp_path / "bot.sqlite3", translator=translator)
    try:
        await made.store.add_volunteer(EN)
        await hand_over(made)
        await made.send(USER, "سلام دوست")
        await made.send(EN.chat_key, "/available")
        made.later(500)
        await made.dispatcher.tick()
        [card] = [t for t in texts(await made.send(EN.chat_key, "/take"), EN.chat_key)
                  if t.startswith("You are now in chat")]
        assert ("From the conversation: Asked for a person\nWhile waiting, the person wrote:\n"
                "- سلام دوست\n[machine translation, may be wrong]: hello friend") in card
    finally:
        await made.store.close()


async def test_crisis_words_while_waiting_still_get_the_crisis_reply_first(tmp_path: Path) -> None:
    made = await make_desk(tmp_path / "bot.sqlite3")  # the fixtures' safety_check flow
    try:
        await hand_over(made)
        replies = await made.send(USER, "I cannot wait, I will kill myself")
        assert [m.key for m in replies] == ["safety_check.heard", "safety_check.offer"]
        crisis = await made.tap(USER, replies[-1].buttons[0].callback)
        assert [m.key for m in crisis] == ["handover.queued"]
        [entry] = await made.store.entries(Status.WAITING)
        assert entry.priority.value == "crisis"  # the new place replaced the old one
        left = await made.send(USER, "/leave")
        assert [m.key for m in left] == ["handover.left"]
    finally:
        await made.store.close()
