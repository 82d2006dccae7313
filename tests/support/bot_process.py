"""The bot as a real process (`python -m bot run`) against the fake Bot API on loopback,
and people talking to it: for tests and soaks about crashes, kills and signals.

    api = await FakeBotApi().start()
    bot = BotProcess(api, tmp_path)
    await bot.start()                  # returns once it polls Telegram
    person = Person(api, chat_id=7)
    await person.say("hi")             # waits for the bot's answer (or counts it lost)
    bot.kill()                         # SIGKILL, at any moment
    await bot.start()                  # the same database file
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.fake_bot_api import FakeBotApi

__all__ = ["BotProcess", "Person", "processed_count"]

REPO = Path(__file__).resolve().parents[2]


class BotProcess:
    """``python -m bot run`` on one SQLite file, started again as often as wanted."""

    def __init__(self, api: FakeBotApi, folder: Path, **env: str) -> None:
        self.api = api
        self.folder = folder
        self.db = folder / "bot.sqlite3"
        self.log = folder / "bot.log"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("BOT_", "TELEGRAM_"))},
            "TELEGRAM_BOT_TOKEN": api.token,
            "TELEGRAM_API_BASE_URL": api.base_url,
            "TELEGRAM_FILE_BASE_URL": api.base_file_url,
            "BOT_DB_PATH": str(self.db),
            "BOT_MODELS_DIR": str(folder / "no-models"),
            "BOT_VOLUNTEER_HOURS": "00:00-00:00",
            "BOT_LOG_LEVEL": "INFO",
            "PYTHONPATH": str(REPO),
            **env,
        }
        self.process: asyncio.subprocess.Process | None = None
        self.starts = 0

    async def start(self, within: float = 30.0) -> None:
        """Start the bot; return once it has asked Telegram for updates."""
        polls_before = len(self.api.calls_to("getUpdates", ok_only=False))
        with self.log.open("a") as log:
            log.write(f"\n==== start {self.starts + 1}\n")
            log.flush()
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot", "run", cwd=self.folder, env=self.env,
                stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log)
        self.starts += 1
        await self.api.wait_until(
            lambda: len(self.api.calls_to("getUpdates", ok_only=False)) > polls_before
            or (self.process is not None and self.process.returncode is not None),
            within=within, what="the bot to poll Telegram")
        if self.process.returncode is not None:
            raise AssertionError(f"the bot exited with {self.process.returncode}:\n"
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


def processed_count(db: Path, chat_id: int) -> tuple[int, int]:
    """(messages handled, messages still waiting in the inbox) for a Telegram chat."""
    conn = sqlite3.connect(db)
    try:
        chat = f"telegram:{chat_id}"
        done = conn.execute("SELECT count(*) FROM processed_updates WHERE chat_key = ?",
                            (chat,)).fetchone()[0]
        waiting = conn.execute("SELECT count(*) FROM inbox WHERE chat_key = ?",
                               (chat,)).fetchone()[0]
    finally:
        conn.close()
    return int(done), int(waiting)
