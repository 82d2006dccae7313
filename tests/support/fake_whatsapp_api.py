"""A fake WhatsApp Business Cloud API on loopback, for tests: the Graph API the bot calls,
and Meta's side of the webhook, which it calls on the bot.

    api = await FakeWhatsAppApi().start()
    api.webhook_url = f"http://127.0.0.1:{port}/whatsapp/webhook"   # the bot's
    amina = api.user("447700900001", "GB.1000001")
    api.send_text(amina, "hi")                 # a signed webhook, retried until answered 200
    await api.wait_until(lambda: api.texts(amina), what="an answer")
    api.tap(amina, "English")                  # a button or list reply to the last question
    await api.stop()

The Graph API side (``base_url`` = http://127.0.0.1:PORT/v26.0, bearer token required):

    POST /{phone-number-id}/messages   text, interactive (button, list), template, audio,
                                       image, document; "status": "read" (typing indicator)
    POST /{phone-number-id}/media      upload (multipart: messaging_product, type, file)
    GET  /{media-id}                   the media's URL, mime type, size
    GET  /download/{media-id}          the bytes (bearer token required, as at Meta)
    DELETE /{media-id}

Every message sent is validated as WhatsApp does (reply buttons: 1-3, titles of 1-20
characters, distinct; lists: a 1-20 character opener, 1-10 rows of 24-character titles,
72-character descriptions; bodies of 1,024, texts of 4,096; a recipient the server knows;
uploaded media it holds) and refused with Meta's error shape and codes otherwise. The
24-hour window is enforced on a settable clock (:meth:`advance`): free text to someone who
last wrote more than 24 hours ago gets error 131047, at once (``window_errors="sync"``) or
as a failed status webhook after a 200 (``"status"``); templates named in ``templates``
are allowed. :meth:`fail_next` makes the next sends fail with a given error (rate limits).

Webhooks carry X-Hub-Signature-256 (HMAC-SHA256 of the body with the app secret); each is
sent again, with a growing pause, until the bot answers 200 (bounded by ``retry_for``), as
Meta does, so a bot killed while a message was on its way gets it after the restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets
from tornado.web import Application, RequestHandler

__all__ = ["FakeUser", "FakeWhatsAppApi", "SentMessage"]

JSONDict = dict[str, Any]

VERSION = "v26.0"
WINDOW_SECONDS = 24 * 3600
WABA_ID = "102290129340398"
DISPLAY_NUMBER = "15550783881"
_AUDIO = {"audio/aac", "audio/amr", "audio/mpeg", "audio/mp4", "audio/ogg"}
_IMAGE = {"image/jpeg", "image/png"}
_DOCUMENT = {"text/plain", "application/pdf", "application/msword", "application/vnd.ms-excel",
             "application/vnd.ms-powerpoint",
             "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
             "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
             "application/vnd.openxmlformats-officedocument.presentationml.presentation"}
_MAX_BYTES = {"audio": 16 << 20, "image": 5 << 20, "document": 100 << 20}
_TITLES = {100: "Invalid parameter", 131009: "Parameter value is not valid",
           131047: "Re-engagement message", 130429: "Rate limit hit",
           131056: "(Business Account, Consumer Account) pair rate limit hit",
           131026: "Message undeliverable", 132001: "Template name does not exist in the translation",
           131053: "Media upload error", 190: "Invalid OAuth access token"}


@dataclass
class FakeUser:
    """A person on WhatsApp: a phone number and the user id WhatsApp gives the business."""

    phone: str
    user_id: str
    name: str = "Friend"
    #: A username hides the phone number: webhooks then carry only the user id.
    hide_phone: bool = False
    last_wrote: float | None = None  # on the server's clock: opens the 24-hour window


@dataclass
class SentMessage:
    """A message the bot sent that the server accepted."""

    id: str
    to: FakeUser
    payload: JSONDict
    at: float
    media: bytes | None = None  # the file's bytes, for audio, image and document messages

    @property
    def type(self) -> str:
        return str(self.payload.get("type", ""))

    @property
    def text(self) -> str:
        """What the person reads: the text, an interactive body, or a marker for the rest."""
        if self.type == "text":
            return str(self.payload["text"]["body"])
        if self.type == "interactive":
            return str(self.payload["interactive"]["body"]["text"])
        if self.type == "template":
            return f"[template {self.payload['template']['name']}]"
        return f"[{self.type}]"

    @property
    def choices(self) -> list[tuple[str, str]]:
        """(id, title) of the reply buttons or list rows ([] for other messages)."""
        if self.type != "interactive":
            return []
        interactive = self.payload["interactive"]
        if interactive["type"] == "button":
            return [(b["reply"]["id"], b["reply"]["title"]) for b in interactive["action"]["buttons"]]
        return [(r["id"], r["title"]) for s in interactive["action"]["sections"] for r in s["rows"]]


@dataclass
class _Failure:
    remaining: int
    code: int
    http_status: int


@dataclass
class _Media:
    data: bytes
    mime_type: str
    file_name: str = ""
    deleted: bool = False


@dataclass
class Delivery:
    """One webhook POST to the bot and its answer (0: no answer, the bot was not there)."""

    what: str
    status: int
    seconds: float = 0.0  # from sending the request to the answer


@dataclass
class _Outgoing:
    what: str
    body: bytes
    done: asyncio.Future[int] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class FakeWhatsAppApi:
    def __init__(self, *, access_token: str = "fake-wa-token", phone_number_id: str = "109876543210",
                 app_secret: str = "fake-app-secret", verify_token: str = "fake-verify-token",
                 templates: dict[str, set[str]] | None = None, window_errors: str = "sync",
                 retry_for: float = 60.0, webhook_workers: int = 1) -> None:
        """``webhook_workers``: webhooks in flight at once (1 keeps them in order; Meta
        itself sends several at once, in no promised order)."""
        self.access_token = access_token
        self.phone_number_id = phone_number_id
        self.app_secret = app_secret
        self.verify_token = verify_token
        #: Approved templates: name -> language codes.
        self.templates = templates if templates is not None else {"write_again": {"en_GB", "ps"}}
        self.window_errors = window_errors
        self.retry_for = retry_for
        self.webhook_workers = webhook_workers
        self.webhook_url: str | None = None
        self.port = 0
        self.offset = 0.0  # added to time.time(): the server's clock
        self.users: list[FakeUser] = []
        #: Messages accepted, in order.
        self.sent: list[SentMessage] = []
        #: Every Graph API request: (method, path, HTTP status answered).
        self.requests: list[tuple[str, str, int]] = []
        #: Webhook POSTs made, with the bot's answers.
        self.deliveries: list[Delivery] = []
        #: "read" marks (typing indicators) received, by message id.
        self.read_marks: list[str] = []
        self.media: dict[str, _Media] = {}
        self._failures: list[_Failure] = []
        self._ids = itertools.count(1)
        self._webhooks: dict[str, JSONDict] = {}  # message id -> its webhook value, to redeliver
        self._unaccepted: dict[str, SentMessage] = {}  # accepted, then failed (the window)
        self._in_flight = 0
        self._outgoing: asyncio.Queue[_Outgoing] = asyncio.Queue()
        self._workers: list[asyncio.Task[None]] = []
        self._server: HTTPServer | None = None
        self._client: httpx.AsyncClient | None = None
        self._changed = asyncio.Event()

    # ------------------------------------------------------------------ lifecycle

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/{VERSION}"

    async def start(self) -> FakeWhatsAppApi:
        api = self

        class _Graph(RequestHandler):
            async def get(self, path: str) -> None:
                api._answer(self, *api._get(self, path))

            async def post(self, path: str) -> None:
                api._answer(self, *api._post(self, path))

            async def delete(self, path: str) -> None:
                api._answer(self, *api._delete(self, path))

        sockets = bind_sockets(0, address="127.0.0.1")
        self.port = sockets[0].getsockname()[1]
        self._server = HTTPServer(Application([(r"/(.*)", _Graph)], log_function=lambda _h: None),
                                  max_body_size=200 << 20)
        self._server.add_sockets(sockets)
        self._client = httpx.AsyncClient(timeout=5.0)
        self._workers = [asyncio.ensure_future(self._deliver_all())
                         for _ in range(self.webhook_workers)]
        return self

    async def stop(self) -> None:
        for worker in self._workers:
            worker.cancel()
        for worker in self._workers:
            with contextlib.suppress(BaseException):
                await worker
        if self._client is not None:
            await self._client.aclose()
        if self._server is not None:
            self._server.stop()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.close_all_connections(), 2.0)

    # ------------------------------------------------------------------ the clock

    def now(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        """Move the server's clock on (the bot under test should share :meth:`now`)."""
        self.offset += seconds

    # ------------------------------------------------------------------ people

    def user(self, phone: str, user_id: str, *, name: str = "Friend",
             hide_phone: bool = False) -> FakeUser:
        person = FakeUser(phone, user_id, name, hide_phone)
        self.users.append(person)
        return person

    def send_text(self, user: FakeUser, text: str) -> str:
        return self._from_user(user, {"type": "text", "text": {"body": text}})

    def tap(self, user: FakeUser, title: str, *, message: SentMessage | None = None) -> str:
        """The person taps the choice titled ``title`` of the bot's last question (or of
        ``message``): a button_reply or list_reply with the id the bot gave it."""
        question = message or self.last_question(user)
        # As a person sees it: bidi isolates around digits in RTL text are invisible.
        found = [cid for cid, t in question.choices if _visible(t) == _visible(title)]
        if not found:
            raise AssertionError(f"no choice {title!r} in {question.choices}")
        return self.reply(user, question, found[0], title)

    def reply(self, user: FakeUser, question: SentMessage, choice_id: str, title: str = "") -> str:
        """A reply with any id to ``question`` (a stale or forged tap, too)."""
        kind = question.payload["interactive"]["type"] if question.type == "interactive" else "button"
        reply_type = "button_reply" if kind == "button" else "list_reply"
        return self._from_user(user, {
            "type": "interactive", "context": {"from": DISPLAY_NUMBER, "id": question.id},
            "interactive": {"type": reply_type, reply_type: {"id": choice_id, "title": title}}})

    def send_file(self, user: FakeUser, kind: str, data: bytes, *, mime_type: str,
                  file_name: str = "", caption: str | None = None, voice: bool = False) -> str:
        """A person sends a file: kind is image, audio (a voice note with voice=True),
        document or video. The server keeps the bytes for the bot to download."""
        media_id = f"in-{next(self._ids)}"
        self.media[media_id] = _Media(data, mime_type, file_name)
        body: JSONDict = {"id": media_id, "mime_type": mime_type,
                          "sha256": hashlib.sha256(data).hexdigest()}
        if voice:
            body["voice"] = True
        if file_name:
            body["filename"] = file_name
        if caption is not None:
            body["caption"] = caption
        return self._from_user(user, {"type": kind, kind: body})

    def send_sticker(self, user: FakeUser) -> str:
        media_id = f"in-{next(self._ids)}"
        self.media[media_id] = _Media(b"RIFF-webp", "image/webp")
        return self._from_user(user, {"type": "sticker", "sticker": {
            "id": media_id, "mime_type": "image/webp", "animated": False}})

    def react(self, user: FakeUser, message_id: str) -> str:
        return self._from_user(user, {"type": "reaction", "reaction": {
            "message_id": message_id, "emoji": "👍"}})

    def redeliver(self, message_id: str) -> None:
        """Send a message's webhook again, unchanged (WhatsApp does, e.g. after a slow 200)."""
        self._emit(f"again {message_id}", self._webhooks[message_id])

    def status(self, message_id: str, status: str) -> None:
        """A sent, delivered, read or played status for one of the bot's messages."""
        sent = self._sent_message(message_id)
        entry: JSONDict = {"id": message_id, "status": status, "timestamp": str(int(self.now())),
                           "recipient_id": sent.to.phone, "recipient_user_id": sent.to.user_id,
                           "pricing": {"billable": False, "pricing_model": "PMP",
                                       "category": "service", "type": "free_customer_service"}}
        contacts = [{"profile": {"name": sent.to.name}, "user_id": sent.to.user_id,
                     **({} if sent.to.hide_phone else {"wa_id": sent.to.phone})}]
        self._emit(f"{status} {message_id}", {"contacts": contacts, "statuses": [entry]})

    def fail(self, message_id: str, code: int = 131026, details: str = "") -> None:
        """A failed status for one of the bot's messages. As at WhatsApp, it carries no
        contacts, and the user id only when the message was sent to one."""
        sent = self._sent_message(message_id)
        title = _TITLES.get(code, "Failure")
        entry: JSONDict = {"id": message_id, "status": "failed", "timestamp": str(int(self.now())),
                           "recipient_id": sent.to.phone,
                           "errors": [{"code": code, "title": title, "message": title,
                                       "error_data": {"details": details or title},
                                       "href": "https://developers.facebook.com/docs/whatsapp/"
                                               "cloud-api/support/error-codes/"}]}
        if "recipient" in sent.payload:
            entry["recipient_user_id"] = sent.to.user_id
        self._emit(f"failed {message_id}", {"statuses": [entry]})

    def fail_next(self, code: int, times: int = 1, *, http_status: int = 400) -> None:
        """The next ``times`` sends of messages fail with error ``code``."""
        self._failures.append(_Failure(times, code, http_status))

    # ------------------------------------------------------------------ reading

    def messages_to(self, user: FakeUser) -> list[SentMessage]:
        return [m for m in self.sent if m.to is user]

    def texts(self, user: FakeUser) -> list[str]:
        return [m.text for m in self.messages_to(user)]

    def last_question(self, user: FakeUser) -> SentMessage:
        questions = [m for m in self.messages_to(user) if m.choices]
        if not questions:
            raise AssertionError(f"no question was sent to {user.user_id}: {self.texts(user)}")
        return questions[-1]

    async def wait_until(self, condition: Callable[[], bool], *, within: float = 10.0,
                         what: str = "condition") -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while not condition():
            if loop.time() >= deadline:
                raise AssertionError(f"timed out after {within}s waiting for {what}; sent so far: "
                                     f"{[m.text[:60] for m in self.sent][-12:]}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), 0.02)

    async def until_text(self, user: FakeUser, fragment: str, *, within: float = 10.0) -> SentMessage:
        """Wait for the newest message to ``user`` to contain ``fragment``; return it."""
        def newest() -> SentMessage | None:
            mine = self.messages_to(user)
            return mine[-1] if mine and fragment in mine[-1].text else None

        await self.wait_until(lambda: newest() is not None, within=within,
                              what=f"{fragment!r} for {user.user_id}; have {self.texts(user)[-5:]}")
        await asyncio.sleep(0.05)  # let any unexpected extra message arrive too
        found = newest()
        assert found is not None, f"a message came after {fragment!r}: {self.texts(user)[-5:]}"
        return found

    async def delivered(self, *, within: float = 10.0) -> None:
        """Wait until every webhook queued so far was answered 200."""
        await self.wait_until(lambda: self._outgoing.empty() and not self._in_flight,
                              within=within, what="webhooks to be answered")

    async def post_raw(self, body: bytes, signature: str | None) -> int:
        """POST any body to the bot's webhook with any signature header; the status."""
        assert self._client is not None and self.webhook_url is not None
        headers = {"Content-Type": "application/json"}
        if signature is not None:
            headers["X-Hub-Signature-256"] = signature
        response = await self._client.post(self.webhook_url, content=body, headers=headers)
        return response.status_code

    def sign(self, body: bytes) -> str:
        return "sha256=" + hmac.new(self.app_secret.encode(), body, hashlib.sha256).hexdigest()

    # ------------------------------------------------------------------ webhooks out

    def _from_user(self, user: FakeUser, message: JSONDict) -> str:
        message_id = f"wamid.in{next(self._ids)}"
        user.last_wrote = self.now()
        contact: JSONDict = {"profile": {"name": user.name}, "user_id": user.user_id}
        entry: JSONDict = {"from_user_id": user.user_id, "id": message_id,
                           "timestamp": str(int(self.now())), **message}
        if not user.hide_phone:
            contact["wa_id"] = user.phone
            entry["from"] = user.phone
        value = {"contacts": [contact], "messages": [entry]}
        self._webhooks[message_id] = value
        self._emit(f"{message.get('type')} {message_id}", value)
        return message_id

    def _emit(self, what: str, value: JSONDict) -> None:
        payload = {"object": "whatsapp_business_account", "entry": [{"id": WABA_ID, "changes": [{
            "value": {"messaging_product": "whatsapp",
                      "metadata": {"display_phone_number": DISPLAY_NUMBER,
                                   "phone_number_id": self.phone_number_id}, **value},
            "field": "messages"}]}]}
        self._outgoing.put_nowait(_Outgoing(what, json.dumps(payload, ensure_ascii=False).encode()))
        self._changed.set()

    async def _deliver_all(self) -> None:
        while True:
            item = await self._outgoing.get()
            self._in_flight += 1
            try:
                item.done.set_result(await self._deliver(item))
            finally:
                self._in_flight -= 1
                self._changed.set()

    async def _deliver(self, item: _Outgoing) -> int:
        """POST until answered 200, as Meta does (bounded by ``retry_for``)."""
        assert self._client is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.retry_for
        pause = 0.02
        for _ in range(100_000):  # bounded by the deadline first
            status = 0
            started = loop.time()
            if self.webhook_url is not None:
                try:
                    response = await self._client.post(
                        self.webhook_url, content=item.body,
                        headers={"Content-Type": "application/json",
                                 "X-Hub-Signature-256": self.sign(item.body)})
                    status = response.status_code
                except httpx.HTTPError:
                    status = 0
            self.deliveries.append(Delivery(item.what, status, loop.time() - started))
            self._changed.set()
            if status == 200 or loop.time() >= deadline:
                return status
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.5)
        return 0

    # ------------------------------------------------------------------ the Graph API

    def _answer(self, handler: RequestHandler, status: int, body: JSONDict | bytes,
                content_type: str = "application/json") -> None:
        self.requests.append((handler.request.method or "", handler.request.path, status))
        handler.set_status(status)
        handler.set_header("Content-Type", content_type)
        handler.write(body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False))
        self._changed.set()

    def _authorised(self, handler: RequestHandler) -> bool:
        return handler.request.headers.get("Authorization") == f"Bearer {self.access_token}"

    def _get(self, handler: RequestHandler, path: str) -> tuple[int, JSONDict | bytes]:
        if not self._authorised(handler):
            return _error(190, "Invalid OAuth access token", http_status=401)
        parts = path.split("/")
        if len(parts) == 2 and parts[0] == "download" and parts[1] in self.media:
            found = self.media[parts[1]]
            if found.deleted:
                return 404, {"error": {"message": "not found", "code": 100}}
            return 200, found.data
        if len(parts) == 2 and parts[0] == VERSION and parts[1] in self.media \
                and not self.media[parts[1]].deleted:
            found = self.media[parts[1]]
            return 200, {"messaging_product": "whatsapp", "id": parts[1],
                         "url": f"http://127.0.0.1:{self.port}/download/{parts[1]}",
                         "mime_type": found.mime_type, "file_size": len(found.data),
                         "sha256": hashlib.sha256(found.data).hexdigest()}
        return _error(100, "Unsupported get request: no such object", http_status=400)

    def _delete(self, handler: RequestHandler, path: str) -> tuple[int, JSONDict]:
        if not self._authorised(handler):
            return _error(190, "Invalid OAuth access token", http_status=401)
        parts = path.split("/")
        if len(parts) == 2 and parts[0] == VERSION and parts[1] in self.media:
            self.media[parts[1]].deleted = True
            return 200, {"success": True}
        return _error(100, "no such media")

    def _post(self, handler: RequestHandler, path: str) -> tuple[int, JSONDict]:
        if not self._authorised(handler):
            return _error(190, "Invalid OAuth access token", http_status=401)
        if path == f"{VERSION}/{self.phone_number_id}/media":
            return self._upload(handler)
        if path != f"{VERSION}/{self.phone_number_id}/messages":
            return _error(100, f"Unsupported post request: {path}")
        try:
            body = json.loads(handler.request.body)
        except ValueError:
            return _error(100, "the body is not JSON")
        return self._message(body)

    def _upload(self, handler: RequestHandler) -> tuple[int, JSONDict]:
        if handler.get_body_argument("messaging_product", "") != "whatsapp":
            return _error(100, "messaging_product must be whatsapp")
        files = handler.request.files.get("file")
        mime = handler.get_body_argument("type", "").split(";", 1)[0].strip()
        if not files:
            return _error(100, "file is required")
        kind = "audio" if mime in _AUDIO else "image" if mime in _IMAGE else \
            "document" if mime in _DOCUMENT else None
        data = files[0]["body"]
        if kind is None or len(data) > _MAX_BYTES[kind] or not data:
            return _error(131053, f"Media upload error: {mime or 'no type'}, {len(data)} bytes")
        media_id = f"up-{next(self._ids)}"
        self.media[media_id] = _Media(data, handler.get_body_argument("type"),
                                      files[0]["filename"])
        return 200, {"id": media_id}

    def _message(self, body: JSONDict) -> tuple[int, JSONDict]:
        if body.get("messaging_product") != "whatsapp":
            return _error(100, "messaging_product must be whatsapp")
        if body.get("status") == "read":  # mark as read, with a typing indicator
            self.read_marks.append(str(body.get("message_id")))
            return 200, {"success": True}
        user = self._recipient(body)
        if user is None:
            return _error(100, f"unknown recipient: to={body.get('to')!r} "
                               f"recipient={body.get('recipient')!r}")
        for failure in self._failures:
            if failure.remaining > 0:
                failure.remaining -= 1
                if failure.remaining == 0:
                    self._failures.remove(failure)
                return _error(failure.code, _TITLES.get(failure.code, "Error"),
                              http_status=failure.http_status)
        kind = body.get("type")
        problem = self._invalid(kind, body)
        if problem is not None:
            return _error(*problem)
        outside = kind != "template" and (
            user.last_wrote is None or self.now() - user.last_wrote >= WINDOW_SECONDS)
        if outside and self.window_errors == "sync":
            return _error(131047, "Re-engagement message", details="Message failed to send "
                          "because more than 24 hours have passed since the customer last "
                          "replied to this number.")
        message_id = f"wamid.out{next(self._ids)}"
        media = None
        if kind in ("audio", "image", "document"):
            media = self.media[body[kind]["id"]].data
        if outside:  # accepted, then reported failed, as WhatsApp often does
            self._unaccepted[message_id] = SentMessage(message_id, user, body, self.now())
            self._emit_window_failure(message_id, user, body)
        else:
            self.sent.append(SentMessage(message_id, user, body, self.now(), media))
        contact = {"input": body.get("to") or body.get("recipient"),
                   **({"wa_id": user.phone} if "to" in body else {"user_id": user.user_id})}
        return 200, {"messaging_product": "whatsapp", "contacts": [contact],
                     "messages": [{"id": message_id}]}

    def _emit_window_failure(self, message_id: str, user: FakeUser, body: JSONDict) -> None:
        title = _TITLES[131047]
        entry: JSONDict = {"id": message_id, "status": "failed", "timestamp": str(int(self.now())),
                           "recipient_id": user.phone,
                           "errors": [{"code": 131047, "title": title, "message": title,
                                       "error_data": {"details": "more than 24 hours have passed"}}]}
        if "recipient" in body:
            entry["recipient_user_id"] = user.user_id
        self._emit(f"failed {message_id}", {"statuses": [entry]})

    def _sent_message(self, message_id: str) -> SentMessage:
        found = next((m for m in self.sent if m.id == message_id), None) or \
            self._unaccepted.get(message_id)
        if found is None:
            raise AssertionError(f"no message {message_id} was sent")
        return found

    def _recipient(self, body: JSONDict) -> FakeUser | None:
        if "to" in body:
            return next((u for u in self.users if u.phone == str(body["to"])), None)
        return next((u for u in self.users if u.user_id == str(body.get("recipient"))), None)

    def _invalid(self, kind: Any, body: JSONDict) -> tuple[int, str] | None:
        """(code, what is wrong) when WhatsApp would refuse the message."""
        if kind == "text":
            text = str((body.get("text") or {}).get("body", ""))
            if not text.strip():
                return 100, "text.body is required"
            if len(text) > 4096:
                return 100, "text.body is longer than 4096 characters"
            return None
        if kind == "interactive":
            return _invalid_interactive(body.get("interactive") or {})
        if kind == "template":
            template = body.get("template") or {}
            languages = self.templates.get(str(template.get("name")))
            code = (template.get("language") or {}).get("code")
            if languages is None or code not in languages:
                return 132001, f"template {template.get('name')!r} in {code!r} does not exist"
            return None
        if kind in ("audio", "image", "document"):
            media = body.get(kind) or {}
            found = self.media.get(str(media.get("id")))
            if found is None or found.deleted:
                return 131009, f"{kind}.id is not a media id the server holds"
            if kind == "audio" and "caption" in media:
                return 100, "audio messages take no caption"
            if len(str(media.get("caption", ""))) > 1024:
                return 100, "caption is longer than 1024 characters"
            base = found.mime_type.split(";", 1)[0].strip()
            if (kind == "audio" and base not in _AUDIO) or (kind == "image" and base not in _IMAGE):
                return 131053, f"{base} cannot be sent as {kind}"
            return None
        return 100, f"unsupported message type {kind!r}"


def _visible(text: str) -> str:
    return text.translate({c: None for c in range(0x2066, 0x206A)})


def _invalid_interactive(interactive: JSONDict) -> tuple[int, str] | None:
    body = str((interactive.get("body") or {}).get("text", ""))
    if not body.strip() or len(body) > 1024:
        return 100, f"interactive.body.text must hold 1-1024 characters, not {len(body)}"
    action = interactive.get("action") or {}
    if interactive.get("type") == "button":
        buttons = action.get("buttons") or []
        if not 1 <= len(buttons) <= 3:
            return 100, f"a button message holds 1-3 buttons, not {len(buttons)}"
        ids = [str((b.get("reply") or {}).get("id", "")) for b in buttons]
        titles = [str((b.get("reply") or {}).get("title", "")) for b in buttons]
        if any(b.get("type") != "reply" for b in buttons):
            return 100, "every button must be of type reply"
        if any(not 1 <= len(t) <= 20 for t in titles):
            return 131009, f"button titles must hold 1-20 characters: {titles}"
        if any(not 1 <= len(i) <= 256 for i in ids) or len(set(ids)) != len(ids):
            return 131009, f"button ids must be distinct, of 1-256 characters: {ids}"
        if len(set(titles)) != len(titles):
            return 131009, f"button titles must be distinct: {titles}"
        return None
    if interactive.get("type") == "list":
        opener = str(action.get("button", ""))
        if not 1 <= len(opener) <= 20:
            return 131009, f"the list's button must hold 1-20 characters: {opener!r}"
        sections = action.get("sections") or []
        rows = [r for s in sections for r in s.get("rows") or []]
        if not 1 <= len(sections) <= 10 or not 1 <= len(rows) <= 10:
            return 131009, f"a list holds 1-10 rows in 1-10 sections, not {len(rows)}"
        if len(sections) > 1 and any(not 1 <= len(str(s.get("title", ""))) <= 24 for s in sections):
            return 131009, "sections of a list with several must have titles of 1-24 characters"
        ids = [str(r.get("id", "")) for r in rows]
        if any(not 1 <= len(i) <= 200 for i in ids) or len(set(ids)) != len(ids):
            return 131009, f"row ids must be distinct, of 1-200 characters: {ids}"
        for row in rows:
            if not 1 <= len(str(row.get("title", ""))) <= 24:
                return 131009, f"row titles must hold 1-24 characters: {row.get('title')!r}"
            if len(str(row.get("description", ""))) > 72:
                return 131009, f"row descriptions hold 72 characters: {row.get('description')!r}"
        return None
    return 100, f"unsupported interactive type {interactive.get('type')!r}"


def _error(code: int, message: str, *, http_status: int = 400,
           details: str = "") -> tuple[int, JSONDict]:
    title = _TITLES.get(code, message)
    return http_status, {"error": {"message": f"(#{code}) {title}", "type": "OAuthException",
                                   "code": code, "error_data": {"messaging_product": "whatsapp",
                                                                "details": details or message},
                                   "fbtrace_id": "AFakeTrace"}}
