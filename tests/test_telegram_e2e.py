"""The whole bot on Telegram: real python-telegram-bot over loopback HTTP to a fake Bot API,
the real dispatcher, engine, catalogs and SQLite file. Only Telegram's servers are faked."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from bot.app import command_menus, run_bot
from bot.config import Settings
from bot.transports.telegram import TelegramTransport
from tests.support.fake_bot_api import FakeBotApi

pytestmark = pytest.mark.timeout(60)


class Bot:
    def __init__(self, api: FakeBotApi, db: Path) -> None:
        self.api = api
        self.db = db

    def texts(self, chat: int) -> list[str]:
        return [m["text"] for m in self.api.bot_messages(chat)]

    async def until(self, chat: int, fragment: str, within: float = 10) -> dict[str, Any]:
        """Wait for the bot's newest message to ``chat`` to contain ``fragment``; return it."""
        def newest() -> dict[str, Any] | None:
            messages = self.api.bot_messages(chat)
            return messages[-1] if messages and fragment in messages[-1]["text"] else None

        await self.api.wait_until(lambda: newest() is not None, within=within,
                                  what=f"{fragment!r} in chat {chat}; have {self.texts(chat)}")
        await asyncio.sleep(0.05)  # let any extra (unexpected) message arrive too
        message = newest()
        assert message is not None, f"a message came after {fragment!r}: {self.texts(chat)}"
        return message

    def last_question(self, chat: int) -> dict[str, Any]:
        return [m for m in self.api.bot_messages(chat) if m.get("reply_markup")][-1]

    def tap(self, chat: int, label: str) -> None:
        question = self.last_question(chat)
        labels = [b["text"] for row in question["reply_markup"]["inline_keyboard"] for b in row]
        self.api.tap(chat, question["message_id"], index=labels.index(label))


@pytest.fixture
async def bot(tmp_path: Path) -> AsyncIterator[Bot]:
    api = await FakeBotApi(max_poll_seconds=1.0).start()
    transport = TelegramTransport(api.token, base_url=api.base_url, base_file_url=api.base_file_url,
                                  poll_timeout=0.5, backoff_base=0.01, backoff_max=0.05)
    settings = replace(Settings.from_env({"BOT_VOLUNTEER_HOURS": "00:00-00:00"}),
                       models_dir=tmp_path / "no-models")
    db = tmp_path / "bot.sqlite3"
    task = asyncio.create_task(run_bot(
        settings, transport, db_path=db,
        on_start=lambda localizer: transport.set_commands(command_menus(localizer))))
    await asyncio.wait_for(transport.running.wait(), 10)
    yield Bot(api, db)
    await asyncio.wait_for(transport.stop(), 10)
    await asyncio.wait_for(task, 10)
    await api.stop()


async def test_whole_flow_by_taps_to_the_handover(bot: Bot) -> None:
    chat = 1001
    bot.api.send_text(chat, "hello")
    welcome = await bot.until(chat, "Welcome. Please choose your language.")
    bot.tap(chat, "English")
    menu = await bot.until(chat, "What do you need help with?")
    # One turn, one message: the privacy notice and the menu arrive together (Telegram
    # delivers about one message a second to a chat), the buttons under the question.
    assert menu["text"].startswith("This is a free help service run by volunteers.")
    assert bot.api.keyboard_of(bot.api.bot_message(chat, welcome["message_id"])) == []  # answered
    bot.tap(chat, "My claim was refused")
    await bot.until(chat, "Does your refusal letter say that you have a right of appeal?")
    bot.tap(chat, "Yes, I can appeal")
    await bot.until(chat, "When was the refusal letter sent?")
    bot.tap(chat, "In the last 7 days")
    queued = await bot.until(chat, "You are in the queue to talk to a volunteer.")
    # The volunteer notice comes first; the information to read while waiting follows it,
    # each text its own message (joined only up to a phone screen), then the queue notice.
    assert any("I am asking a volunteer to join this chat now" in text
               for text in bot.texts(chat)[-6:-1])
    assert "No volunteer is online right now" in queued["text"]
    assert len(bot.api.calls_to("answerCallbackQuery")) == 4
    conn = sqlite3.connect(bot.db)
    try:
        rows = conn.execute("SELECT chat_key, queue, priority FROM handovers").fetchall()
    finally:
        conn.close()
    assert rows == [(f"telegram:{chat}", "legal", "deadline")]


async def test_whole_flow_by_typing_numbers_and_labels(bot: Bot) -> None:
    chat = 1002
    for text, expected in (("hi", "Please choose your language"),
                           ("English", "What do you need help with?"),
                           ("my claim was refused", "right of appeal?"),
                           ("1", "When was the refusal letter sent?"),
                           ("in the last 7 days", "You are in the queue to talk to a volunteer")):
        bot.api.send_text(chat, text)
        await bot.until(chat, expected)


async def test_stale_button_gets_a_polite_answer(bot: Bot) -> None:
    chat = 1003
    bot.api.send_text(chat, "hi")
    welcome = await bot.until(chat, "Please choose your language")
    bot.tap(chat, "English")
    await bot.until(chat, "What do you need help with?")
    # An old client still shows the language buttons and taps one again.
    bot.api.tap(chat, welcome["message_id"], index=3, force=True)
    again = await bot.until(chat, "What do you need help with?")
    assert again["text"].startswith("That question has passed. Here is where we are now:")
    assert len(bot.api.bot_messages(chat)) == 3


async def test_duplicate_update_is_answered_once(bot: Bot) -> None:
    chat = 1004
    update = bot.api.send_text(chat, "hi")
    await bot.until(chat, "Please choose your language")
    bot.api.redeliver(update)
    bot.api.send_text(chat, "English")
    await bot.until(chat, "What do you need help with?")
    assert len(bot.api.bot_messages(chat)) == 2


async def test_ten_thousand_characters_sticker_and_burst(bot: Bot) -> None:
    chat = 1005
    bot.api.send_text(chat, "hi")
    await bot.until(chat, "Please choose your language")
    bot.api.send_text(chat, "x" * 10_000)
    reply = await bot.until(chat, "Please choose your language")
    assert reply["text"].startswith("That message is too long for me.")
    bot.api.send_sticker(chat)
    reply = await bot.until(chat, "Please choose your language")
    assert reply["text"].startswith("Thank you. I can only read text messages.")
    before = len(bot.texts(chat))
    for n in range(20):
        bot.api.send_text(chat, f"banana {n}")
    # Every message is read; once the person pauses, the last one is answered, saying so.
    await bot.api.wait_until(lambda: len(bot.texts(chat)) > before, within=15,
                             what="the answer to the burst")
    reply = await bot.until(chat, "Please choose your language")
    assert reply["text"].startswith("I have read all 20 of your messages."), bot.texts(chat)
    assert len(bot.texts(chat)) == before + 1
    assert all(c.ok for c in bot.api.calls_to("sendMessage", ok_only=False, chat_id=chat))
    conn = sqlite3.connect(bot.db)
    try:
        assert conn.execute("SELECT count(*) FROM inbox").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM processed_updates WHERE chat_key = ?",
                            (f"telegram:{chat}",)).fetchone() == (23,)
    finally:
        conn.close()


async def test_crisis_phrase_in_a_burst_gets_the_crisis_reply(bot: Bot) -> None:
    chat = 1006
    bot.api.send_text(chat, "hi")
    await bot.until(chat, "Please choose your language")
    for n in range(10):
        bot.api.send_text(chat, f"hello {n}")
    bot.api.send_text(chat, "I want to kill myself")  # the 11th quick message
    for n in range(5):
        bot.api.send_text(chat, f"again {n}")
    await bot.api.wait_until(lambda: any("Samaritans" in t for t in bot.texts(chat)), within=10,
                             what="the crisis reply")
    crisis = next(t for t in bot.texts(chat) if "Samaritans" in t)
    assert "116 123" in crisis and "999" in crisis
    # The five after it are read too and the last one answered: at the crisis question.
    last = await bot.until(chat, "Would you like a volunteer to join this chat now?")
    assert last["text"].startswith("I have read all 5 of your messages.")


async def test_commands_are_registered_in_every_translated_language(bot: Bot) -> None:
    await bot.api.wait_for_calls("setMyCommands")
    await bot.api.wait_until(lambda: "" in bot.api.commands, what="the default command menu")
    english = {c["command"]: c["description"] for c in bot.api.commands[""]}
    assert english == {"start": "Start again", "menu": "Main menu", "language": "Change language",
                       "human": "Talk to a person", "help": "What this bot can do",
                       "stop": "Stop this conversation", "forget": "Delete everything about me"}
    # Each translated language gets its own menu (Telegram takes two-letter codes: not prs).
    from bot.app import load_catalog_set
    from bot.flowspec.library import default_flows_dir, load_library

    catalogs = load_catalog_set(Settings.from_env({}), load_library([default_flows_dir()]))
    translated = {lang for (lang, key) in catalogs.entries if key == "command.menu"} - {"prs"}
    await bot.api.wait_until(lambda: translated <= set(bot.api.commands),
                             what=f"command menus for {translated}")
    for lang in translated:
        menu = bot.api.commands[lang]
        assert [c["command"] for c in menu] == list(english)
        assert menu[1]["description"] == catalogs.entries[(lang, "command.menu")].text
