"""Replies the platform refuses or cannot take: dropped or retried, never blocking a chat.

The real dispatcher, desk and SQLite store; the platform is the real Telegram transport
talking to the fake Bot API over loopback, or the memory transport where only the kind of
failure matters. Time is the dispatcher's injected clock: nothing here waits for real.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bot import limits
from bot.dispatcher import Dispatcher
from bot.errors import DeliveryRefused, TransportError
from bot.flowspec.library import load_library
from bot.handover.desk import RELAY_KEY, DeskSettings, HandoverDesk
from bot.handover.model import Volunteer
from bot.i18n.localizer import Localizer
from bot.messages import Inbound, Outbound
from bot.storage.sqlite import SqliteStore
from bot.transports.base import Transport
from bot.transports.memory import MemoryTransport
from bot.transports.telegram import TelegramTransport
from tests.support.fake_bot_api import FakeBotApi

FIXTURES = Path(__file__).parent / "fixtures" / "flows"
VOLUNTEER_ID, PERSON_ID, OTHER_ID = 2001, 2002, 2003
VOLUNTEER = f"telegram:{VOLUNTEER_ID}"
PERSON = f"telegram:{PERSON_ID}"
OTHER = f"telegram:{OTHER_ID}"

pytestmark = pytest.mark.timeout(60)


@dataclass
class Desk:
    store: SqliteStore
    dispatcher: Dispatcher
    now: list[float] = field(default_factory=lambda: [1000.0])
    entry_id: int = 0

    async def send(self, chat: str, text: str) -> None:
        await self.dispatcher.handle(Inbound.from_text(chat, text))

    async def later(self, seconds: float) -> None:
        """Move the dispatcher's clock on, then run its outbox retry round."""
        self.now[0] += seconds
        await self.dispatcher.flush_outbox()


async def open_desk(db: Path, transport: Transport) -> Desk:
    """A volunteer holding the person's chat, on a fresh database."""
    now = [1000.0]
    store = await SqliteStore.open(db)
    library = load_library([FIXTURES])
    localizer = Localizer()
    desk = HandoverDesk(store, localizer, settings=DeskSettings(hours="00:00-00:00"))
    dispatcher = Dispatcher(store, lambda: library, localizer, transport, desk=desk,
                            clock=lambda: now[0])
    made = Desk(store, dispatcher, now)
    await store.add_volunteer(Volunteer(VOLUNTEER, "Vera", ("en",), ("*",)))
    await made.send(VOLUNTEER, "/available")
    for text in ("hi", "1", "2"):  # English, then "talk to a person"
        await made.send(PERSON, text)
    await made.send(VOLUNTEER, "/take")
    entry = await store.held_by(VOLUNTEER)
    assert entry is not None
    made.entry_id = entry.id
    return made


@pytest.fixture
async def api() -> AsyncIterator[FakeBotApi]:
    server = await FakeBotApi().start()
    yield server
    await server.stop()


@pytest.fixture
async def telegram(api: FakeBotApi, tmp_path: Path) -> AsyncIterator[Desk]:
    # One attempt per send: retrying is the dispatcher's business in these tests.
    transport = TelegramTransport(api.token, base_url=api.base_url, base_file_url=api.base_file_url,
                                  send_attempts=1)
    made = await open_desk(tmp_path / "bot.sqlite3", transport)
    yield made
    await made.store.close()
    await transport.close()


def texts(api: FakeBotApi, chat_id: int) -> list[str]:
    return [m["text"] for m in api.bot_messages(chat_id)]


def relay(desk: Desk, text: str) -> Outbound:
    return Outbound(PERSON, text, key=RELAY_KEY,
                    meta={"from": VOLUNTEER, "handover": str(desk.entry_id)})


async def test_blank_volunteer_messages_are_refused_at_the_desk(telegram: Desk,
                                                                api: FakeBotApi) -> None:
    before = len(texts(api, PERSON_ID))
    for blank in ("   ", "\u3000", "\u200b\u200c", "\x07", " \t\n"):
        await telegram.send(VOLUNTEER, blank)
        assert texts(api, VOLUNTEER_ID)[-1].startswith("Not sent: your message holds only spaces")
    await telegram.send(VOLUNTEER, "Hello, I am Vera.")
    assert texts(api, PERSON_ID)[before:] == ["Hello, I am Vera."]


async def test_poison_left_in_the_outbox_is_dropped_and_the_next_message_arrives(
        telegram: Desk, api: FakeBotApi) -> None:
    # Rows an older version queued: it relayed blank text, which Telegram refuses.
    await telegram.store.enqueue([relay(telegram, "   "), relay(telegram, "\u3000"),
                                  relay(telegram, "\x07")])
    await telegram.send(VOLUNTEER, "How can I help?")
    assert texts(api, PERSON_ID)[-1] == "How can I help?"
    # The control character went to Telegram and came back 400; the others never left.
    assert [c.status for c in api.calls_to("sendMessage", chat_id=PERSON_ID, ok_only=False)
            if c.params["text"] == "\x07"] == [400]
    notices = [t for t in texts(api, VOLUNTEER_ID) if "not delivered" in t]
    assert len(notices) == 3
    assert all(t.startswith(f"#{telegram.entry_id}: your message was not delivered to the person: "
                            "the message was empty or only spaces") for t in notices)
    assert "It began: '\\u3000'" in notices[1]
    assert telegram.dispatcher.stats["dropped"] == 3
    assert await telegram.store.pending() == []


async def test_a_refusal_by_the_platform_is_reported_to_the_volunteer(
        telegram: Desk, api: FakeBotApi) -> None:
    api.fail_next("sendMessage", status=403, chat_id=PERSON_ID)
    await telegram.send(VOLUNTEER, "Are you still there?")
    assert texts(api, VOLUNTEER_ID)[-1] == (
        f"#{telegram.entry_id}: your message was not delivered to the person: Telegram does not "
        "let the bot write to this person any more (they may have blocked the bot or deleted "
        "their account).\nIt began: Are you still there?")
    await telegram.send(VOLUNTEER, "Next one")
    assert texts(api, PERSON_ID)[-1] == "Next one"


async def test_a_temporary_failure_is_retried_in_order_without_holding_up_others(
        telegram: Desk, api: FakeBotApi) -> None:
    api.fail_next("sendMessage", status=502, chat_id=PERSON_ID)
    shown = len(texts(api, PERSON_ID))
    await telegram.send(VOLUNTEER, "first")
    await telegram.send(VOLUNTEER, "second")  # must not overtake "first"
    await telegram.send(OTHER, "hi")  # another chat is served meanwhile
    assert texts(api, PERSON_ID)[shown:] == []
    assert texts(api, OTHER_ID)[-1] == "Welcome. Please choose your language."
    await telegram.later(limits.SEND_RETRY_FIRST_SECONDS - 1)  # backing off: not tried yet
    assert len(api.calls_to("sendMessage", chat_id=PERSON_ID, ok_only=False)) == shown + 1
    await telegram.later(1)
    assert texts(api, PERSON_ID)[shown:] == ["first", "second"]
    assert telegram.dispatcher.stats["retried"] == 1
    assert not any("not delivered" in t for t in texts(api, VOLUNTEER_ID))


async def test_a_person_s_next_replies_wait_behind_one_kept_for_retry(
        telegram: Desk, api: FakeBotApi) -> None:
    api.fail_next("sendMessage", status=502, chat_id=OTHER_ID)
    await telegram.send(OTHER, "hi")  # the language question fails for now
    await telegram.send(OTHER, "1")  # answered anyway: its replies must not come first
    assert texts(api, OTHER_ID) == []
    await telegram.later(limits.SEND_RETRY_FIRST_SECONDS)
    welcome, menu = texts(api, OTHER_ID)
    assert welcome == "Welcome. Please choose your language."
    assert menu.startswith("This is a free help service") and "What do you need help with?" in menu


async def test_a_long_flood_wait_is_honoured_before_trying_again(
        telegram: Desk, api: FakeBotApi) -> None:
    api.fail_next("sendMessage", status=429, retry_after=90, chat_id=PERSON_ID)
    await telegram.send(VOLUNTEER, "slowly")  # 90 s is more than the transport waits out
    await telegram.later(limits.SEND_RETRY_FIRST_SECONDS)
    assert "slowly" not in texts(api, PERSON_ID)
    await telegram.later(90)
    assert texts(api, PERSON_ID)[-1] == "slowly"


async def test_a_message_still_failing_is_given_up_and_the_volunteer_told(tmp_path: Path) -> None:
    transport = MemoryTransport()
    desk = await open_desk(tmp_path / "bot.sqlite3", transport)
    try:
        transport.take()
        transport.fail_chats[PERSON] = TransportError("memory: down", reason="the line is down")
        await desk.send(VOLUNTEER, "first")
        await desk.send(VOLUNTEER, "second")
        flushes = 0
        while desk.dispatcher.stats["given_up"] == 0:
            await desk.later(5)
            flushes += 1
            assert flushes <= limits.SEND_GIVE_UP_SECONDS / 5 + 1
        # Backed off: far fewer tries than retry rounds.
        assert desk.dispatcher.stats["retried"] < flushes / 5
        [notice] = [m.text for m in transport.take() if m.chat_key == VOLUNTEER]
        assert notice == (f"#{desk.entry_id}: your message was not delivered to the person: the "
                          "line is down, and it still failed after 15 minutes of trying.\n"
                          "It began: first")
        del transport.fail_chats[PERSON]  # the platform is back: the later message goes
        await desk.later(limits.SEND_RETRY_MAX_SECONDS)
        assert [m.text for m in transport.take()] == ["second"]
        assert await desk.store.pending() == []
    finally:
        await desk.store.close()


async def test_one_chat_failing_does_not_stop_other_chats_in_the_same_round(
        tmp_path: Path) -> None:
    transport = MemoryTransport()
    desk = await open_desk(tmp_path / "bot.sqlite3", transport)
    try:
        transport.take()
        transport.fail_chats["telegram:1"] = TransportError("memory: down")
        transport.fail_chats["telegram:2"] = DeliveryRefused("memory: blocked")
        await desk.store.enqueue([Outbound(f"telegram:{n}", f"to {n}") for n in (1, 2, 3, 4)]
                                 + [Outbound("telegram:1", "later to 1"),
                                    Outbound("telegram:2", "later to 2")])
        await desk.dispatcher.flush_outbox()
        assert [m.text for m in transport.take()] == ["to 3", "to 4"]
        assert desk.dispatcher.stats["dropped"] == 2  # both refused for good, each alone
        assert [m.message.text for m in await desk.store.pending()] == ["to 1", "later to 1"]
    finally:
        await desk.store.close()
