"""The bot as a real process serving WhatsApp and Telegram at once (`python -m bot run` with
both set up), killed with SIGKILL at random moments while people on both write to it.

Nothing may be lost: a WhatsApp message is answered 200 only once it is saved, so a kill
before that leaves it with WhatsApp (the fake, like Meta, sends it again until answered);
one saved is answered after the restart; a reply not yet accepted is sent again.
"""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.bot_process import (
    BotProcess,
    Person,
    WhatsAppPerson,
    kill_while_talking,
    processed_count,
)
from tests.support.fake_bot_api import FakeBotApi
from tests.support.fake_whatsapp_api import FakeWhatsAppApi

pytestmark = pytest.mark.timeout(300)

WELCOME = "Welcome. Please choose your language."


@pytest.fixture
async def servers() -> AsyncIterator[tuple[FakeBotApi, FakeWhatsAppApi]]:
    telegram = await FakeBotApi(max_poll_seconds=1.0).start()
    whatsapp = await FakeWhatsAppApi(retry_for=120.0).start()
    yield telegram, whatsapp
    await whatsapp.stop()
    await telegram.stop()


async def test_sigkill_while_people_on_whatsapp_and_telegram_write_loses_nothing(
        servers: tuple[FakeBotApi, FakeWhatsAppApi], tmp_path: Path) -> None:
    telegram, whatsapp = servers
    bot = BotProcess(telegram, tmp_path, whatsapp=whatsapp)
    await bot.start()
    try:
        on_whatsapp = [WhatsAppPerson(whatsapp, whatsapp.user(f"4477009{i:05d}", f"GB.70{i}",
                                                               hide_phone=i % 2 == 1))
                       for i in range(4)]
        on_telegram = [Person(telegram, chat_id=8000 + i) for i in range(2)]
        people: list[Person | WhatsAppPerson] = [*on_whatsapp, *on_telegram]
        kills = 5
        await kill_while_talking(bot, people, kills=kills, seed=20261213, turns=300)

        assert [p.lost for p in people] == [[] for _ in people]  # every message answered
        for person in people:
            assert max(0, person.replies().count(WELCOME) - 1) == 0  # none started over
            key = person.chat_key if isinstance(person, WhatsAppPerson) else person.chat_id
            # A resent reply may have looked like the answer to the last message, which can
            # still be waiting for its burst to end: every message is read, soon.
            await telegram.wait_until(
                lambda k=key, p=person: processed_count(bot.db, k) == (p.sent, 0), within=30,
                what=f"every message of {key} read")
        # At most the sends in flight at a kill: one turn per person, and a turn may send two
        # messages (what does not fit one 600-character message, or a file and its text), each
        # counted here as a reply beyond the message it answers.
        duplicates = sum(len(p.replies()) - p.sent for p in people)
        assert 0 <= duplicates <= 2 * kills * len(people)
        # Some webhooks met a dead bot and were sent again: the kills did land mid-stream.
        assert any(d.status != 200 for d in whatsapp.deliveries)
        # SIGTERM stops both platforms gracefully.
        bot.signal(signal.SIGTERM)
        assert await bot.wait(within=15) == 0
        assert "stopped in" in bot.log.read_text()
    finally:
        await bot.stop()
