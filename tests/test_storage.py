"""The store contract on SQLite (a real temp file) and PostgreSQL (a throwaway server):
transactions, outbox, dedupe, schema, forget. SQLite-only details open a SqliteStore."""

from __future__ import annotations

import asyncio
import multiprocessing
import sqlite3
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest

from bot.engine.events import Handover
from bot.engine.session import Session
from bot.errors import StorageError
from bot.flowspec.model import Priority
from bot.messages import Attachment, Inbound, InboundKind, Outbound, OutButton
from bot.storage.base import TurnRecord
from bot.storage.sqlite import SCHEMA_VERSION, SqliteStore
from tests.conftest import Backend

pytestmark = pytest.mark.backends

CHAT = "test:1"
#: A NOT NULL column left empty, as each driver reports it.
INTEGRITY_ERRORS = (sqlite3.IntegrityError, psycopg.IntegrityError)


def record(session: Session, *texts: str, update_id: str | None = None) -> TurnRecord:
    messages = [Outbound(CHAT, t, (OutButton("1.0", "Yes", "k.yes"),), key="k") for t in texts]
    return TurnRecord(CHAT, session, messages, update_id=update_id)


async def test_turn_is_saved_and_read_back(store: SqliteStore) -> None:
    session = Session(language="ps", started=True, flow="f", step="s", token=3, answers={"a": "b"})
    pending = await store.commit_turn(record(session, "سلام", update_id="u1"))
    assert [p.message.text for p in pending] == ["سلام"]
    assert await store.load_session(CHAT) == session
    assert (await store.load_turn_state(CHAT, "u1")).duplicate
    assert not (await store.load_turn_state(CHAT, "u2")).duplicate
    # Replies stay in the outbox until the transport confirms them.
    assert [p.id for p in await store.pending(CHAT)] == [p.id for p in pending]
    assert (await store.pending())[0].message == pending[0].message
    await store.mark_sent([p.id for p in pending])
    assert await store.pending() == []


async def test_wal_mode_and_schema_version(tmp_path: Path) -> None:
    await (await SqliteStore.open(tmp_path / "bot.sqlite3")).close()
    db = sqlite3.connect(tmp_path / "bot.sqlite3")
    try:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    finally:
        db.close()


async def test_database_from_a_newer_bot_is_refused(backend: Backend) -> None:
    if backend.kind == "postgres":
        from bot.storage.postgres import SCHEMA_VERSION as PG_VERSION

        await (await backend.open()).close()
        with psycopg.connect(backend.where, autocommit=True) as conn:
            conn.execute("INSERT INTO helpbot_schema (version) VALUES (%s)", (PG_VERSION + 1,))
    else:
        db = sqlite3.connect(backend.where)
        db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
        db.close()
    with pytest.raises(StorageError, match="newer than this bot"):
        await backend.open()


async def test_reopening_keeps_everything(backend: Backend) -> None:
    first = await backend.open()
    await first.commit_turn(record(Session(language="hi", started=True), "नमस्ते"))
    await first.close()
    second = await backend.open()
    try:
        assert (await second.load_session(CHAT)) == Session(language="hi", started=True)
        assert [p.message.text for p in await second.pending()] == ["नमस्ते"]
    finally:
        await second.close()


async def test_failed_turn_rolls_back_completely(store: SqliteStore) -> None:
    await store.commit_turn(record(Session(language="en", started=True), "one"))
    handover = Handover("f", "s", "q", Priority.NORMAL, "x")
    object.__setattr__(handover, "summary", None)  # NOT NULL in the table: fails mid-turn
    bad = TurnRecord(CHAT, Session(language="fa", started=True), [Outbound(CHAT, "two")],
                     [handover], "u1")
    with pytest.raises(INTEGRITY_ERRORS):
        await store.commit_turn(bad)
    # Nothing of the failed turn remains: not the session, the reply, nor the update id.
    assert (await store.load_session(CHAT)) == Session(language="en", started=True)
    assert [p.message.text for p in await store.pending()] == ["one"]
    assert not (await store.load_turn_state(CHAT, "u1")).duplicate


def turn_of(n: int) -> TurnRecord:
    chat = f"test:{n}"
    return TurnRecord(chat, Session(language="fa", started=True, token=n),
                      [Outbound(chat, f"reply {n}")], update_id=f"u{n}")


async def test_turns_of_many_chats_at_once_share_one_trip(store: SqliteStore) -> None:
    before = store.trips.copy()
    await asyncio.gather(*(store.commit_turn(turn_of(n)) for n in range(20)))
    states = await asyncio.gather(*(store.load_turn_state(f"test:{n}", f"u{n}") for n in range(20)))
    # Group commit on both: SQLite's thread trips, PostgreSQL's statements.
    assert store.trips["commit"] - before["commit"] == 1
    assert store.trips["load"] - before["load"] == 1
    assert [s.session.token if s.session else None for s in states] == list(range(20))
    assert all(s.duplicate for s in states)
    # Chats committed at once: in any order across chats.
    assert sorted(p.message.text for p in await store.pending()) == sorted(f"reply {n}" for n in range(20))


async def test_a_bad_turn_among_many_fails_alone(store: SqliteStore) -> None:
    handover = Handover("f", "s", "q", Priority.NORMAL, "x")
    object.__setattr__(handover, "summary", None)  # NOT NULL in the table
    bad = TurnRecord("test:bad", Session(language="fa", started=True), [Outbound("test:bad", "no")],
                     [handover], "u-bad")
    turns = [turn_of(0), bad, turn_of(1)]
    results = await asyncio.gather(*(store.commit_turn(t) for t in turns), return_exceptions=True)
    assert isinstance(results[1], INTEGRITY_ERRORS)
    assert not isinstance(results[0], BaseException) and not isinstance(results[2], BaseException)
    assert sorted(p.message.text for p in await store.pending()) == ["reply 0", "reply 1"]
    assert await store.load_session("test:bad") is None
    assert not (await store.load_turn_state("test:bad", "u-bad")).duplicate


async def test_sent_replies_of_many_turns_leave_the_outbox_in_one_delete(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path / "bot.sqlite3")
    try:
        pending = [p for n in range(10) for p in await store.commit_turn(turn_of(n))]
        for item in pending:  # sent one by one, as a transport confirms them
            await store.mark_sent([item.id])
        assert await store.pending() == []  # not deleted yet, but never handed out twice
    finally:
        await store.close()
    assert store.trips["delete"] == 1
    reopened = await SqliteStore.open(tmp_path / "bot.sqlite3")
    try:
        assert await reopened.pending() == []
    finally:
        await reopened.close()


async def test_schema_upgrades_from_version_one(tmp_path: Path) -> None:
    from bot.storage.sqlite import MIGRATIONS

    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path)
    db.executescript(MIGRATIONS[0] + "; PRAGMA user_version=1;")
    db.execute("INSERT INTO sessions VALUES ('test:1', '{\"v\":1,\"language\":\"ps\"}', 0)")
    db.commit()
    db.close()
    store = await SqliteStore.open(path)
    try:
        assert (await store.load_session(CHAT)) == Session(language="ps")
        await store.commit_turn(record(Session(language="ps", started=True), "x"))
        assert [p.message.text for p in await store.pending()] == ["x"]
    finally:
        await store.close()


async def test_a_failed_migration_leaves_the_file_as_it_was(tmp_path: Path) -> None:
    """Every step missing runs in one transaction: a step that fails undoes the earlier ones."""
    from bot.errors import StorageUnavailable
    from bot.storage.sqlite import MIGRATIONS

    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path)
    db.executescript("".join(MIGRATIONS[:2]) + "; PRAGMA user_version=2; CREATE TABLE inbox (x);")
    db.close()
    with pytest.raises(StorageUnavailable, match="table inbox already exists"):
        await SqliteStore.open(path)  # step 3 applies, step 4 fails on the stray table
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA user_version").fetchone() == (2,)
        assert db.execute("SELECT name FROM sqlite_master WHERE name = 'volunteers'").fetchall() == []
    finally:
        db.close()


def _open_at_barrier(path: str, barrier: multiprocessing.synchronize.Barrier,
                     results: multiprocessing.queues.Queue[str]) -> None:
    async def open_and_close() -> None:
        store = await SqliteStore.open(path)
        await store.close()

    barrier.wait()
    try:
        asyncio.run(open_and_close())
        results.put("ok")
    except Exception as exc:
        results.put(f"{type(exc).__name__}: {exc}")


def test_four_processes_opening_a_new_file_at_once_all_open_it(tmp_path: Path) -> None:
    """Switching a new file to WAL fails at once ("database is locked", busy_timeout does
    not apply) while another process switches it: four processes released by one barrier
    on a new file, 100 times (without the retry about 1 open in 100 fails), all open it."""
    forks = multiprocessing.get_context("fork")
    failures = []
    for round_ in range(100):
        barrier, results = forks.Barrier(4), forks.Queue()
        path = str(tmp_path / f"{round_}.sqlite3")
        children = [forks.Process(target=_open_at_barrier, args=(path, barrier, results))
                    for _ in range(4)]
        for child in children:
            child.start()
        outcomes = [results.get(timeout=60) for _ in children]
        for child in children:
            child.join(timeout=60)
        failures += [f"round {round_}: {o}" for o in outcomes if o != "ok"]
    assert failures == []


async def test_one_store_at_a_time_leads_the_timers(tmp_path: Path) -> None:
    """Two stores on one file (as two processes): one leads until it closes, then the other."""
    first = await SqliteStore.open(tmp_path / "bot.sqlite3")
    second = await SqliteStore.open(tmp_path / "bot.sqlite3")
    try:
        assert await first.lead_timers()
        assert not await second.lead_timers()
        assert await first.lead_timers()  # asked again: still the one
        assert not await second.lead_timers()
        await first.close()
        assert await second.lead_timers()
    finally:
        await second.close()
    alone = await SqliteStore.open(":memory:")
    try:
        assert await alone.lead_timers()
    finally:
        await alone.close()


async def test_forget_deletes_everything_about_a_chat(store: SqliteStore) -> None:
    turn = TurnRecord(CHAT, Session(language="ur", started=True), [Outbound(CHAT, "x")],
                      [Handover("f", "s", "legal", Priority.CRISIS, "summary")], "u9")
    await store.commit_turn(turn)
    await store.commit_turn(TurnRecord("test:other", Session(), [Outbound("test:other", "y")]))
    await store.forget(CHAT)
    assert await store.load_session(CHAT) is None
    assert await store.handovers(CHAT) == []
    assert not (await store.load_turn_state(CHAT, "u9")).duplicate
    assert [p.message.chat_key for p in await store.pending()] == ["test:other"]


def test_hand_written_encoders_cover_every_field() -> None:
    """Session.to_json and the outbox encoder are written out by hand for speed: a field
    added to the dataclasses must be added to them too, or it would silently not persist."""
    import json
    from dataclasses import fields

    from bot.storage.codec import decode as _decode
    from bot.storage.codec import encode as _encode
    from bot.storage.codec import outbox_row

    session = Session(language="fa", flow="f", step="s", token=3, answers={"a": "b"}, started=True,
                      pending="claim_refused")
    assert set(json.loads(session.to_json())) - {"v"} == {f.name for f in fields(Session)}
    message = Outbound(CHAT, "x", (OutButton("1.0", "Yes", "k"),), "fa", True, "k", 3, {"m": "1"},
                       Attachment("voice", "telegram:f1", "audio/ogg", "v.ogg", 120))
    encoded = json.loads(_encode(message))
    # ``about`` is the outbox's about column, not the payload: outbox_row writes it beside.
    assert set(encoded) == {f.name for f in fields(Outbound)} - {"about"}
    about = replace(message, about=("test:other", "test:third"))
    chat_key, payload, chats = outbox_row(about)
    assert (chat_key, payload) == (CHAT, _encode(about)) and _decode(payload, json.dumps(chats)) == about
    assert _decode(payload, chats) == about  # PostgreSQL hands jsonb back already read
    assert outbox_row(message) == [CHAT, _encode(message)]  # a chat's own reply: nothing more
    assert set(encoded["buttons"][0]) == {f.name for f in fields(OutButton)}
    assert set(encoded["attachment"]) == {f.name for f in fields(Attachment)}
    assert _decode(_encode(message)) == message
    plain = replace(message, attachment=None)  # most messages: no attachment key at all
    assert "attachment" not in json.loads(_encode(plain)) and _decode(_encode(plain)) == plain
    inbound = Inbound(CHAT, InboundKind.MEDIA, text="caption", media="voice", update_id="u1",
                      attachment=message.attachment, alias="whatsapp:4477", meta={"k": "v"})
    assert set(json.loads(inbound.to_json())) == {f.name for f in fields(Inbound)}
    assert Inbound.from_json(inbound.to_json()) == inbound


async def test_turns_of_one_chat_in_one_batch_keep_their_order(store: SqliteStore) -> None:
    handover = Handover("f", "s", "general", Priority.NORMAL, "first")
    first = TurnRecord(CHAT, Session(language="fa", started=True, token=1),
                       [Outbound(CHAT, "one"), Outbound(CHAT, "two")], [handover], "u1")
    second = TurnRecord(CHAT, Session(language="fa", started=True, token=2),
                        [Outbound(CHAT, "three")], [replace(handover, summary="second")], "u2")
    await asyncio.gather(store.commit_turn(first), store.commit_turn(second))
    assert (await store.load_session(CHAT)) == second.session
    assert [p.message.text for p in await store.pending(CHAT)] == ["one", "two", "three"]
    entry = await store.open_entry(CHAT)  # the second replaced the first
    assert entry is not None and entry.summary == "second"
    assert [h["status"] for h in await store.handovers(CHAT)] == ["closed", "waiting"]


async def test_a_person_and_their_volunteer_heard_in_one_batch_are_both_seen(
        store: SqliteStore) -> None:
    volunteer = "test:volunteer"
    await store.commit_turn(TurnRecord(CHAT, Session(language="fa"), (),
                                       [Handover("f", "s", "general", Priority.NORMAL, "x")], "u1"))
    entry = await store.open_entry(CHAT)
    assert entry is not None and await store.take(entry.id, volunteer)
    taken = await store.queue_entry(entry.id)
    assert taken is not None
    clock = store.clock
    store.clock = lambda: clock() + 100
    try:
        await asyncio.gather(
            store.commit_turn(TurnRecord(CHAT, None, [Outbound(volunteer, "hi")],
                                         update_id="u2", seen=(entry.id, "user"))),
            store.commit_turn(TurnRecord(volunteer, None, [Outbound(CHAT, "hello")],
                                         update_id="u3", seen=(entry.id, "volunteer"))))
    finally:
        store.clock = clock
    seen = await store.queue_entry(entry.id)
    assert seen is not None and seen.user_seen_at is not None and seen.volunteer_seen_at is not None
    assert taken.user_seen_at is not None and taken.volunteer_seen_at is not None
    assert seen.user_seen_at >= taken.user_seen_at + 99
    assert seen.volunteer_seen_at >= taken.volunteer_seen_at + 99
