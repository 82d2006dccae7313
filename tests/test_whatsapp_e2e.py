"""The whole bot on WhatsApp, and on WhatsApp and Telegram in one process: the real
WhatsApp transport (and python-telegram-bot) over loopback HTTP to fake Cloud API and Bot
API servers, the real router, intake, dispatcher, engine, catalogs, desk and SQLite file.
Only Meta's and Telegram's servers are faked."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from bot.app import load_catalog_set, run_bot
from bot.config import Settings
from bot.flowspec.library import default_flows_dir, load_library
from bot.handover.model import Volunteer
from bot.i18n.catalog import CatalogSet
from bot.storage.sqlite import SqliteStore
from bot.transports.base import Transport
from bot.transports.router import RoutingTransport
from bot.transports.telegram import TelegramTransport
from bot.transports.whatsapp import WEBHOOK_PATH, ReopenTemplate, WhatsAppTransport
from tests.support.fake_bot_api import FakeBotApi
from tests.support.fake_whatsapp_api import FakeUser, FakeWhatsAppApi

pytestmark = pytest.mark.timeout(60)

VOLUNTEER = 9001  # a volunteer's Telegram chat
OGG = b"OggS\x00\x02voice-note" + bytes(range(256)) * 4


@dataclass
class House:
    wa: FakeWhatsAppApi
    whatsapp: WhatsAppTransport
    db: Path
    tg: FakeBotApi | None = None

    def tg_texts(self, chat: int) -> list[str]:
        assert self.tg is not None
        return [m.get("text") or m.get("caption") or f"[{_kind(m)}]" for m in self.tg.bot_messages(chat)]

    async def tg_until(self, chat: int, fragment: str, within: float = 10) -> dict[str, Any]:
        assert self.tg is not None
        tg = self.tg

        def newest() -> dict[str, Any] | None:
            messages = tg.bot_messages(chat)
            text = (messages[-1].get("text") or messages[-1].get("caption") or "") if messages else ""
            return messages[-1] if messages and fragment in text else None

        await tg.wait_until(lambda: newest() is not None, within=within,
                            what=f"{fragment!r} in Telegram chat {chat}; have {self.tg_texts(chat)[-4:]}")
        found = newest()
        assert found is not None
        return found


async def start_house(tmp_path: Path, *, telegram: bool = False, window_errors: str = "sync",
                      volunteers: Sequence[Volunteer] = ()) -> tuple[House, asyncio.Task[None],
                                                                      Transport]:
    wa = await FakeWhatsAppApi(window_errors=window_errors).start()
    whatsapp = WhatsAppTransport(
        wa.access_token, wa.phone_number_id, wa.app_secret, wa.verify_token,
        api_base_url=wa.base_url, port=0, clock=wa.now, backoff_base=0.01,
        reopen_template=ReopenTemplate("write_again", {"en": "en_GB", "ps": "ps"}))
    db = tmp_path / "bot.sqlite3"
    store = await SqliteStore.open(db)
    for volunteer in volunteers:
        await store.add_volunteer(volunteer)
    await store.close()
    house = House(wa, whatsapp, db)
    transports: list[Transport] = [whatsapp]
    if telegram:
        house.tg = await FakeBotApi(max_poll_seconds=1.0).start()
        transports.append(TelegramTransport(house.tg.token, base_url=house.tg.base_url,
                                            base_file_url=house.tg.base_file_url, poll_timeout=0.5,
                                            backoff_base=0.01, backoff_max=0.05))
    transport: Transport = RoutingTransport(transports) if telegram else whatsapp
    settings = replace(Settings.from_env({"BOT_VOLUNTEER_HOURS": "00:00-00:00"}),
                       models_dir=tmp_path / "no-models")
    task = asyncio.create_task(run_bot(settings, transport, db_path=db, flush_every=0.2))
    await asyncio.wait_for(whatsapp.running.wait(), 10)
    for other in transports[1:]:
        assert isinstance(other, TelegramTransport)
        await asyncio.wait_for(other.running.wait(), 10)
    wa.webhook_url = f"http://127.0.0.1:{whatsapp.port}{WEBHOOK_PATH}"
    return house, task, transport


async def stop_house(house: House, task: asyncio.Task[None], transport: Transport) -> None:
    await asyncio.wait_for(transport.stop(), 10)
    await asyncio.wait_for(task, 15)
    await house.wa.stop()
    if house.tg is not None:
        await house.tg.stop()


@pytest.fixture
async def house(tmp_path: Path) -> AsyncIterator[House]:
    made, task, transport = await start_house(tmp_path)
    yield made
    await stop_house(made, task, transport)


@pytest.fixture
async def both(tmp_path: Path) -> AsyncIterator[House]:
    """WhatsApp and Telegram in one process; a Telegram volunteer speaking English and Pashto."""
    made, task, transport = await start_house(
        tmp_path, telegram=True,
        volunteers=[Volunteer(f"telegram:{VOLUNTEER}", "Farid", ("en", "ps"), ("*",))])
    yield made
    await stop_house(made, task, transport)


@pytest.fixture(scope="module")
def catalogs() -> CatalogSet:
    return load_catalog_set(Settings.from_env({}), load_library([default_flows_dir()]))


def ps(catalogs: CatalogSet, key: str) -> str:
    return catalogs.entries[("ps", key)].text


# ---------------------------------------------------------------------- flows


async def test_whole_flow_in_english_by_lists_and_buttons_to_the_handover(house: House) -> None:
    wa = house.wa
    amina = wa.user("447700900001", "GB.1000001")
    wa.send_text(amina, "hello")
    welcome = await wa.until_text(amina, "Welcome. Please choose your language.")
    # Six languages: a list, opened by a "Choose" button, each language in its own script.
    assert welcome.payload["interactive"]["type"] == "list"
    assert welcome.payload["interactive"]["action"]["button"] == "Choose"
    assert [t for _, t in welcome.choices] == ["English", "پښتو", "دری", "فارسی", "اردو", "हिन्दी"]
    wa.tap(amina, "English")
    menu = await wa.until_text(amina, "What do you need help with?")
    # One turn, one message: the privacy notice above the menu, in the list's body.
    assert menu.text.startswith("This is a free help service run by volunteers.")
    assert "My claim was refused" in [t for _, t in menu.choices]
    wa.tap(amina, "My claim was refused")
    appeal = await wa.until_text(amina, "Does your refusal letter say that you have a right of appeal?")
    assert appeal.payload["interactive"]["type"] == "button"  # three choices: reply buttons
    wa.tap(amina, "Yes, I can appeal")
    when = await wa.until_text(amina, "When was the refusal letter sent?")
    assert when.payload["interactive"]["type"] == "list"
    wa.tap(amina, "In the last 7 days")
    queued = await wa.until_text(amina, "You are in the queue to talk to a volunteer.")
    assert "No volunteer is online right now" in queued.text
    assert [c[1] for c in queued.choices] == ["Leave the queue"]
    assert any("I am asking a volunteer to join this chat now" in t for t in wa.texts(amina))
    assert all(len(m.text) <= 4096 for m in wa.messages_to(amina))
    rows = _rows(house.db, "SELECT chat_key, queue, priority FROM handovers")
    assert rows == [("whatsapp:GB.1000001", "legal", "deadline")]


async def test_whole_flow_in_pashto(house: House, catalogs: CatalogSet) -> None:
    wa = house.wa
    gul = wa.user("93700100200", "AF.2000001", hide_phone=True)
    wa.send_text(gul, "hello")
    await wa.until_text(gul, "Welcome. Please choose your language.")
    wa.tap(gul, "پښتو")
    menu = await wa.until_text(gul, ps(catalogs, "main_menu.choose"))
    opener = menu.payload["interactive"]["action"]["button"]
    assert opener == ps(catalogs, "system.choose")  # the whole message in Pashto
    titles = [t for _, t in menu.choices]
    assert ps(catalogs, "claim_refused.title") in titles
    wa.tap(gul, ps(catalogs, "claim_refused.title"))
    appeal = await wa.until_text(gul, ps(catalogs, "claim_refused.appeal_right"))
    assert appeal.payload["interactive"]["type"] == "button"
    assert all(len(t) <= 20 for _, t in appeal.choices)
    wa.tap(gul, ps(catalogs, "claim_refused.appeal_right.yes_appeal"))
    await wa.until_text(gul, ps(catalogs, "claim_refused.letter_when"))
    wa.tap(gul, ps(catalogs, "claim_refused.letter_when.this_week"))
    queued = await wa.until_text(gul, ps(catalogs, "handover.queued").split("{")[0].strip())
    assert [t for _, t in queued.choices] == [ps(catalogs, "handover.leave_button")]
    english = [m.text for m in wa.messages_to(gul)[1:] if m.text.isascii()]
    assert english == []  # after the language choice, nothing in English
    assert all(m.payload["recipient"] == "AF.2000001" for m in wa.messages_to(gul))  # no phone


async def test_duplicate_message_id_is_answered_once(house: House) -> None:
    wa = house.wa
    amina = wa.user("447700900001", "GB.1000001")
    first = wa.send_text(amina, "hi")
    await wa.until_text(amina, "Please choose your language")
    wa.redeliver(first)
    wa.tap(amina, "English")
    await wa.until_text(amina, "What do you need help with?")
    await wa.delivered()
    assert len(wa.messages_to(amina)) == 2
    assert _rows(house.db, "SELECT count(*) FROM processed_updates") == [(2,)]


async def test_list_reply_and_a_stale_tap(house: House) -> None:
    wa = house.wa
    amina = wa.user("447700900001", "GB.1000001")
    wa.send_text(amina, "hi")
    welcome = await wa.until_text(amina, "Please choose your language")
    wa.tap(amina, "English")
    await wa.until_text(amina, "What do you need help with?")
    menu = wa.last_question(amina)
    wa.tap(amina, "Find my family")  # a list reply
    await wa.wait_until(lambda: wa.last_question(amina).id != menu.id, what="the family flow")
    await wa.delivered()
    await asyncio.sleep(0.1)
    # An old question still shows its list (WhatsApp has no edits); a tap on it is stale.
    count = len(wa.messages_to(amina))
    wa.tap(amina, "فارسی", message=welcome)
    await wa.wait_until(lambda: len(wa.messages_to(amina)) > count, what="an answer")
    assert wa.texts(amina)[count].startswith("That question has passed. Here is where we are now:")


async def test_media_without_a_volunteer_gets_the_polite_reply(house: House) -> None:
    wa = house.wa
    amina = wa.user("447700900001", "GB.1000001")
    wa.send_text(amina, "hi")
    await wa.until_text(amina, "Please choose your language")
    for send in (lambda: wa.send_sticker(amina),
                 lambda: wa.send_file(amina, "audio", OGG, mime_type="audio/ogg; codecs=opus",
                                      voice=True)):
        count = len(wa.messages_to(amina))
        send()
        await wa.wait_until(lambda c=count: len(wa.messages_to(amina)) > c, what="an answer")
        reply = await wa.until_text(amina, "Please choose your language")
        assert reply.text.startswith("Thank you. I can only read text messages.")


# ---------------------------------------------------------------------- volunteers


async def test_a_telegram_volunteer_with_a_whatsapp_person(both: House) -> None:
    wa, tg = both.wa, both.tg
    assert tg is not None
    amina = await _queued(wa, "447700900001", "GB.1000001")
    tg.send_text(VOLUNTEER, "/available")
    offer = await both.tg_until(VOLUNTEER, "New chat waiting: #1")
    assert "Language: English" in offer["text"]
    tg.send_text(VOLUNTEER, "/take")
    await both.tg_until(VOLUNTEER, "You are now in chat #1.")
    await wa.until_text(amina, "A volunteer has joined this chat.")
    wa.send_text(amina, "I got a letter today")
    await both.tg_until(VOLUNTEER, "#1: I got a letter today")
    tg.send_text(VOLUNTEER, "Hello, I am Farid. What does the letter say?")
    await wa.until_text(amina, "Hello, I am Farid. What does the letter say?")
    tg.send_text(VOLUNTEER, "/done")
    await wa.until_text(amina, "The volunteer has ended this chat.")


async def test_a_voice_note_is_relayed_both_ways(both: House) -> None:
    wa, tg = both.wa, both.tg
    assert tg is not None
    amina = await _queued(wa, "447700900001", "GB.1000001")
    await _take(both, amina)
    # WhatsApp -> Telegram: downloaded from WhatsApp, uploaded to Telegram as a voice note.
    wa.send_file(amina, "audio", OGG, mime_type="audio/ogg; codecs=opus", voice=True)
    note = await both.tg_until(VOLUNTEER, "#1: a voice note from the person")
    assert tg.file_data(note["voice"]["file_id"]) == OGG
    wa.send_file(amina, "document", b"%PDF-1.4 refusal letter", mime_type="application/pdf",
                 file_name="refusal.pdf", caption="my letter")
    letter = await both.tg_until(VOLUNTEER, "#1: a document from the person:\nmy letter")
    assert tg.file_data(letter["document"]["file_id"]) == b"%PDF-1.4 refusal letter"
    assert letter["document"]["file_name"] == "refusal.pdf"
    # Telegram -> WhatsApp: fetched from Telegram, uploaded to WhatsApp, sent as a voice note.
    reply = OGG[::-1]
    tg.send_voice(VOLUNTEER, data=reply)
    await wa.wait_until(lambda: wa.messages_to(amina)[-1].type == "audio", what="the voice note")
    sent = wa.messages_to(amina)[-1]
    assert sent.media == reply and sent.payload["audio"].get("voice") is True
    uploaded = sent.payload["audio"]["id"]
    wa.status(sent.id, "delivered")  # kept at WhatsApp only until delivered
    await wa.wait_until(lambda: wa.media[uploaded].deleted, what="the upload deleted")
    # Nothing kept here either: sent rows leave the outbox (in a batch, moments later).
    await wa.wait_until(lambda: _rows(both.db, "SELECT count(*) FROM outbox") == [(0,)],
                        what="an empty outbox")


async def test_a_failed_status_tells_the_volunteer_why(both: House) -> None:
    wa = both.wa
    amina = await _queued(wa, "447700900001", "GB.1000001")
    await _take(both, amina)
    assert both.tg is not None
    both.tg.send_text(VOLUNTEER, "Can you send me a photo of the letter?")
    sent = await wa.until_text(amina, "Can you send me a photo of the letter?")
    wa.fail(sent.id, 131026)  # accepted, then reported failed (the person blocked the bot)
    notice = await both.tg_until(VOLUNTEER, "was not delivered")
    assert notice["text"] == ("#1: your message was not delivered to the person: WhatsApp could "
                              "not deliver it to this person (they may have left WhatsApp, blocked "
                              "the bot, or need to update the app).\nIt began: Can you send me a "
                              "photo of the letter?")
    await wa.delivered()
    assert _rows(both.db, "SELECT count(*) FROM inbox") == [(0,)]
    assert _rows(both.db, "SELECT count(*) FROM processed_updates WHERE update_id = ?",
                 (f"whatsapp:{sent.id}:failed",)) == [(1,)]


async def test_a_volunteer_reply_outside_the_window(both: House) -> None:
    wa, tg = both.wa, both.tg
    assert tg is not None
    amina = await _queued(wa, "447700900001", "GB.1000001")
    wa.advance(25 * 3600)  # the person queued at night; a volunteer takes the chat next day
    tg.send_text(VOLUNTEER, "/available")
    await both.tg_until(VOLUNTEER, "New chat waiting: #1")
    tg.send_text(VOLUNTEER, "/take")
    await both.tg_until(VOLUNTEER, "You are now in chat #1.")
    # No free text outside the window: the approved invitation goes instead of "joined".
    invited = await wa.until_text(amina, "[template write_again]")
    assert invited.payload["template"]["language"] == {"code": "en_GB"}
    tg.send_text(VOLUNTEER, "Hello, are you still there?")
    notice = await both.tg_until(VOLUNTEER, "was not delivered")
    assert notice["text"].startswith(
        "#1: your message was not delivered to the person: the person last wrote more than 24 "
        "hours ago, and WhatsApp lets the bot write to someone only within 24 hours of their "
        "last message. Send /invite")
    assert wa.texts(amina)[-1] == "[template write_again]"  # nothing more was sent
    tg.send_text(VOLUNTEER, "/invite")
    await both.tg_until(VOLUNTEER, "#1: the person was asked to write again")
    await wa.wait_until(lambda: wa.texts(amina).count("[template write_again]") == 2,
                        what="a second invitation")
    wa.send_text(amina, "yes I am here")  # the window opens again
    await both.tg_until(VOLUNTEER, "#1: yes I am here")
    tg.send_text(VOLUNTEER, "Good. How can I help?")
    await wa.until_text(amina, "Good. How can I help?")


async def test_a_whatsapp_volunteer_registered_by_phone_number(tmp_path: Path) -> None:
    from bot.__main__ import _volunteer_key

    key = _volunteer_key("wa:+44 7700 900999")
    assert key == "whatsapp:447700900999"
    made, task, transport = await start_house(
        tmp_path, volunteers=[Volunteer(key, "Zara", ("en",), ("*",))])
    try:
        wa = made.wa
        zara = wa.user("447700900999", "GB.9999")  # WhatsApp keys her on her user id
        amina = await _queued(wa, "447700900001", "GB.1000001")
        wa.send_text(zara, "/available")
        await wa.wait_until(lambda: len(wa.messages_to(zara)) == 2, what="the desk's answers")
        assert any(t.startswith("You are available") for t in wa.texts(zara))
        offer = wa.last_question(zara)
        assert offer.text.startswith("New chat waiting: #1")
        # Recognised by the phone number she was registered with; desk messages go there.
        assert all(m.payload["to"] == "447700900999" for m in wa.messages_to(zara))
        wa.tap(zara, "Take #1")
        await wa.until_text(zara, "You are now in chat #1.")
        await wa.until_text(amina, "A volunteer has joined this chat.")
        wa.send_text(zara, "Hello from Zara")
        await wa.until_text(amina, "Hello from Zara")
    finally:
        await stop_house(made, task, transport)


# ---------------------------------------------------------------------- helpers


async def _queued(wa: FakeWhatsAppApi, phone: str, user_id: str) -> FakeUser:
    """A person who chose English and asked for a person."""
    person = wa.user(phone, user_id)
    wa.send_text(person, "hi")
    await wa.until_text(person, "Please choose your language")
    wa.tap(person, "English")
    await wa.until_text(person, "What do you need help with?")
    wa.send_text(person, "person")
    await wa.until_text(person, "What is it about?")
    wa.tap(person, "Something else")
    await wa.until_text(person, "You are in the queue to talk to a volunteer.")
    return person


async def _take(both: House, person: FakeUser) -> None:
    assert both.tg is not None
    both.tg.send_text(VOLUNTEER, "/available")
    await both.tg_until(VOLUNTEER, "New chat waiting: #1")
    both.tg.send_text(VOLUNTEER, "/take")
    await both.tg_until(VOLUNTEER, "You are now in chat #1.")
    await both.wa.until_text(person, "A volunteer has joined this chat.")


def _rows(db: Path, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(query, params).fetchall()
    finally:
        conn.close()


def _kind(message: dict[str, Any]) -> str:
    return next((k for k in ("voice", "audio", "photo", "document") if k in message), "?")
