"""The bot as a real process (`python -m bot run`) against the fake Bot API (and, when
given, the fake WhatsApp Cloud API) on loopback, and people talking to it: for tests and
soaks about crashes, kills and signals.

    api = await FakeBotApi().start()
    bot = BotProcess(api, tmp_path)
    await bot.start()                  # returns once it polls Telegram
    person = Person(api, chat_id=7)
    await person.say("hi")             # waits for the bot's answer (or counts it lost)
    bot.kill()                         # SIGKILL, at any moment
    await bot.start()                  # the same database file

    wa = await FakeWhatsAppApi().start()
    bot = BotProcess(api, tmp_path, whatsapp=wa)   # both, in one process (api may be None)
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import select
import signal
import socket
import sqlite3
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.support.fake_bot_api import FakeBotApi
from tests.support.fake_whatsapp_api import FakeUser, FakeWhatsAppApi

__all__ = ["BotForks", "BotProcess", "Person", "Started", "WhatsAppPerson", "bot_env", "converse",
           "kill_while_talking", "processed_count"]

REPO = Path(__file__).resolve().parents[2]


class BotProcess:
    """``python -m bot run`` on one SQLite file (or the PostgreSQL database of a
    BOT_DATABASE_URL passed in ``env``), started again as often as wanted."""

    def __init__(self, api: FakeBotApi | None, folder: Path, *,
                 whatsapp: FakeWhatsAppApi | None = None, **env: str) -> None:
        self.api = api
        self.whatsapp = whatsapp
        self.folder = folder
        self.db = folder / "bot.sqlite3"
        self.log = folder / "bot.log"
        platforms: dict[str, str] = {}
        if api is not None:
            platforms |= {"TELEGRAM_BOT_TOKEN": api.token, "TELEGRAM_API_BASE_URL": api.base_url,
                          "TELEGRAM_FILE_BASE_URL": api.base_file_url}
        self.webhook_port = 0
        if whatsapp is not None:
            self.webhook_port = _free_port()  # the same across restarts: WhatsApp keeps one URL
            whatsapp.webhook_url = f"http://127.0.0.1:{self.webhook_port}/whatsapp/webhook"
            platforms |= {"WHATSAPP_ACCESS_TOKEN": whatsapp.access_token,
                          "WHATSAPP_PHONE_NUMBER_ID": whatsapp.phone_number_id,
                          "WHATSAPP_APP_SECRET": whatsapp.app_secret,
                          "WHATSAPP_VERIFY_TOKEN": whatsapp.verify_token,
                          "WHATSAPP_API_BASE_URL": whatsapp.base_url,
                          "WHATSAPP_WEBHOOK_PORT": str(self.webhook_port)}
        self.env = bot_env(folder, **{**platforms, "BOT_DB_PATH": str(self.db),
                                      "BOT_LOG_LEVEL": "INFO", **env})
        self.process: asyncio.subprocess.Process | None = None
        self.starts = 0
        #: Where its data is, for processed_count: the SQLite file or the PostgreSQL URL.
        self.database: Path | str = self.env.get("BOT_DATABASE_URL") or self.db

    async def start(self, within: float = 30.0) -> None:
        """Start the bot; return once it has asked Telegram for updates and answers
        WhatsApp's verification handshake (for the platforms it serves)."""
        api = self.api
        polls_before = len(api.calls_to("getUpdates", ok_only=False)) if api is not None else 0
        with self.log.open("a") as log:
            log.write(f"\n==== start {self.starts + 1}\n")
            log.flush()
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot", "run", cwd=self.folder, env=self.env,
                stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log)
        self.starts += 1
        if api is not None:
            await api.wait_until(
                lambda: len(api.calls_to("getUpdates", ok_only=False)) > polls_before
                or (self.process is not None and self.process.returncode is not None),
                within=within, what="the bot to poll Telegram")
        if self.whatsapp is not None:
            await self._until_webhook_answers(within)
        if self.process.returncode is not None:
            raise AssertionError(f"the bot exited with {self.process.returncode}:\n"
                                 f"{self.log.read_text()[-3000:]}")

    async def _until_webhook_answers(self, within: float) -> None:
        assert self.whatsapp is not None and self.whatsapp.webhook_url is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        params = {"hub.mode": "subscribe", "hub.challenge": "ready",
                  "hub.verify_token": self.whatsapp.verify_token}
        async with httpx.AsyncClient(timeout=2.0) as client:
            while loop.time() < deadline:
                if self.process is not None and self.process.returncode is not None:
                    return
                try:
                    answer = await client.get(self.whatsapp.webhook_url, params=params)
                    if answer.status_code == 200 and answer.text == "ready":
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.05)
        raise AssertionError(f"the bot's WhatsApp webhook did not answer within {within}s:\n"
                             f"{self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)

    def signal(self, sig: int) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    async def wait(self, within: float = 30.0) -> int:
        assert self.process is not None
        return await asyncio.wait_for(self.process.wait(), within)

    async def stop(self) -> None:
        """SIGKILL if still running (cleanup; tests of stopping use signal + wait)."""
        if self.process is not None and self.process.returncode is None:
            self.kill()
            await self.wait()


@dataclass
class Person:
    """One person writing to the bot, one message at a time (a closed loop)."""

    api: FakeBotApi
    chat_id: int
    sent: int = 0
    lost: list[str] = field(default_factory=list)  # messages never answered
    waits: list[float] = field(default_factory=list)

    def replies(self) -> list[str]:
        return [m["text"] for m in self.api.bot_messages(self.chat_id)]

    async def say(self, text: str, within: float = 40.0) -> bool:
        """Send ``text``; True once the bot has answered it (a new message in the chat)."""
        before = len(self.replies())
        started = time.monotonic()
        self.api.send_text(self.chat_id, text, language_code=None)
        self.sent += 1
        try:
            await self.api.wait_until(lambda: len(self.replies()) > before, within=within,
                                      what=f"an answer to {text!r} in chat {self.chat_id}")
        except AssertionError:
            self.lost.append(text)
            return False
        self.waits.append(time.monotonic() - started)
        return True


@dataclass
class WhatsAppPerson:
    """One person writing to the bot on WhatsApp, one message at a time (a closed loop)."""

    api: FakeWhatsAppApi
    user: FakeUser
    sent: int = 0
    lost: list[str] = field(default_factory=list)  # messages never answered

    @property
    def chat_key(self) -> str:
        return f"whatsapp:{self.user.user_id}"

    def replies(self) -> list[str]:
        return self.api.texts(self.user)

    async def say(self, text: str, within: float = 40.0) -> bool:
        before = len(self.replies())
        self.api.send_text(self.user, text)
        self.sent += 1
        try:
            await self.api.wait_until(lambda: len(self.replies()) > before, within=within,
                                      what=f"an answer to {text!r} for {self.chat_key}")
        except AssertionError:
            self.lost.append(text)
            return False
        return True


def bot_env(folder: Path, **env: str) -> dict[str, str]:
    """This environment without the bot's own settings, plus ``env``: no models (in
    ``folder``), volunteers' hours always, the checkout importable."""
    return {**{k: v for k, v in os.environ.items()
               if not k.startswith(("BOT_", "TELEGRAM_", "WHATSAPP_"))},
            "BOT_MODELS_DIR": str(folder / "no-models"), "BOT_VOLUNTEER_HOURS": "00:00-00:00",
            "PYTHONPATH": str(REPO), **env}


@dataclass(frozen=True)
class Started:
    """How one process of :meth:`BotForks.start_together` ended."""

    returncode: int
    stdout: str
    stderr: str


class BotForks:
    """Bot processes started several at the same moment, as often as wanted, forked from
    one process that imported the bot once (tests/support/bot_forks.py): on two shared
    cores, Python importing the bot is half of each start.

        with BotForks(tmp_path) as forks:
            ended = forks.start_together([["chat", "--user", "a"], ["chat", "--user", "b"]],
                                         folder, stdin="hi\n")
    """

    def __init__(self, folder: Path, **env: str) -> None:
        import subprocess  # synchronous: the tests using it are

        self._process = subprocess.Popen(
            [sys.executable, "-m", "tests.support.bot_forks"], cwd=folder,
            env=bot_env(folder, **env), text=True, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE)

    def __enter__(self) -> BotForks:
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._process.stdin is not None
        self._process.stdin.close()
        try:
            self._process.wait(30)
        finally:
            if self._process.poll() is None:
                self._process.kill()
                self._process.wait()
            if self._process.stdout is not None:
                self._process.stdout.close()

    def start_together(self, commands: Sequence[Sequence[str]], folder: Path, *,
                       stdin: str = "", within: float = 60.0) -> list[Started]:
        """Run ``python -m bot COMMAND`` for each command at the same moment in ``folder``,
        each reading ``stdin``; returns once all have exited."""
        assert self._process.stdin is not None and self._process.stdout is not None
        typed = folder / "stdin.txt"
        typed.write_text(stdin, encoding="utf-8")
        request = {"folder": str(folder), "stdin": str(typed), "commands": list(map(list, commands))}
        self._process.stdin.write(json.dumps(request) + "\n")
        self._process.stdin.flush()
        if not select.select([self._process.stdout], [], [], within)[0]:
            raise AssertionError(f"the bots in {folder} did not all exit within {within} s")
        codes = json.loads(self._process.stdout.readline())["codes"]
        return [Started(code, (folder / f"bot{n}.out").read_text(),
                        (folder / f"bot{n}.err").read_text()) for n, code in enumerate(codes)]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def processed_count(db: Path | str, chat_id: int | str) -> tuple[int, int]:
    """(messages handled, messages still waiting in the inbox) for a Telegram chat id, or
    any chat key; ``db``: the SQLite file, or a PostgreSQL URL."""
    chat = chat_id if isinstance(chat_id, str) else f"telegram:{chat_id}"
    if isinstance(db, str) and db.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(db) as pg:
            done = pg.execute("SELECT count(*) FROM processed_updates WHERE chat_key = %s",
                              (chat,)).fetchone()
            waiting = pg.execute("SELECT count(*) FROM inbox WHERE chat_key = %s",
                                 (chat,)).fetchone()
        assert done is not None and waiting is not None
        return int(done[0]), int(waiting[0])
    conn = sqlite3.connect(db)
    try:
        done = conn.execute("SELECT count(*) FROM processed_updates WHERE chat_key = ?",
                            (chat,)).fetchone()[0]
        waiting = conn.execute("SELECT count(*) FROM inbox WHERE chat_key = ?",
                               (chat,)).fetchone()[0]
    finally:
        conn.close()
    return int(done), int(waiting)


async def converse(person: Person | WhatsAppPerson, until: asyncio.Event,
                   turns: int = 100_000) -> None:
    """Choose English, then write one message after another, each once answered, until
    ``until`` is set (bounded by ``turns``)."""
    await person.say("hi")
    await person.say("English")  # typed: the engine matches the label
    for n in range(turns):
        if until.is_set():
            return
        await person.say(f"a note from me, number {n}")


async def kill_while_talking(bot: BotProcess, people: Sequence[Person | WhatsAppPerson], *,
                             kills: int, seed: int, turns: int) -> None:
    """People talk in a closed loop while the bot is SIGKILLed ``kills`` times at random
    moments (0.3-1.5 s apart) and started again on the same file; returns once each has had
    the answer to their last message."""
    chance = random.Random(seed)
    done = asyncio.Event()
    talking = [asyncio.create_task(converse(p, done, turns)) for p in people]
    for _ in range(kills):
        await asyncio.sleep(chance.uniform(0.3, 1.5))
        bot.kill()
        await bot.wait()
        await bot.start()
    await asyncio.sleep(1.0)
    done.set()
    await asyncio.wait_for(asyncio.gather(*talking), 120)
