"""WhatsApp transport: the WhatsApp Business Cloud API (Meta's Graph API), over HTTP.

Receiving: a webhook server (tornado, which python-telegram-bot's webhooks extra brings)
on ``listen:port``, path :data:`WEBHOOK_PATH`, behind the operator's HTTPS proxy.

    GET   the verification handshake: hub.mode=subscribe and hub.verify_token equal to
          the configured token -> 200 with hub.challenge; anything else 403
    POST  X-Hub-Signature-256 must be the HMAC-SHA256 of the raw body with the app secret,
          else 401 and nothing is read. Its messages are saved (the handler, i.e.
          bot.intake.Intake.accept) before it is answered 200; 500 if they could not be,
          so WhatsApp sends them again. Saving takes milliseconds: WhatsApp retries
          webhooks that are slow to answer.

Per message: text -> Inbound.from_text; an interactive button or list reply -> BUTTON with
the id we gave it (a question token, so stale taps are handled by the engine as on
Telegram); voice notes, photos, documents, stickers ... -> MEDIA (with an Attachment for
files, so a volunteer can be sent the file itself); reactions and system notices are
ignored. People are keyed on the user id WhatsApp gives ("whatsapp:GB.1234..."; people
may hide their phone number), else on their phone number; when both are given the phone
key travels as Inbound.alias, so a volunteer registered by phone number is recognised.

Statuses: sent, delivered and read are counted (``stats``); a failed one becomes an
UNDELIVERED Inbound, saved like a message, so the dispatcher logs it, counts it and tells
the volunteer who wrote the message why it did not arrive.

Sending: ``POST {base}/{phone-number-id}/messages``. Up to 3 choices become reply buttons
(titles of at most 20 characters), up to 10 a list message (rows of 24; a longer label is
cut in the title and given whole in the row's description), more a numbered text. Text is
split by meaning into parts of at most 4,096 characters; the text above buttons into an
interactive body of at most 1,024. WhatsApp has no edits: answered questions stay as they
are, and a tap on an old one is a stale token. Files are uploaded, sent by media id and
deleted from WhatsApp once delivered.

The 24-hour customer-service window: free text reaches a person only within 24 hours of
their last message. The transport remembers when each person last wrote (in memory; after
a restart WhatsApp's own answer, error 131047, decides) and refuses free text outside the
window without trying, as :class:`DeliveryRefused` whose reason tells a volunteer what to
do. A message marked ``meta["template"] == "reopen"`` (a volunteer's /invite, the notice
that a volunteer joined) is sent as the approved template staff configured instead, when
there is one: templates are named in settings, never made up.

Errors: 130429 and 131056 (rate limits), 5xx and network errors are retried a few times
with a growing pause, then raised as TransportError with ``retry_after``, so the
dispatcher tries again later; account problems (an expired token, a blocked account) are
TransportError too (staff can fix them); other 4xx answers will not change and are
DeliveryRefused.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import time
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from bot.errors import DeliveryRefused, TransportError
from bot.limits import (
    CAPTION_CHARS_MAX,
    PHONE_MESSAGE_CHARS,
    WHATSAPP_INTERACTIVE_BODY_CHARS,
    WHATSAPP_LIST_BUTTON_CHARS,
    WHATSAPP_LIST_DESCRIPTION_CHARS,
    WHATSAPP_LIST_ROW_CHARS,
    WHATSAPP_LIST_ROWS_MAX,
    WHATSAPP_MEDIA_MAX_BYTES,
    WHATSAPP_REPLY_BUTTON_CHARS,
    WHATSAPP_REPLY_BUTTONS_MAX,
    WHATSAPP_TEXT_MAX,
    WHATSAPP_WINDOW_SECONDS,
)
from bot.messages import REOPEN_TEMPLATE, Attachment, Inbound, InboundKind, Outbound
from bot.text.split import split_text
from bot.transports.base import InboundHandler, MediaFile

__all__ = [
    "DEFAULT_API_BASE_URL",
    "WEBHOOK_PATH",
    "ReopenTemplate",
    "WebhookBatch",
    "WhatsAppTransport",
    "build_requests",
    "parse_webhook",
    "recipient_fields",
    "signature_of",
    "valid_signature",
]

log = logging.getLogger(__name__)

#: The Graph API's current version (v26.0, July 2026; each version lives about two years).
DEFAULT_API_BASE_URL = "https://graph.facebook.com/v26.0"
WEBHOOK_PATH = "/whatsapp/webhook"
#: WhatsApp's webhook bodies are small; refuse anything far larger before reading it.
WEBHOOK_BODY_MAX = 1 << 20
#: Messages whose final status we wait for, and people whose last message we remember.
SENT_REMEMBERED_MAX = 10_000
WINDOW_CHATS_MAX = 100_000
#: The largest file fetched from WhatsApp (its own limit, for documents).
DOWNLOAD_MAX_BYTES = 100 << 20

# Error codes (https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes).
WINDOW_CLOSED = 131047
#: Code -> seconds to wait before trying again.
_RATE_LIMITS = {130429: 1.0,  # the phone number's throughput
                131056: 6.0,  # the pair rate limit: about one message per 6 s to one person
                4: 60.0, 80007: 60.0}  # the app's or the account's call limits
_TRANSIENT = frozenset({1, 2, 131000, 131016})
#: The account, not the message: staff can fix these, so they are not refused for good.
_ACCOUNT = {0: "the bot's WhatsApp access token was refused (staff: renew WHATSAPP_ACCESS_TOKEN)",
            190: "the bot's WhatsApp access token has expired (staff: renew WHATSAPP_ACCESS_TOKEN)",
            10: "the bot's WhatsApp app lacks a permission (staff: check the app in Meta's dashboard)",
            131031: "the bot's WhatsApp Business account is locked (staff: see Meta's Business Manager)",
            131042: "the bot's WhatsApp account has a payment problem (staff: see Meta's Business Manager)",
            131048: "WhatsApp is limiting how many messages the bot may send (its quality rating)",
            368: "the bot's WhatsApp account is blocked for a policy reason (staff: see Meta's Business "
                 "Manager)"}
_REFUSALS = {131026: "WhatsApp could not deliver it to this person (they may have left WhatsApp, "
                     "blocked the bot, or need to update the app)",
             131051: "WhatsApp does not carry this kind of message",
             131052: "WhatsApp could not read the file",
             131053: "WhatsApp could not take the file (its kind or size is not one WhatsApp sends)",
             131062: "WhatsApp can reach this person only by phone number for this kind of message",
             132000: "the invitation template's text does not fit what WhatsApp approved",
             132001: "the invitation template does not exist in that language (staff: check "
                     "WHATSAPP_REOPEN_TEMPLATE and its languages)",
             132015: "the invitation template is paused by WhatsApp for low quality",
             132016: "the invitation template is disabled by WhatsApp"}

# Inbound message types -> Inbound.media; the ones holding a file carry an Attachment.
_MEDIA_TYPES = {"image": "photo", "audio": "audio", "video": "video", "document": "document",
                "sticker": "sticker", "location": "location", "contacts": "contact"}
_FILE_TYPES = frozenset({"image", "audio", "video", "document"})
#: Ignored: a reaction is not a message to answer; system notices are WhatsApp's own.
_IGNORED_TYPES = frozenset({"reaction", "system", "request_welcome", "ephemeral"})

# Outbound: our media kinds -> WhatsApp's message type, and what each type accepts.
_SEND_TYPE = {"voice": "audio", "audio": "audio", "photo": "image", "document": "document"}
_ACCEPTED_MIME = {"audio": ("audio/aac", "audio/amr", "audio/mpeg", "audio/mp4", "audio/ogg"),
                  "image": ("image/jpeg", "image/png")}


@dataclass(frozen=True)
class ReopenTemplate:
    """An approved template inviting a person to write again (named by staff in settings).

    ``languages`` maps a bot language to the template's language code at WhatsApp
    ("en" -> "en_GB"); a language without one gets English's, else "en".
    """

    name: str
    languages: Mapping[str, str] = field(default_factory=dict)

    def language_for(self, language: str) -> str:
        return self.languages.get(language) or self.languages.get("en") or "en"


@dataclass(frozen=True)
class StatusEvent:
    """One entry of a webhook's ``statuses``."""

    message_id: str
    status: str  # sent, delivered, read, played, failed ...
    chat_key: str | None  # the person's, when the status names them
    code: int | None = None
    title: str = ""
    details: str = ""


@dataclass
class WebhookBatch:
    """What one webhook POST held."""

    inbounds: list[Inbound] = field(default_factory=list)
    #: chat key -> the time of its newest message (opens the 24-hour window).
    seen: dict[str, float] = field(default_factory=dict)
    #: chat key -> id of its newest message (for the typing indicator).
    last_message: dict[str, str] = field(default_factory=dict)
    statuses: list[StatusEvent] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    unreadable: int = 0  # entries whose shape we could not read (logged)
    other_numbers: int = 0  # changes for another phone number of the same account


@dataclass
class _Sent:
    """What we know of a message WhatsApp accepted, until its final status."""

    chat_key: str
    key: str
    meta: dict[str, str]
    preview: str
    media: str = ""  # the attachment's kind
    uploaded: str | None = None  # our uploaded media id, deleted once delivered
    template: bool = False  # a REOPEN_TEMPLATE message, sent as free text


class _WindowClosed(Exception):
    """WhatsApp answered 131047: the person's 24-hour window is closed."""


class WhatsAppTransport:
    """The Transport for WhatsApp. Chat keys are ``"whatsapp:<user id or phone number>"``."""

    name = "whatsapp"
    #: Join a turn's short messages into one (fewer notifications), up to a phone screen.
    merge_up_to = PHONE_MESSAGE_CHARS

    def __init__(
        self,
        access_token: str,
        phone_number_id: str,
        app_secret: str,
        verify_token: str,
        *,
        api_base_url: str = DEFAULT_API_BASE_URL,
        listen: str = "127.0.0.1",
        port: int = 8444,
        reopen_template: ReopenTemplate | None = None,
        clock: Callable[[], float] = time.time,
        request_timeout: float = 15.0,
        send_attempts: int = 3,
        backoff_base: float = 1.0,
        retry_after_max: float = 10.0,
        connection_pool_size: int = 8,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        """``clock`` is wall-clock seconds, compared with the timestamps WhatsApp gives.
        A call is tried ``send_attempts`` times at most; a rate limit asking for more than
        ``retry_after_max`` seconds is not waited out here but raised (with retry_after)
        for the dispatcher to try again later."""
        if send_attempts < 1:
            raise ValueError("send_attempts must be >= 1")
        self._token = access_token
        self._phone_number_id = phone_number_id
        self._app_secret = app_secret.encode()
        self._verify_token = verify_token
        self._base = api_base_url.rstrip("/")
        self._listen = listen
        self._port = port
        self._reopen = reopen_template
        self._clock = clock
        self._timeout = request_timeout
        self._attempts = send_attempts
        self._backoff_base = backoff_base
        self._retry_after_max = retry_after_max
        self._pool_size = connection_pool_size
        self._sleep = sleep  # pauses between attempts (tests pass one that does not wait)
        self._client: httpx.AsyncClient | None = None

        #: Statuses by kind ("sent", "delivered", "read", "failed"), webhook POSTs refused
        #: ("bad_signature"), and refusals before sending ("window_closed").
        self.stats: Counter[str] = Counter()
        #: The port the webhook server listens on (the one bound, when 0 was asked for).
        self.port = port
        self.running = asyncio.Event()
        self._stop_requested = asyncio.Event()
        self._run_finished = asyncio.Event()
        self._handler: InboundHandler | None = None
        self._closed = False
        self._windows: OrderedDict[str, float] = OrderedDict()
        self._last_message: OrderedDict[str, str] = OrderedDict()
        self._sent: OrderedDict[str, _Sent] = OrderedDict()
        self._background: set[asyncio.Task[Any]] = set()

    # ------------------------------------------------------------------ Transport

    def owns(self, chat_key: str) -> bool:
        return chat_key.startswith("whatsapp:")

    async def run(self, handler: InboundHandler) -> None:
        """Serve the webhook until :meth:`stop`. Raises TransportError if it cannot listen."""
        from tornado.httpserver import HTTPServer
        from tornado.netutil import bind_sockets
        from tornado.web import Application, RequestHandler

        if self._handler is not None:
            raise TransportError("whatsapp transport is already running")
        if self._closed or self._stop_requested.is_set():
            return
        transport = self

        class _Hook(RequestHandler):
            def get(self) -> None:
                status, body = transport._handshake(
                    self.get_query_argument("hub.mode", ""),
                    self.get_query_argument("hub.verify_token", ""),
                    self.get_query_argument("hub.challenge", ""))
                self.set_status(status)
                if body:
                    self.set_header("Content-Type", "text/plain; charset=utf-8")
                    self.write(body)

            async def post(self) -> None:
                self.set_status(await transport._receive(
                    self.request.body, self.request.headers.get("X-Hub-Signature-256"), handler))

        try:
            sockets = bind_sockets(self._port, address=self._listen)
        except OSError as exc:
            raise TransportError(f"could not listen for WhatsApp's webhook on {self._listen}:"
                                 f"{self._port}: {exc.strerror or exc} (set WHATSAPP_WEBHOOK_LISTEN "
                                 "and WHATSAPP_WEBHOOK_PORT)") from None
        # No access log: the handshake's query string holds the verify token.
        app = Application([(WEBHOOK_PATH, _Hook)], log_function=lambda _handler: None)
        server = HTTPServer(app, max_body_size=WEBHOOK_BODY_MAX)
        server.add_sockets(sockets)
        self.port = sockets[0].getsockname()[1]
        self._handler = handler
        self._run_finished.clear()
        try:
            self.running.set()
            log.info("whatsapp transport receiving (webhook on %s:%d%s)", self._listen, self.port,
                     WEBHOOK_PATH)
            await self._stop_requested.wait()
        finally:
            self.running.clear()
            server.stop()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.close_all_connections(), 5.0)
            self._handler = None
            self._run_finished.set()

    async def stop(self) -> None:
        """Stop receiving: a POST arriving now is not answered, so WhatsApp sends it again."""
        self._stop_requested.set()
        if self._handler is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._run_finished.wait(), 10.0)

    async def close(self) -> None:
        await self.stop()
        if self._closed:
            return
        self._closed = True
        if self._background:  # deletions of delivered files, typing: within the stop's bound
            _, late = await asyncio.wait(set(self._background), timeout=1.0)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late, timeout=0.5)
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def typing(self, chat_key: str) -> None:
        """Mark the person's last message read and show "typing..." (WhatsApp shows it for
        up to 25 s or until the reply). In the background; failures are only logged."""
        message_id = self._last_message.get(chat_key)
        if message_id is None or self._closed:
            return
        payload = {"messaging_product": "whatsapp", "status": "read", "message_id": message_id,
                   "typing_indicator": {"type": "text"}}
        self._spawn(self._quietly(self._request("POST", self._messages_url, json=payload,
                                                what="typing indicator", attempts=1)))

    async def send(self, message: Outbound, media: MediaFile | None = None) -> None:
        """Deliver one message; raises TransportError (DeliveryRefused when it never can be)."""
        target = recipient_fields(message.chat_key)
        template = self._reopen if message.meta.get("template") == REOPEN_TEMPLATE else None
        if self._window_open(message.chat_key) is False:
            if template is not None:
                await self._send_template(message, target, template)
                return
            self.stats["window_closed"] += 1
            raise DeliveryRefused(f"WhatsApp: the 24-hour window of {message.chat_key} is closed; "
                                  f"message {message.key!r} not sent", reason=self.window_reason())
        try:
            if message.attachment is not None:
                await self._send_file(message, target, media)
                return
            requests = build_requests(message)
            if not requests:
                raise DeliveryRefused(f"refusing to send an empty message (key {message.key!r})",
                                      reason="the message was empty or only spaces, which "
                                             "WhatsApp does not send")
            for payload in requests:
                await self._post_message(message, {**target, **payload})
        except _WindowClosed:
            self._close_window(message.chat_key)
            if template is not None:
                await self._send_template(message, target, template)
                return
            self.stats["window_closed"] += 1
            raise DeliveryRefused(f"WhatsApp: error {WINDOW_CLOSED} (24-hour window closed) for "
                                  f"{message.chat_key}", reason=self.window_reason()) from None

    async def fetch(self, attachment: Attachment) -> MediaFile:
        """Download a file a person sent: its URL from the media id, then the bytes."""
        if attachment.source != self.name:
            raise DeliveryRefused(f"not a WhatsApp file: {attachment.ref!r}",
                                  reason="the file is not one WhatsApp holds")
        meta = await self._request("GET", f"{self._base}/{attachment.platform_id}",
                                   what="media lookup")
        url = meta.get("url")
        size = meta.get("file_size")
        if isinstance(size, int) and size > DOWNLOAD_MAX_BYTES:
            raise DeliveryRefused(f"WhatsApp media {attachment.platform_id} is {size} bytes",
                                  reason="the file is too large to pass on")
        if not isinstance(url, str) or not url:
            raise DeliveryRefused("WhatsApp gave no URL for the media",
                                  reason="WhatsApp no longer has the file (files are kept 7 days)")
        data = await self._download(url)
        mime = str(meta.get("mime_type") or attachment.mime_type)
        return MediaFile(data, mime, attachment.file_name)

    # ------------------------------------------------------------------ the window

    def window_reason(self) -> str:
        """Why a volunteer's message did not reach the person, and what they can do."""
        why = ("the person last wrote more than 24 hours ago, and WhatsApp lets the bot write "
               "to someone only within 24 hours of their last message")
        if self._reopen is not None:
            return (f"{why}. Send /invite to send them the approved message asking them to "
                    "write again; once they reply, your messages reach them")
        return (f"{why}. No approved invitation to write again is set up (staff can set "
                "WHATSAPP_REOPEN_TEMPLATE), so they will see your messages only if they write "
                "again")

    def _window_open(self, chat_key: str) -> bool | None:
        """True or False when we know when the person last wrote; None when we do not (a
        restart forgets): then WhatsApp's answer decides."""
        last = self._windows.get(chat_key)
        if last is None:
            return None
        return self._clock() - last < WHATSAPP_WINDOW_SECONDS

    def _note_window(self, chat_key: str, at: float) -> None:
        if at > self._windows.get(chat_key, 0.0):
            self._windows[chat_key] = at
        self._windows.move_to_end(chat_key)
        while len(self._windows) > WINDOW_CHATS_MAX:
            self._windows.popitem(last=False)

    def _close_window(self, chat_key: str) -> None:
        self._windows[chat_key] = self._clock() - WHATSAPP_WINDOW_SECONDS - 1
        self._windows.move_to_end(chat_key)

    # ------------------------------------------------------------------ receiving

    def _handshake(self, mode: str, token: str, challenge: str) -> tuple[int, str]:
        if mode == "subscribe" and challenge and hmac.compare_digest(token.encode(),
                                                                     self._verify_token.encode()):
            log.info("WhatsApp webhook verified")
            return 200, challenge
        log.warning("WhatsApp webhook verification refused: the verify token does not match "
                    "WHATSAPP_VERIFY_TOKEN")
        return 403, ""

    async def _receive(self, body: bytes, signature: str | None, handler: InboundHandler) -> int:
        """One webhook POST: the HTTP status to answer."""
        if not valid_signature(self._app_secret, body, signature):
            self.stats["bad_signature"] += 1
            log.warning("a WhatsApp webhook POST with a %s X-Hub-Signature-256 was refused (not "
                        "read); if WhatsApp sends it, check WHATSAPP_APP_SECRET",
                        "wrong" if signature else "missing")
            return 401
        try:
            payload = json.loads(body)
        except ValueError:
            log.warning("a signed WhatsApp webhook POST was not JSON; refused")
            return 400
        batch = parse_webhook(payload, self._phone_number_id)
        for chat_key, at in batch.seen.items():
            self._note_window(chat_key, at)
        for chat_key, message_id in batch.last_message.items():
            self._last_message[chat_key] = message_id
            self._last_message.move_to_end(chat_key)
            while len(self._last_message) > WINDOW_CHATS_MAX:
                self._last_message.popitem(last=False)
        inbounds = batch.inbounds + [self._undelivered(s) for s in batch.statuses
                                     if s.status == "failed"]
        if inbounds:
            try:
                await handler(inbounds)
            except Exception as exc:  # not saved: WhatsApp sends the POST again
                log.error("could not save %d WhatsApp message(s) (%s); WhatsApp will send them "
                          "again", len(inbounds), exc)
                return 500
        self._after_saved(batch)
        return 200

    def _undelivered(self, status: StatusEvent) -> Inbound:
        """A failed status, as the Inbound the dispatcher reports to the sender."""
        sent = self._sent.get(status.message_id)
        chat_key = sent.chat_key if sent is not None else status.chat_key or "whatsapp:unknown"
        if status.code == WINDOW_CLOSED:
            reason = self.window_reason()
            if sent is not None and sent.template and self._reopen is not None:
                reason = ("the person last wrote more than 24 hours ago, so WhatsApp did not "
                          "deliver it; the approved message asking them to write again was sent "
                          "instead, and your messages reach them once they reply")
        else:
            reason = _refusal_reason(status.code, status.title, status.details)
        meta = {"message_id": status.message_id, "code": str(status.code or "")}
        if sent is not None:
            meta |= {"key": sent.key, "preview": sent.preview, "media": sent.media,
                     **{k: v for k, v in sent.meta.items() if k in ("from", "handover")}}
        return Inbound(chat_key, InboundKind.UNDELIVERED, text=reason,
                       update_id=f"whatsapp:{status.message_id}:failed", meta=meta)

    def _after_saved(self, batch: WebhookBatch) -> None:
        for error in batch.errors:
            self.stats["webhook_errors"] += 1
            log.warning("WhatsApp reported an error: %s", error)
        if batch.unreadable:
            log.warning("%d entr%s of a WhatsApp webhook could not be read and were skipped",
                        batch.unreadable, "y" if batch.unreadable == 1 else "ies")
        for status in batch.statuses:
            self.stats[status.status] += 1
            if status.status not in ("delivered", "read", "played", "failed"):
                continue
            sent = self._sent.pop(status.message_id, None)
            if status.status == "failed":
                log.warning("WhatsApp could not deliver message %s to %s: error %s %s %s",
                            status.message_id, sent.chat_key if sent else status.chat_key,
                            status.code, status.title, status.details)
                if status.code == WINDOW_CLOSED and sent is not None:
                    self._close_window(sent.chat_key)
                    if sent.template and self._reopen is not None:
                        self._spawn(self._quietly(self._resend_as_template(sent)))
            if sent is not None and sent.uploaded:  # kept at WhatsApp only until delivered
                self._spawn(self._quietly(self._request(
                    "DELETE", f"{self._base}/{sent.uploaded}", what="media deletion", attempts=2)))

    async def _resend_as_template(self, sent: _Sent) -> None:
        assert self._reopen is not None
        message = Outbound(sent.chat_key, sent.preview, key=sent.key, meta=sent.meta,
                           language=sent.meta.get("language", "en"))
        await self._send_template(message, recipient_fields(sent.chat_key), self._reopen)

    # ------------------------------------------------------------------ sending

    @property
    def _messages_url(self) -> str:
        return f"{self._base}/{self._phone_number_id}/messages"

    async def _post_message(self, message: Outbound, payload: dict[str, Any], *,
                            uploaded: str | None = None, template: bool = False) -> str:
        answer = await self._request("POST", self._messages_url, json=payload, what="send")
        try:
            message_id = str(answer["messages"][0]["id"])
        except (KeyError, IndexError, TypeError):
            raise TransportError(f"WhatsApp answered a send without a message id: {answer!r:.200}",
                                 reason="WhatsApp gave an unexpected answer") from None
        meta = {k: v for k, v in message.meta.items() if k in ("from", "handover")}
        meta["language"] = message.language
        self._sent[message_id] = _Sent(
            message.chat_key, message.key, meta, _preview(message.text),
            message.attachment.kind if message.attachment else "", uploaded,
            template or message.meta.get("template") == REOPEN_TEMPLATE)
        while len(self._sent) > SENT_REMEMBERED_MAX:
            self._sent.popitem(last=False)
        return message_id

    async def _send_template(self, message: Outbound, target: dict[str, str],
                             template: ReopenTemplate) -> None:
        payload = {**target, "type": "template", "template": {
            "name": template.name, "language": {"code": template.language_for(message.language)}}}
        try:
            await self._post_message(message, payload)
        except _WindowClosed:  # not for templates; should WhatsApp say so anyway, it is final
            raise DeliveryRefused("WhatsApp refused the invitation template as outside the "
                                  "window", reason=self.window_reason()) from None
        self.stats["template"] += 1
        log.info("sent the invitation template %r to %s (outside the 24-hour window)",
                 template.name, message.chat_key)

    async def _send_file(self, message: Outbound, target: dict[str, str],
                         media: MediaFile | None) -> None:
        attachment = message.attachment
        assert attachment is not None
        if media is None:
            if attachment.source != self.name:
                raise DeliveryRefused(f"a file held by {attachment.source!r} came without its bytes",
                                      reason="the file could not be fetched from the other app")
            media = await self.fetch(attachment)
        kind = _SEND_TYPE.get(attachment.kind, "document")
        mime = (media.mime_type or attachment.mime_type or "application/octet-stream").strip()
        base_mime = mime.split(";", 1)[0].strip().lower()
        if kind in _ACCEPTED_MIME and base_mime not in _ACCEPTED_MIME[kind]:
            kind = "document"  # e.g. a Telegram voice note in a format WhatsApp does not play
        limit = WHATSAPP_MEDIA_MAX_BYTES.get(attachment.kind if kind != "document" else "document",
                                             WHATSAPP_MEDIA_MAX_BYTES["document"])
        if len(media.data) > limit:
            raise DeliveryRefused(
                f"file of {len(media.data)} bytes is over WhatsApp's {limit} for {kind}",
                reason=f"the file is too large for WhatsApp ({_megabytes(len(media.data))}; it "
                       f"takes {_megabytes(limit)} at most)")
        name = media.file_name or attachment.file_name or _default_name(kind, base_mime)
        media_id = await self._upload(media.data, mime, name)
        body: dict[str, Any] = {"id": media_id}
        caption = message.text.strip()
        if kind == "audio":
            if attachment.kind == "voice" and base_mime == "audio/ogg":
                body["voice"] = True  # a voice note (play button, transcript), not a music file
        elif caption and len(caption) <= CAPTION_CHARS_MAX:
            body["caption"], caption = caption, ""
        if kind == "document":
            body["filename"] = name
        try:
            for part in split_text(caption, WHATSAPP_TEXT_MAX) if caption else ():
                await self._post_message(message, {**target, **_text_payload(part)})
            await self._post_message(message, {**target, "type": kind, kind: body},
                                     uploaded=media_id)
        except BaseException:
            self._spawn(self._quietly(self._request("DELETE", f"{self._base}/{media_id}",
                                                    what="media deletion", attempts=2)))
            raise

    async def _upload(self, data: bytes, mime: str, name: str) -> str:
        answer = await self._request(
            "POST", f"{self._base}/{self._phone_number_id}/media", what="media upload",
            data={"messaging_product": "whatsapp", "type": mime},
            files={"file": (name, data, mime)})
        media_id = answer.get("id")
        if not isinstance(media_id, str) or not media_id:
            raise TransportError(f"WhatsApp answered an upload without an id: {answer!r:.200}",
                                 reason="WhatsApp gave an unexpected answer")
        return media_id

    async def _download(self, url: str) -> bytes:
        client = self._http()
        try:
            async with client.stream("GET", url) as response:
                if not response.is_success:
                    await response.aread()
                    self._raise_for(response, "media download", 1, 1)
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > DOWNLOAD_MAX_BYTES:
                        raise DeliveryRefused("WhatsApp media is over the download limit",
                                              reason="the file is too large to pass on")
                    chunks.append(chunk)
        except httpx.HTTPError as exc:
            raise TransportError(f"WhatsApp media download: {exc.__class__.__name__}",
                                 reason="WhatsApp could not be reached") from exc
        return b"".join(chunks)

    def _http(self) -> httpx.AsyncClient:
        if self._closed:
            raise TransportError("whatsapp transport is closed")
        if self._client is None:
            self._client = httpx.AsyncClient(
                headers={"Authorization": f"Bearer {self._token}"}, timeout=self._timeout,
                limits=httpx.Limits(max_connections=self._pool_size,
                                    max_keepalive_connections=self._pool_size))
        return self._client

    async def _request(self, method: str, url: str, *, what: str, attempts: int | None = None,
                       json: dict[str, Any] | None = None, data: dict[str, str] | None = None,
                       files: dict[str, tuple[str, bytes, str]] | None = None) -> dict[str, Any]:
        """One Graph API call with bounded retries; every failure becomes TransportError."""
        tries = attempts or self._attempts
        for attempt in range(1, tries + 1):
            try:
                response = await self._http().request(method, url, json=json, data=data,
                                                      files=files)
            except httpx.HTTPError as exc:  # refused, reset, timed out
                if attempt == tries:
                    raise TransportError(f"WhatsApp {what}: {exc.__class__.__name__} after {tries} "
                                         "attempt(s)", reason="WhatsApp could not be reached") from exc
                await self._sleep(self._backoff_base * 2 ** (attempt - 1))
                continue
            if response.is_success:
                try:
                    answer = response.json()
                except ValueError:
                    answer = {}
                return answer if isinstance(answer, dict) else {}
            delay = self._raise_for(response, what, attempt, tries)
            log.info("WhatsApp %s: answered %d; trying again in %.1f s", what,
                     response.status_code, delay)
            await self._sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _raise_for(self, response: httpx.Response, what: str, attempt: int, tries: int) -> float:
        """Raise the error a failed answer means, or return how long to wait before the next
        attempt (rate limits and server trouble, while attempts remain)."""
        code, title, details = _graph_error(response)
        status = response.status_code
        described = f"WhatsApp {what}: HTTP {status}, error {code} {title} {details}".rstrip()
        if code == WINDOW_CLOSED:
            raise _WindowClosed(described)
        if code in _RATE_LIMITS or status == 429:
            wait = float(_RATE_LIMITS.get(code or 0, 1.0) * 2 ** (attempt - 1))
            self.stats["rate_limited"] += 1
            if attempt < tries and wait <= self._retry_after_max:
                return wait
            raise TransportError(described, reason="WhatsApp asked the bot to slow down",
                                 retry_after=wait)
        if status >= 500 or code in _TRANSIENT:
            if attempt < tries:
                return float(self._backoff_base * 2 ** (attempt - 1))
            raise TransportError(described, reason="WhatsApp had a temporary problem")
        if code in _ACCOUNT or status in (401, 403):
            account = _ACCOUNT.get(code or 0, f"WhatsApp refused the bot's credentials ({title})")
            log.error("%s: %s", described, account)
            raise TransportError(described, reason=account, retry_after=60.0)
        raise DeliveryRefused(described, reason=_refusal_reason(code, title, details))

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    @staticmethod
    async def _quietly(work: Coroutine[Any, Any, Any]) -> None:
        try:
            await work
        except TransportError as exc:
            log.debug("background WhatsApp call failed: %s", exc)


# ---------------------------------------------------------------------- pure helpers


def signature_of(secret: bytes, body: bytes) -> str:
    """The X-Hub-Signature-256 header value WhatsApp sends with ``body``."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def valid_signature(secret: bytes, body: bytes, header: str | None) -> bool:
    if not header or not header.startswith("sha256="):
        return False
    return hmac.compare_digest(signature_of(secret, body).encode(), header.strip().lower().encode())


def recipient_fields(chat_key: str) -> dict[str, str]:
    """Who a message goes to: a phone number as ``to``, a user id as ``recipient``."""
    prefix, _, raw = chat_key.partition(":")
    if prefix != WhatsAppTransport.name or not raw:
        raise DeliveryRefused(f"not a WhatsApp chat key: {chat_key!r}",
                              reason="the chat address is not a WhatsApp chat")
    field_name = "to" if raw.isdigit() else "recipient"
    return {"messaging_product": "whatsapp", "recipient_type": "individual", field_name: raw}


def build_requests(message: Outbound) -> list[dict[str, Any]]:
    """The message bodies (without the recipient) that deliver a text message's content:
    text parts, then at most one interactive message with its choices."""
    if not message.buttons:
        return [_text_payload(part) for part in split_text(message.text, WHATSAPP_TEXT_MAX)]
    labels = [b.label.strip() or "?" for b in message.buttons]
    count = len(labels)
    if count > WHATSAPP_LIST_ROWS_MAX:  # no interactive form holds these: type the number
        listing = "\n".join(f"{i}. {label}" for i, label in enumerate(labels, start=1))
        return [_text_payload(p) for p in split_text(f"{message.text}\n\n{listing}",
                                                     WHATSAPP_TEXT_MAX)]
    parts = split_text(message.text, WHATSAPP_INTERACTIVE_BODY_CHARS) or ["…"]
    *head, body = parts
    requests = [_text_payload(p) for p in head]
    buttons_fit = (count <= WHATSAPP_REPLY_BUTTONS_MAX
                   and all(len(label) <= WHATSAPP_REPLY_BUTTON_CHARS for label in labels)
                   and len(set(labels)) == count)  # WhatsApp wants distinct button titles
    if buttons_fit:
        interactive: dict[str, Any] = {"type": "button", "body": {"text": body}, "action": {
            "buttons": [{"type": "reply", "reply": {"id": b.callback, "title": label}}
                        for b, label in zip(message.buttons, labels, strict=True)]}}
    else:
        rows = []
        for b, label in zip(message.buttons, labels, strict=True):
            row = {"id": b.callback, "title": _cut(label, WHATSAPP_LIST_ROW_CHARS)}
            if len(label) > WHATSAPP_LIST_ROW_CHARS:  # the whole label, where it fits
                row["description"] = _cut(label, WHATSAPP_LIST_DESCRIPTION_CHARS)
            rows.append(row)
        opener = _cut(message.meta.get("choose") or "☰", WHATSAPP_LIST_BUTTON_CHARS)
        interactive = {"type": "list", "body": {"text": body},
                       "action": {"button": opener, "sections": [{"rows": rows}]}}
    requests.append({"type": "interactive", "interactive": interactive})
    return requests


def parse_webhook(payload: Any, phone_number_id: str) -> WebhookBatch:
    """Everything a webhook POST body holds for ``phone_number_id``. Never raises: an entry
    of an unexpected shape is counted in ``unreadable`` and skipped."""
    batch = WebhookBatch()
    if not isinstance(payload, dict):
        batch.unreadable += 1
        return batch
    for entry in _items(payload.get("entry")):
        for change in _items(entry.get("changes")):
            if change.get("field") != "messages":
                continue
            value = change.get("value")
            if not isinstance(value, dict):
                batch.unreadable += 1
                continue
            number = str((value.get("metadata") or {}).get("phone_number_id") or "")
            if number and number != phone_number_id:
                batch.other_numbers += 1
                continue
            contacts = _items(value.get("contacts"))
            for message in _items(value.get("messages")):
                try:
                    _read_message(message, contacts, batch)
                except (KeyError, TypeError, ValueError, AttributeError):
                    batch.unreadable += 1
            for status in _items(value.get("statuses")):
                try:
                    batch.statuses.append(_read_status(status))
                except (KeyError, TypeError, ValueError, AttributeError):
                    batch.unreadable += 1
            for error in _items(value.get("errors")):
                batch.errors.append(f"{error.get('code')} {error.get('title', '')} "
                                    f"{(error.get('error_data') or {}).get('details', '')}".strip())
    return batch


def _read_message(message: dict[str, Any], contacts: list[dict[str, Any]],
                  batch: WebhookBatch) -> None:
    message_id = str(message["id"])
    phone = message.get("from") or None
    user_id = message.get("from_user_id") or None
    contact = next((c for c in contacts if (phone and c.get("wa_id") == phone)
                    or (user_id and c.get("user_id") == user_id)),
                   contacts[0] if len(contacts) == 1 else {})
    user_id = user_id or contact.get("user_id") or None
    phone = phone or contact.get("wa_id") or None
    ident = str(user_id or phone or "")
    if not ident:
        batch.unreadable += 1
        return
    chat_key = f"whatsapp:{ident}"
    alias = f"whatsapp:{phone}" if user_id and phone and str(phone) != str(user_id) else None
    at = float(message.get("timestamp") or 0)
    batch.seen[chat_key] = max(at, batch.seen.get(chat_key, 0.0))
    if alias is not None:
        batch.seen[alias] = max(at, batch.seen.get(alias, 0.0))
    batch.last_message[chat_key] = message_id
    inbound = _to_inbound(message, chat_key, f"whatsapp:{message_id}")
    if inbound is not None:
        batch.inbounds.append(Inbound(
            inbound.chat_key, inbound.kind, text=inbound.text, command=inbound.command,
            button=inbound.button, media=inbound.media, update_id=inbound.update_id,
            attachment=inbound.attachment, alias=alias))


def _to_inbound(message: dict[str, Any], chat_key: str, update_id: str) -> Inbound | None:
    kind = message.get("type")
    if kind in _IGNORED_TYPES:
        return None
    if kind == "text":
        return Inbound.from_text(chat_key, str((message.get("text") or {}).get("body", "")),
                                 update_id=update_id)
    if kind == "interactive":
        interactive = message.get("interactive") or {}
        reply = interactive.get("button_reply") or interactive.get("list_reply")
        if isinstance(reply, dict) and reply.get("id"):
            return Inbound(chat_key, InboundKind.BUTTON, button=str(reply["id"]), update_id=update_id)
        return Inbound(chat_key, InboundKind.MEDIA, media="other", update_id=update_id)
    if kind == "button":  # a quick-reply button of a template: what it says is the answer
        button = message.get("button") or {}
        return Inbound.from_text(chat_key, str(button.get("text") or button.get("payload") or ""),
                                 update_id=update_id)
    if kind in _FILE_TYPES:
        body = message.get(kind) or {}
        media = _MEDIA_TYPES[kind]
        if kind == "audio" and body.get("voice"):
            media = "voice"
        attachment = None
        if body.get("id"):
            size = body.get("file_size")
            attachment = Attachment(media, f"whatsapp:{body['id']}", str(body.get("mime_type") or ""),
                                    str(body.get("filename") or ""),
                                    int(size) if isinstance(size, int) else None)
        return Inbound(chat_key, InboundKind.MEDIA, text=str(body.get("caption") or ""),
                       media=media, update_id=update_id, attachment=attachment)
    return Inbound(chat_key, InboundKind.MEDIA, media=_MEDIA_TYPES.get(str(kind), "other"),
                   update_id=update_id)


def _read_status(status: dict[str, Any]) -> StatusEvent:
    person = status.get("recipient_user_id") or status.get("recipient_id")
    errors = _items(status.get("errors"))
    first = errors[0] if errors else {}
    code = first.get("code")
    return StatusEvent(
        str(status["id"]), str(status.get("status", "")),
        f"whatsapp:{person}" if person else None,
        int(code) if isinstance(code, int | str) and str(code).isdigit() else None,
        str(first.get("title") or first.get("message") or ""),
        str((first.get("error_data") or {}).get("details") or ""))


def _items(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _graph_error(response: httpx.Response) -> tuple[int | None, str, str]:
    try:
        error = response.json().get("error") or {}
    except (ValueError, AttributeError):
        return None, response.reason_phrase, ""
    code = error.get("code")
    return (code if isinstance(code, int) else None, str(error.get("message") or ""),
            str((error.get("error_data") or {}).get("details") or ""))


def _refusal_reason(code: int | None, title: str, details: str) -> str:
    if code in _REFUSALS:
        return _REFUSALS[code]
    if code in (100, 131008, 131009):
        return f"WhatsApp refused it as malformed ({details or title})"
    return f"WhatsApp refused it (error {code}: {details or title or 'no details'})"


def _text_payload(text: str) -> dict[str, Any]:
    return {"type": "text", "text": {"body": text, "preview_url": False}}


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1].rstrip() + "…"


def _preview(text: str, limit: int = 80) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit - 1] + "…"


def _megabytes(size: int) -> str:
    return f"{size / (1 << 20):.0f} MB" if size >= 1 << 20 else f"{max(1, size // 1024)} KB"


def _default_name(kind: str, mime: str) -> str:
    extension = {"audio/ogg": "ogg", "audio/mpeg": "mp3", "image/jpeg": "jpg", "image/png": "png",
                 "application/pdf": "pdf"}.get(mime, "bin")
    return f"{'voice' if kind == 'audio' else kind}.{extension}"
