"""A fake Telegram Bot API server on loopback, for tests and the benchmark.

python-telegram-bot talks to it over real HTTP/1.1 (keep-alive, form-encoded or JSON
bodies), exactly as it talks to api.telegram.org::

    api = FakeBotApi()
    await api.start()
    app = (ApplicationBuilder().token(api.token)
           .base_url(api.base_url).base_file_url(api.base_file_url).build())
    ...
    update_id = api.send_text(chat_id=42, text="hello")      # a user types
    [call] = await api.wait_for_calls("sendMessage", chat_id=42)
    await api.stop()

What it implements: getMe, getUpdates (long polling honouring ``offset``, ``limit`` and
``timeout``, capped by ``max_poll_seconds``), deleteWebhook, setWebhook, getWebhookInfo,
sendMessage, editMessageText, editMessageReplyMarkup, answerCallbackQuery, sendChatAction,
setMyCommands, getMyCommands, deleteMyCommands, close, logOut; files: getFile and the file
download URL (``{base_file_url}{token}/{file_path}``, 20 MB at most, as Telegram), and
sendVoice, sendAudio, sendPhoto, sendDocument taking a file_id the server holds or an
uploaded file (multipart), whose bytes it keeps (:meth:`FakeBotApi.file_data`). Unknown
methods answer 404 (PTB raises InvalidToken for those) and are recorded, so a test can see
them. A test can make the next calls to a method fail (:meth:`FakeBotApi.fail_next`) or
answer late (:meth:`FakeBotApi.delay_next`).

Like Telegram it assigns message ids per chat, keeps the current text and keyboard of every
message the bot sent, refuses an edit that changes nothing ("message is not modified"),
and answers getUpdates with 409 while a webhook is set.

Everything runs on the event loop that called :meth:`FakeBotApi.start`; the injection
helpers (``send_text``, ``tap`` ...) are plain functions to call from that same loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

__all__ = ["ApiCall", "FakeBotApi"]

JSONDict = dict[str, Any]

DEFAULT_TOKEN = "123456:TEST-fake-token"

# Form-encoded parameters that carry JSON (PTB serialises objects and lists with json.dumps).
_JSON_PARAMS = frozenset({
    "reply_markup", "allowed_updates", "commands", "scope", "entities", "caption_entities",
    "link_preview_options", "reply_parameters", "media",
})
_INT_PARAMS = frozenset({
    "chat_id", "message_id", "offset", "limit", "user_id", "cache_time", "message_thread_id",
    "max_connections", "reply_to_message_id",
})
_FLOAT_PARAMS = frozenset({"timeout"})
_BOOL_PARAMS = frozenset({
    "show_alert", "drop_pending_updates", "disable_notification", "protect_content",
    "disable_web_page_preview", "allow_sending_without_reply",
})

_REASONS = {
    200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
    409: "Conflict", 413: "Payload Too Large", 429: "Too Many Requests",
    500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable",
}

MEDIA_KINDS = ("sticker", "photo", "voice", "audio", "video", "document", "location", "contact")
#: Telegram lets bots download files of at most 20 MB.
DOWNLOAD_MAX_BYTES = 20 << 20
#: sendX method -> the parameter holding the file, and the mime type Telegram reports.
_FILE_METHODS = {"sendvoice": ("voice", "audio/ogg"), "sendaudio": ("audio", "audio/mpeg"),
                 "sendphoto": ("photo", "image/jpeg"), "senddocument": ("document", "")}


@dataclass(frozen=True)
class Upload:
    """A file part of a multipart request."""

    filename: str
    data: bytes
    content_type: str


@dataclass
class StoredFile:
    """A file the server holds, by file_id."""

    data: bytes
    file_path: str
    mime_type: str = ""
    file_name: str = ""


@dataclass(frozen=True)
class ApiCall:
    """One request the bot made: the method as sent, its parameters, and our answer."""

    method: str
    params: JSONDict
    status: int
    at: float  # time.monotonic() when answered (at once, unless delayed or a long poll)

    @property
    def ok(self) -> bool:
        return self.status == 200

    @property
    def chat_id(self) -> int | None:
        value = self.params.get("chat_id")
        return value if isinstance(value, int) else None


@dataclass
class _Failure:
    remaining: int
    status: int
    description: str
    retry_after: float | None
    chat_id: int | None = None


@dataclass
class _Delay:
    remaining: int
    seconds: float
    chat_id: int | None = None


@dataclass
class _Chat:
    chat_id: int
    next_message_id: int = 1
    #: Messages the bot sent, by id, as Telegram would return them (current text/keyboard).
    bot_messages: dict[int, JSONDict] = field(default_factory=dict)
    action: str | None = None


class FakeBotApi:
    """A Bot API server on 127.0.0.1 with a random free port. See the module docstring."""

    def __init__(
        self,
        token: str = DEFAULT_TOKEN,
        *,
        max_poll_seconds: float = 5.0,
        bot_username: str = "fake_help_bot",
    ) -> None:
        self.token = token
        self.max_poll_seconds = max_poll_seconds
        head = token.split(":", 1)[0]
        self.bot_user: JSONDict = {
            "id": int(head) if head.isdigit() else 1000,
            "is_bot": True,
            "first_name": "Fake Help Bot",
            "username": bot_username,
            "can_join_groups": False,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }
        #: Every request, in arrival order.
        self.calls: list[ApiCall] = []
        #: Called synchronously with each ApiCall as it is recorded (the benchmark uses this).
        self.listeners: list[Callable[[ApiCall], None]] = []
        #: setMyCommands as last set, keyed by language_code ("" for the default).
        self.commands: dict[str, list[JSONDict]] = {}
        self.webhook_url = ""
        self.port = 0

        self._pending: list[JSONDict] = []  # not yet confirmed by an offset
        self._redeliver: list[JSONDict] = []  # duplicates to deliver regardless of offset
        self._sent_updates: dict[int, JSONDict] = {}
        self._update_ids = itertools.count(1)
        self._callback_ids = itertools.count(1)
        self._chats: dict[int, _Chat] = {}
        self._failures: dict[str, list[_Failure]] = {}
        #: file_id -> the file (those people sent, and those the bot uploaded).
        self.files: dict[str, StoredFile] = {}
        self._file_numbers = itertools.count(1)
        self._delays: dict[str, list[_Delay]] = {}
        self._waiters: set[asyncio.Future[None]] = set()
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._busy: set[asyncio.Task[None]] = set()  # connections answering a request now
        self._writers: set[asyncio.StreamWriter] = set()
        self._closing = False

    # ------------------------------------------------------------------ lifecycle

    @property
    def base_url(self) -> str:
        """For ``ApplicationBuilder().base_url(...)``: PTB appends the token."""
        return f"http://127.0.0.1:{self.port}/bot"

    @property
    def base_file_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/file/bot"

    async def start(self) -> FakeBotApi:
        self._closing = False
        self._server = await asyncio.start_server(
            self._serve_connection, "127.0.0.1", 0, backlog=1024)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self, grace: float = 2.0) -> None:
        """Answer waiting long polls, close every connection, stop listening."""
        self._closing = True
        self._wake()
        if self._server is not None:
            self._server.close()
        # Let requests in flight finish (long polls return at once now), then close the rest.
        for _ in range(max(1, int(grace / 0.01))):
            if not self._busy:
                break
            await asyncio.sleep(0.01)
        for writer in list(self._writers):
            writer.close()
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.wait(set(self._connections), timeout=grace)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> FakeBotApi:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------ injecting updates

    def inject(self, update: JSONDict) -> int:
        """Queue a raw update (``update_id`` is assigned when missing). Returns the id."""
        if "update_id" not in update:
            update = {"update_id": next(self._update_ids), **update}
        self._pending.append(update)
        self._sent_updates[update["update_id"]] = update
        self._wake()
        return int(update["update_id"])

    def redeliver(self, update_id: int) -> None:
        """Deliver an update already sent once more, with the same update_id (a duplicate)."""
        self._redeliver.append(self._sent_updates[update_id])
        self._wake()

    def send_text(
        self,
        chat_id: int,
        text: str,
        *,
        user_id: int | None = None,
        language_code: str | None = "en",
        chat_type: str = "private",
        edited: bool = False,
    ) -> int:
        """A user types ``text``. Commands get a bot_command entity, as Telegram adds one."""
        message = self._user_message(chat_id, user_id, language_code, chat_type)
        message["text"] = text
        if text.startswith("/"):
            length = len(text.split(" ", 1)[0])
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": length}]
        if edited:
            message["edit_date"] = int(time.time())
            return self.inject({"edited_message": message})
        return self.inject({"message": message})

    def send_command(self, chat_id: int, command: str, args: str = "", **kw: Any) -> int:
        text = "/" + command.lstrip("/") + (f" {args}" if args else "")
        return self.send_text(chat_id, text, **kw)

    def send_media(
        self,
        chat_id: int,
        kind: str,
        *,
        caption: str | None = None,
        user_id: int | None = None,
        language_code: str | None = "en",
        data: bytes | None = None,
    ) -> int:
        """A user sends a sticker, photo, voice, audio, video, document, location or contact.

        Files (voice, audio, photo, video, document) hold ``data`` (default: a few made-up
        bytes), fetchable with getFile and the download URL."""
        message = self._user_message(chat_id, user_id, language_code, "private")
        n = message["message_id"]
        file_id = f"{kind}-{chat_id}-{n}"
        content = data if data is not None else f"{kind} from {chat_id} #{n}".encode()
        file = {"file_id": file_id, "file_unique_id": f"u{kind}{chat_id}{n}",
                "file_size": len(content)}
        mime = {"voice": "audio/ogg", "audio": "audio/mpeg", "document": "application/pdf",
                "video": "video/mp4", "photo": "image/jpeg"}.get(kind, "")
        if kind == "photo":  # the bot takes the largest size: that one holds the bytes
            self._store(file_id + "b", content, mime)
        elif kind in ("voice", "audio", "video", "document"):
            self._store(file_id, content, mime, "letter.pdf" if kind == "document" else "")
        if kind == "sticker":
            message["sticker"] = {**file, "type": "regular", "width": 512, "height": 512,
                                  "is_animated": False, "is_video": False, "emoji": "👍"}
        elif kind == "photo":
            message["photo"] = [{**file, "width": 90, "height": 90, "file_size": 1000},
                                {**file, "file_id": file["file_id"] + "b", "width": 800,
                                 "height": 800}]
        elif kind == "voice":
            message["voice"] = {**file, "duration": 3, "mime_type": "audio/ogg"}
        elif kind == "audio":
            message["audio"] = {**file, "duration": 30, "mime_type": "audio/mpeg"}
        elif kind == "video":
            message["video"] = {**file, "width": 640, "height": 480, "duration": 5}
        elif kind == "document":
            message["document"] = {**file, "file_name": "letter.pdf",
                                   "mime_type": "application/pdf"}
        elif kind == "location":
            message["location"] = {"latitude": 51.5072, "longitude": -0.1276}
        elif kind == "contact":
            message["contact"] = {"phone_number": "+447700900123", "first_name": "Friend"}
        else:
            raise ValueError(f"unknown media kind {kind!r}; use one of {MEDIA_KINDS}")
        if caption is not None:
            message["caption"] = caption
        return self.inject({"message": message})

    def send_sticker(self, chat_id: int, **kw: Any) -> int:
        return self.send_media(chat_id, "sticker", **kw)

    def send_photo(self, chat_id: int, **kw: Any) -> int:
        return self.send_media(chat_id, "photo", **kw)

    def send_voice(self, chat_id: int, **kw: Any) -> int:
        return self.send_media(chat_id, "voice", **kw)

    def send_document(self, chat_id: int, **kw: Any) -> int:
        return self.send_media(chat_id, "document", **kw)

    def send_location(self, chat_id: int, **kw: Any) -> int:
        return self.send_media(chat_id, "location", **kw)

    def tap(
        self,
        chat_id: int,
        message_id: int,
        data: str | None = None,
        *,
        index: int | None = None,
        force: bool = False,
        user_id: int | None = None,
        language_code: str | None = "en",
    ) -> int:
        """A user taps a button of the bot's message ``message_id``.

        Give the button's callback ``data`` or its 0-based ``index``. Like a real client, this
        refuses a button the message does not show (any more) unless ``force`` is set, which
        simulates a stale client.
        """
        message = self._chats.get(chat_id, _Chat(chat_id)).bot_messages.get(message_id)
        buttons = [
            b.get("callback_data")
            for row in ((message or {}).get("reply_markup") or {}).get("inline_keyboard", [])
            for b in row
        ]
        if data is None:
            if index is None:
                raise ValueError("give data or index")
            if not force and index >= len(buttons):
                raise ValueError(f"message {message_id} shows {len(buttons)} buttons")
            data = buttons[index] if index < len(buttons) else f"stale.{index}"
        elif not force and data not in buttons:
            raise ValueError(f"message {message_id} in chat {chat_id} shows no button {data!r}"
                             f" (it shows {buttons})")
        if message is None:
            message = {"message_id": message_id, "date": int(time.time()),
                       "chat": self._chat_json(chat_id, "private"), "from": self.bot_user,
                       "text": "?"}
        uid = user_id if user_id is not None else chat_id
        return self.inject({"callback_query": {
            "id": str(next(self._callback_ids)),
            "from": self._user_json(uid, language_code),
            "message": json.loads(json.dumps(message)),  # a snapshot, as sent on the wire
            "chat_instance": f"ci{chat_id}",
            "data": data,
        }})

    def fail_next(
        self,
        method: str,
        times: int = 1,
        *,
        status: int = 429,
        retry_after: float | None = None,
        description: str | None = None,
        chat_id: int | None = None,
    ) -> None:
        """Make the next ``times`` calls to ``method`` fail with HTTP ``status`` (only calls
        for ``chat_id``, when given).

        429 carries ``parameters.retry_after`` (default 1 s; fractions are accepted, though
        Telegram itself sends whole seconds). 5xx makes PTB raise NetworkError, 403 Forbidden,
        400 BadRequest.
        """
        if status == 429 and retry_after is None:
            retry_after = 1
        desc = description or {
            429: f"Too Many Requests: retry after {retry_after}",
            403: "Forbidden: bot was blocked by the user",
            400: "Bad Request: something is wrong",
        }.get(status, _REASONS.get(status, "Error"))
        self._failures.setdefault(method.lower(), []).append(
            _Failure(times, status, desc, retry_after, chat_id))

    def file_data(self, file_id: str) -> bytes:
        """The bytes of a file the server holds (one a user sent, or the bot uploaded)."""
        return self.files[file_id].data

    def _store(self, file_id: str, data: bytes, mime_type: str = "", file_name: str = "") -> None:
        number = next(self._file_numbers)
        self.files[file_id] = StoredFile(data, f"files/file_{number}", mime_type, file_name)

    def delay_next(self, method: str, seconds: float, times: int = 1, *,
                   chat_id: int | None = None) -> None:
        """Hold the next ``times`` calls to ``method`` (only calls for ``chat_id``, when
        given) for ``seconds`` before answering them (a slow Telegram). Such a call is
        recorded when it is answered, like getUpdates."""
        self._delays.setdefault(method.lower(), []).append(_Delay(times, seconds, chat_id))

    # ------------------------------------------------------------------ assertions

    def calls_to(self, method: str, *, chat_id: int | None = None, ok_only: bool = True,
                 since: int = 0) -> list[ApiCall]:
        """Recorded calls to ``method`` (case-insensitive), optionally for one chat."""
        name = method.lower()
        return [
            c for c in self.calls[since:]
            if c.method.lower() == name
            and (chat_id is None or c.chat_id == chat_id)
            and (c.ok or not ok_only)
        ]

    async def wait_for_calls(
        self,
        method: str,
        count: int = 1,
        *,
        chat_id: int | None = None,
        ok_only: bool = True,
        since: int = 0,
        predicate: Callable[[ApiCall], bool] | None = None,
        within: float = 5.0,
    ) -> list[ApiCall]:
        """Wait (bounded) until at least ``count`` matching calls were recorded; return them."""

        def matching() -> list[ApiCall]:
            found = self.calls_to(method, chat_id=chat_id, ok_only=ok_only, since=since)
            return [c for c in found if predicate is None or predicate(c)]

        await self.wait_until(lambda: len(matching()) >= count, within=within,
                              what=f"{count} x {method} (chat {chat_id})")
        return matching()

    async def wait_until(self, condition: Callable[[], bool], *, within: float = 5.0,
                         what: str = "condition") -> None:
        """Wait until ``condition()`` holds, re-checking after every call and injection and
        at least every 10 ms (for conditions on state the server does not see)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while not condition():
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"timed out after {within}s waiting for {what}; "
                                     f"calls so far: {[c.method for c in self.calls][-20:]}")
            with contextlib.suppress(TimeoutError):
                await self._wait_change(min(remaining, 0.01))

    def bot_messages(self, chat_id: int) -> list[JSONDict]:
        """Messages the bot sent to ``chat_id``, oldest first, in their current state."""
        chat = self._chats.get(chat_id)
        return [] if chat is None else [chat.bot_messages[k] for k in sorted(chat.bot_messages)]

    def bot_message(self, chat_id: int, message_id: int) -> JSONDict:
        return self._chats[chat_id].bot_messages[message_id]

    @staticmethod
    def keyboard_of(message: JSONDict) -> list[str]:
        """The callback data of the buttons a message shows now ([] when none)."""
        markup = message.get("reply_markup") or {}
        return [b.get("callback_data", "") for row in markup.get("inline_keyboard", [])
                for b in row]

    @property
    def pending_updates(self) -> int:
        return len(self._pending) + len(self._redeliver)

    # ------------------------------------------------------------------ internals: state

    def _wake(self) -> None:
        for fut in self._waiters:
            if not fut.done():
                fut.set_result(None)
        self._waiters.clear()

    async def _wait_change(self, seconds: float) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.add(fut)
        try:
            await asyncio.wait_for(fut, seconds)
        finally:
            self._waiters.discard(fut)

    def _chat(self, chat_id: int) -> _Chat:
        chat = self._chats.get(chat_id)
        if chat is None:
            chat = self._chats[chat_id] = _Chat(chat_id)
        return chat

    @staticmethod
    def _user_json(user_id: int, language_code: str | None) -> JSONDict:
        user: JSONDict = {"id": user_id, "is_bot": False, "first_name": f"User{user_id}"}
        if language_code:
            user["language_code"] = language_code
        return user

    @staticmethod
    def _chat_json(chat_id: int, chat_type: str) -> JSONDict:
        if chat_type == "private":
            return {"id": chat_id, "type": "private", "first_name": f"User{chat_id}"}
        return {"id": chat_id, "type": chat_type, "title": f"Group {chat_id}"}

    def _user_message(self, chat_id: int, user_id: int | None, language_code: str | None,
                      chat_type: str) -> JSONDict:
        chat = self._chat(chat_id)
        message_id = chat.next_message_id
        chat.next_message_id += 1
        uid = user_id if user_id is not None else chat_id
        return {
            "message_id": message_id,
            "date": int(time.time()),
            "chat": self._chat_json(chat_id, chat_type),
            "from": self._user_json(uid, language_code),
        }

    def _record(self, method: str, params: JSONDict, status: int) -> None:
        call = ApiCall(method, params, status, time.monotonic())
        self.calls.append(call)
        for listener in list(self.listeners):
            listener(call)
        self._wake()

    def _take_failure(self, method: str, params: JSONDict) -> _Failure | None:
        queue = self._failures.get(method.lower())
        failure = next((f for f in queue or () if f.chat_id in (None, params.get("chat_id"))), None)
        if queue is None or failure is None:
            return None
        failure.remaining -= 1
        if failure.remaining <= 0:
            queue.remove(failure)
        return failure

    def _take_delay(self, method: str, params: JSONDict) -> float | None:
        queue = self._delays.get(method.lower())
        delay = next((d for d in queue or () if d.chat_id in (None, params.get("chat_id"))), None)
        if queue is None or delay is None:
            return None
        delay.remaining -= 1
        if delay.remaining <= 0:
            queue.remove(delay)
        return delay.seconds

    # ------------------------------------------------------------------ internals: HTTP

    async def _serve_connection(self, reader: asyncio.StreamReader,
                                writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        self._writers.add(writer)
        try:
            for _ in range(1_000_000):  # bounded: one iteration per request on this connection
                request = await self._read_request(reader)
                if request is None:
                    break
                path, headers, body = request
                self._busy.add(task)
                status, payload = await self._dispatch(path, headers, body)
                if isinstance(payload, bytes):  # a file download
                    data, content_type = payload, "application/octet-stream"
                else:
                    data, content_type = json.dumps(payload, ensure_ascii=False).encode(), \
                        "application/json"
                keep_alive = headers.get("connection", "").lower() != "close" and not self._closing
                head = (
                    f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
                    f"Content-Type: {content_type}\r\n"
                    f"Content-Length: {len(data)}\r\n"
                    f"Connection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n"
                )
                writer.write(head.encode() + data)
                await writer.drain()
                self._busy.discard(task)
                if not keep_alive:
                    break
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            self._busy.discard(task)
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1.0)
            self._connections.discard(task)

    @staticmethod
    async def _read_request(
        reader: asyncio.StreamReader,
    ) -> tuple[str, dict[str, str], bytes] | None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return None  # the client closed the connection between requests
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) < 2:
            return None
        target = parts[1]
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if ":" in line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            chunks = []
            for _ in range(100_000):
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    await reader.readuntil(b"\r\n")
                    break
                chunks.append(await reader.readexactly(size))
                await reader.readexactly(2)
            body = b"".join(chunks)
        else:
            body = await reader.readexactly(int(headers.get("content-length", "0") or 0))
        return target, headers, body

    async def _dispatch(self, target: str, headers: dict[str, str],
                        body: bytes) -> tuple[int, JSONDict | bytes]:
        path = urlsplit(target)
        segments = path.path.strip("/").split("/")
        if len(segments) >= 3 and segments[0] == "file" and segments[1].startswith("bot"):
            # PTB percent-encodes the path (the token's ':' too), as a browser would.
            return self._download(unquote(segments[1][3:]), unquote("/".join(segments[2:])))
        if len(segments) != 2 or not segments[0].startswith("bot"):
            return 404, {"ok": False, "error_code": 404, "description": "Not Found"}
        token, method = segments[0][3:], segments[1]
        params = _parse_params(path.query, headers.get("content-type", ""), body)
        if token != self.token:
            self._record(method, params, 401)
            return 401, {"ok": False, "error_code": 401, "description": "Unauthorized"}
        delay = self._take_delay(method, params)
        if delay is not None:
            await asyncio.sleep(delay)
        failure = self._take_failure(method, params)
        if failure is not None:
            self._record(method, params, failure.status)
            error: JSONDict = {"ok": False, "error_code": failure.status,
                               "description": failure.description}
            if failure.retry_after is not None:
                error["parameters"] = {"retry_after": failure.retry_after}
            return failure.status, error
        handler = getattr(self, f"_api_{method.lower()}", None)
        if handler is None:
            self._record(method, params, 404)
            return 404, {"ok": False, "error_code": 404, "description": "Not Found"}
        try:
            result = handler(params)
            if asyncio.iscoroutine(result):
                result = await result
        except _ApiError as exc:
            self._record(method, params, exc.status)
            return exc.status, {"ok": False, "error_code": exc.status,
                                "description": exc.description}
        # getUpdates is recorded when it returns, so waiting on it sees what it delivered.
        self._record(method, params, 200)
        return 200, {"ok": True, "result": result}

    # ------------------------------------------------------------------ Bot API methods

    def _download(self, token: str, file_path: str) -> tuple[int, JSONDict | bytes]:
        found = next((f for f in self.files.values() if f.file_path == file_path), None)
        if token != self.token or found is None:
            self._record("download", {"file_path": file_path}, 404)
            return 404, {"ok": False, "error_code": 404, "description": "Not Found"}
        self._record("download", {"file_path": file_path}, 200)
        return 200, found.data

    def _api_getfile(self, params: JSONDict) -> JSONDict:
        file_id = str(params.get("file_id", ""))
        found = self.files.get(file_id)
        if found is None:
            raise _ApiError(400, "Bad Request: wrong file identifier/HTTP URL specified")
        if len(found.data) > DOWNLOAD_MAX_BYTES:
            raise _ApiError(400, "Bad Request: file is too big")
        return {"file_id": file_id, "file_unique_id": "u" + file_id, "file_size": len(found.data),
                "file_path": found.file_path}

    def _send_file(self, method: str, params: JSONDict) -> JSONDict:
        field_name, default_mime = _FILE_METHODS[method]
        chat_id = _require_int(params, "chat_id")
        content = params.get(field_name)
        if isinstance(content, Upload):
            if not content.data:
                raise _ApiError(400, "Bad Request: file must be non-empty")
            file_id = f"bot-{field_name}-{next(self._file_numbers)}"
            mime = content.content_type if content.content_type not in (
                "", "application/octet-stream") else default_mime
            self._store(file_id, content.data, mime, content.filename)
        elif isinstance(content, str) and content in self.files:
            file_id = content  # a file the server holds, sent again by its id
        else:
            raise _ApiError(400, "Bad Request: wrong file identifier/HTTP URL specified")
        caption = params.get("caption")
        if isinstance(caption, str) and len(caption) > 1024:
            raise _ApiError(400, "Bad Request: message caption is too long")
        stored = self.files[file_id]
        chat = self._chat(chat_id)
        message_id = chat.next_message_id
        chat.next_message_id += 1
        described: JSONDict = {"file_id": file_id, "file_unique_id": "u" + file_id,
                               "file_size": len(stored.data)}
        if stored.mime_type and field_name != "photo":
            described["mime_type"] = stored.mime_type
        if field_name == "document" and stored.file_name:
            described["file_name"] = stored.file_name
        if field_name in ("voice", "audio"):
            described["duration"] = 1
        message: JSONDict = {"message_id": message_id, "date": int(time.time()),
                             "chat": self._chat_json(chat_id, "private"), "from": self.bot_user,
                             field_name: [{**described, "width": 800, "height": 800}]
                             if field_name == "photo" else described}
        if isinstance(caption, str) and caption:
            message["caption"] = caption
        chat.bot_messages[message_id] = message
        return message

    def _api_sendvoice(self, params: JSONDict) -> JSONDict:
        return self._send_file("sendvoice", params)

    def _api_sendaudio(self, params: JSONDict) -> JSONDict:
        return self._send_file("sendaudio", params)

    def _api_sendphoto(self, params: JSONDict) -> JSONDict:
        return self._send_file("sendphoto", params)

    def _api_senddocument(self, params: JSONDict) -> JSONDict:
        return self._send_file("senddocument", params)

    def _api_getme(self, params: JSONDict) -> JSONDict:
        return self.bot_user

    async def _api_getupdates(self, params: JSONDict) -> list[JSONDict]:
        if self.webhook_url:
            raise _ApiError(409, "Conflict: can't use getUpdates method while webhook is active;"
                                 " use deleteWebhook to delete the webhook first")
        offset = int(params.get("offset") or 0)
        limit = max(1, min(100, int(params.get("limit") or 100)))
        timeout = min(float(params.get("timeout") or 0), self.max_poll_seconds)
        if offset:
            self._confirm(offset)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self._closing:
            if self._pending or self._redeliver:
                break
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            with contextlib.suppress(TimeoutError):
                await self._wait_change(remaining)
        if offset:
            self._confirm(offset)
        batch = self._redeliver[:limit]
        del self._redeliver[:len(batch)]
        batch += self._pending[:limit - len(batch)]
        return batch

    def _confirm(self, offset: int) -> None:
        self._pending = [u for u in self._pending if u["update_id"] >= offset]

    def _api_deletewebhook(self, params: JSONDict) -> bool:
        self.webhook_url = ""
        if params.get("drop_pending_updates"):
            self._pending.clear()
        return True

    def _api_setwebhook(self, params: JSONDict) -> bool:
        self.webhook_url = str(params.get("url", ""))
        if params.get("drop_pending_updates"):
            self._pending.clear()
        return True

    def _api_getwebhookinfo(self, params: JSONDict) -> JSONDict:
        return {"url": self.webhook_url, "has_custom_certificate": False,
                "pending_update_count": len(self._pending)}

    def _api_sendmessage(self, params: JSONDict) -> JSONDict:
        chat_id = _require_int(params, "chat_id")
        text = str(params.get("text", ""))
        # Telegram trims spaces (U+3000 too) and control characters and refuses what is left.
        if all(c.isspace() or unicodedata.category(c) == "Cc" for c in text):
            raise _ApiError(400, "Bad Request: message text is empty")
        if len(text.encode("utf-16-le")) // 2 > 4096:
            raise _ApiError(400, "Bad Request: message is too long")
        markup = params.get("reply_markup")
        if isinstance(markup, dict):
            for row in markup.get("inline_keyboard", []):
                for button in row:
                    data = button.get("callback_data")
                    if data is not None and not 1 <= len(data.encode()) <= 64:
                        raise _ApiError(400, "Bad Request: BUTTON_DATA_INVALID")
        chat = self._chat(chat_id)
        message_id = chat.next_message_id
        chat.next_message_id += 1
        message: JSONDict = {
            "message_id": message_id,
            "date": int(time.time()),
            "chat": self._chat_json(chat_id, "private"),
            "from": self.bot_user,
            "text": text,
        }
        if isinstance(markup, dict) and markup.get("inline_keyboard"):
            message["reply_markup"] = markup
        chat.bot_messages[message_id] = message
        return message

    def _edited(self, params: JSONDict) -> JSONDict:
        chat_id = _require_int(params, "chat_id")
        message_id = _require_int(params, "message_id")
        message = self._chats.get(chat_id, _Chat(chat_id)).bot_messages.get(message_id)
        if message is None:
            raise _ApiError(400, "Bad Request: message to edit not found")
        return message

    def _api_editmessagereplymarkup(self, params: JSONDict) -> JSONDict:
        message = self._edited(params)
        markup = params.get("reply_markup")
        new = markup if isinstance(markup, dict) and markup.get("inline_keyboard") else None
        if new == message.get("reply_markup"):
            raise _ApiError(400, "Bad Request: message is not modified: specified new message "
                                 "content and reply markup are exactly the same as a current "
                                 "content and reply markup of the message")
        if new is None:
            message.pop("reply_markup", None)
        else:
            message["reply_markup"] = new
        message["edit_date"] = int(time.time())
        return message

    def _api_editmessagetext(self, params: JSONDict) -> JSONDict:
        message = self._edited(params)
        text = str(params.get("text", ""))
        markup = params.get("reply_markup")
        new = markup if isinstance(markup, dict) and markup.get("inline_keyboard") else None
        if text == message.get("text") and new == message.get("reply_markup"):
            raise _ApiError(400, "Bad Request: message is not modified")
        message["text"] = text
        if new is None:
            message.pop("reply_markup", None)
        else:
            message["reply_markup"] = new
        message["edit_date"] = int(time.time())
        return message

    def _api_answercallbackquery(self, params: JSONDict) -> bool:
        if not params.get("callback_query_id"):
            raise _ApiError(400, "Bad Request: query is too old and response timeout expired "
                                 "or query ID is invalid")
        return True

    def _api_sendchataction(self, params: JSONDict) -> bool:
        self._chat(_require_int(params, "chat_id")).action = str(params.get("action", ""))
        return True

    def _api_setmycommands(self, params: JSONDict) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list) or len(commands) > 100:
            raise _ApiError(400, "Bad Request: commands must be a list of up to 100 items")
        for command in commands:
            name = str(command.get("command", ""))
            if not (1 <= len(name) <= 32 and name.replace("_", "").isalnum()
                    and name == name.lower() and name.isascii()):
                raise _ApiError(400, "Bad Request: BOT_COMMAND_INVALID")
            if not 1 <= len(str(command.get("description", ""))) <= 256:
                raise _ApiError(400, "Bad Request: command description is invalid")
        self.commands[str(params.get("language_code") or "")] = commands
        return True

    def _api_getmycommands(self, params: JSONDict) -> list[JSONDict]:
        return self.commands.get(str(params.get("language_code") or ""), [])

    def _api_deletemycommands(self, params: JSONDict) -> bool:
        self.commands.pop(str(params.get("language_code") or ""), None)
        return True

    def _api_close(self, params: JSONDict) -> bool:
        return True

    def _api_logout(self, params: JSONDict) -> bool:
        return True


class _ApiError(Exception):
    def __init__(self, status: int, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.description = description


def _require_int(params: JSONDict, name: str) -> int:
    value = params.get(name)
    if not isinstance(value, int):
        raise _ApiError(400, f"Bad Request: {name} is required")
    return value


def _parse_params(query: str, content_type: str, body: bytes) -> JSONDict:
    """Parameters from the query string and a JSON, form-encoded or multipart body."""
    raw: JSONDict = dict(parse_qsl(query, keep_blank_values=True))
    ctype = content_type.split(";")[0].strip().lower()
    if ctype == "application/json" and body:
        loaded = json.loads(body)
        if isinstance(loaded, dict):
            raw.update(loaded)
    elif ctype == "application/x-www-form-urlencoded":
        raw.update(parse_qsl(body.decode(), keep_blank_values=True))
    elif ctype == "multipart/form-data":
        raw.update(_parse_multipart(content_type, body))
    return {key: _coerce(key, value) for key, value in raw.items()}


def _parse_multipart(content_type: str, body: bytes) -> Iterable[tuple[str, str | Upload]]:
    boundary = ""
    for part in content_type.split(";")[1:]:
        name, _, value = part.strip().partition("=")
        if name.lower() == "boundary":
            boundary = value.strip('"')
    if not boundary:
        return []
    fields: list[tuple[str, str | Upload]] = []
    for chunk in body.split(b"--" + boundary.encode())[1:]:
        if chunk.startswith(b"--"):
            break
        # The part is CRLF, headers, CRLF CRLF, content, CRLF: strip only those, never bytes
        # of a file's content.
        head, _, content = chunk.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        content = content.removesuffix(b"\r\n")
        name = filename = ""
        part_type = ""
        for line in head.decode("latin-1").split("\r\n"):
            if line.lower().startswith("content-type:"):
                part_type = line.split(":", 1)[1].strip()
            for token in line.split(";"):
                key, _, value = token.strip().partition("=")
                if key == "name":
                    name = value.strip('"')
                elif key == "filename":
                    filename = value.strip('"')
        if name and filename:
            fields.append((name, Upload(filename, content, part_type)))
        elif name:
            fields.append((name, content.decode("utf-8", "replace")))
    return fields


def _coerce(key: str, value: Any) -> Any:
    if not isinstance(value, str):
        return value
    if key in _JSON_PARAMS:
        try:
            return json.loads(value)
        except ValueError:
            return value
    if key in _INT_PARAMS:
        try:
            return int(value)
        except ValueError:
            return value  # "@channelname"
    if key in _FLOAT_PARAMS:
        try:
            number = float(value)
        except ValueError:
            return value
        return int(number) if number.is_integer() else number
    if key in _BOOL_PARAMS:
        return value.lower() in ("true", "1")
    return value
