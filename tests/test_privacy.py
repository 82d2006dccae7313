"""Privacy on disk: /forget and the retention purge leave nothing in the SQLite file or its WAL.

Everything runs on a real file through the real dispatcher and desk; the check at the end
reads the raw bytes of the database, its -wal and its -shm, as someone with the disk would.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.dispatcher import Dispatcher
from bot.flowspec.library import default_flows_dir, load_library
from bot.handover.desk import DeskSettings, HandoverDesk
from bot.handover.model import Volunteer
from bot.i18n.catalog import CatalogSet
from bot.i18n.localizer import Localizer
from bot.messages import Inbound, InboundKind, Outbound
from bot.storage.sqlite import SqliteStore
from bot.transports.memory import MemoryTransport

FIXTURES = Path(__file__).parent / "fixtures" / "flows"
#: Distinctive enough that finding it anywhere in the files can only mean a leak.
PERSON_ID = "7305519428"
PERSON = f"telegram:{PERSON_ID}"
SENTENCE = "My cousin Zarmina waits at the Quetzal bakery in Dudley every Thursday"
VOLUNTEER_REPLY = "Ask for Okonkwo-Abernathy at the Wolverhampton drop-in"
UPDATE_MARK = "upd-Qx7vK"  # the person's update ids (the volunteer's are kept)
VOLUNTEER = Volunteer("telegram:111", "Farid", ("en", "fa"), ("*",))


def leaks(db: Path, needles: Sequence[str]) -> list[str]:
    """Which needles appear in the database file, its WAL or its shared-memory index,
    in UTF-8 or (for safety, though SQLite stores text as UTF-8 here) UTF-16."""
    found = []
    for suffix in ("", "-wal", "-shm"):
        path = Path(f"{db}{suffix}")
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


@pytest.mark.parametrize(("flows", "reach"), [
    (default_flows_dir(), reach_a_volunteer_shipped),
    (FIXTURES, reach_a_volunteer_fixture),
], ids=["shipped-flows", "free-text-answer"])
async def test_forget_leaves_nothing_in_the_file_or_its_wal(tmp_path: Path, flows: Path,
                                                             reach: Callable[[Chat], Awaitable[None]]
                                                             ) -> None:
    db = tmp_path / "bot.sqlite3"
    store = await SqliteStore.open(db)
    try:
        library = load_library([flows])
        localizer = Localizer(CatalogSet())
        desk = HandoverDesk(store, localizer, None, DeskSettings(hours="00:00-00:00"))
        transport = MemoryTransport()
        chat = Chat(Dispatcher(store, lambda: library, localizer, transport, desk=desk,
                               rate_limit=False), transport)
        await store.add_volunteer(VOLUNTEER)
        await chat.say(VOLUNTEER.chat_key, "/available")
        await reach(chat)
        card = await chat.say(VOLUNTEER.chat_key, "/take")
        assert card[0].text.startswith("You are now in chat #")
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
        raw = sqlite3.connect(db)
        try:
            for table in ("sessions", "outbox", "processed_updates", "handovers"):
                assert raw.execute(f"SELECT count(*) FROM {table} WHERE chat_key = ?",
                                   (PERSON,)).fetchone() == (0,)
            assert raw.execute("SELECT count(*) FROM offers").fetchone() == (0,)
        finally:
            raw.close()
        # The volunteer's side still works after the person is gone.
        assert [m.chat_key for m in await chat.say(VOLUNTEER.chat_key, "/queue")] == [
            VOLUNTEER.chat_key]
    finally:
        await store.close()
    assert leaks(db, [PERSON_ID, SENTENCE, VOLUNTEER_REPLY, UPDATE_MARK]) == []


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

