"""The bot as a real process, killed at random moments and stopped by signals.

Nothing a person sends may be lost: python-telegram-bot's own Updater confirmed updates to
Telegram before they were saved, so a kill lost them. Here the bot is `python -m bot run`
against the fake Bot API on loopback, killed with SIGKILL in the middle of a closed loop
of people and of a burst, and started again on the same file. Longer soaks with figures:
bench/bench_crash.py.
"""

from __future__ import annotations

import asyncio
import random
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.bot_process import (
    BotProcess,
    Person,
    converse,
    kill_while_talking,
    processed_count,
)
from tests.support.fake_bot_api import FakeBotApi

pytestmark = pytest.mark.timeout(300)

WELCOME = "Welcome. Please choose your language."


@pytest.fixture
async def api() -> AsyncIterator[FakeBotApi]:
    server = await FakeBotApi(max_poll_seconds=1.0).start()
    yield server
    await server.stop()


@pytest.fixture
async def bot(api: FakeBotApi, tmp_path: Path) -> AsyncIterator[BotProcess]:
    process = BotProcess(api, tmp_path)
    await process.start()
    yield process
    await process.stop()


def starts_over(person: Person) -> int:
    """How often the bot greeted a person it had already been talking to."""
    return max(0, person.replies().count(WELCOME) - 1)


async def test_sigkill_in_a_closed_loop_loses_no_message(bot: BotProcess, api: FakeBotApi) -> None:
    people = [Person(api, chat_id=5000 + i) for i in range(6)]
    kills = 6
    await kill_while_talking(bot, people, kills=kills, seed=20261201, turns=400)

    assert [p.lost for p in people] == [[] for _ in people]  # every message answered
    assert sum(starts_over(p) for p in people) == 0  # no conversation started over
    duplicates = sum(len(p.replies()) - p.sent for p in people)
    assert 0 <= duplicates <= kills * len(people)  # at most the sends in flight at a kill
    for person in people:  # all read (the last may still wait for its burst to end)
        await api.wait_until(lambda p=person: processed_count(bot.db, p.chat_id) == (p.sent, 0),
                             within=30, what=f"every message of chat {person.chat_id} read")


async def test_sigkill_during_a_burst_every_message_is_read(bot: BotProcess,
                                                            api: FakeBotApi) -> None:
    chance = random.Random(7)
    for round_ in range(3):
        person = Person(api, chat_id=6000 + round_)
        assert await person.say("hi") and await person.say("English")
        for n in range(50):
            api.send_text(person.chat_id, f"burst message {n}", language_code=None)
        person.sent += 50
        # Before the burst is answered (it waits for the person to pause), or while it is.
        await asyncio.sleep(chance.uniform(0.0, 3.0))
        bot.kill()
        await bot.wait()
        await bot.start()
        await api.wait_until(lambda p=person: processed_count(bot.db, p.chat_id) == (52, 0),
                             within=60, what="all 52 messages read after the restart")
        await api.wait_until(lambda p=person: len(p.replies()) >= 3, within=30,
                             what="an answer to the burst")
        answer = person.replies()[-1]
        assert answer.startswith("I have read all ") and "of your messages" in answer
        assert starts_over(person) == 0


async def test_sigterm_stops_within_ten_seconds_and_loses_nothing(
        bot: BotProcess, api: FakeBotApi) -> None:
    people = [Person(api, chat_id=7000 + i) for i in range(5)]
    done = asyncio.Event()
    talking = [asyncio.create_task(converse(p, done, turns=400)) for p in people]
    await asyncio.sleep(2.0)
    started = time.monotonic()
    bot.signal(signal.SIGTERM)
    code = await bot.wait(within=15)
    took = time.monotonic() - started
    assert code == 0, bot.log.read_text()[-2000:]
    assert took < 10
    assert "stopped in" in bot.log.read_text()
    await bot.start()
    await asyncio.sleep(1.0)
    done.set()
    await asyncio.wait_for(asyncio.gather(*talking), 120)
    assert [p.lost for p in people] == [[] for _ in people]
    assert sum(starts_over(p) for p in people) == 0
    # SIGINT (Ctrl-C) is a graceful stop too.
    bot.signal(signal.SIGINT)
    assert await bot.wait(within=15) == 0
