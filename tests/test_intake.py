"""The durable intake with the real SQLite store and dispatcher: saved before confirmed,
answered after a crash, redeliveries ignored, bursts read whole, crises answered at once."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from bot.dispatcher import Dispatcher
from bot.flowspec.library import FlowLibrary
from bot.i18n.localizer import Localizer
from bot.intake import Intake
from bot.messages import Inbound
from bot.storage.sqlite import SqliteStore
from bot.transports.memory import MemoryTransport
from tests.test_handover import FA, Desk, hand_over, make_desk

CHAT = "test:1"
QUIET = 0.15  # seconds a burst needs to end, in these tests


def text(n: int, words: str, chat: str = CHAT) -> Inbound:
    return Inbound.from_text(chat, words, update_id=f"test:{chat}:{n}")


def keys(transport: MemoryTransport, chat: str = CHAT) -> list[str]:
    return [m.key for m in transport.take() if m.chat_key == chat]


def count(db: Path, table: str) -> int:
    conn = sqlite3.connect(db)
    try:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    finally:
        conn.close()


class Bot:
    def __init__(self, store: SqliteStore, library: FlowLibrary, flood: bool = True) -> None:
        self.store = store
        self.transport = MemoryTransport()
        self.dispatcher = Dispatcher(store, lambda: library, Localizer(), self.transport)
        self.intake = Intake(store, self.dispatcher, flood_control=flood,
                             quiet_seconds=QUIET, burst_wait_max=5.0)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "bot.sqlite3"


async def test_saved_messages_are_answered_after_a_crash_in_order(db: Path,
                                                                  library: FlowLibrary) -> None:
    # A crash right after the save: the messages are in the inbox, nothing answered them.
    store = await SqliteStore.open(db)
    assert await store.receive([text(1, "hi"), text(2, "English")]) == [text(1, "hi"),
                                                                      text(2, "English")]
    await store.close()
    assert count(db, "inbox") == 2

    store = await SqliteStore.open(db)
    bot = Bot(store, library)
    assert await bot.intake.recover() == 2
    assert await bot.intake.drain(10)
    assert keys(bot.transport) == ["choose_language.pick", "choose_language.privacy",
                                   "main_menu.choose"]
    assert await store.inbox() == []
    await store.close()
    assert count(db, "inbox") == 0 and count(db, "processed_updates") == 2


async def test_a_restart_answers_only_what_waits_for_its_own_chats(db: Path,
                                                                  library: FlowLibrary) -> None:
    """Two local chats on one database: the one starting leaves the other's message, which
    that process may be answering now, and only it can show the answer."""
    store = await SqliteStore.open(db)
    try:
        await store.receive([text(1, "hi"), text(1, "hi", chat="test:2")])
        bot = Bot(store, library)
        assert await bot.intake.recover(lambda chat_key: chat_key == CHAT) == 1
        assert await bot.intake.drain(10)
        assert {m.chat_key for m in bot.transport.take()} == {CHAT}
        assert [m.chat_key for m, _ in await store.inbox()] == ["test:2"]
    finally:
        await store.close()


async def test_a_redelivered_message_is_answered_once(db: Path, library: FlowLibrary) -> None:
    store = await SqliteStore.open(db)
    bot = Bot(store, library)
    await bot.intake.accept([text(1, "hi")])
    await bot.intake.accept([text(1, "hi")])  # while waiting or being handled
    assert await bot.intake.drain(10)
    await bot.intake.accept([text(1, "hi"), text(1, "hi")])  # after it was handled
    assert await bot.intake.drain(10)
    assert keys(bot.transport) == ["choose_language.pick"]
    await store.close()


async def test_a_burst_is_read_whole_and_answered_once(db: Path, library: FlowLibrary) -> None:
    store = await SqliteStore.open(db)
    bot = Bot(store, library)
    await bot.intake.accept([text(0, "hi")])
    assert await bot.intake.drain(10)
    bot.transport.take()
    await bot.intake.accept([text(n, f"message {n}") for n in range(1, 21)])
    assert await bot.intake.drain(10)
    sent = [m for m in bot.transport.take() if m.chat_key == CHAT]
    assert [m.key for m in sent] == ["system.burst_read", "system.not_understood",
                                     "choose_language.pick"]
    assert sent[0].text == "I have read all 20 of your messages. Here is my answer to the last one:"
    await store.close()
    assert count(db, "inbox") == 0 and count(db, "processed_updates") == 21


async def test_a_crisis_inside_a_burst_gets_its_reply(db: Path, library: FlowLibrary) -> None:
    store = await SqliteStore.open(db)
    bot = Bot(store, library)
    await bot.intake.accept([text(0, "hi"), text(1, "English")])
    assert await bot.intake.drain(10)
    bot.transport.take()
    burst = [text(n, f"hello {n}") for n in range(2, 12)]
    burst.append(text(12, "i want to end my life"))  # the 11th quick message
    burst += [text(n, f"again {n}") for n in range(13, 18)]
    await bot.intake.accept(burst)
    assert await bot.intake.drain(10)
    got = keys(bot.transport)
    assert got[:3] == ["system.burst_read", "safety_check.heard", "safety_check.offer"]
    assert got[3:] == ["system.burst_read", "system.not_understood", "safety_check.offer"]
    await store.close()
    assert count(db, "processed_updates") == 18


async def test_a_crisis_is_not_held_back_by_a_burst_still_going(db: Path,
                                                                library: FlowLibrary) -> None:
    store = await SqliteStore.open(db)
    bot = Bot(store, library)
    bot.intake.quiet_seconds = 30.0  # the person never pauses, in this test's time
    await bot.intake.accept([text(n, f"hello {n}") for n in range(12)])
    await asyncio.sleep(0.05)
    assert keys(bot.transport) == []  # waiting for the burst to end ...
    await bot.intake.accept([text(12, "I am going to kill myself")])
    await bot.intake.drain(10)  # ... but not once a crisis message came
    assert "safety_check.heard" in keys(bot.transport)
    await store.close()


async def test_a_burst_to_a_volunteer_is_passed_on_message_by_message(tmp_path: Path) -> None:
    desk: Desk = await make_desk(tmp_path / "bot.sqlite3")
    await desk.store.add_volunteer(FA)
    await desk.send(FA.chat_key, "/available")
    await hand_over(desk, "test:user")
    await desk.send(FA.chat_key, "/take")
    intake = Intake(desk.store, desk.dispatcher, quiet_seconds=QUIET, burst_wait_max=5.0)
    await intake.accept([Inbound.from_text("test:user", f"part {n} of my story",
                                           update_id=f"u{n}") for n in range(15)])
    assert await intake.drain(10)
    relayed = [m.text for m in desk.transport.take() if m.chat_key == FA.chat_key]
    assert [t.split(": ", 1)[1].split("\n")[0] for t in relayed] == [
        f"part {n} of my story" for n in range(15)]
    await desk.store.close()


async def test_stop_lets_the_turn_in_flight_finish_and_keeps_the_rest(db: Path,
                                                                      library: FlowLibrary) -> None:
    store = await SqliteStore.open(db)
    bot = Bot(store, library, flood=False)
    await bot.intake.accept([text(n, f"m {n}") for n in range(30)])
    left = await bot.intake.stop(5.0)
    with pytest.raises(RuntimeError, match="stopping"):
        await bot.intake.accept([text(99, "too late")])
    assert len(await store.inbox()) == left
    assert count(db, "processed_updates") == 30 - left
    await store.close()
