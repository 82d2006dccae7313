"""The dispatcher with the real SQLite store: order, atomic turns, crashes, duplicates, bursts."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot.dispatcher import Dispatcher, merge_turn
from bot.engine.events import Say
from bot.flowspec.library import FlowLibrary, load_library
from bot.i18n.localizer import Localizer
from bot.messages import Inbound, InboundKind, Outbound, OutButton
from bot.storage.sqlite import SqliteStore
from bot.transports.memory import MemoryTransport

FIXTURES = Path(__file__).parent / "fixtures" / "flows"
CHAT = "test:1"


def fixture_library() -> FlowLibrary:
    return load_library([FIXTURES])


@pytest.fixture
def library() -> FlowLibrary:
    """The small fixture flows (overrides the shipped flows used by conftest's dispatcher)."""
    return fixture_library()


async def make(path: Path, transport: MemoryTransport, **kwargs: object) -> tuple[SqliteStore, Dispatcher]:
    store = await SqliteStore.open(path)
    library = fixture_library()
    return store, Dispatcher(store, lambda: library, Localizer(), transport, **kwargs)  # type: ignore[arg-type]


async def say(dispatcher: Dispatcher, text: str, chat: str = CHAT, update_id: str | None = None) -> None:
    await dispatcher.handle(Inbound.from_text(chat, text, update_id))


async def test_restart_resumes_at_the_same_step(tmp_path: Path) -> None:
    transport = MemoryTransport()
    store, dispatcher = await make(tmp_path / "bot.sqlite3", transport)
    for typed in ("hi", "1", "1"):  # language, menu, claim refused -> asks "when"
        await say(dispatcher, typed)
    assert [m.key for m in transport.take()][-1] == "refused.when"
    await store.close()

    transport = MemoryTransport()
    store, dispatcher = await make(tmp_path / "bot.sqlite3", transport)
    await dispatcher.reopen(CHAT)
    assert [m.key for m in transport.take()] == ["refused.when"]
    await say(dispatcher, "This week")
    assert [m.key for m in transport.take()] == ["refused.detail"]
    await store.close()


async def test_reply_lost_in_a_crash_is_sent_after_restart(tmp_path: Path) -> None:
    transport = MemoryTransport()
    store, dispatcher = await make(tmp_path / "bot.sqlite3", transport)
    await say(dispatcher, "hi")
    transport.take()
    transport.fail_next = 5  # the platform is down: the turn is saved, the reply is not confirmed
    await say(dispatcher, "English")
    assert transport.take() == []
    await store.close()

    transport = MemoryTransport()
    store, dispatcher = await make(tmp_path / "bot.sqlite3", transport)
    await dispatcher.flush_outbox()
    assert [m.key for m in transport.take()] == ["choose_language.privacy", "main_menu.choose"]
    await dispatcher.flush_outbox()
    assert transport.take() == []  # confirmed once, never sent twice
    await store.close()


async def test_duplicate_update_is_handled_once(dispatcher: Dispatcher, transport: MemoryTransport) -> None:
    await say(dispatcher, "hi", update_id="telegram:1")
    await say(dispatcher, "hi", update_id="telegram:1")
    assert [m.key for m in transport.take()] == ["choose_language.pick"]


async def test_one_chat_in_order_many_chats_concurrently(
        dispatcher: Dispatcher, transport: MemoryTransport) -> None:
    async def walk(chat: str) -> None:
        for typed in ("hi", "1", "1", "1"):
            await say(dispatcher, typed, chat)

    await asyncio.gather(*(walk(f"test:{n}") for n in range(30)))
    for n in range(30):
        keys = [m.key for m in transport.sent if m.chat_key == f"test:{n}"]
        assert keys == ["choose_language.pick", "choose_language.privacy", "main_menu.choose",
                        "refused.intro", "refused.when", "refused.detail"]


async def test_messages_sent_together_are_handled_in_arrival_order(
        dispatcher: Dispatcher, transport: MemoryTransport) -> None:
    await asyncio.gather(*(say(dispatcher, t) for t in ("hi", "1", "1", "1")))
    assert [m.key for m in transport.sent][-1] == "refused.detail"


async def test_sticker_and_ten_thousand_characters_get_polite_replies(
        dispatcher: Dispatcher, transport: MemoryTransport, store: SqliteStore) -> None:
    for typed in ("hi", "1", "1"):
        await say(dispatcher, typed)
    transport.take()
    before = await store.load_session(CHAT)
    await dispatcher.handle(Inbound(CHAT, InboundKind.MEDIA, media="sticker"))
    await say(dispatcher, "a" * 10_000)
    assert [m.key for m in transport.take()] == [
        "system.media", "refused.when", "system.too_long", "refused.when"]
    after = await store.load_session(CHAT)
    assert after is not None and before is not None
    assert (after.flow, after.step) == (before.flow, before.step)


async def test_broken_unicode_is_repaired_not_a_failed_turn(
        dispatcher: Dispatcher, transport: MemoryTransport, store: SqliteStore) -> None:
    # JSON may carry a lone surrogate ("\ud800"); UTF-8 (SQLite) cannot store one.
    for typed in ("hi", "1", "1", "1", "came \ud800 Monday \ud83d\ude00"):
        await say(dispatcher, typed)
    assert transport.sent[-1].text == "A volunteer will reply here. You said: came \ufffd Monday \U0001f600"
    [handover] = await store.handovers(CHAT)
    assert handover["summary"] == "Letter sent This week. Said: came \ufffd Monday \U0001f600"


async def test_handover_is_recorded_in_the_same_turn(
        dispatcher: Dispatcher, transport: MemoryTransport, store: SqliteStore) -> None:
    for typed in ("hi", "1", "1", "1", "Letter came Monday"):
        await say(dispatcher, typed)
    [handover] = await store.handovers(CHAT)
    assert handover["queue"] == "legal" and handover["priority"] == "deadline"
    assert handover["summary"] == "Letter sent This week. Said: Letter came Monday"
    assert handover["language"] == "en"


def test_merge_turn_joins_texts_up_to_the_question() -> None:
    def out(key: str, text: str, buttons: int = 0, lang: str = "en") -> Outbound:
        return Outbound(CHAT, text, tuple(OutButton(f"1.{i}", f"B{i}") for i in range(buttons)),
                        language=lang, key=key)

    merged = merge_turn([out("a", "A"), out("b", "B"), out("q", "Q?", 2), out("c", "C"),
                         out("d", "D" * 50), out("e", "E", lang="fa")], limit=40)
    assert [(m.key, m.text, len(m.buttons)) for m in merged] == [
        ("a+b+q", "A\n\nB\n\nQ?", 2), ("c", "C", 0), ("d", "D" * 50, 0), ("e", "E", 0)]


class SlowLocalizer(Localizer):
    async def render(self, say: Say, chat_key: str, lang: str | None) -> Outbound:
        await asyncio.sleep(0.2)  # e.g. a live machine translation
        return await super().render(say, chat_key, lang)


async def test_typing_is_shown_only_for_a_slow_turn(store: SqliteStore, library: FlowLibrary) -> None:
    transport = MemoryTransport()
    fast = Dispatcher(store, lambda: library, Localizer(), transport, typing_after=0.05)
    await say(fast, "hi", chat="test:fast")
    slow = Dispatcher(store, lambda: library, SlowLocalizer(), transport, typing_after=0.05)
    await say(slow, "hi", chat="test:slow")
    assert transport.typed == ["test:slow"]


async def test_a_turn_that_only_waited_in_a_queue_shows_no_typing(tmp_path: Path) -> None:
    """Under load turns are slow because they wait: for the chat's lock (the chat's earlier
    message) and for the database. That is not the turn's own work: no "typing...".
    Here another program holds the database's write lock for 0.4 s."""
    import sqlite3

    transport = MemoryTransport()
    store, dispatcher = await make(tmp_path / "bot.sqlite3", transport, typing_after=0.05)
    try:
        await say(dispatcher, "hi", chat="test:warm")  # the tables exist
        other = sqlite3.connect(tmp_path / "bot.sqlite3", isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # nobody else may write until it ends

        async def release() -> None:
            await asyncio.sleep(0.4)
            other.execute("COMMIT")
            other.close()

        started = asyncio.get_running_loop().time()
        await asyncio.gather(release(), say(dispatcher, "hi"), say(dispatcher, "1"),
                             say(dispatcher, "hi", chat="test:2"))
        waited = asyncio.get_running_loop().time() - started
    finally:
        await store.close()
    assert waited >= 0.4  # the turns did wait, far longer than typing_after
    assert [m.chat_key for m in transport.sent].count(CHAT) >= 2  # both answered
    assert transport.typed == []
    assert dispatcher.stats["typing"] == 0


async def test_a_turn_the_database_cannot_save_gets_an_apology_in_the_person_s_language(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import sqlite3

    from bot.app import load_catalog_set
    from bot.config import Settings

    transport = MemoryTransport()
    store = await SqliteStore.open(tmp_path / "bot.sqlite3")
    library = fixture_library()
    localizer = Localizer(load_catalog_set(Settings.from_env({}), library))
    dispatcher = Dispatcher(store, lambda: library, localizer, transport, default_language="fa")
    try:
        await say(dispatcher, "hi")
        assert transport.take()
        # Another program breaks the file under the bot (a real fault, not a fake store).
        other = sqlite3.connect(tmp_path / "bot.sqlite3")
        other.execute("DROP TABLE outbox")
        other.commit()
        other.close()
        for _ in range(2):  # no crash, and the next message is answered the same way
            await say(dispatcher, "1")
            [sorry] = transport.take()
            assert (sorry.key, sorry.language) == ("system.error", "fa")
            assert "پیام شما ذخیره نشد" in sorry.text
        assert "a turn failed" in caplog.text
    finally:
        await store.close()
