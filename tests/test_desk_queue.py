"""The volunteer desk with a long queue: places, offers and /queue read by single queries
must agree with the rules spelled out plainly here, and what one volunteer is sent stays
short however many wait. Real dispatcher, desk and store, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import random
import re
import sqlite3
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from bot import limits
from bot.engine.events import Handover
from bot.engine.session import Session
from bot.flowspec.model import Priority
from bot.handover.desk import HandoverDesk
from bot.handover.model import QueueEntry, Status, Volunteer
from bot.i18n.catalog import CatalogSet
from bot.i18n.localizer import Localizer
from bot.messages import Outbound
from bot.storage.base import TurnRecord
from bot.storage.sqlite import MIGRATIONS, SqliteStore
from bot.text.languages import language
from tests.conftest import Backend
from tests.test_handover import Desk, hand_over, make_desk, texts

pytestmark = pytest.mark.backends

DELAY = 120  # make_desk's offer_delay_seconds
EN = Volunteer("test:emma", "Emma", ("en",), ("legal", "general"))
PS = Volunteer("test:gul", "Gul", ("ps", "en"), ("safeguarding",))
UR = Volunteer("test:imran", "Imran", ("ur",), ("legal",))
FA = Volunteer("test:farid", "Farid", ("fa", "prs"), ("legal",))
QUEUES = ("legal", "general", "safeguarding", "housing")  # nobody serves housing
LANGUAGES = ("en", "ps", "ur", "fa", "hi", None)
PRIORITIES = (Priority.NORMAL,) * 6 + (Priority.DEADLINE, Priority.DEADLINE, Priority.CRISIS)


@pytest.fixture
async def desk(backend: Backend) -> AsyncIterator[Desk]:
    made = await make_desk(backend)
    for volunteer in (EN, PS, UR, FA):
        await made.store.add_volunteer(volunteer)
    yield made
    await made.store.close()


def desk_of(made: Desk) -> HandoverDesk:
    assert made.dispatcher.desk is not None
    return made.dispatcher.desk


def handovers(specs: Sequence[tuple[str, Priority, str | None]],
              prefix: str = "test:w") -> list[TurnRecord]:
    return [TurnRecord(f"{prefix}{n}", Session(language=lang, started=True), (),
                       [Handover("f", "s", queue, priority, f"chat {n} about {queue}")])
            for n, (queue, priority, lang) in enumerate(specs)]


async def queue_chats(made: Desk, specs: Sequence[tuple[str, Priority, str | None]], *,
                      apart: float = 1.0, prefix: str = "test:w") -> None:
    """Chats handed over through the store's turn commits, ``apart`` seconds from each other,
    without a round of offers yet."""
    for turn in handovers(specs, prefix):
        await made.store.commit_turn(turn)
        made.later(apart)


def mixed(count: int, seed: int = 1) -> list[tuple[str, Priority, str | None]]:
    rng = random.Random(seed)
    return [(rng.choice(QUEUES), rng.choice(PRIORITIES), rng.choice(LANGUAGES)) for _ in range(count)]


def in_queue_order(entries: list[QueueEntry]) -> list[QueueEntry]:
    return sorted(entries, key=lambda e: (e.priority.rank, e.created_at, e.id))


async def expected_offers(made: Desk) -> set[tuple[int, str]]:
    """The desk's rules, spelled out one chat and one volunteer at a time (as the desk once
    did): an available volunteer of the chat's queue, or anyone if nobody registered serves
    it; speaking the language, or once the chat has waited the delay."""
    registered = await made.store.volunteers()
    now = desk_of(made).clock()
    owed = set()
    for entry in await made.store.entries(Status.WAITING):
        served = any(v.serves(entry.queue) for v in registered)
        for v in registered:
            if v.available and (v.serves(entry.queue) or not served) and (
                    v.speaks(entry.language) or now - entry.created_at >= DELAY):
                owed.add((entry.id, v.chat_key))
    return owed


async def recorded_offers(made: Desk) -> set[tuple[int, str]]:
    waiting = {e.id for e in await made.store.entries(Status.WAITING)}
    return {(i, v.chat_key) for v in await made.store.volunteers()
            for i in await made.store.offered_to(v.chat_key) if i in waiting}


def take_ids(messages: list[Outbound]) -> list[int]:
    return [int(b.callback.removeprefix("vt.")) for m in messages for b in m.buttons
            if b.callback.startswith("vt.")]


async def test_places_of_chats_queued_at_the_same_moment_follow_their_order(
        backend: Backend) -> None:
    store = await backend.open(clock=lambda: 1_000_000.0)
    try:
        # Many turns in one transaction, all at one clock reading: ties go by arrival.
        await asyncio.gather(*(store.commit_turn(t) for t in handovers(mixed(200))))
        waiting = await store.entries(Status.WAITING)
        assert len({e.created_at for e in waiting}) == 1
        assert [(e.priority.rank, e.id) for e in waiting] == sorted(
            (e.priority.rank, e.id) for e in waiting)
        assert [await store.queue_position(e.id) for e in waiting] == list(range(1, 201))
    finally:
        await store.close()


async def test_places_in_a_long_queue_follow_priority_then_age(desk: Desk) -> None:
    await queue_chats(desk, mixed(150))
    await queue_chats(desk, mixed(190, seed=2), apart=-1, prefix="test:x")  # older, arrived later
    waiting = await desk.store.entries(Status.WAITING)
    expected = in_queue_order(waiting)
    assert waiting == expected and len(waiting) == 340
    assert expected[0].priority is Priority.CRISIS and expected[-1].priority is Priority.NORMAL
    positions = [await desk.store.queue_position(e.id) for e in expected]
    assert positions == list(range(1, 341))
    # The counts behind a place follow takes, closes, requeues, replacements and /forget.
    for volunteer in (EN, UR):
        await desk.send(volunteer.chat_key, "/available")
    desk.later(DELAY)
    await desk.dispatcher.tick()
    await desk.send(EN.chat_key, "/take")
    await desk.send(UR.chat_key, "/take")
    await desk.send(UR.chat_key, "/release")
    await desk.store.close_entry(expected[5].id, "left the queue")
    await desk.store.forget(expected[9].chat_key)
    await queue_chats(desk, [("legal", Priority.CRISIS, "fa")])  # replaces test:w0's place
    waiting = in_queue_order(await desk.store.entries(Status.WAITING))
    assert len(waiting) == 340 - 3
    assert [await desk.store.queue_position(e.id) for e in waiting] == list(range(1, len(waiting) + 1))
    assert await desk.store.queue_position(expected[5].id) is None


async def test_a_person_is_told_their_place_behind_everyone_waiting(desk: Desk) -> None:
    await desk.send(EN.chat_key, "/available")
    await queue_chats(desk, mixed(57))
    notice = next(m for m in await hand_over(desk, language_number="1") if m.key == "handover.queued")
    assert "Your place in the queue: 58." in notice.text
    crisis = sum(1 for e in await desk.store.entries(Status.WAITING) if e.priority is Priority.CRISIS)
    # A crisis (the safeguarding path) goes ahead of everyone but the crises already waiting.
    for text in ("hi", "1", "I want to die", "1"):  # English, safety words, "Yes"
        replies = await desk.send("test:unsafe", text)
    [queued] = [m for m in replies if m.key == "handover.queued"]
    assert crisis and f"Your place in the queue: {crisis + 1}." in queued.text
    entry = await desk.store.open_entry("test:unsafe")
    assert entry is not None and entry.priority is Priority.CRISIS


async def test_offers_follow_language_queue_and_delay_with_many_chats(desk: Desk) -> None:
    await queue_chats(desk, mixed(120), apart=2)  # the first half has waited past the delay
    for volunteer in (EN, PS, UR):
        await desk.store.set_available(volunteer.chat_key, True)
    await desk.dispatcher.tick()
    first = await recorded_offers(desk)
    assert first == await expected_offers(desk)
    assert {v for _, v in first} == {EN.chat_key, PS.chat_key, UR.chat_key}
    # Unserved (housing) chats reach everyone; Imran serves only legal and reads Urdu.
    housing = {e.id for e in await desk.store.entries(Status.WAITING) if e.queue == "housing"}
    assert {i for i, v in first if v == UR.chat_key} - housing and housing & {
        i for i, v in first if v == UR.chat_key}
    desk.later(DELAY)
    await desk.dispatcher.tick()
    later = await recorded_offers(desk)
    assert later == await expected_offers(desk) and later > first
    await desk.send(FA.chat_key, "/available")  # joins: owed everything they may see
    assert await recorded_offers(desk) == await expected_offers(desk)
    desk.transport.take()
    await desk.dispatcher.tick()
    assert desk.transport.take() == []  # nothing offered twice


async def test_chats_queued_while_a_volunteer_was_away_are_offered_when_they_return(
        desk: Desk, backend: Backend) -> None:
    other = await make_desk(backend, shift=desk.shift)  # a second process
    try:
        await desk.send(EN.chat_key, "/available")
        await desk.send(EN.chat_key, "/away")
        await other.send(UR.chat_key, "/available")
        # English, general: Emma's queue. The other process's round offers it to no one.
        sent = await hand_over(other, "test:a", language_number="1")
        assert "handover.queued" in [m.key for m in sent] and "desk.offer" not in [m.key for m in sent]
        back = await desk.send(EN.chat_key, "/available")
        [offer] = [m for m in back if m.key == "desk.offer"]
        assert "Queue: general" in offer.text
    finally:
        await other.store.close()
    # Another process registers a volunteer, already available: the desk's next round sees it.
    await desk.store.add_volunteer(Volunteer("test:lena", "Lena", ("en",), ("general",),
                                             available=True))
    await desk.dispatcher.tick()
    assert [m.chat_key for m in desk.transport.take() if m.key == "desk.offer"] == ["test:lena"]


async def test_a_queue_left_without_its_volunteer_is_offered_to_everyone(desk: Desk) -> None:
    hana = Volunteer("test:hana", "Hana", ("en",), ("housing",))
    await desk.store.add_volunteer(hana)
    await desk.send(hana.chat_key, "/available")
    await desk.send(EN.chat_key, "/available")
    await queue_chats(desk, [("housing", Priority.NORMAL, "en")])
    await desk.dispatcher.tick()
    assert {v for _, v in await recorded_offers(desk)} == {hana.chat_key}
    removal = await desk_of(desk).remove_volunteer(hana.chat_key)
    assert removal is not None
    assert [m.message.chat_key for m in removal.pending if m.message.key == "desk.offer"] == [
        EN.chat_key]
    assert await recorded_offers(desk) == await expected_offers(desk)


async def test_available_with_a_long_queue_sends_a_few_offers_and_one_line_for_the_rest(
        desk: Desk) -> None:
    specs = [("legal", Priority.NORMAL, "en")] * 40 + [("general", Priority.DEADLINE, "en")] * 7
    await queue_chats(desk, specs)
    sent = await desk.send(EN.chat_key, "/available")
    assert [m.key for m in sent] == ["desk"] + ["desk.offer"] * 3 + ["desk"]
    offers = [m for m in sent if m.key == "desk.offer"]
    order = in_queue_order(await desk.store.entries(Status.WAITING))
    assert take_ids(offers) == [e.id for e in order[:3]]  # the most urgent: deadlines, oldest
    assert all("Priority: deadline" in m.text for m in offers)
    assert sent[-1].text == ("And 44 more waiting for you (4 deadline, 40 normal): /queue lists "
                             "them, most urgent first.")
    # All of them were offered: any may be taken.
    assert len(await desk.store.offered_to(EN.chat_key)) == 47
    card = await desk.send(EN.chat_key, f"/take {order[-1].id}")
    assert texts(card, EN.chat_key)[0].startswith(f"You are now in chat #{order[-1].id}")


async def test_every_crisis_chat_is_offered_with_a_take_button(desk: Desk) -> None:
    specs = ([("legal", Priority.NORMAL, "en")] * 30 + [("legal", Priority.CRISIS, "en")] * 14
             + [("general", Priority.DEADLINE, "en")] * 3)
    await queue_chats(desk, specs)
    sent = await desk.send(EN.chat_key, "/available")
    crisis = [e.id for e in in_queue_order(await desk.store.entries(Status.WAITING))
              if e.priority is Priority.CRISIS]
    offers = [m for m in sent if m.key == "desk.offer"]
    lists = sent[1 + len(offers):]
    assert take_ids(offers) == crisis[:3]
    # The other 11 crises: a line and a Take button each, BUTTONS_MAX a message.
    assert [len(m.buttons) for m in lists] == [limits.BUTTONS_MAX, 1]
    assert take_ids(lists) == crisis[3:]
    assert lists[0].text.startswith("And 44 more waiting for you (11 crisis, 3 deadline, 30 normal)")
    shown = "\n".join(m.text for m in lists)
    assert all(re.search(rf"^#{i} · crisis · English · legal · waiting \d+ min", shown, re.M)
               for i in crisis[3:])
    # A crisis queued while the volunteer is available is offered in full at once.
    await queue_chats(desk, [("legal", Priority.CRISIS, "en")])
    await desk.dispatcher.tick()
    [offer] = desk.transport.take()
    assert offer.key == "desk.offer" and "Priority: crisis" in offer.text


async def test_queue_is_a_summary_with_pages(desk: Desk) -> None:
    specs = mixed(60, seed=3) + [("legal", Priority.CRISIS, "fa")] * 6
    await queue_chats(desk, specs)
    await desk.send(FA.chat_key, "/available")
    desk.later(DELAY)
    await desk.dispatcher.tick()  # Farid reads Persian and Dari, serves legal: the rest later
    desk.transport.take()
    mine = in_queue_order([e for e in await desk.store.entries(Status.WAITING)
                           if e.id in await desk.store.offered_to(FA.chat_key)])
    assert len(mine) > 15
    [page] = texts(await desk.send(FA.chat_key, "/queue"), FA.chat_key)
    head = page.partition("\n\n")[0]
    priorities = Counter(e.priority for e in mine)
    languages = Counter(language(e.language).english_name for e in mine)
    assert head.splitlines()[0] == f"{len(mine)} chats waiting for you."
    assert head.splitlines()[1] == "By priority: " + ", ".join(
        f"{priorities[p]} {p.value}" for p in sorted(priorities, key=lambda p: p.rank))
    assert head.splitlines()[2] == "By language: " + ", ".join(
        f"{n} {name}" for name, n in sorted(languages.items(), key=lambda i: (-i[1], i[0])))
    crisis = priorities[Priority.CRISIS]
    assert crisis > limits.DESK_QUEUE_PAGE
    first = crisis  # every crisis on the first page
    seen: list[int] = []
    number, buttons = 1, []
    while True:
        sent = (await desk.send(FA.chat_key, "/queue") if number == 1 else
                await desk.tap(FA.chat_key, buttons[-1].callback))
        [message] = [m for m in sent if m.chat_key == FA.chat_key]
        ids = [int(i) for i in re.findall(r"^#(\d+) · ", message.text, re.M)]
        assert len(ids) == (first if number == 1 else min(5, len(mine) - len(seen)))
        seen += ids
        buttons = list(message.buttons)
        assert all(b.callback.isascii() and len(b.callback.encode()) <= 64 for b in buttons)
        assert take_ids([message]) == ids[:limits.BUTTONS_MAX - 1]
        assert len(message.text) < limits.TELEGRAM_TEXT_MAX
        if not buttons[-1].callback.startswith("vq."):
            break
        assert buttons[-1].callback == f"vq.{number + 1}"
        number += 1
    assert seen == [e.id for e in mine]  # every chat once, most urgent and oldest first
    assert f"/queue {number}" not in message.text
    [past] = texts(await desk.send(FA.chat_key, f"/queue {number + 1}"), FA.chat_key)
    assert past == f"The queue has {number} pages for you now ({len(mine)} chats). /queue shows the first."
    [again] = texts(await desk.send(FA.chat_key, f"/queue {number}"), FA.chat_key)
    assert re.findall(r"^#(\d+) · ", again, re.M) == [str(i) for i in seen[-len(ids):]]
    [bad] = texts(await desk.send(FA.chat_key, "/queue two"), FA.chat_key)
    assert bad == "Say which page of the queue, e.g. /queue 2."


async def test_queue_with_a_few_chats_fits_one_page(desk: Desk) -> None:
    await queue_chats(desk, [("legal", Priority.NORMAL, "fa"), ("legal", Priority.CRISIS, "prs")])
    await desk.send(FA.chat_key, "/available")
    [page] = [m for m in await desk.send(FA.chat_key, "/queue") if m.chat_key == FA.chat_key]
    entries = in_queue_order(await desk.store.entries(Status.WAITING))
    assert page.text.splitlines()[:5] == [
        "2 chats waiting for you.", "By priority: 1 crisis, 1 normal",
        "By language: 1 Dari, 1 Persian", "", "Most urgent first, 1-2 of 2:"]
    assert page.text.endswith("\n\nTap Take, or /take ID, to reply.")
    assert [b.label for b in page.buttons] == [f"Take #{e.id}" for e in entries]


async def test_schema_5_counts_the_queue_a_version_4_database_already_holds(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path)
    db.executescript("".join(MIGRATIONS[:4]) + "; PRAGMA user_version=4;")
    rows = [(f"test:{n}", "f", "s", "legal", priority, "x", "en", 1000.0 + n, status)
            for n, (priority, status) in enumerate(
                [("normal", "waiting"), ("crisis", "waiting"), ("deadline", "closed"),
                 ("deadline", "waiting"), ("normal", "assigned"), ("crisis", "waiting")])]
    db.executemany("INSERT INTO handovers (chat_key, flow, step, queue, priority, summary, "
                   "language, created_at, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    db.commit()
    db.close()
    store = await SqliteStore.open(path)
    try:
        waiting = await store.entries(Status.WAITING)
        assert [e.chat_key for e in waiting] == ["test:1", "test:5", "test:3", "test:0"]
        assert [await store.queue_position(e.id) for e in waiting] == [1, 2, 3, 4]
        made = HandoverDesk(store, Localizer(CatalogSet()))
        await store.add_volunteer(Volunteer("test:v", "V", ("en",), ("legal",), available=True))
        pending = await made.offer()  # waiting before the upgrade: due for offering
        assert sorted(await store.offered_to("test:v")) == sorted(e.id for e in waiting)
        assert len(pending) == 4  # 3 in full, one line for the last
    finally:
        await store.close()

