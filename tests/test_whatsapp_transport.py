"""WhatsAppTransport over real HTTP on loopback against the fake WhatsApp Cloud API: the
webhook (handshake, signatures, saving before answering), what comes in, what goes out
and in which shape, errors, the 24-hour window, files and statuses."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from bot import limits
from bot.dispatcher import Dispatcher
from bot.errors import DeliveryRefused, TransportError
from bot.flowspec.library import FlowLibrary
from bot.i18n.localizer import Localizer
from bot.messages import REOPEN_TEMPLATE, Attachment, Inbound, InboundKind, Outbound, OutButton
from bot.storage.sqlite import SqliteStore
from bot.transports.base import MediaFile
from bot.transports.whatsapp import (
    WEBHOOK_PATH,
    ReopenTemplate,
    WhatsAppTransport,
    build_requests,
    parse_webhook,
)
from tests.support.fake_whatsapp_api import FakeUser, FakeWhatsAppApi

pytestmark = pytest.mark.timeout(30)

OGG = b"OggS\x00\x02" + bytes(range(200))  # stands for a voice note: bytes passed on as they are


@dataclass
class Harness:
    api: FakeWhatsAppApi
    transport: WhatsAppTransport
    received: list[Inbound] = field(default_factory=list)
    failing: int = 0  # the next handler calls raise, as a database that cannot be written
    taken: int = 0  # inbound messages already returned by inbound()

    async def handler(self, batch: Sequence[Inbound]) -> None:
        if self.failing:
            self.failing -= 1
            raise RuntimeError("disk full")
        self.received.extend(batch)

    async def inbound(self, count: int = 1) -> list[Inbound]:
        """The next ``count`` messages the transport handed over."""
        await self.api.wait_until(lambda: len(self.received) >= self.taken + count,
                                  what=f"{count} more inbound message(s)")
        self.taken += count
        return self.received[self.taken - count:self.taken]

    @property
    def hook(self) -> str:
        return f"http://127.0.0.1:{self.transport.port}{WEBHOOK_PATH}"


def make_transport(api: FakeWhatsAppApi, **kw: object) -> WhatsAppTransport:
    options: dict[str, object] = {"api_base_url": api.base_url, "port": 0, "clock": api.now,
                                  "backoff_base": 0.01,
                                  "reopen_template": ReopenTemplate("write_again",
                                                                    {"en": "en_GB", "ps": "ps"})}
    options.update(kw)
    return WhatsAppTransport(api.access_token, api.phone_number_id, api.app_secret,
                             api.verify_token, **options)  # type: ignore[arg-type]


@pytest.fixture
async def api() -> AsyncIterator[FakeWhatsAppApi]:
    server = await FakeWhatsAppApi().start()
    yield server
    await server.stop()


@pytest.fixture
async def wa(api: FakeWhatsAppApi) -> AsyncIterator[Harness]:
    transport = make_transport(api)
    harness = Harness(api, transport)
    task = asyncio.create_task(transport.run(harness.handler))
    await asyncio.wait_for(transport.running.wait(), 5)
    api.webhook_url = harness.hook
    yield harness
    await transport.close()
    await asyncio.wait_for(task, 5)


@pytest.fixture
def amina(api: FakeWhatsAppApi) -> FakeUser:
    return api.user("447700900001", "GB.1000001", name="Amina")


# ---------------------------------------------------------------------- the webhook


async def test_verification_handshake(wa: Harness) -> None:
    async with httpx.AsyncClient() as client:
        good = await client.get(wa.hook, params={"hub.mode": "subscribe", "hub.challenge": "1158201444",
                                                 "hub.verify_token": wa.api.verify_token})
        wrong = await client.get(wa.hook, params={"hub.mode": "subscribe", "hub.challenge": "1",
                                                  "hub.verify_token": "guess"})
        no_mode = await client.get(wa.hook, params={"hub.challenge": "1",
                                                    "hub.verify_token": wa.api.verify_token})
    assert (good.status_code, good.text) == (200, "1158201444")
    assert (wrong.status_code, wrong.text) == (403, "")
    assert no_mode.status_code == 403


async def test_a_post_without_the_right_signature_is_refused_and_not_read(
        wa: Harness, amina: FakeUser) -> None:
    wa.api.webhook_url = None  # hold the fake's own webhooks; we post by hand
    body = json.dumps(_text_webhook(wa.api, amina, "wamid.x1", "hello")).encode()
    other = FakeWhatsAppApi(app_secret="someone-else")
    assert await _post(wa, body, other.sign(body)) == 401
    assert await _post(wa, body, None) == 401
    assert await _post(wa, body, "sha256=" + "0" * 64) == 401
    tampered = body.replace(b"hello", b"HELLO")
    assert await _post(wa, tampered, wa.api.sign(body)) == 401
    assert wa.received == [] and wa.transport.stats["bad_signature"] == 4
    assert await _post(wa, body, wa.api.sign(body)) == 200
    assert [m.text for m in wa.received] == ["hello"]


async def test_answered_only_once_saved_so_whatsapp_sends_again(wa: Harness,
                                                                amina: FakeUser) -> None:
    wa.failing = 2
    message_id = wa.api.send_text(amina, "are you there?")
    [inbound] = await wa.inbound()
    assert inbound.update_id == f"whatsapp:{message_id}" and inbound.text == "are you there?"
    assert [d.status for d in wa.api.deliveries] == [500, 500, 200]


# ---------------------------------------------------------------------- what comes in


async def test_messages_become_the_inbounds_telegram_gives(wa: Harness, amina: FakeUser) -> None:
    hidden = wa.api.user("447700900002", "GB.1000002", hide_phone=True)
    wa.api.send_text(amina, "hello")
    wa.api.send_text(amina, "/start")
    wa.api.send_text(hidden, "salaam")
    text, command, private = await wa.inbound(3)
    # Keyed on the user id; the phone number, when given, travels as the alias.
    assert text == Inbound("whatsapp:GB.1000001", InboundKind.TEXT, text="hello",
                           update_id=text.update_id, alias="whatsapp:447700900001")
    assert (command.kind, command.command) == (InboundKind.COMMAND, "start")
    assert (private.chat_key, private.alias) == ("whatsapp:GB.1000002", None)


async def test_button_and_list_replies_carry_the_id_we_gave(wa: Harness, amina: FakeUser) -> None:
    wa.api.send_text(amina, "hi")
    await wa.inbound()
    await wa.transport.send(_question("whatsapp:GB.1000001", 2))
    await wa.transport.send(_question("whatsapp:GB.1000001", 6))
    buttons, listing = wa.api.messages_to(amina)
    wa.api.tap(amina, "Choice 2", message=buttons)
    wa.api.tap(amina, "Choice 5", message=listing)
    tap, pick = await wa.inbound(2)
    assert (tap.kind, tap.button) == (InboundKind.BUTTON, "7.1")
    assert (pick.kind, pick.button) == (InboundKind.BUTTON, "7.4")


async def test_media_is_media_files_carry_an_attachment_reactions_are_ignored(
        wa: Harness, amina: FakeUser) -> None:
    voice = wa.api.send_file(amina, "audio", OGG, mime_type="audio/ogg; codecs=opus", voice=True)
    wa.api.send_file(amina, "image", b"\xff\xd8jpeg", mime_type="image/jpeg", caption="my letter")
    wa.api.send_file(amina, "document", b"%PDF-1.4", mime_type="application/pdf",
                     file_name="refusal.pdf")
    wa.api.react(amina, voice)
    wa.api.send_sticker(amina)
    await wa.api.delivered()
    note, photo, document, sticker = wa.received
    assert (note.kind, note.media, note.attachment and note.attachment.kind) == \
        (InboundKind.MEDIA, "voice", "voice")
    assert (photo.media, photo.text) == ("photo", "my letter")
    assert document.attachment is not None and document.attachment.file_name == "refusal.pdf"
    assert (sticker.media, sticker.attachment) == ("sticker", None)
    assert note.attachment is not None
    fetched = await wa.transport.fetch(note.attachment)
    assert fetched == MediaFile(OGG, "audio/ogg; codecs=opus", "")


def test_unreadable_parts_of_a_webhook_are_skipped_and_counted() -> None:
    payload = {"object": "whatsapp_business_account", "entry": [{"changes": [
        {"field": "messages", "value": {"metadata": {"phone_number_id": "1"},
                                        "messages": [{"type": "text"}, "junk",
                                                     {"id": "w1", "from": "4477", "type": "text",
                                                      "text": {"body": "ok"}}],
                                        "statuses": [{"status": "read"}]}},
        {"field": "messages", "value": {"metadata": {"phone_number_id": "2"},
                                        "messages": [{"id": "w2", "from": "4478", "type": "text"}]}},
    ]}]}
    batch = parse_webhook(payload, "1")
    assert [m.text for m in batch.inbounds] == ["ok"]
    assert (batch.unreadable, batch.other_numbers) == (2, 1)
    assert parse_webhook(["not", "a", "dict"], "1").unreadable == 1


# ---------------------------------------------------------------------- what goes out


def test_choices_become_buttons_a_list_or_numbered_text() -> None:
    key = "whatsapp:GB.1"
    [buttons] = build_requests(_question(key, 3))
    assert buttons["interactive"]["type"] == "button"
    assert [b["reply"] for b in buttons["interactive"]["action"]["buttons"]] == [
        {"id": f"7.{i}", "title": f"Choice {i + 1}"} for i in range(3)]
    [listing] = build_requests(_question(key, 10, choose="وټاکئ"))
    action = listing["interactive"]["action"]
    assert listing["interactive"]["type"] == "list" and action["button"] == "وټاکئ"
    assert [r["title"] for r in action["sections"][0]["rows"]] == [f"Choice {i}" for i in range(1, 11)]
    [numbered] = build_requests(_question(key, 12))
    assert numbered["type"] == "text"
    assert numbered["text"]["body"].endswith("\n\n" + "\n".join(f"{i}. Choice {i}"
                                                                 for i in range(1, 13)))
    # A label too long for a button (an RTL isolate can add two characters) makes a list;
    # one too long for a row is cut there and given whole as the row's description.
    long_label = Outbound(key, "Which?", (OutButton("1.0", "Yes"), OutButton("1.1", "x" * 22)))
    [as_list] = build_requests(long_label)
    assert as_list["interactive"]["type"] == "list"
    longer = Outbound(key, "Which?", tuple(OutButton(f"1.{i}", f"{'y' * 30} {i}") for i in range(4)))
    [cut] = build_requests(longer)
    row = cut["interactive"]["action"]["sections"][0]["rows"][0]
    assert len(row["title"]) == 24 and row["title"].endswith("…")
    assert row["description"] == f"{'y' * 30} 0"


def test_text_is_split_by_meaning_and_a_long_question_keeps_its_buttons() -> None:
    paragraphs = "\n\n".join(f"Paragraph {n}. " + "word " * 150 for n in range(12))
    parts = build_requests(Outbound("whatsapp:1", paragraphs))
    bodies = [p["text"]["body"] for p in parts]
    assert len(bodies) > 1 and all(len(b) <= 4096 for b in bodies)
    assert all(b.startswith("Paragraph ") for b in bodies)  # cut between paragraphs
    assert " ".join(" ".join(bodies).split()) == " ".join(paragraphs.split())  # nothing lost
    question = Outbound("whatsapp:1", "Some context. " * 80 + "\n\nWhich one?",
                        (OutButton("3.0", "This"), OutButton("3.1", "That")))
    *head, interactive = build_requests(question)
    assert [p["type"] for p in head] == ["text"]
    body = interactive["interactive"]["body"]["text"]
    assert body.endswith("\n\nWhich one?") and len(body) <= 1024  # the question under its buttons


async def test_sends_pass_the_servers_checks_to_the_right_recipient(wa: Harness) -> None:
    phone = wa.api.user("447700900003", "GB.1000003")
    private = wa.api.user("447700900004", "GB.1000004", hide_phone=True)
    for person in (phone, private):
        wa.api.send_text(person, "hi")
    await wa.inbound(2)
    await wa.transport.send(_question("whatsapp:447700900003", 3))  # registered by phone
    await wa.transport.send(_question("whatsapp:GB.1000004", 7, choose="Choose"))
    [to_phone] = wa.api.messages_to(phone)
    [to_user] = wa.api.messages_to(private)
    assert to_phone.payload["to"] == "447700900003" and "recipient" not in to_phone.payload
    assert to_user.payload["recipient"] == "GB.1000004" and "to" not in to_user.payload
    assert to_user.payload["interactive"]["type"] == "list"
    with pytest.raises(DeliveryRefused):
        await wa.transport.send(Outbound("telegram:5", "hello"))
    with pytest.raises(DeliveryRefused) as empty:
        await wa.transport.send(Outbound("whatsapp:GB.1000004", " \n "))
    assert "empty" in empty.value.reason


async def test_rate_limits_are_retried_then_left_to_the_dispatcher(wa: Harness,
                                                                   amina: FakeUser) -> None:
    wa.api.send_text(amina, "hi")
    await wa.inbound()
    key = "whatsapp:GB.1000001"
    wa.api.fail_next(131056)  # the pair rate limit, once: waited out here
    slept: list[float] = []

    async def no_wait(seconds: float) -> None:
        slept.append(seconds)

    transport = make_transport(wa.api, retry_after_max=10.0, sleep=no_wait)
    transport._note_window(key, wa.api.now())
    await transport.send(Outbound(key, "first"))
    assert slept == [6.0]  # about one message per 6 s to one person
    wa.api.fail_next(130429, times=3)  # throughput, past our attempts
    with pytest.raises(TransportError) as limited:
        await transport.send(Outbound(key, "second"))
    assert slept == [6.0, 1.0, 2.0]
    assert not isinstance(limited.value, DeliveryRefused)
    assert limited.value.retry_after == 4.0 and "slow down" in limited.value.reason
    assert wa.api.texts(amina) == ["first"]
    wa.api.fail_next(131026)  # undeliverable: it will not change
    with pytest.raises(DeliveryRefused) as refused:
        await transport.send(Outbound(key, "third"))
    assert "could not deliver it to this person" in refused.value.reason
    wa.api.fail_next(190, http_status=401)  # the token: staff can fix it, so not for good
    with pytest.raises(TransportError) as token:
        await transport.send(Outbound(key, "fourth"))
    assert not isinstance(token.value, DeliveryRefused)
    assert "WHATSAPP_ACCESS_TOKEN" in token.value.reason
    await transport.close()


async def test_a_rate_limit_past_the_transports_tries_is_retried_by_the_dispatcher(
        api: FakeWhatsAppApi, amina: FakeUser, tmp_path: Path, library: FlowLibrary) -> None:
    async def no_wait(seconds: float) -> None:
        return None

    amina.last_wrote = api.now()
    transport = make_transport(api, sleep=no_wait)
    store = await SqliteStore.open(tmp_path / "bot.sqlite3")
    now = [1000.0]
    dispatcher = Dispatcher(store, lambda: library, Localizer(), transport, clock=lambda: now[0])
    try:
        api.fail_next(130429, times=3)
        await dispatcher.handle(Inbound.from_text("whatsapp:GB.1000001", "hi", "whatsapp:w1"))
        assert api.texts(amina) == [] and dispatcher.stats["retried"] == 1
        now[0] += limits.SEND_RETRY_FIRST_SECONDS  # the dispatcher's own backoff
        await dispatcher.flush_outbox()
        assert api.texts(amina) == ["Welcome. Please choose your language."]
        assert dispatcher.stats["sent"] == 1 and dispatcher.stats["dropped"] == 0
    finally:
        await transport.close()
        await store.close()


# ---------------------------------------------------------------------- the 24-hour window


async def test_no_free_text_outside_the_window_but_the_approved_template(
        wa: Harness, amina: FakeUser) -> None:
    key = "whatsapp:GB.1000001"
    wa.api.send_text(amina, "hi")
    await wa.inbound()
    await wa.transport.send(Outbound(key, "inside the window"))
    wa.api.advance(25 * 3600)
    before = len(wa.api.requests)
    with pytest.raises(DeliveryRefused) as closed:
        await wa.transport.send(Outbound(key, "a day later"))
    assert len(wa.api.requests) == before  # known closed: not even tried
    assert "more than 24 hours ago" in closed.value.reason and "/invite" in closed.value.reason
    invite = Outbound(key, "Please reply", language="ps", key="handover.invite",
                      meta={"template": REOPEN_TEMPLATE})
    await wa.transport.send(invite)
    assert wa.api.texts(amina) == ["inside the window", "[template write_again]"]
    assert wa.api.messages_to(amina)[-1].payload["template"]["language"] == {"code": "ps"}
    # A transport that does not know (a restart) tries; WhatsApp's 131047 is handled the same.
    fresh = make_transport(wa.api, reopen_template=None)
    with pytest.raises(DeliveryRefused) as refused:
        await fresh.send(Outbound(key, "after a restart"))
    assert "No approved invitation" in refused.value.reason
    assert wa.api.requests[-1][2] == 400
    with pytest.raises(DeliveryRefused):
        await fresh.send(Outbound(key, "and again"))
    assert wa.api.requests[-1][2] == 400 and len(wa.api.requests) == before + 2
    wa.api.send_text(amina, "I am back")  # the person writes: the window opens again
    await wa.inbound()
    await wa.transport.send(Outbound(key, "welcome back"))
    assert wa.api.texts(amina)[-1] == "welcome back"
    await fresh.close()


async def test_131047_in_a_failed_status_is_the_same_as_an_answer() -> None:
    """WhatsApp may accept a message and report the closed window only in its status."""
    api = await FakeWhatsAppApi(window_errors="status").start()
    amina = api.user("447700900001", "GB.1000001")
    transport = make_transport(api)  # knows nothing of the window (as after a restart)
    harness = Harness(api, transport)
    task = asyncio.create_task(transport.run(harness.handler))
    try:
        await asyncio.wait_for(transport.running.wait(), 5)
        api.webhook_url = harness.hook
        amina.last_wrote = api.now() - 25 * 3600
        joined = Outbound("whatsapp:GB.1000001", "A volunteer has joined this chat.",
                          key="handover.joined", meta={"template": REOPEN_TEMPLATE,
                                                       "from": "telegram:77", "handover": "9"})
        await transport.send(joined)  # 200, then a failed status
        [report] = await harness.inbound()
        assert (report.kind, report.meta["code"], report.meta["from"]) == \
            (InboundKind.UNDELIVERED, "131047", "telegram:77")
        assert "the approved message asking them to write again was sent instead" in report.text
        # ... and it was: the approved template went in its place.
        await api.wait_until(lambda: api.texts(amina) == ["[template write_again]"],
                             what="the invitation")
        with pytest.raises(DeliveryRefused):  # now known closed: free text is not even tried
            await transport.send(Outbound("whatsapp:GB.1000001", "hello?"))
    finally:
        await transport.close()
        await asyncio.wait_for(task, 5)
        await api.stop()


# ---------------------------------------------------------------------- files and statuses


async def test_a_file_goes_up_out_and_is_deleted_once_delivered(wa: Harness,
                                                               amina: FakeUser) -> None:
    wa.api.send_text(amina, "hi")
    await wa.inbound()
    key = "whatsapp:GB.1000001"
    voice = Attachment("voice", "telegram:tg-file-1", "audio/ogg")
    await wa.transport.send(Outbound(key, "", attachment=voice), MediaFile(OGG, "audio/ogg"))
    photo = Attachment("photo", "telegram:tg-file-2", "image/jpeg")
    await wa.transport.send(Outbound(key, "the letter", attachment=photo),
                            MediaFile(b"\xff\xd8photo", "image/jpeg"))
    note, picture = wa.api.messages_to(amina)
    assert note.payload["audio"]["voice"] is True and note.media == OGG
    assert picture.payload["image"]["caption"] == "the letter"
    uploaded = note.payload["audio"]["id"]
    assert not wa.api.media[uploaded].deleted
    wa.api.status(note.id, "sent")
    wa.api.status(note.id, "delivered")
    await wa.api.wait_until(lambda: wa.api.media[uploaded].deleted, what="the upload deleted")
    assert wa.transport.stats["delivered"] == 1 and wa.transport.stats["sent"] == 1
    with pytest.raises(DeliveryRefused) as foreign:  # another platform's file needs its bytes
        await wa.transport.send(Outbound(key, "", attachment=voice))
    assert "other app" in foreign.value.reason
    with pytest.raises(DeliveryRefused) as big:
        await wa.transport.send(Outbound(key, "", attachment=photo),
                                MediaFile(b"x" * (6 << 20), "image/jpeg"))
    assert "too large for WhatsApp" in big.value.reason


async def test_a_failed_status_becomes_an_undelivered_report(wa: Harness, amina: FakeUser) -> None:
    wa.api.send_text(amina, "hi")
    await wa.inbound()
    relay = Outbound("whatsapp:GB.1000001", "Hello, I am Farid, a volunteer here to help you.",
                     key="handover.relay", meta={"from": "telegram:77", "handover": "4"})
    await wa.transport.send(relay)
    [sent] = wa.api.messages_to(amina)
    wa.api.fail(sent.id, 131026)
    [report] = await wa.inbound()
    assert report.kind is InboundKind.UNDELIVERED
    assert report.chat_key == "whatsapp:GB.1000001"
    assert report.update_id == f"whatsapp:{sent.id}:failed"
    assert report.meta["from"] == "telegram:77" and report.meta["handover"] == "4"
    assert report.meta["code"] == "131026" and report.meta["preview"].startswith("Hello, I am Farid")
    assert "could not deliver it to this person" in report.text
    assert wa.transport.stats["failed"] == 1


async def test_typing_marks_the_last_message_read(wa: Harness, amina: FakeUser) -> None:
    message_id = wa.api.send_text(amina, "hi")
    await wa.inbound()
    await wa.transport.typing("whatsapp:GB.1000001")
    await wa.api.wait_until(lambda: wa.api.read_marks == [message_id], what="a read mark")
    await wa.transport.typing("whatsapp:GB.999")  # no message from them: nothing to mark


# ---------------------------------------------------------------------- helpers


def _question(chat_key: str, count: int, *, choose: str = "") -> Outbound:
    return Outbound(chat_key, "Which one?", tuple(OutButton(f"7.{i}", f"Choice {i + 1}")
                                                 for i in range(count)),
                    token=7, meta={"choose": choose} if choose else {})


def _text_webhook(api: FakeWhatsAppApi, user: FakeUser, message_id: str, text: str) -> dict[str, object]:
    return {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{
        "field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "1555", "phone_number_id": api.phone_number_id},
            "contacts": [{"profile": {"name": user.name}, "wa_id": user.phone,
                          "user_id": user.user_id}],
            "messages": [{"from": user.phone, "from_user_id": user.user_id, "id": message_id,
                          "timestamp": str(int(api.now())), "type": "text",
                          "text": {"body": text}}]}}]}]}


async def _post(wa: Harness, body: bytes, signature: str | None) -> int:
    wa.api.webhook_url = wa.hook
    try:
        return await wa.api.post_raw(body, signature)
    finally:
        wa.api.webhook_url = None
