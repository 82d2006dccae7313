"""Privacy on disk: /forget and the retention purge leave nothing in the database's files:
SQLite's file, its WAL and -shm; PostgreSQL's table and index files (after a checkpoint).

Everything runs on a real database through the real dispatcher and desk; the check at the end
reads the raw bytes of the files, as someone with the disk would.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.dispatcher import Dispatcher
from bot.flowspec.library import default_flows_dir, load_library
from bot.handover.desk import DeskSettings, HandoverDesk
from bot.handover.model import Volunteer
from bot.i18n.catalog import CatalogSet
from bot.i18n.localizer import Localizer
from bot.messages import Inbound, InboundKind, Outbound
from bot.storage.base import Purged
from bot.storage.sqlite import SqliteStore
from bot.transports.memory import MemoryTransport
from tests.conftest import Backend

pytestmark = pytest.mark.backends

FIXTURES = Path(__file__).parent / "fixtures" / "flows"
#: Distinctive enough that finding it anywhere in the files can only mean a leak.
PERSON_ID = "7305519428"
PERSON = f"telegram:{PERSON_ID}"
SENTENCE = "My cousin Zarmina waits at the Quetzal bakery in Dudley every Thursday"
VOLUNTEER_REPLY = "Ask for Okonkwo-Abernathy at the Wolverhampton drop-in"
UPDATE_MARK = "upd-Qx7vK"  # the person's update ids (the volunteer's are kept)
VOLUNTEER = Volunteer("telegram:111", "Farid", ("en", "fa"), ("*",))


def leaks(db: Path | Backend, needles: Sequence[str]) -> list[str]:
    """Which needles appear in the database's files (SQLite: the file, its WAL and its
    shared-memory index), in UTF-8 or (for safety, though text is stored as UTF-8 here)
    UTF-16."""
    found = []
    paths = db.files() if isinstance(db, Backend) else [Path(f"{db}{s}") for s in ("", "-wal", "-shm")]
    for path in paths:
        if not path.exists():
            continue
        data = path.read_bytes()
        for needle in needles:
            for encoding in ("utf-8", "utf-16-le", "utf-16-be"):
                if needle.encode(encoding) in data:
                    found.append(f"{needle!r} ({encoding}) in {path.name}")
    return found


@dataclass
class Chat:
    dispatcher: Dispatcher
    transport: MemoryTransport
    updates: int = 0

    def update_id(self, chat: str) -> str:
        self.updates += 1
        return f"{UPDATE_MARK if chat == PERSON else 'upd'}-{self.updates}"

    async def say(self, chat: str, text: str) -> list[Outbound]:
        await self.dispatcher.handle(Inbound.from_text(chat, text, self.update_id(chat)))
        return self.transport.take()

    async def tap(self, chat: str, callback: str) -> list[Outbound]:
        await self.dispatcher.handle(Inbound(chat, InboundKind.BUTTON, button=callback,
                                             update_id=self.update_id(chat)))
        return self.transport.take()


def button(replies: list[Outbound], label: str) -> str:
    return next(b.callback for m in replies for b in m.buttons if b.label == label)


async def reach_a_volunteer_shipped(chat: Chat) -> None:
    """Shipped flows have no free-text question: the sentence is typed where a button was
    expected (not understood, so not kept), then the chat is handed over."""
    await chat.say(PERSON, "hi")
    await chat.say(PERSON, "1")  # English
    await chat.say(PERSON, SENTENCE)
    await chat.say(PERSON, "/human")
    await chat.say(PERSON, "4")  # something else: the general queue


async def reach_a_volunteer_fixture(chat: Chat) -> None:
    """The fixture flow asks for free text and puts it in the volunteer's summary."""
    await chat.say(PERSON, "hi")
    await chat.say(PERSON, "1")  # English
    await chat.say(PERSON, "1")  # claim refused
    await chat.say(PERSON, "1")  # this week
    replies = await chat.say(PERSON, SENTENCE)  # the free-text answer
    assert any(SENTENCE in m.text for m in replies if m.chat_key == VOLUNTEER.chat_key)


async def with_a_volunteer(store: Any, flows: Path, reach: Callable[[Chat], Awaitable[None]]
                           ) -> Chat:
    """The bot with a desk on the store; the person reaches the volunteer, who takes the chat."""
    library = load_library([flows])
    localizer = Localizer(CatalogSet())
    desk = HandoverDesk(store, localizer, None, DeskSettings(hours="00:00-00:00"))
    transport = MemoryTransport()
    chat = Chat(Dispatcher(store, lambda: library, localizer, transport, desk=desk), transport)
    await store.add_volunteer(VOLUNTEER)
    await chat.say(VOLUNTEER.chat_key, "/available")
    await reach(chat)
    card = await chat.say(VOLUNTEER.chat_key, "/take")
    assert card[0].text.startswith("You are now in chat #")
    return chat


@pytest.mark.parametrize(("flows", "reach"), [
    (default_flows_dir(), reach_a_volunteer_shipped),
    (FIXTURES, reach_a_volunteer_fixture),
], ids=["shipped-flows", "free-text-answer"])
async def test_forget_leaves_nothing_in_the_file_or_its_wal(backend: Backend, flows: Path,
                                                             reach: Callable[[Chat], Awaitable[None]]
                                                             ) -> None:
    db = backend
    store = await backend.open()
    try:
        chat = await with_a_volunteer(store, flows, reach)
        relayed = await chat.say(PERSON, SENTENCE)
        assert next(m.text for m in relayed if m.chat_key == VOLUNTEER.chat_key).endswith(SENTENCE)
        answer = await chat.say(VOLUNTEER.chat_key, VOLUNTEER_REPLY)
        assert [m.text for m in answer if m.chat_key == PERSON] == [VOLUNTEER_REPLY]
        needles = [PERSON_ID, SENTENCE, VOLUNTEER_REPLY, UPDATE_MARK]
        assert leaks(db, needles), "the test must see the person's data on disk before /forget"

        confirm = await chat.say(PERSON, "/forget")
        done = await chat.tap(PERSON, button(confirm, "Yes, delete it"))
        assert [m.key for m in done if m.chat_key == PERSON] == ["forget.done"]

        # The bot is still running (the file open, other chats going on) when we look.
        assert leaks(db, needles) == []
        for table in ("sessions", "outbox", "processed_updates", "handovers"):
            assert count(backend, f"SELECT count(*) FROM {table} WHERE chat_key = ?", PERSON) == 0
        assert count(backend, "SELECT count(*) FROM offers") == 0
        # The volunteer's side still works after the person is gone.
        assert [m.chat_key for m in await chat.say(VOLUNTEER.chat_key, "/queue")] == [
            VOLUNTEER.chat_key]
    finally:
        await store.close()
    assert leaks(db, [PERSON_ID, SENTENCE, VOLUNTEER_REPLY, UPDATE_MARK]) == []


#: What the person writes to the volunteer while the volunteer's platform is refusing for now.
UNDELIVERED_SENTENCE = "Tell Mrs Thistlewaite-Obuya the Kettering flat has damp in every room"


async def test_forget_deletes_what_waits_for_a_volunteer_about_the_person(backend: Backend) -> None:
    """A relay of the person's words the volunteer's platform has not taken yet, and the desk's
    notice that they left, wait in the outbox addressed to the volunteer: /forget deletes them
    too, from the disk, and keeps what waits for the volunteer about nothing of the person's."""
    from bot.errors import TransportError

    store = await backend.open()
    try:
        chat = await with_a_volunteer(store, default_flows_dir(), reach_a_volunteer_shipped)
        transport = chat.transport
        transport.fail_chats[VOLUNTEER.chat_key] = TransportError("the platform is down for now")
        own = await chat.say(VOLUNTEER.chat_key, "/help")  # the volunteer's own, kept
        assert own == []
        assert await chat.say(PERSON, UNDELIVERED_SENTENCE) == []
        waiting = [p.message.text for p in await store.pending(VOLUNTEER.chat_key)]
        assert len(waiting) == 2 and "/available" in waiting[0]  # the help: nothing of theirs
        assert waiting[1].endswith(UNDELIVERED_SENTENCE)
        assert leaks(backend, [UNDELIVERED_SENTENCE])

        confirm = await chat.say(PERSON, "/forget")  # also the notice "the person ended the chat"
        assert len(await store.pending(VOLUNTEER.chat_key)) == 3
        done = await chat.tap(PERSON, button(confirm, "Yes, delete it"))
        assert [m.key for m in done if m.chat_key == PERSON] == ["forget.done"]

        assert [p.message.text for p in await store.pending(VOLUNTEER.chat_key)] == waiting[:1]
        assert count(backend, "SELECT count(*) FROM outbox WHERE chat_key = ?",
                     VOLUNTEER.chat_key) == 1
        assert leaks(backend, [UNDELIVERED_SENTENCE, PERSON_ID, UPDATE_MARK]) == []
    finally:
        await store.close()
    assert leaks(backend, [UNDELIVERED_SENTENCE, PERSON_ID, UPDATE_MARK]) == []


async def test_forget_deletes_an_offer_of_the_chat_waiting_for_a_volunteer(backend: Backend) -> None:
    """The offer of a waiting chat quotes its summary (what the person typed in the flow):
    undelivered to the volunteer when the person asks to be forgotten, it goes too."""
    from bot.errors import TransportError

    store = await backend.open()
    try:
        library = load_library([FIXTURES])
        localizer = Localizer(CatalogSet())
        desk = HandoverDesk(store, localizer, None, DeskSettings(hours="00:00-00:00"))
        transport = MemoryTransport()
        chat = Chat(Dispatcher(store, lambda: library, localizer, transport, desk=desk), transport)
        await store.add_volunteer(VOLUNTEER)
        await chat.say(VOLUNTEER.chat_key, "/available")
        transport.fail_chats[VOLUNTEER.chat_key] = TransportError("the platform is down for now")
        await chat.say(VOLUNTEER.chat_key, "/help")  # the volunteer's own, kept
        for text in ("hi", "1", "1", "1", SENTENCE):  # the fixture flow's free-text answer
            await chat.say(PERSON, text)
        waiting = [p.message for p in await store.pending(VOLUNTEER.chat_key)]
        assert [m.key for m in waiting] == ["desk", "desk.offer"]
        assert SENTENCE in waiting[1].text

        confirm = await chat.say(PERSON, "/forget")
        await chat.tap(PERSON, button(confirm, "Yes, delete it"))
        assert [p.message.text for p in await store.pending(VOLUNTEER.chat_key)] == [waiting[0].text]
        assert leaks(backend, [SENTENCE, PERSON_ID, UPDATE_MARK]) == []
    finally:
        await store.close()


async def test_forget_deletes_rows_about_the_chat_by_every_write_path(backend: Backend) -> None:
    """A turn's commit, a round of offers and a notice from the queue's clock each record
    what a message is about; a forget deletes those about the chat (alone or among others)
    and keeps the rest, whose about comes back as written."""
    from bot.engine.session import Session
    from bot.storage.base import TurnRecord

    other = "telegram:other"
    store = await backend.open()
    try:
        await store.commit_turn(TurnRecord(PERSON, Session(language="en", started=True), [
            Outbound(PERSON, "to the person"),
            Outbound(VOLUNTEER.chat_key, f"relay: {SENTENCE}", about=(PERSON,))]))
        await store.record_offers([], [Outbound(VOLUNTEER.chat_key, f"offer: {SENTENCE}",
                                                about=(other, PERSON))])
        await store.enqueue([Outbound(VOLUNTEER.chat_key, "about someone else", about=(other,)),
                             Outbound(VOLUNTEER.chat_key, "the volunteer's own")])
        assert leaks(backend, [SENTENCE])
        await store.forget(PERSON)
        kept = [(p.message.text, p.message.about) for p in await store.pending()]
        assert kept == [("about someone else", (other,)), ("the volunteer's own", ())]
        assert leaks(backend, [SENTENCE, PERSON_ID]) == []
    finally:
        await store.close()


async def test_rows_from_before_about_existed_read_back_and_are_forgotten(backend: Backend) -> None:
    """A database of the previous schema, holding undelivered replies, upgrades: they read
    back about no one, a forget deletes those of its chat, and new rows record about."""
    from bot.storage.codec import encode

    old = Outbound(VOLUNTEER.chat_key, "written by the previous version")
    mine = Outbound(PERSON, SENTENCE)
    if backend.kind == "postgres":
        import psycopg

        from bot.storage.postgres import MIGRATIONS as PG_MIGRATIONS

        with psycopg.connect(backend.where, autocommit=True) as conn:
            conn.execute("CREATE TABLE helpbot_schema (version integer NOT NULL)")
            for number, migration in enumerate(PG_MIGRATIONS[:-1], start=1):
                conn.execute(migration.encode())
                conn.execute("INSERT INTO helpbot_schema (version) VALUES (%s)", (number,))
            for message in (old, mine):
                conn.execute("INSERT INTO outbox (chat_key, payload, created_at) VALUES (%s, %s, 0)",
                             (message.chat_key, encode(message)))
    else:
        from bot.storage.sqlite import MIGRATIONS

        raw = sqlite3.connect(backend.where)
        raw.executescript("".join(MIGRATIONS[:-1]) + f"; PRAGMA user_version={len(MIGRATIONS) - 1};")
        raw.executemany("INSERT INTO outbox (chat_key, payload, created_at) VALUES (?, ?, 0)",
                        [(m.chat_key, encode(m)) for m in (old, mine)])
        raw.commit()
        raw.close()
    store = await backend.open()
    try:
        assert [p.message for p in await store.pending()] == [old, mine]
        await store.enqueue([Outbound(VOLUNTEER.chat_key, f"offer: {SENTENCE}", about=(PERSON,))])
        await store.forget(PERSON)
        assert [p.message for p in await store.pending()] == [old]
        assert leaks(backend, [SENTENCE]) == []
    finally:
        await store.close()


def count(backend: Backend, query: str, *args: str) -> int:
    """A count read past the store, on a connection of its own."""
    if backend.kind == "postgres":
        import psycopg

        with psycopg.connect(backend.where) as conn:
            row = conn.execute(query.replace("?", "%s"), args).fetchone()
    else:
        raw = sqlite3.connect(backend.where)
        try:
            row = raw.execute(query, args).fetchone()
        finally:
            raw.close()
    assert row is not None
    return int(row[0])


async def test_a_reader_that_holds_the_wal_is_waited_for_then_logged(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A truncating checkpoint cannot finish while another connection reads an old
    snapshot: the store tries a few times, then says so in the log (never who it was)."""
    from bot.engine.session import Session
    from bot.storage.base import TurnRecord

    db = tmp_path / "bot.sqlite3"
    store = await SqliteStore.open(db)
    reader = sqlite3.connect(db, isolation_level=None)
    try:
        await store.commit_turn(TurnRecord(PERSON, Session(language="en", started=True),
                                           [Outbound(PERSON, SENTENCE)]))
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM sessions").fetchone()  # holds its snapshot
        started = time.monotonic()
        await store.forget(PERSON)
        assert time.monotonic() - started < 10  # bounded
        assert "could not clear the write-ahead log" in caplog.text
        assert PERSON_ID not in caplog.text
        assert leaks(db, [SENTENCE])  # still in the WAL: the reader may still see it
        reader.execute("COMMIT")
        await store.forget("telegram:someone-else")  # the next clear-up finishes the job
        assert leaks(db, [PERSON_ID, SENTENCE]) == []
    finally:
        reader.close()
        await store.close()


# -- the retention purge ------------------------------------------------------------------

DAY = 86400.0
START = 1_800_000_000.0  # any fixed wall-clock time: the store reads time only from its clock


def at(day: float) -> float:
    return START + day * DAY


async def turn(store: Any, chat: str, text: str, update_id: str,
               handover: bool = False) -> None:
    from bot.engine.events import Handover
    from bot.engine.session import Session
    from bot.flowspec.model import Priority
    from bot.storage.base import TurnRecord

    handovers = [Handover("f", "s", "general", Priority.NORMAL, f"said: {text}")] if handover else []
    await store.commit_turn(TurnRecord(chat, Session(language="en", started=True, flow="f", step="s",
                                                     answers={"detail": text}),
                                       [Outbound(chat, text)], handovers, update_id))


async def test_purge_deletes_each_kind_past_retention_and_keeps_the_rest(backend: Backend) -> None:
    from bot.handover.model import Status

    now = [at(0)]
    db = backend
    store = await backend.open(clock=lambda: now[0])
    try:
        # Day 0: an old chat, handed over, offered, closed; its reply never delivered.
        await turn(store, PERSON, SENTENCE, f"{UPDATE_MARK}-1", handover=True)
        old = await store.open_entry(PERSON)
        assert old is not None
        await store.record_offer(old.id, VOLUNTEER.chat_key, [])
        await store.close_entry(old.id, "done")
        # Day 0: a chat that still waits for a volunteer (never purged while open).
        await turn(store, "test:waiting", "still waiting", "u-waiting", handover=True)
        # Day 0, taken on day 20 and closed: its last activity is inside the period.
        await turn(store, "test:taken", "taken later", "u-taken", handover=True)
        taken = await store.open_entry("test:taken")
        assert taken is not None
        now[0] = at(20)
        assert await store.take(taken.id, VOLUNTEER.chat_key)
        await store.close_entry(taken.id, "done")
        # Day 29: a recent chat.
        now[0] = at(29)
        await turn(store, "test:recent", "recent", "u-recent")

        now[0] = at(31)
        purged = await store.purge(timedelta(days=30))

        assert (purged.sessions, purged.handovers, purged.offers, purged.undelivered,
                purged.update_ids, purged.wal_cleared) == (3, 1, 1, 3, 3, True)
        # Sessions idle since day 0 went; the recent one stayed.
        for chat in (PERSON, "test:waiting", "test:taken"):
            assert await store.load_session(chat) is None
        assert await store.load_session("test:recent") is not None
        # Only the closed handover with no activity in 30 days went, with its offer.
        assert await store.handovers(PERSON) == []
        assert await store.offers_of(old.id) == set()
        assert [e.chat_key for e in await store.entries(Status.WAITING)] == ["test:waiting"]
        assert await store.queue_entry(taken.id) is not None
        # Undelivered for 31 days: dropped; the recent reply still waits to be sent.
        assert [p.message.chat_key for p in await store.pending()] == ["test:recent"]
        # Update ids older than 30 days went; the recent one still guards against redelivery.
        assert not (await store.load_turn_state(PERSON, f"{UPDATE_MARK}-1")).duplicate
        assert (await store.load_turn_state("test:recent", "u-recent")).duplicate
        # And none of it is left readable on disk.
        assert leaks(db, [PERSON_ID, SENTENCE, UPDATE_MARK]) == []
    finally:
        await store.close()


async def test_purge_keeps_update_ids_for_the_redelivery_window(backend: Backend) -> None:
    now = [at(0)]
    store = await backend.open(clock=lambda: now[0])
    try:
        await turn(store, "test:a", "a", "u-a")  # day 0
        now[0] = at(1)
        await turn(store, "test:b", "b", "u-b")  # day 1
        now[0] = at(2.5)
        purged = await store.purge(timedelta(days=1))
        # Both sessions are past one day, but only u-a is past the two-day redelivery window.
        assert (purged.sessions, purged.update_ids) == (2, 1)
        assert not (await store.load_turn_state("test:a", "u-a")).duplicate
        assert (await store.load_turn_state("test:b", "u-b")).duplicate
        assert await store.purge(timedelta(days=1)) == type(purged)()  # nothing more is due
    finally:
        await store.close()


class FailsOnce(SqliteStore):
    """The real store, except that its first purge fails as a locked or full disk would."""

    calls = 0
    done: asyncio.Event

    async def purge(self, older_than: timedelta) -> Purged:
        self.calls += 1
        if self.calls == 1:
            raise sqlite3.OperationalError("database or disk is full")
        purged = await super().purge(older_than)
        self.done.set()
        return purged


async def test_purge_loop_runs_at_once_and_survives_a_failed_round(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from bot.app import keep_purging

    caplog.set_level(logging.INFO, logger="bot")
    now = [at(0)]
    store = await FailsOnce.open(tmp_path / "bot.sqlite3", clock=lambda: now[0])
    store.done = asyncio.Event()
    try:
        await turn(store, PERSON, SENTENCE, "u-1")
        now[0] = at(40)
        loop = asyncio.create_task(keep_purging(store, timedelta(days=30), every=0.01))
        try:
            await asyncio.wait_for(store.done.wait(), 10)
            assert await store.load_session(PERSON) is None
        finally:
            loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loop
        assert store.calls >= 2
        assert "retention purge failed" in caplog.text
        assert "1 idle session(s)" in caplog.text
        assert PERSON_ID not in caplog.text and SENTENCE not in caplog.text
    finally:
        await store.close()


async def test_a_running_bot_purges_at_start(backend: Backend, tmp_path: Path) -> None:
    from bot.app import run_bot

    store = await backend.open(clock=lambda: time.time() - 40 * DAY)
    await turn(store, PERSON, SENTENCE, "u-1")
    await store.close()
    transport = MemoryTransport()
    settings = backend.settings(models_dir=tmp_path / "models", retention_days=30)
    if backend.kind == "postgres":  # the flows snapshot and caches stay in a folder
        settings = replace(settings, db_path=tmp_path / "bot.sqlite3")
    bot = asyncio.create_task(run_bot(settings, transport))
    try:
        async with asyncio.timeout(20):
            while count(backend, "SELECT count(*) FROM sessions") != 0:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
    finally:
        transport.feed(None)
        await bot


def test_purge_command_prints_counts_only(backend: Backend, capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.__main__ import main

    db = backend
    if backend.kind == "postgres":
        monkeypatch.setenv("BOT_DATABASE_URL", backend.where)
        where = []
    else:
        where = ["--db", backend.where]

    async def old_chat() -> None:
        store = await backend.open(clock=lambda: time.time() - 10 * DAY)
        await turn(store, PERSON, SENTENCE, f"{UPDATE_MARK}-1")
        await store.close()

    asyncio.run(old_chat())
    assert main(["purge", "--older-than", "30", *where]) == 0
    assert "0 idle session(s)" in capsys.readouterr().out  # ten days old: kept
    assert main(["purge", "--older-than", "7", *where]) == 0
    out, err = capsys.readouterr()
    assert out == ("deleted what was older than 7 days: 1 idle session(s), 0 closed handover(s) "
                   "with 0 offer(s), 1 undelivered message(s), 1 update id(s)\n")
    assert err == ""
    assert leaks(db, [PERSON_ID, SENTENCE, UPDATE_MARK]) == []
    assert main(["purge", "--older-than", "-3", *where]) == 1
    assert "--older-than must be a positive number of days" in capsys.readouterr().err


@pytest.mark.parametrize("raw", ["0", "-1", "abc", "inf", "nan"])
def test_retention_days_must_be_a_positive_number(raw: str) -> None:
    from bot.config import Settings
    from bot.errors import ConfigError

    with pytest.raises(ConfigError, match=f"BOT_RETENTION_DAYS must be a positive number of days.*{raw}"):
        Settings.from_env({"BOT_RETENTION_DAYS": raw})


def test_retention_days_default_and_set() -> None:
    from bot.config import Settings

    assert Settings.from_env({}).retention_days == 30
    assert Settings.from_env({"BOT_RETENTION_DAYS": "7.5"}).retention_days == 7.5
