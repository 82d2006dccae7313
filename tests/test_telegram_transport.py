"""TelegramTransport end to end: a real PTB Application over loopback HTTP to a fake Bot API."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import httpx
import pytest

from bot.dispatcher import Dispatcher
from bot.engine.events import Say
from bot.errors import DeliveryRefused, TransportError
from bot.flowspec.library import FlowLibrary
from bot.i18n.localizer import Localizer
from bot.limits import TELEGRAM_TEXT_MAX
from bot.messages import Attachment, Inbound, InboundKind, Outbound, OutButton
from bot.storage.sqlite import SqliteStore
from bot.transports.base import MediaFile
from bot.transports.telegram import TelegramTransport, TelegramWebhook, split_text
from tests.support.fake_bot_api import FakeBotApi

pytestmark = pytest.mark.timeout(20)

CHAT = 4242
KEY = f"telegram:{CHAT}"

Reply = Callable[[Inbound], Awaitable[None]]


@dataclass
class Harness:
    """A running transport, the Inbounds its handler saw, and what the handler does."""

    api: FakeBotApi
    transport: TelegramTransport
    inbounds: list[Inbound] = field(default_factory=list)
    reply: Reply | None = None
    task: asyncio.Task[None] | None = None

    async def handle(self, batch: Sequence[Inbound]) -> None:
        """What the intake does, minus the database: returns once the batch is "saved"."""
        for inbound in batch:
            self.inbounds.append(inbound)
            if self.reply is not None:
                await self.reply(inbound)

    async def start(self) -> None:
        self.task = asyncio.create_task(self.transport.run(self.handle))
        await asyncio.wait_for(self.transport.running.wait(), 5)

    async def received(self, count: int) -> list[Inbound]:
        await self.api.wait_until(lambda: len(self.inbounds) >= count,
                                  what=f"{count} inbound(s), have {self.inbounds}")
        return self.inbounds


def make_transport(api: FakeBotApi, **kw: Any) -> TelegramTransport:
    options: dict[str, Any] = {"poll_timeout": 1.0, "backoff_base": 0.01,
                               "backoff_max": 0.05}
    options.update(kw)
    return TelegramTransport(api.token, base_url=api.base_url, base_file_url=api.base_file_url,
                             **options)


@pytest.fixture
async def api() -> AsyncIterator[FakeBotApi]:
    server = await FakeBotApi(max_poll_seconds=2.0).start()
    yield server
    await server.stop()


@pytest.fixture
async def bot(api: FakeBotApi) -> AsyncIterator[Harness]:
    harness = Harness(api, make_transport(api))
    await harness.start()
    yield harness
    await asyncio.wait_for(harness.transport.stop(), 10)
    assert harness.task is not None
    await asyncio.wait_for(harness.task, 5)
    await harness.transport.close()


def question(chat_key: str, text: str, token: int, n: int = 2) -> Outbound:
    buttons = tuple(OutButton(f"q{token}.{i}", f"Option {i}") for i in range(n))
    return Outbound(chat_key, text, buttons=buttons, token=token, key=f"q{token}")


# ---------------------------------------------------------------------------- receiving


async def test_text_becomes_inbound_and_reply_goes_out(bot: Harness, api: FakeBotApi) -> None:
    async def echo(inbound: Inbound) -> None:
        await bot.transport.send(Outbound(inbound.chat_key, f"you said {inbound.text}"))

    bot.reply = echo
    update_id = api.send_text(CHAT, "hello", language_code="fa")
    [inbound] = await bot.received(1)
    assert inbound == Inbound(KEY, InboundKind.TEXT, text="hello",
                              update_id=f"telegram:{update_id}", language_hint="fa")
    [call] = await api.wait_for_calls("sendMessage", chat_id=CHAT)
    assert call.params["text"] == "you said hello"
    assert "reply_markup" not in call.params


async def test_commands_are_recognised(bot: Harness, api: FakeBotApi) -> None:
    api.send_command(CHAT, "start")
    api.send_text(CHAT, "/help@fake_help_bot now")
    first, second = await bot.received(2)
    assert (first.kind, first.command, first.text) == (InboundKind.COMMAND, "start", "")
    assert (second.kind, second.command, second.text) == (InboundKind.COMMAND, "help", "now")


@pytest.mark.parametrize(("kind", "media"), [
    ("sticker", "sticker"), ("voice", "voice"), ("photo", "photo"), ("document", "document"),
    ("location", "location"), ("audio", "audio"), ("video", "video"), ("contact", "contact"),
])
async def test_media_becomes_media_inbound(bot: Harness, api: FakeBotApi, kind: str,
                                           media: str) -> None:
    update_id = api.send_media(CHAT, kind, language_code="ps")
    [inbound] = await bot.received(1)
    assert replace(inbound, attachment=None) == Inbound(
        KEY, InboundKind.MEDIA, media=media, update_id=f"telegram:{update_id}", language_hint="ps")
    if kind in ("voice", "audio", "photo", "document", "video"):  # files a volunteer may be sent
        assert inbound.attachment is not None and inbound.attachment.kind == media
        assert inbound.attachment.ref.startswith("telegram:") and inbound.attachment.size
        if kind == "photo":  # the largest size Telegram offers
            assert inbound.attachment.ref.endswith("b")
    else:
        assert inbound.attachment is None


async def test_files_are_fetched_and_sent_by_id_or_uploaded(bot: Harness, api: FakeBotApi) -> None:
    api.send_voice(CHAT, data=b"OggS-voice-note")
    api.send_document(CHAT, data=b"%PDF letter")
    voice, document = await bot.received(2)
    assert voice.attachment is not None and document.attachment is not None
    fetched = await bot.transport.fetch(voice.attachment)
    assert fetched == MediaFile(b"OggS-voice-note", "audio/ogg", "file_1")
    assert (await bot.transport.fetch(document.attachment)).file_name == "letter.pdf"
    # To another Telegram chat: by the file_id Telegram holds, nothing downloaded or uploaded.
    downloads = len(api.calls_to("download"))
    await bot.transport.send(Outbound("telegram:777", "#3: a voice note from the person",
                                      attachment=voice.attachment))
    [call] = await api.wait_for_calls("sendVoice", chat_id=777)
    assert call.params["voice"] == voice.attachment.platform_id
    assert call.params["caption"] == "#3: a voice note from the person"
    assert len(api.calls_to("download")) == downloads
    # Bytes from another platform: uploaded, as a voice note or (not playable) a document.
    whatsapp_note = Attachment("voice", "whatsapp:m1", "audio/ogg; codecs=opus")
    await bot.transport.send(Outbound(KEY, "", attachment=whatsapp_note),
                             MediaFile(b"OggS-from-whatsapp", "audio/ogg; codecs=opus"))
    [upload] = await api.wait_for_calls("sendVoice", chat_id=CHAT)
    assert api.file_data(api.bot_messages(CHAT)[-1]["voice"]["file_id"]) == b"OggS-from-whatsapp"
    assert "caption" not in upload.params
    amr = Attachment("voice", "whatsapp:m2", "audio/amr")
    await bot.transport.send(Outbound(KEY, "", attachment=amr), MediaFile(b"#!AMR", "audio/amr"))
    await api.wait_for_calls("sendDocument", chat_id=CHAT)
    with pytest.raises(DeliveryRefused):  # another platform's file, without its bytes
        await bot.transport.send(Outbound(KEY, "", attachment=amr))
    too_big = Attachment("photo", "telegram:big", "image/jpeg", size=21 << 20)
    with pytest.raises(DeliveryRefused) as refused:
        await bot.transport.fetch(too_big)
    assert "20 MB" in refused.value.reason


async def test_photo_caption_is_kept_as_text(bot: Harness, api: FakeBotApi) -> None:
    api.send_photo(CHAT, caption="my letter")
    [inbound] = await bot.received(1)
    assert (inbound.kind, inbound.media, inbound.text) == (InboundKind.MEDIA, "photo", "my letter")


async def test_groups_and_edited_messages_are_ignored(bot: Harness, api: FakeBotApi) -> None:
    api.send_text(-100123, "hello group", chat_type="supergroup")
    api.send_text(CHAT, "edited", edited=True)
    api.send_text(CHAT, "private")
    await bot.received(1)
    await api.wait_until(lambda: api.pending_updates == 0, what="all updates fetched")
    await asyncio.sleep(0.05)
    assert [i.text for i in bot.inbounds] == ["private"]


async def test_duplicate_delivery_passes_the_same_update_id(bot: Harness, api: FakeBotApi) -> None:
    update_id = api.send_text(CHAT, "once")
    await bot.received(1)
    api.redeliver(update_id)
    first, second = await bot.received(2)
    assert first == second  # dedupe is the dispatcher's job; the id must survive the trip
    assert first.update_id == f"telegram:{update_id}"
    api.send_text(CHAT, "after")  # polling goes on past the duplicate
    assert (await bot.received(3))[2].text == "after"


async def test_a_batch_that_could_not_be_saved_is_fetched_again(
    bot: Harness, api: FakeBotApi
) -> None:
    attempts: list[str] = []

    async def fail_once(inbound: Inbound) -> None:
        attempts.append(inbound.text)
        if attempts.count("boom") == 1 and inbound.text == "boom":
            raise RuntimeError("database is locked")  # the intake could not save the batch

    bot.reply = fail_once
    first = api.send_text(CHAT, "boom")
    api.send_text(CHAT, "still here")
    await api.wait_until(lambda: attempts.count("boom") == 2 and "still here" in attempts)
    assert [i.update_id for i in bot.inbounds].count(f"telegram:{first}") == 2
    await api.wait_until(lambda: api.pending_updates == 0, what="both confirmed once saved")


async def test_offset_moves_only_past_saved_updates(bot: Harness, api: FakeBotApi) -> None:
    saving = asyncio.Event()
    saved = asyncio.Event()

    async def slow_save(inbound: Inbound) -> None:
        saving.set()
        await saved.wait()

    bot.reply = slow_save
    api.send_text(CHAT, "kept until saved")
    await asyncio.wait_for(saving.wait(), 5)
    await asyncio.sleep(0.2)  # polls may come and go: nothing is confirmed meanwhile
    assert api.pending_updates == 1
    saved.set()
    await api.wait_until(lambda: api.pending_updates == 0, what="confirmed after the save")


# ---------------------------------------------------------------------------- buttons


async def test_tap_becomes_button_inbound_and_removes_the_keyboard(
    bot: Harness, api: FakeBotApi
) -> None:
    await bot.transport.send(question(KEY, "Which one?", token=7))
    [sent] = await api.wait_for_calls("sendMessage", chat_id=CHAT)
    assert sent.params["reply_markup"] == {"inline_keyboard": [
        [{"text": "Option 0", "callback_data": "q7.0"}],
        [{"text": "Option 1", "callback_data": "q7.1"}],
    ]}
    message_id = api.bot_messages(CHAT)[-1]["message_id"]

    update_id = api.tap(CHAT, message_id, index=1, language_code="ur")
    [inbound] = await bot.received(1)
    assert inbound == Inbound(KEY, InboundKind.BUTTON, button="q7.1",
                              update_id=f"telegram:{update_id}", language_hint="ur")
    await api.wait_for_calls("answerCallbackQuery")
    [edit] = await api.wait_for_calls("editMessageReplyMarkup", chat_id=CHAT)
    assert edit.params["message_id"] == message_id
    assert api.keyboard_of(api.bot_message(CHAT, message_id)) == []
    with pytest.raises(ValueError, match="shows no button"):  # a real client cannot tap again
        api.tap(CHAT, message_id, "q7.0")


async def test_stale_tap_still_reaches_the_handler(bot: Harness, api: FakeBotApi) -> None:
    api.tap(CHAT, 999, "q1.0", force=True)  # an old client, a message we never tracked
    [inbound] = await bot.received(1)
    assert (inbound.kind, inbound.button) == (InboundKind.BUTTON, "q1.0")
    await api.wait_for_calls("answerCallbackQuery")


async def test_new_question_removes_the_previous_keyboard(bot: Harness, api: FakeBotApi) -> None:
    await bot.transport.send(question(KEY, "First?", token=1))
    await bot.transport.send(Outbound(KEY, "Just information."))  # not a question
    assert api.calls_to("editMessageReplyMarkup") == []
    await bot.transport.send(question(KEY, "Second?", token=2))
    first, _info, second = api.bot_messages(CHAT)
    [edit] = await api.wait_for_calls("editMessageReplyMarkup", chat_id=CHAT)
    assert edit.params["message_id"] == first["message_id"]
    assert api.keyboard_of(first) == []
    assert api.keyboard_of(second) == ["q2.0", "q2.1"]

    # Answer the second by a tap, then ask a third: the tapped message is edited once only.
    api.tap(CHAT, second["message_id"], "q2.0")
    await bot.received(1)
    await api.wait_for_calls("editMessageReplyMarkup", 2, chat_id=CHAT)
    await bot.transport.send(question(KEY, "Third?", token=3))
    await bot.transport.send(Outbound(KEY, "Type your postcode", token=4))  # free-text question
    await api.wait_for_calls("editMessageReplyMarkup", 3, chat_id=CHAT)
    await asyncio.sleep(0.05)
    edits = api.calls_to("editMessageReplyMarkup", ok_only=False)
    assert all(c.ok for c in edits), [c.status for c in edits]
    assert [c.params["message_id"] for c in edits] == [
        first["message_id"], second["message_id"], api.bot_messages(CHAT)[3]["message_id"]]
    assert all(api.keyboard_of(m) == [] for m in api.bot_messages(CHAT))


# ---------------------------------------------------------------------------- sending


async def test_long_reply_is_split_at_paragraphs_with_keyboard_last(
    bot: Harness, api: FakeBotApi
) -> None:
    paragraphs = [f"Paragraph {i}. " + ("word " * 180).strip() for i in range(11)]
    text = "\n\n".join(paragraphs)
    assert len(text) > 10_000
    await bot.transport.send(question(KEY, text, token=5))
    calls = api.calls_to("sendMessage", chat_id=CHAT)
    parts = [c.params["text"] for c in calls]
    assert len(parts) == 3
    assert all(len(p) <= TELEGRAM_TEXT_MAX for p in parts)
    assert "\n\n".join(parts) == text  # cut only between paragraphs
    assert all(p.split("\n\n")[0] in paragraphs for p in parts)
    assert ["reply_markup" in c.params for c in calls] == [False, False, True]


def test_split_text_falls_back_to_lines_words_and_hard_cuts() -> None:
    assert split_text("short") == ["short"]
    assert split_text("  \n ") == []
    lines = "\n".join(["x" * 30] * 10)  # one paragraph of 10 lines
    assert split_text(lines, limit=100) == ["\n".join(["x" * 30] * 3)] * 3 + ["x" * 30]
    words = " ".join(["word"] * 50)
    assert all(len(p) <= 23 for p in split_text(words, limit=23))
    assert " ".join(split_text(words, limit=23)) == words
    assert split_text("a" * 25, limit=10) == ["a" * 10, "a" * 10, "a" * 5]
    # Telegram counts UTF-16 units: an emoji outside the BMP takes two.
    assert split_text("😀" * 6, limit=4) == ["😀😀", "😀😀", "😀😀"]
    mixed = "سلام دوست\n\n" + "ب" * 30
    assert split_text(mixed, limit=20) == ["سلام دوست", "ب" * 20, "ب" * 10]


async def test_retry_after_is_waited_out(bot: Harness, api: FakeBotApi) -> None:
    api.fail_next("sendMessage", 1, status=429, retry_after=1)
    started = time.monotonic()
    await bot.transport.send(Outbound(KEY, "after the flood"))
    calls = api.calls_to("sendMessage", ok_only=False)
    assert [c.status for c in calls] == [429, 200]
    assert calls[1].at - calls[0].at >= 0.9
    assert time.monotonic() - started < 5


async def test_server_errors_are_retried_with_backoff(bot: Harness, api: FakeBotApi) -> None:
    api.fail_next("sendMessage", 2, status=502)
    await bot.transport.send(Outbound(KEY, "eventually"))
    assert [c.status for c in api.calls_to("sendMessage", ok_only=False)] == [502, 502, 200]


async def test_giving_up_raises_transport_error(bot: Harness, api: FakeBotApi) -> None:
    api.fail_next("sendMessage", 10, status=500)
    with pytest.raises(TransportError, match="network error after 5 attempts"):
        await bot.transport.send(Outbound(KEY, "never"))
    assert len(api.calls_to("sendMessage", ok_only=False)) == 5


async def test_long_retry_after_is_not_waited(api: FakeBotApi) -> None:
    harness = Harness(api, make_transport(api, retry_after_max=5.0))
    await harness.start()
    try:
        api.fail_next("sendMessage", 1, status=429, retry_after=30)
        with pytest.raises(TransportError, match="flood control"):
            await asyncio.wait_for(harness.transport.send(Outbound(KEY, "x")), 3)
    finally:
        await harness.transport.close()


async def test_blocked_user_is_not_retried(bot: Harness, api: FakeBotApi) -> None:
    api.fail_next("sendMessage", 1, status=403)
    with pytest.raises(TransportError, match="forbidden"):
        await bot.transport.send(Outbound(KEY, "hello?"))
    assert len(api.calls_to("sendMessage", ok_only=False)) == 1


async def test_bad_outbound_is_refused_before_sending(bot: Harness, api: FakeBotApi) -> None:
    with pytest.raises(TransportError, match="not a Telegram chat key"):
        await bot.transport.send(Outbound("whatsapp:447700900123", "hi"))
    with pytest.raises(TransportError, match="callback data"):
        await bot.transport.send(Outbound(KEY, "hi", buttons=(OutButton("x" * 65, "X"),)))
    with pytest.raises(TransportError, match="callback data"):
        await bot.transport.send(Outbound(KEY, "hi", buttons=(OutButton("é", "E"),)))
    assert api.calls_to("sendMessage", ok_only=False) == []


async def test_typing_goes_in_the_background_and_no_reply_waits_for_it(
        bot: Harness, api: FakeBotApi) -> None:
    api.delay_next("sendChatAction", 2.0)  # a slow Telegram

    async def slow_reply(inbound: Inbound) -> None:
        await bot.transport.typing(inbound.chat_key)
        await asyncio.sleep(0.02)  # "preparing" the reply
        started = time.monotonic()
        await bot.transport.send(Outbound(inbound.chat_key, "done"))
        bot.inbounds.append(replace(inbound, text=f"sent in {time.monotonic() - started:.3f}"))

    bot.reply = slow_reply
    api.send_text(CHAT, "hi")
    await api.wait_for_calls("sendMessage", chat_id=CHAT, within=1.0)
    assert api.calls_to("sendChatAction") == []  # still held by the server
    [action] = await api.wait_for_calls("sendChatAction", chat_id=CHAT, within=4.0)
    assert action.params["action"] == "typing"
    sent_in = float(bot.inbounds[-1].text.split()[-1])
    assert sent_in < 1.0


async def test_a_failing_typing_action_does_not_stop_the_reply(
        bot: Harness, api: FakeBotApi) -> None:
    api.fail_next("sendChatAction", status=500)
    await bot.transport.typing(KEY)
    await bot.transport.send(Outbound(KEY, "the answer"))
    await api.wait_for_calls("sendChatAction", ok_only=False)
    assert [m["text"] for m in api.bot_messages(CHAT)] == ["the answer"]
    assert [c.status for c in api.calls_to("sendChatAction", ok_only=False)] == [500]


async def test_a_slow_turn_shows_typing_and_its_reply_does_not_wait_for_it(
        bot: Harness, api: FakeBotApi, store: SqliteStore, library: FlowLibrary) -> None:
    """The real path: dispatcher, SQLite, TelegramTransport. A turn slow in its own work (a
    live translation) shows "typing..."; a slow sendChatAction does not hold the reply."""
    dispatcher = Dispatcher(store, lambda: library, SlowLocalizer(), bot.transport,
                            typing_after=0.05)
    bot.reply = dispatcher.handle
    api.delay_next("sendChatAction", 2.0)
    sent = time.monotonic()
    api.send_text(CHAT, "hi")
    [reply] = await api.wait_for_calls("sendMessage", chat_id=CHAT, within=1.5)
    assert "choose your language" in reply.params["text"]
    assert reply.at - sent < 1.5
    assert api.calls_to("sendChatAction") == []  # sent, still held by the server
    await api.wait_for_calls("sendChatAction", chat_id=CHAT, within=4.0)
    assert dispatcher.stats["typing"] == 1


class SlowLocalizer(Localizer):
    async def render(self, say: Say, chat_key: str, lang: str | None) -> Outbound:
        await asyncio.sleep(0.15)  # e.g. a live machine translation
        return await super().render(say, chat_key, lang)


async def test_set_commands_per_language(bot: Harness, api: FakeBotApi) -> None:
    await bot.transport.set_commands({
        "fa": [("start", "شروع دوباره"), ("help", "کمک")],
        "en": [("/start", "Start again"), ("help", "Get help"), ("human", "Talk to a person")],
        "prs": [("start", "شروع")],  # Dari has no two-letter code: skipped, not an error
    })
    calls = api.calls_to("setMyCommands")
    assert [c.params.get("language_code") for c in calls] == [None, "fa"]  # default first
    assert [c["command"] for c in api.commands[""]] == ["start", "help", "human"]
    assert api.commands["fa"] == [{"command": "start", "description": "شروع دوباره"},
                                  {"command": "help", "description": "کمک"}]


# ---------------------------------------------------------------------------- stopping


async def test_stop_leaves_unsaved_updates_with_telegram(api: FakeBotApi) -> None:
    harness = Harness(api, make_transport(api))
    saving = asyncio.Event()

    async def never_saved(inbound: Inbound) -> None:
        saving.set()
        await asyncio.Event().wait()  # the process stops before the save completes

    harness.reply = never_saved
    await harness.start()
    api.send_text(CHAT, "m0")
    await asyncio.wait_for(saving.wait(), 5)
    await asyncio.wait_for(harness.transport.stop(), 10)
    assert harness.task is not None
    await asyncio.wait_for(harness.task, 5)
    assert api.pending_updates == 1  # not confirmed: the next start gets it again
    await harness.transport.send(Outbound(KEY, "sending still works after stop"))
    await harness.transport.close()
    with pytest.raises(TransportError, match="stopped"):
        await harness.transport.send(Outbound(KEY, "too late"))

    again = Harness(api, make_transport(api))
    await again.start()
    try:
        assert [i.text for i in await again.received(1)] == ["m0"]
    finally:
        await again.transport.close()
        assert again.task is not None
        await asyncio.wait_for(again.task, 5)


async def test_wrong_token_is_a_transport_error(api: FakeBotApi) -> None:
    transport = TelegramTransport("999:wrong", base_url=api.base_url, poll_timeout=1.0)
    with pytest.raises(TransportError, match="token was rejected") as raised:
        await asyncio.wait_for(transport.run(Harness(api, transport).handle), 5)
    assert "999:wrong" not in str(raised.value)  # PTB's own message quotes the token
    assert [c.status for c in api.calls] == [401]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_webhook_mode_accepts_only_telegram_with_the_secret(api: FakeBotApi) -> None:
    port = free_port()
    hook = TelegramWebhook("https://bot.example.org/tg/hook", listen="127.0.0.1", port=port,
                           secret_token="s3cret-Token_1")
    harness = Harness(api, make_transport(api, webhook=hook))
    await harness.start()
    try:
        assert api.webhook_url == "https://bot.example.org/tg/hook"
        [registered] = api.calls_to("setWebhook")
        assert registered.params.get("secret_token") == "s3cret-Token_1"
        update = {"update_id": 501, "message": {
            "message_id": 1, "date": int(time.time()), "text": "hello over a webhook",
            "chat": {"id": CHAT, "type": "private"},
            "from": {"id": CHAT, "is_bot": False, "first_name": "A", "language_code": "fa"}}}
        async with httpx.AsyncClient() as client:
            url = f"http://127.0.0.1:{port}/tg/hook"
            forged = await client.post(url, json={**update, "update_id": 502},
                                       headers={"X-Telegram-Bot-Api-Secret-Token": "guess"})
            real = await client.post(url, json=update,
                                     headers={"X-Telegram-Bot-Api-Secret-Token": "s3cret-Token_1"})
        assert forged.status_code == 403
        assert real.status_code == 200
        [inbound] = await harness.received(1)
        assert (inbound.text, inbound.update_id, inbound.language_hint) == (
            "hello over a webhook", "telegram:501", "fa")

        # Answered only once saved: a save that fails gets 500, so Telegram sends it again.
        async def cannot_save(inbound: Inbound) -> None:
            raise RuntimeError("disk full")

        harness.reply = cannot_save
        async with httpx.AsyncClient() as client:
            failed = await client.post(url, json={**update, "update_id": 503},
                                       headers={"X-Telegram-Bot-Api-Secret-Token": "s3cret-Token_1"})
        assert failed.status_code == 500
    finally:
        await asyncio.wait_for(harness.transport.stop(), 10)
        assert harness.task is not None
        await asyncio.wait_for(harness.task, 5)
        await harness.transport.close()


async def test_send_before_run_and_stop_without_run(api: FakeBotApi) -> None:
    transport = make_transport(api)
    await transport.send(Outbound(KEY, "a reminder"))  # e.g. from a scheduled job
    await transport.typing(KEY)
    await transport.close()
    assert [c.method for c in api.calls] == ["getMe", "sendMessage", "sendChatAction"]


async def test_cancelling_run_shuts_down_cleanly(api: FakeBotApi) -> None:
    harness = Harness(api, make_transport(api))
    await harness.start()
    api.send_text(CHAT, "hi")
    await harness.received(1)
    assert harness.task is not None
    harness.task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(harness.task, 5)
    assert not harness.transport.running.is_set()
    await harness.transport.close()


async def test_httpcore_finds_sniffio_instead_of_looking_for_it_on_every_lock(
        bot: Harness, api: FakeBotApi, monkeypatch: pytest.MonkeyPatch) -> None:
    """httpcore imports sniffio on every lock it takes; without it installed (anyio 4.11+ no
    longer brings it) each of those imports searched sys.path and failed, several per call."""
    import importlib.abc
    import sys

    lookups: list[str] = []

    class Spy(importlib.abc.MetaPathFinder):
        def find_spec(self, name: str, path: object, target: object = None) -> None:
            if name == "sniffio":
                lookups.append(name)

    monkeypatch.setattr(sys, "meta_path", [Spy(), *sys.meta_path])
    for n in range(20):
        await bot.transport.send(Outbound(KEY, f"message {n}"))
    assert len(api.bot_messages(CHAT)) == 20
    assert lookups == []  # imported once, long ago; never searched for again
