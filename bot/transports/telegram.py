"""Telegram transport: python-telegram-bot (PTB) used as a transport only.

PTB builds the Bot and makes Bot API calls; nothing else. No ConversationHandler, no PTB
persistence, no PTB Updater: conversation state is data the engine owns, and receiving is
done here so that an update is confirmed to Telegram only once it is saved.

Inbound: long polling with our own getUpdates offset, or a webhook server (tornado, which
PTB's webhooks extra brings) that answers each POST after the save. Per update:

    message text         -> Inbound.from_text (so "/start" becomes a COMMAND)
    callback_query       -> Inbound BUTTON (button = callback_data); the query is answered and
                            the tapped message loses its keyboard, in the background
    sticker, photo ...   -> Inbound MEDIA (media = "sticker", "photo", "voice" ...); voice notes,
                            audio, photos, documents and videos carry an Attachment (the
                            file_id), so a volunteer can be sent the file itself
    edited messages, channel posts, groups -> ignored (the bot serves private chats only)

The handler (bot.intake.Intake.accept) saves a batch and returns; per-chat order and
concurrency across chats are the intake's.

Outbound: text longer than 4096 UTF-16 units is split at paragraphs, then lines, then
words, with the keyboard on the last part; one button per row; sending a new question
removes the keyboard of the chat's previous one (tracked in memory; losing it on restart
only leaves an old keyboard visible, and the engine rejects stale taps anyway).
A message with an attachment is sent as the file (sendVoice, sendAudio, sendPhoto,
sendDocument) with its text as the caption: by file_id when Telegram holds the file, else
uploaded from the bytes the router fetched from the other platform (:meth:`fetch` is the
other way: getFile, then the download). RetryAfter is waited out (bounded), network errors
retried with exponential backoff (bounded), and every failure surfaces as :class:`bot.errors.TransportError`:
:class:`bot.errors.DeliveryRefused` when sending again can never work (400, 403, an empty
text, a chat key that is not Telegram's), so the dispatcher drops it instead of retrying.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dtm
import json
import logging
import os
import warnings
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, TypeVar
from urllib.parse import urlsplit

from telegram import (
    Bot,
    BotCommand,
    BotCommandScopeDefault,
    CallbackQuery,
    InputFile,
    Message,
    Update,
)
from telegram.constants import ChatAction, ChatType
from telegram.error import (
    BadRequest,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
)
from telegram.ext import ApplicationBuilder
from telegram.request import HTTPXRequest
from telegram.warnings import PTBDeprecationWarning, PTBUserWarning

from bot.errors import DeliveryRefused, TransportError
from bot.limits import (
    CAPTION_CHARS_MAX,
    PHONE_MESSAGE_CHARS,
    TELEGRAM_CALLBACK_DATA_MAX_BYTES,
    TELEGRAM_DOWNLOAD_MAX_BYTES,
    TELEGRAM_TEXT_MAX,
    TELEGRAM_UPLOAD_MAX_BYTES,
)
from bot.messages import Attachment, Inbound, InboundKind, Outbound
from bot.text.split import split_text
from bot.transports.base import InboundHandler, MediaFile
from bot.transports.http_backend import bot_api_transport

__all__ = ["TelegramTransport", "TelegramWebhook", "split_text"]

_log = logging.getLogger(__name__)
# PTB warns on every Bot.do_api_request("sendMessage") that Bot.send_message exists; we use
# the raw call on purpose (see TelegramTransport.send).
warnings.filterwarnings("ignore", message=r"Please use 'Bot\.sendMessage'",
                        category=PTBUserWarning, module=r"bot\.transports\.telegram")
_T = TypeVar("_T")

#: PTB's default read, write and connect timeout for a Bot API call, in seconds.
_PTB_REQUEST_TIMEOUT = 5.0
#: Updates we ask Telegram for; everything else would be ignored anyway.
ALLOWED_UPDATES = ("message", "callback_query")
#: Chats whose last question message we remember (oldest forgotten first).
LAST_QUESTION_CHATS_MAX = 100_000

# Order matters: an animation also carries a document, a venue also a location.
_MEDIA_ATTRIBUTES = (
    ("sticker", "sticker"),
    ("photo", "photo"),
    ("voice", "voice"),
    ("video_note", "video_note"),
    ("audio", "audio"),
    ("animation", "animation"),
    ("video", "video"),
    ("document", "document"),
    ("venue", "location"),
    ("location", "location"),
    ("contact", "contact"),
    ("poll", "poll"),
    ("dice", "dice"),
)


@dataclass(frozen=True)
class TelegramWebhook:
    """Webhook mode: Telegram POSTs updates to ``url``; PTB's server listens on listen:port.

    ``url_path`` defaults to the path of ``url`` (a reverse proxy forwarding the same path).
    Uses ``python-telegram-bot[webhooks]`` (tornado), a dependency of the project.
    """

    url: str
    listen: str = "127.0.0.1"
    port: int = 8443
    url_path: str | None = None
    secret_token: str | None = None


class TelegramTransport:
    """The Transport for Telegram. Chat keys are ``"telegram:<chat_id>"``."""

    name = "telegram"

    def __init__(
        self,
        token: str,
        *,
        base_url: str | None = None,
        base_file_url: str | None = None,
        poll_timeout: float = 10.0,
        request_timeout: float | None = None,
        connection_pool_size: int = 8,
        pool_timeout: float = 5.0,
        webhook: TelegramWebhook | None = None,
        send_attempts: int = 5,
        backoff_base: float = 0.5,
        backoff_max: float = 8.0,
        retry_after_max: float = 60.0,
    ) -> None:
        """``base_url`` / ``base_file_url`` as PTB takes them (TELEGRAM_API_BASE_URL /
        TELEGRAM_FILE_BASE_URL), e.g. ``"http://127.0.0.1:8081/bot"``: PTB appends the token.

        ``poll_timeout`` is the long-poll wait Telegram holds getUpdates open for.
        ``connection_pool_size`` bounds HTTP connections for Bot API calls. httpcore looks at
        every connection on every request, so each one costs a little CPU; 8 at a 50-100 ms
        round trip carry 80-160 calls/s, and Telegram accepts about 30 messages a second
        from a bot anyway. Calls beyond that many wait their turn in the transport;
        ``pool_timeout`` bounds httpcore's own wait for a connection (a reconnect).
        ``send_attempts`` bounds tries per Bot API call; a RetryAfter longer than
        ``retry_after_max`` seconds is not waited out but raised as TransportError.
        """
        if send_attempts < 1:
            raise ValueError("send_attempts must be >= 1")
        # PTB 22.2+ warns (PTBDeprecationWarning) whenever RetryAfter.retry_after or a duration
        # is read, including inside RetryAfter.__init__, unless this opt-in is set; with
        # warnings as errors a 429 would then surface as the warning instead of RetryAfter.
        # The opt-in makes those values timedelta, PTB 23's behaviour, which this module reads.
        os.environ.setdefault("PTB_TIMEDELTA", "true")
        # httpx logs every request URL at INFO, and Bot API URLs hold the token. Unless the
        # application configured that logger itself, keep it at WARNING.
        httpx_log = logging.getLogger("httpx")
        if httpx_log.level == logging.NOTSET:
            httpx_log.setLevel(logging.WARNING)

        # PTB builds the Bot (its HTTP pools, one kept apart for getUpdates); its Updater is
        # not used: the transport polls itself, to confirm only updates that are saved.
        # Bot API calls go over asyncio streams directly (bot.transports.http_backend); the
        # long poll keeps PTB's own request (one call per batch: its cost does not matter).
        timeout = request_timeout if request_timeout is not None else _PTB_REQUEST_TIMEOUT
        request = HTTPXRequest(connection_pool_size=connection_pool_size,
                               pool_timeout=pool_timeout, read_timeout=timeout,
                               write_timeout=timeout, connect_timeout=timeout,
                               httpx_kwargs={"transport": bot_api_transport(connection_pool_size)})
        builder = ApplicationBuilder().token(token).request(request).updater(None).job_queue(None)
        if base_url:
            builder = builder.base_url(base_url)
        if base_file_url:
            builder = builder.base_file_url(base_file_url)
        self._app = builder.build()

        self._token = token
        self._poll_timeout = poll_timeout
        self._webhook = webhook
        self._send_attempts = send_attempts
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._retry_after_max = retry_after_max

        self._handler: InboundHandler | None = None
        self._init_lock = asyncio.Lock()
        self._stop_requested = asyncio.Event()
        self._run_finished = asyncio.Event()
        self._running = asyncio.Event()
        self._closed = False
        self._initialized = False
        # chat -> (token, message ids) of the question now open: the same question may be
        # shown more than once ("sorry, I did not understand" + the question again).
        self._last_question: OrderedDict[int, tuple[int | None, list[int]]] = OrderedDict()
        self._typing: dict[int, asyncio.Task[None]] = {}
        # Bot API calls beyond the pool's connections wait here, in order, rather than in
        # httpcore's pool: with calls queued there, every request and every response makes
        # httpcore walk all queued calls against all connections (and poll every idle
        # socket), which under load cost more CPU than the bot's own work (bench_telegram).
        self._http_slots = asyncio.Semaphore(connection_pool_size)
        self._background: set[asyncio.Task[Any]] = set()

    # ------------------------------------------------------------------ public API

    @property
    def bot(self) -> Bot:
        """The PTB Bot making the Bot API calls (for diagnostics)."""
        return self._app.bot

    @property
    def running(self) -> asyncio.Event:
        """Set once polling (or the webhook) has started, cleared when run returns."""
        return self._running

    async def run(self, handler: InboundHandler) -> None:
        """Receive updates and pass them to ``handler`` until :meth:`stop` or cancel.

        ``handler`` returns once the updates are saved; only then are they confirmed to
        Telegram (the getUpdates offset moves past them, a webhook request is answered),
        so a crash never loses an update Telegram counts as delivered. Pending updates are
        never dropped. Sending keeps working after run returns, until :meth:`close`.
        """
        if self._handler is not None:
            raise TransportError("telegram transport is already running")
        if self._closed or self._stop_requested.is_set():
            return
        self._handler = handler
        self._run_finished.clear()
        try:
            await self._ensure_initialized()
            if self._webhook is None:
                await self._poll(handler)
            else:
                await self._serve_webhook(handler, self._webhook)
        finally:
            self._running.clear()
            self._handler = None
            self._run_finished.set()

    async def stop(self) -> None:
        """Stop receiving: run returns (at once: nothing fetched is confirmed unsaved).
        Sending still works until :meth:`close`."""
        self._stop_requested.set()
        if self._handler is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._run_finished.wait(), 10.0)

    async def close(self) -> None:
        """Stop receiving, finish background calls (bounded), release connections."""
        await self.stop()
        if self._closed:
            return
        self._closed = True
        await self._drain_background()
        if self._initialized:
            self._initialized = False
            await self._app.shutdown()

    #: Join a turn's short messages (Telegram delivers about one message a second per chat),
    #: but only up to a phone screen: a turn of several long texts stays several messages.
    merge_up_to = PHONE_MESSAGE_CHARS

    def owns(self, chat_key: str) -> bool:
        return chat_key.startswith("telegram:")

    async def typing(self, chat_key: str) -> None:
        """Show "typing..." in the chat. Returns at once: the action is sent in the
        background and no send waits for it (a slow or failing sendChatAction must not delay
        a reply). Should it land after the reply, a client shows "typing..." for at most its
        usual 5 s. Failures are logged, not raised."""
        chat_id = self._chat_id(chat_key)
        await self._ensure_initialized()
        self._start_typing(chat_id)

    async def send(self, message: Outbound, media: MediaFile | None = None) -> None:
        """Deliver one message. Raises TransportError when Telegram refuses for good."""
        chat_id = self._chat_id(message.chat_key)
        if message.attachment is not None:
            await self._send_file(chat_id, message, media)
            return
        for button in message.buttons:
            _check_callback_data(button.callback)
        parts = split_text(message.text, TELEGRAM_TEXT_MAX)
        if not parts:  # Telegram answers 400 "message text is empty": no trip for that
            raise DeliveryRefused(f"refusing to send an empty message (key {message.key!r})",
                                  reason=_EMPTY_REASON)
        markup = None
        if message.buttons:
            markup = {"inline_keyboard": [[{"text": b.label, "callback_data": b.callback}]
                                          for b in message.buttons]}
        await self._ensure_initialized()

        bot = self._app.bot
        sent_id: int | None = None
        for index, part in enumerate(parts):
            params: dict[str, Any] = {"chat_id": chat_id, "text": part}
            if markup is not None and index == len(parts) - 1:
                params["reply_markup"] = markup
            # The raw call with plain dicts, not bot.send_message: of the answer we need only
            # the message id, and PTB objects for it and for the keyboard cost more CPU than
            # the engine's whole turn (bench/bench_telegram.py). PTB maps errors (RetryAfter,
            # Forbidden ...) the same way on both paths.
            result = await self._call(partial(bot.do_api_request, "sendMessage", params),
                                      what="sendMessage")
            sent_id = result.get("message_id") if isinstance(result, dict) else None

        if message.buttons or message.token is not None:
            token, shown = self._last_question.pop(chat_id, (None, []))
            if token is not None and token == message.token:
                # The same question asked again: its earlier copies still answer it.
                keep = shown
            else:
                # A new question: the previous one can no longer be answered by a tap.
                for previous in shown:
                    self._spawn(self._remove_keyboard(chat_id, previous))
                keep = []
            if message.buttons and sent_id is not None:
                keep.append(sent_id)
            if keep:
                self._remember_question(chat_id, message.token, keep)

    async def fetch(self, attachment: Attachment) -> MediaFile:
        """Download a file a person sent (getFile, then the file itself)."""
        if attachment.source != self.name:
            raise DeliveryRefused(f"not a Telegram file: {attachment.ref!r}",
                                  reason="the file is not one Telegram holds")
        if attachment.size is not None and attachment.size > TELEGRAM_DOWNLOAD_MAX_BYTES:
            raise DeliveryRefused(f"Telegram file of {attachment.size} bytes is over the bot "
                                  "download limit", reason=_TOO_BIG_REASON)
        await self._ensure_initialized()
        bot = self._app.bot
        file = await self._call(partial(bot.get_file, attachment.platform_id), what="getFile")
        data = await self._call(file.download_as_bytearray, what="file download")
        name = attachment.file_name or (file.file_path or "").rsplit("/", 1)[-1]
        return MediaFile(bytes(data), attachment.mime_type or _DEFAULT_MIME.get(attachment.kind, ""),
                         name)

    async def _send_file(self, chat_id: int, message: Outbound, media: MediaFile | None) -> None:
        attachment = message.attachment
        assert attachment is not None
        kind = attachment.kind
        content: str | InputFile
        if media is None:
            if attachment.source != self.name:
                raise DeliveryRefused(f"a file held by {attachment.source!r} came without its bytes",
                                      reason="the file could not be fetched from the other app")
            content = attachment.platform_id  # Telegram sends a file it holds by its id
        else:
            if len(media.data) > TELEGRAM_UPLOAD_MAX_BYTES:
                raise DeliveryRefused(f"file of {len(media.data)} bytes is over Telegram's upload "
                                      "limit", reason="the file is too large for Telegram (50 MB)")
            mime = (media.mime_type or attachment.mime_type).split(";", 1)[0].strip().lower()
            if (kind in ("voice", "audio") and mime not in _PLAYABLE_AUDIO) or \
                    (kind == "photo" and not mime.startswith("image/")):
                kind = "document"  # Telegram would refuse it as a voice note or photo
            content = InputFile(media.data, filename=media.file_name or attachment.file_name
                                or f"{kind}.{_EXTENSIONS.get(mime, 'bin')}")
        caption = message.text.strip()
        await self._ensure_initialized()
        bot = self._app.bot
        if len(caption) > CAPTION_CHARS_MAX:  # the text first, then the file alone
            for part in split_text(caption, TELEGRAM_TEXT_MAX):
                await self._call(partial(bot.do_api_request, "sendMessage",
                                         {"chat_id": chat_id, "text": part}), what="sendMessage")
            caption = ""
        senders: dict[str, Callable[..., Awaitable[Message]]] = {
            "voice": bot.send_voice, "audio": bot.send_audio, "photo": bot.send_photo}
        sender = senders.get(kind, bot.send_document)
        await self._call(partial(sender, chat_id, content, caption=caption or None),
                         what=f"send {kind}")

    async def set_commands(self, commands_by_language: dict[str, list[tuple[str, str]]]) -> None:
        """Set the command menu per language: English (``"en"``) becomes the default shown
        to everyone; every other language is set for users whose app uses it.

        Telegram takes two-letter ISO 639-1 codes only, so a language without one (Dari,
        "prs") is skipped with a warning: its users see the list of their app's language.
        """
        await self._ensure_initialized()
        bot = self._app.bot
        ordered = sorted(commands_by_language.items(), key=lambda item: item[0] != "en")
        for language, pairs in ordered:
            if language != "en" and not (len(language) == 2 and language.isascii()
                                         and language.isalpha()):
                _log.warning("not setting Telegram commands for %r: Telegram takes two-letter"
                             " ISO 639-1 language codes only", language)
                continue
            commands = [BotCommand(name.lstrip("/").lower(), description)
                        for name, description in pairs]
            code = None if language == "en" else language.lower()
            await self._call(
                partial(bot.set_my_commands, commands, scope=BotCommandScopeDefault(),
                        language_code=code),
                what="setMyCommands",
            )

    # ------------------------------------------------------------------ receiving

    def _acknowledge_tap(self, query: CallbackQuery) -> None:
        """Answer the query (stops the spinner) and remove the tapped message's keyboard."""
        message = query.message
        chat_id = message.chat.id if message is not None else None
        message_id = message.message_id if message is not None else None
        has_keyboard = isinstance(message, Message) and message.reply_markup is not None
        if chat_id is not None and chat_id in self._last_question:
            shown = self._last_question[chat_id][1]
            if message_id in shown:
                shown.remove(message_id)  # so the next question does not edit it again

        async def acknowledge() -> None:
            bot = self._app.bot
            try:
                await self._call(lambda: bot.answer_callback_query(query.id),
                                 what="answerCallbackQuery", attempts=2)
            except TransportError as exc:
                _log.debug("answerCallbackQuery failed: %s", exc)
            if has_keyboard and chat_id is not None and message_id is not None:
                await self._remove_keyboard(chat_id, message_id)

        self._spawn(acknowledge())

    # ------------------------------------------------------------------ receiving

    async def _poll(self, handler: InboundHandler) -> None:
        """getUpdates with our own offset: it moves past an update only once it is saved.

        (PTB's Updater asks for the next batch, which confirms the last one to Telegram,
        without waiting for the handlers: a crash then lost what was fetched.)
        """
        bot = self._app.bot
        try:
            await self._call(lambda: bot.delete_webhook(drop_pending_updates=False),
                             what="deleteWebhook")
        except TransportError as exc:
            raise TransportError(f"could not start receiving from Telegram: {exc}") from exc
        self._running.set()
        _log.info("telegram transport receiving (polling)")
        offset: int | None = None
        failures = 0
        timeout = dtm.timedelta(seconds=self._poll_timeout)
        while not self._stop_requested.is_set():
            fetch = partial(bot.get_updates, offset=offset, timeout=timeout,
                            allowed_updates=list(ALLOWED_UPDATES))
            try:
                updates = await self._until_stopped(fetch())
            except _Stopped:
                break  # anything this call fetched is unconfirmed: Telegram sends it again
            except InvalidToken:
                raise TransportError("Telegram refused the bot token while polling (check it "
                                     "with @BotFather)") from None
            except TelegramError as exc:  # network, 5xx, 409 (another poller or a webhook)
                failures += 1
                delay = min(self._backoff_max * 4, self._backoff_base * 2 ** min(failures, 8))
                _log.warning("polling Telegram failed (%s); retrying in %.1fs",
                             self._redact(exc), delay)
                with contextlib.suppress(_Stopped):
                    await self._until_stopped(asyncio.sleep(delay))
                continue
            failures = 0
            if not updates:
                continue
            try:
                await self._until_stopped(handler(self._inbounds(updates)))
            except _Stopped:
                break  # a save cut short is not confirmed either: sent again, never lost
            except Exception as exc:  # not saved, so not confirmed: Telegram sends them again
                failures += 1
                delay = min(self._backoff_max * 4, self._backoff_base * 2 ** min(failures, 8))
                _log.error("could not save %d update(s) (%s); they stay with Telegram, "
                           "retrying in %.1fs", len(updates), exc, delay)
                with contextlib.suppress(_Stopped):
                    await self._until_stopped(asyncio.sleep(delay))
                continue
            offset = updates[-1].update_id + 1
        if offset is not None:
            # Confirm the last saved batch now, or Telegram would send it again on the next
            # start (harmless: saved updates are recognised, but it costs a round).
            with contextlib.suppress(TelegramError, TimeoutError):
                await asyncio.wait_for(bot.get_updates(offset=offset, limit=1,
                                                       timeout=dtm.timedelta(0)), 2.0)

    async def _serve_webhook(self, handler: InboundHandler, hook: TelegramWebhook) -> None:
        """Telegram POSTs updates; each is answered 200 only once it is saved (500 if it
        could not be: Telegram then sends it again)."""
        from tornado.httpserver import HTTPServer
        from tornado.web import Application as WebApplication
        from tornado.web import RequestHandler

        transport = self

        class _Hook(RequestHandler):
            async def post(self) -> None:
                secret = self.request.headers.get("X-Telegram-Bot-Api-Secret-Token")
                if hook.secret_token is not None and secret != hook.secret_token:
                    self.set_status(403)
                    return
                try:
                    update = Update.de_json(json.loads(self.request.body), transport._app.bot)
                except (ValueError, TypeError, KeyError):
                    self.set_status(400)
                    return
                try:
                    await handler(transport._inbounds([update]))
                except Exception as exc:
                    _log.error("could not save webhook update %s (%s); Telegram will send it "
                               "again", update.update_id, exc)
                    self.set_status(500)
                    return
                self.set_status(200)

        url_path = hook.url_path if hook.url_path is not None else urlsplit(hook.url).path
        server = HTTPServer(WebApplication([(f"/{url_path.lstrip('/')}", _Hook)]))
        server.listen(hook.port, address=hook.listen)
        try:
            await self._call(lambda: self._app.bot.set_webhook(
                hook.url, secret_token=hook.secret_token, allowed_updates=list(ALLOWED_UPDATES),
                drop_pending_updates=False), what="setWebhook")
            self._running.set()
            _log.info("telegram transport receiving (webhook on %s:%d)", hook.listen, hook.port)
            await self._stop_requested.wait()
        finally:
            server.stop()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.close_all_connections(), 5.0)

    def _inbounds(self, updates: Sequence[Update]) -> list[Inbound]:
        inbounds = []
        for update in updates:
            if update.callback_query is not None:
                self._acknowledge_tap(update.callback_query)
            inbound = to_inbound(update)
            if inbound is not None:
                inbounds.append(inbound)
        return inbounds

    async def _until_stopped(self, work: Awaitable[_T]) -> _T:
        """``work``, unless a stop is requested first (then it is cancelled: _Stopped)."""
        task = asyncio.ensure_future(work)
        stopping = asyncio.ensure_future(self._stop_requested.wait())
        try:
            await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
            raise _Stopped
        return task.result()

    async def _ensure_initialized(self) -> None:
        if self._closed:
            raise TransportError("telegram transport is stopped")
        if self._initialized:
            return
        async with self._init_lock:
            if not self._initialized:
                try:
                    await self._app.initialize()  # getMe: checks the token
                except TelegramError as exc:
                    # PTB leaves its HTTP clients open when getMe fails: close them.
                    with contextlib.suppress(Exception):
                        await self._app.bot.shutdown()
                    if isinstance(exc, InvalidToken):  # PTB's message quotes the token
                        raise TransportError("could not reach Telegram: the bot token was "
                                             "rejected (check it with @BotFather)") from None
                    raise TransportError(
                        f"could not reach Telegram: {self._redact(exc)}") from exc
                self._initialized = True

    # ------------------------------------------------------------------ sending helpers

    async def _call(self, make: Callable[[], Awaitable[_T]], *, what: str,
                    attempts: int | None = None) -> _T:
        """One Bot API call with bounded retries; every failure becomes TransportError."""
        tries = attempts or self._send_attempts
        for attempt in range(1, tries + 1):
            try:
                async with self._http_slots:
                    return await make()
            except RetryAfter as exc:
                delay = _retry_after_seconds(exc)
                if attempt == tries or delay > self._retry_after_max:
                    raise TransportError(f"Telegram {what}: flood control, retry after "
                                         f"{delay:g}s (attempt {attempt}/{tries})",
                                         reason="Telegram asked the bot to slow down",
                                         retry_after=delay) from exc
                _log.info("Telegram %s: flood control, waiting %.1fs", what, delay)
                await asyncio.sleep(delay)
            except Forbidden as exc:  # blocked by the user, or kicked: retrying cannot help
                raise DeliveryRefused(f"Telegram {what}: forbidden: {self._redact(exc)}",
                                      reason=_FORBIDDEN_REASON) from exc
            except BadRequest as exc:  # a NetworkError subclass in PTB, but never transient
                raise DeliveryRefused(f"Telegram {what}: bad request: {self._redact(exc)}",
                                      reason=_bad_request_reason(self._redact(exc))) from exc
            except NetworkError as exc:  # includes TimedOut and 5xx answers
                if attempt == tries:
                    raise TransportError(f"Telegram {what}: network error after {tries} "
                                         f"attempts: {self._redact(exc)}",
                                         reason="Telegram could not be reached") from exc
                delay = min(self._backoff_max, self._backoff_base * 2 ** (attempt - 1))
                _log.info("Telegram %s: %s; retrying in %.1fs", what, self._redact(exc), delay)
                await asyncio.sleep(delay)
            except TelegramError as exc:
                raise TransportError(f"Telegram {what}: {self._redact(exc)}",
                                     reason=f"Telegram answered: {self._redact(exc)}") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    async def _remove_keyboard(self, chat_id: int, message_id: int) -> None:
        bot = self._app.bot
        try:
            await self._call(
                lambda: bot.edit_message_reply_markup(chat_id=chat_id, message_id=message_id,
                                                      reply_markup=None),
                what="editMessageReplyMarkup", attempts=2,
            )
        except TransportError as exc:  # e.g. "message is not modified", or too old to edit
            _log.debug("could not remove a keyboard: %s", exc)

    def _remember_question(self, chat_id: int, token: int | None, message_ids: list[int]) -> None:
        self._last_question[chat_id] = (token, message_ids)
        self._last_question.move_to_end(chat_id)
        while len(self._last_question) > LAST_QUESTION_CHATS_MAX:
            self._last_question.popitem(last=False)

    def _start_typing(self, chat_id: int) -> None:
        pending = self._typing.get(chat_id)  # one action in flight per chat is enough
        if pending is not None and not pending.done():
            return
        bot = self._app.bot

        async def show() -> None:
            try:
                await self._call(lambda: bot.send_chat_action(chat_id, ChatAction.TYPING),
                                 what="sendChatAction", attempts=1)
            except TransportError as exc:
                _log.debug("typing action failed: %s", exc)

        task = self._spawn(show())
        self._typing[chat_id] = task
        task.add_done_callback(
            lambda t: self._typing.pop(chat_id, None) if self._typing.get(chat_id) is t else None
        )

    def _spawn(self, coro: Coroutine[Any, Any, _T]) -> asyncio.Task[_T]:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    async def _drain_background(self) -> None:
        for _ in range(10):  # tasks may spawn tasks (tap -> keyboard removal); bounded
            if not self._background:
                return
            _, pending = await asyncio.wait(set(self._background), timeout=5.0)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1.0)

    def _redact(self, error: BaseException | str) -> str:
        """Error text without the bot token (PTB and httpx messages may quote URLs)."""
        text = error.message if isinstance(error, TelegramError) else str(error)
        return text.replace(self._token, "<token>") if self._token else text

    @staticmethod
    def _chat_id(chat_key: str) -> int:
        prefix, _, raw = chat_key.partition(":")
        try:
            if prefix != TelegramTransport.name:
                raise ValueError(prefix)
            return int(raw)
        except ValueError:
            raise DeliveryRefused(f"not a Telegram chat key: {chat_key!r}",
                                  reason="the chat address is not a Telegram chat") from None


# ---------------------------------------------------------------------- pure helpers


def to_inbound(update: Update) -> Inbound | None:
    """The Inbound for a PTB Update, or None when the bot should ignore it."""
    update_id = f"telegram:{update.update_id}"
    query = update.callback_query
    if query is not None:
        message = query.message
        if message is not None and message.chat.type != ChatType.PRIVATE:
            return None
        if query.data is None:
            return None
        chat_id = message.chat.id if message is not None else query.from_user.id
        return Inbound(f"telegram:{chat_id}", InboundKind.BUTTON, button=query.data,
                       update_id=update_id, language_hint=query.from_user.language_code)

    message = update.message  # edited messages and channel posts are ignored on purpose
    if message is None or message.chat.type != ChatType.PRIVATE:
        return None
    chat_key = f"telegram:{message.chat.id}"
    language = message.from_user.language_code if message.from_user else None
    if message.text is not None:
        inbound = Inbound.from_text(chat_key, message.text, update_id=update_id)
        return replace(inbound, language_hint=language)
    for attribute, media in _MEDIA_ATTRIBUTES:
        value = getattr(message, attribute, None)
        if value:
            return Inbound(chat_key, InboundKind.MEDIA, text=message.caption or "",
                           media=media, update_id=update_id, language_hint=language,
                           attachment=_attachment(media, value))
    if message.effective_attachment:
        return Inbound(chat_key, InboundKind.MEDIA, text=message.caption or "",
                       media="other", update_id=update_id, language_hint=language)
    return None  # service messages: pinned, chat shared, ...


#: Media kinds whose files are kept as attachments (the ones a volunteer may be sent).
_FILE_KINDS = frozenset({"voice", "audio", "photo", "document", "video"})
_DEFAULT_MIME = {"voice": "audio/ogg", "photo": "image/jpeg"}
#: What sendVoice and sendAudio play; other audio goes as a document.
_PLAYABLE_AUDIO = frozenset({"audio/ogg", "audio/mpeg", "audio/mp4", "audio/x-m4a", "audio/aac"})
_EXTENSIONS = {"audio/ogg": "ogg", "audio/mpeg": "mp3", "audio/mp4": "m4a", "image/jpeg": "jpg",
               "image/png": "png", "application/pdf": "pdf"}


def _attachment(media: str, value: Any) -> Attachment | None:
    if media not in _FILE_KINDS:
        return None
    file = value[-1] if isinstance(value, tuple | list) else value  # a photo's largest size
    file_id = getattr(file, "file_id", None)
    if not file_id:
        return None
    return Attachment(media, f"telegram:{file_id}",
                      getattr(file, "mime_type", None) or _DEFAULT_MIME.get(media, ""),
                      getattr(file, "file_name", None) or "", getattr(file, "file_size", None))


def _check_callback_data(data: str) -> None:
    size = len(data.encode("utf-8"))
    if not data.isascii() or not 1 <= size <= TELEGRAM_CALLBACK_DATA_MAX_BYTES:
        raise DeliveryRefused(
            f"callback data must be 1-{TELEGRAM_CALLBACK_DATA_MAX_BYTES} ASCII bytes, "
            f"got {size} bytes: {data[:80]!r}", reason="a button of the message was malformed"
        )


# Plain words for a volunteer whose message Telegram would not take (TransportError.reason).
_EMPTY_REASON = ("the message was empty or only spaces or invisible characters, "
                 "which Telegram does not send")
_TOO_BIG_REASON = "the file is too large to pass on (Telegram lets the bot fetch 20 MB at most)"
_FORBIDDEN_REASON = ("Telegram does not let the bot write to this person any more (they may "
                     "have blocked the bot or deleted their account)")


def _bad_request_reason(description: str) -> str:
    lowered = description.lower()
    if "text is empty" in lowered:
        return _EMPTY_REASON
    if "too long" in lowered:
        return "the message was too long for Telegram"
    if "chat not found" in lowered:
        return "Telegram does not know this chat"
    if "file is too big" in lowered:
        return _TOO_BIG_REASON
    if "wrong file identifier" in lowered or "file reference" in lowered:
        return "Telegram no longer has the file"
    return f"Telegram refused it ({description})"


def _retry_after_seconds(exc: RetryAfter) -> float:
    with warnings.catch_warnings():  # int in PTB 22 without PTB_TIMEDELTA, timedelta with it
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value: object = exc.retry_after
    if isinstance(value, dtm.timedelta):
        return max(0.0, value.total_seconds())
    if isinstance(value, int | float):
        return max(0.0, float(value))
    return 1.0


class _Stopped(Exception):
    """A stop was requested while waiting."""
