"""Several bot processes on one PostgreSQL database (tests/support/pg_worker.py, real
processes): a chat's turns one at a time, one winner per claimed chat, a relay between a person
served by one process and a volunteer served by another, and a process killed mid-turn."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from bot.engine.events import Handover
from bot.engine.session import Session
from bot.errors import StorageUnavailable
from bot.flowspec.model import Priority
from bot.handover.model import Status, Volunteer
from bot.storage.base import TurnRecord
from bot.storage.postgres import LOCK_CHAT, PostgresStore
from tests.support.bot_process import REPO, BotProcess, Person, kill_while_talking, processed_count
from tests.support.fake_bot_api import FakeBotApi
from tests.support.postgres import PostgresServer

WITHIN = 60.0  # seconds any one step may take on a loaded machine


@pytest.fixture
def url(postgres_server: PostgresServer) -> str:
    return postgres_server.new_database()


@pytest.fixture
async def store(url: str) -> AsyncIterator[PostgresStore]:
    store = await PostgresStore.open(url)  # migrated before the workers start
    yield store
    await store.close()


class Worker:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @classmethod
    async def start(cls, *args: str) -> Worker:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.support.pg_worker", *args, cwd=REPO,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        return cls(process)

    async def read(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), WITHIN)
        assert line, f"the worker ended (exit {await self.process.wait()})"
        return dict(json.loads(line))

    async def read_until(self, key: str) -> list[dict[str, Any]]:
        """Lines up to and including the first with ``key``."""
        lines = []
        while key not in (line := await self.read()):
            lines.append(line)
        return [*lines, line]

    def write(self, line: object) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write((json.dumps(line) + "\n").encode())

    async def finish(self) -> int:
        if self.process.stdin is not None:
            self.process.stdin.close()
        return await asyncio.wait_for(self.process.wait(), WITHIN)

    def kill(self) -> None:
        if self.process.returncode is None:
            self.process.kill()


async def go(workers: list[Worker]) -> None:
    """Once every worker is ready, start them together."""
    for w in workers:
        assert await w.read() == {"ready": True}
    for w in workers:
        w.write("go")
        assert w.process.stdin is not None
        await w.process.stdin.drain()


async def test_two_processes_take_turns_of_one_chat_without_losing_any(
        url: str, store: PostgresStore) -> None:
    chat, count = "test:shared", 150
    workers = [await Worker.start("turns", url, chat, str(count), tag) for tag in ("a", "b")]
    try:
        await go(workers)
        assert [await w.finish() for w in workers] == [0, 0]
    finally:
        for w in workers:
            w.kill()
    session = await store.load_session(chat)
    assert session is not None
    seen = json.loads(session.answers["turns"])
    # Every turn saw the one before it (nothing lost), each process's turns in its order.
    assert sorted(seen) == sorted(f"{tag}-{n}" for tag in "ab" for n in range(count))
    for tag in "ab":
        assert [t for t in seen if t[0] == tag] == [f"{tag}-{n}" for n in range(count)]
    # The replies were queued in the order the turns committed, with ids from the database.
    pending = await store.pending(chat)
    assert [p.message.text for p in pending] == seen
    assert [p.id for p in pending] == sorted(p.id for p in pending)


async def test_two_processes_racing_to_take_chats_give_each_to_one_volunteer(
        store: PostgresStore, url: str) -> None:
    chats = 40
    for n in range(chats):
        await store.commit_turn(TurnRecord(f"test:p{n}", Session(language="en", started=True), (),
                                           [Handover("f", "s", "general", Priority.NORMAL, "x")]))
    ids = [e.id for e in await store.entries(Status.WAITING)]
    assert len(ids) == chats
    workers = [await Worker.start("take", url, tag, *map(str, ids)) for tag in ("a", "b")]
    try:
        await go(workers)
        won = [set((await w.read())["won"]) for w in workers]
        assert [await w.finish() for w in workers] == [0, 0]
    finally:
        for w in workers:
            w.kill()
    assert won[0].isdisjoint(won[1]) and won[0] | won[1] == set(ids)  # one winner each
    for entry in await store.entries(Status.ASSIGNED):
        tag = "a" if entry.id in won[0] else "b"
        assert entry.volunteer == f"test:{tag}-{entry.id}"
    # And one volunteer never holds two chats, whichever processes claim for them.
    await store.requeue(ids[0])
    await store.requeue(ids[1])
    both = await asyncio.gather(store.take(ids[0], "test:same"), store.take(ids[1], "test:same"))
    assert sorted(both) == [False, True]


async def test_a_person_and_a_volunteer_served_by_two_processes_reach_each_other(
        store: PostgresStore, url: str) -> None:
    volunteer = Volunteer("test:v1", "Farid", ("en",), ("*",))
    await store.add_volunteer(volunteer)
    person_side = await Worker.start("serve", url, "test:p")
    volunteer_side = await Worker.start("serve", url, "test:v")
    updates = iter(range(1, 1000))

    async def send(worker: Worker, chat: str, text: str) -> list[dict[str, Any]]:
        worker.write({"chat": chat, "text": text, "update": f"u{next(updates)}"})
        assert worker.process.stdin is not None
        await worker.process.stdin.drain()
        return (await worker.read_until("handled"))[:-1]

    async def arrives(worker: Worker, chat: str, key: str | None = None) -> dict[str, Any]:
        """The next message the other process sends to ``chat``, woken by its NOTIFY."""
        while True:
            line = await worker.read()
            if line.get("chat") == chat and (key is None or line.get("key") == key):
                return line

    try:
        for w in (person_side, volunteer_side):
            assert await w.read() == {"ready": True}
        await send(volunteer_side, "test:v1", "/available")
        for text in ("hi", "1", "1", "1"):
            await send(person_side, "test:p1", text)
        sent = await send(person_side, "test:p1", "Where is the drop-in?")  # handed over
        assert all(line["chat"] == "test:p1" for line in sent)  # the offer is not ours to send
        offer = await arrives(volunteer_side, "test:v1", "desk.offer")
        assert "Where is the drop-in?" in offer["text"]
        card = await send(volunteer_side, "test:v1", "/take")
        assert card[0]["text"].startswith("You are now in chat #")
        await send(person_side, "test:p1", "My cousin waits in Dudley")
        relayed = await arrives(volunteer_side, "test:v1")
        assert relayed["text"].endswith("My cousin waits in Dudley")
        await send(volunteer_side, "test:v1", "Ask at the front desk")
        answer = await arrives(person_side, "test:p1")
        assert answer["text"] == "Ask at the front desk"
        # Each side sent what was owed to its chats (deleted as it leaves the chat, a moment
        # after the send we just read).
        for _ in range(200):
            if not await store.pending():
                break
            await asyncio.sleep(0.05)
        assert await store.pending() == []
        assert [await w.finish() for w in (person_side, volunteer_side)] == [0, 0]
    finally:
        person_side.kill()
        volunteer_side.kill()


async def test_a_process_killed_mid_turn_leaves_the_chat_to_the_others(
        store: PostgresStore, url: str) -> None:
    chat = "test:killed"
    await store.commit_turn(TurnRecord(chat, Session(language="fa", started=True, token=1), ()))
    holder = await Worker.start("hold", url, chat)
    try:
        assert await holder.read() == {"holding": chat}
        # While it holds the chat, another process's turn waits for it.
        waiting = asyncio.create_task(_turn_of(store, chat))
        await asyncio.sleep(0.5)
        assert not waiting.done()
        holder.kill()
        await asyncio.wait_for(holder.process.wait(), WITHIN)
        # The server released the dead process's lock: the waiting turn runs, from the last
        # committed session (the killed turn saved nothing).
        assert await asyncio.wait_for(waiting, WITHIN) == 1
    finally:
        holder.kill()
    session = await store.load_session(chat)
    assert session is not None and session.token == 2


async def _turn_of(store: PostgresStore, chat: str) -> int:
    async with store.hold_chat(chat):
        state = await store.load_turn_state(chat, None)
        assert state.session is not None
        before = state.session.token
        await store.commit_turn(TurnRecord(chat, replace(state.session, token=(before or 0) + 1), ()))
    return int(before or 0)


@pytest.mark.timeout(300)
async def test_sigkill_of_a_bot_on_postgresql_in_a_closed_loop_loses_no_message(
        store: PostgresStore, url: str, tmp_path: Path) -> None:
    """`python -m bot run` on the database, killed at random moments while people talk."""
    api = await FakeBotApi(max_poll_seconds=1.0).start()
    bot = BotProcess(api, tmp_path, BOT_DATABASE_URL=url)
    try:
        await bot.start()
        people = [Person(api, chat_id=6000 + i) for i in range(4)]
        kills = 4
        await kill_while_talking(bot, people, kills=kills, seed=20261202, turns=300)
        assert [p.lost for p in people] == [[] for _ in people]  # every message answered
        duplicates = sum(len(p.replies()) - p.sent for p in people)
        assert 0 <= duplicates <= kills * len(people)  # at most the sends in flight at a kill
        for person in people:  # all read (the last may still wait for its burst to end)
            await api.wait_until(
                lambda p=person: processed_count(bot.database, p.chat_id) == (p.sent, 0),
                within=WITHIN, what=f"every message of chat {person.chat_id} read")
        assert not bot.db.exists()  # nothing went to a SQLite file by mistake
    finally:
        await bot.stop()
        await api.stop()


async def test_a_reader_holding_a_table_is_waited_for_then_logged(
        store: PostgresStore, url: str, postgres_server: PostgresServer,
        caplog: pytest.LogCaptureFixture) -> None:
    """The rewrite after a delete waits a moment for a table another client reads, then
    leaves it for the next clean-up and says so (never whose data it was)."""
    secret = "Quetzal bakery on Thursday"
    chat = "telegram:7305519428"
    await store.commit_turn(TurnRecord(chat, Session(language="en", answers={"a": secret}), ()))

    def on_disk() -> bool:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CHECKPOINT")
        files = postgres_server.database_files(url).rglob("*")
        return any(secret.encode() in f.read_bytes() for f in files if f.is_file())

    assert on_disk()
    reader = psycopg.connect(url)  # a transaction that read sessions holds its lock
    try:
        reader.execute("SELECT count(*) FROM sessions").fetchone()
        started = time.monotonic()
        await store.forget(chat)
        assert time.monotonic() - started < 30  # bounded
        assert "could not rewrite every table" in caplog.text and "7305519428" not in caplog.text
        assert await store.load_session(chat) is None
        assert on_disk()  # the reader's table could not be rewritten yet
    finally:
        reader.close()
    purged = await store.purge(timedelta(days=30))  # the next clean-up finishes the job
    assert purged.wal_cleared and not on_disk()


async def test_stores_opening_at_once_on_a_new_database_migrate_it_once(
        postgres_server: PostgresServer) -> None:
    from bot.storage.postgres import SCHEMA_VERSION

    for _ in range(5):
        url = postgres_server.new_database()
        stores = await asyncio.gather(*(PostgresStore.open(url) for _ in range(4)))
        for opened in stores:
            await opened.close()
        with psycopg.connect(url) as conn:
            versions = [row[0] for row in conn.execute(
                "SELECT version FROM helpbot_schema ORDER BY version").fetchall()]
        assert versions == list(range(1, SCHEMA_VERSION + 1))  # each migration ran once


async def test_one_process_at_a_time_leads_the_timers(store: PostgresStore, url: str) -> None:
    second = await PostgresStore.open(url)
    try:
        assert await store.lead_timers()
        assert not await second.lead_timers()
        assert await store.lead_timers()  # asked again: still the leader
        await store._control.close()  # the leader's connection dies (as with its process)
        # The server releases the lock once that connection's backend has ended: a moment.
        for _ in range(100):
            if await second.lead_timers():
                break
            await asyncio.sleep(0.05)
        assert await second.lead_timers()
        assert not await store.lead_timers()  # back, but the other one leads now
    finally:
        await second.close()


async def test_an_unreachable_database_is_one_clear_line_and_exit_2(
        tmp_path: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.__main__ import main

    socket_dir = tmp_path / "no-server"
    socket_dir.mkdir()
    monkeypatch.setenv("BOT_DATABASE_URL",
                       f"postgresql://helpbot:s3cret-pw@/helpbot?host={socket_dir}")
    assert await asyncio.to_thread(main, ["volunteers", "list"]) == 2
    err = capsys.readouterr().err
    assert "cannot reach the PostgreSQL database helpbot on the socket in" in err
    assert "check that the server runs" in err and "s3cret-pw" not in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("raw", ["mysql://u@h/db", "bot.sqlite3", "http://db.example.org"])
def test_a_database_url_that_is_not_postgresql_is_refused(raw: str) -> None:
    from bot.config import Settings
    from bot.errors import ConfigError

    with pytest.raises(ConfigError, match="BOT_DATABASE_URL must be a PostgreSQL address"):
        Settings.from_env({"BOT_DATABASE_URL": raw})


def test_psycopg_is_the_driver() -> None:
    """The pipeline the chat's lock rides on needs libpq 14 or newer (the binary wheel's)."""
    assert psycopg.pq.version() >= 140000


async def test_a_chat_busy_in_another_process_holds_up_no_other_chat_of_its_batch(
        store: PostgresStore, url: str) -> None:
    """Loads of many chats share one statement that only tries their locks: a chat whose lock
    another process holds is waited for apart, while the others' turns go on."""
    other = await psycopg.AsyncConnection.connect(url, autocommit=True)  # the other process
    try:
        await other.execute("SELECT pg_advisory_lock(%s, hashtext(%s))", (LOCK_CHAT, "t:busy"))
        done: list[str] = []

        async def turn(chat: str) -> None:
            async with store.hold_chat(chat):
                await store.load_turn_state(chat, f"u-{chat}")
                await store.commit_turn(TurnRecord(chat, Session(language="en"),
                                                   update_id=f"u-{chat}"))
            done.append(chat)

        busy = asyncio.create_task(turn("t:busy"))
        await asyncio.wait_for(asyncio.gather(*(turn(f"t:{n}") for n in range(5))), WITHIN)
        assert sorted(done) == [f"t:{n}" for n in range(5)]  # not behind the busy chat
        assert not busy.done()  # still waiting for the other process
        # Their locks were released on leaving: the other process can take each at once.
        for n in range(5):
            cursor = await other.execute("SELECT pg_try_advisory_lock(%s, hashtext(%s))",
                                         (LOCK_CHAT, f"t:{n}"))
            assert (await cursor.fetchone()) == (True,)
        await other.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", (LOCK_CHAT, "t:busy"))
        await asyncio.wait_for(busy, WITHIN)
        assert done[-1] == "t:busy"
        state = await store.load_turn_state("t:busy", "u-t:busy")
        assert state.duplicate and state.session == Session(language="en")
    finally:
        await other.close()


async def test_a_turn_whose_lock_went_with_its_connection_is_not_saved(
        store: PostgresStore, url: str) -> None:
    """The shared connection holding the chats' locks breaks mid-turn: the server dropped the
    lock, another process may serve the chat, so the turn's commit is refused."""
    admin = await psycopg.AsyncConnection.connect(url, autocommit=True)
    try:
        async with store.hold_chat("t:1"):
            await store.load_turn_state("t:1", "u1")
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' "
                "AND classid = %s AND database = (SELECT oid FROM pg_database "
                "WHERE datname = current_database())", (LOCK_CHAT,))
            errors = []
            for _ in range(2):  # the first trip after may be the one finding it broken
                try:
                    await store.commit_turn(TurnRecord("t:1", Session(language="en"),
                                                       update_id="u1"))
                except (psycopg.OperationalError, StorageUnavailable) as exc:
                    errors.append(exc)
            assert len(errors) == 2 and isinstance(errors[-1], StorageUnavailable)
            assert "lost the connection" in str(errors[-1])
        assert not (await store.load_turn_state("t:1", "u1")).duplicate
        async with store.hold_chat("t:1"):  # a new connection serves the next turn
            await store.load_turn_state("t:1", "u1")
            await store.commit_turn(TurnRecord("t:1", Session(language="en"), update_id="u1"))
        assert (await store.load_turn_state("t:1", "u1")).duplicate
    finally:
        await admin.close()


async def test_a_turn_cancelled_while_its_lock_is_being_taken_leaves_the_chat_free(
        store: PostgresStore, url: str) -> None:
    """The shared trip outlives a caller that gave up (a stop); a lock it took for nobody is
    given back, or the chat would stay locked for every other process."""
    async def turn() -> None:
        async with store.hold_chat("t:gone"):
            await store.load_turn_state("t:gone", "u1")

    await store.load_turn_state("t:other", None)  # the shared connection is open
    task = asyncio.create_task(turn())
    for _ in range(100):  # until the trip is out
        if store.trips["load"] == 2:
            break
        await asyncio.sleep(0)
    assert store.trips["load"] == 2
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    other = await psycopg.AsyncConnection.connect(url, autocommit=True)
    try:
        for _ in range(200):  # up to ~2 s for the give-back's trip
            cursor = await other.execute("SELECT pg_try_advisory_lock(%s, hashtext(%s))",
                                         (LOCK_CHAT, "t:gone"))
            if (await cursor.fetchone()) == (True,):
                break
            await asyncio.sleep(0.01)
        else:
            pytest.fail("the chat stayed locked by the cancelled turn")
    finally:
        await other.close()
