"""How quickly the bot answers WhatsApp's webhook, and replies, against the loopback fake.

    python bench/bench_whatsapp.py [--users N] [--messages M] [--rounds R]

WhatsApp sends a webhook again when it is answered slowly, so the bot must save a message
and answer 200 at once. Arms, alternated round by round, each on a fresh fake server:

  ack-only   WhatsAppTransport whose handler returns at once: signature check, JSON,
             parsing, tornado (the floor: nothing saved)
  echo       the transport with a handler that sends the text back after answering the
             webhook (no database): the floor for a reply
  full-bot   the whole bot: durable intake (saved to SQLite before the 200), dispatcher,
             engine, catalogs, outbox, SQLite on a temp file at the shipped defaults

N people each send M messages in a closed loop (the next once the reply came; ack-only: once
the webhook was answered, so it has no reply latency). The fake delivers up to 8 webhooks
at once, as Meta sends several.
Printed per arm: webhook answer time (median, p90, max, over all rounds), reply latency from
the person's message to the reply reaching the fake (median, p90), and messages per second
(median over rounds, with the spread). One event loop runs fake, bot and people: numbers
compare arms, they are not Meta's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from bot.app import run_bot
from bot.config import Settings
from bot.messages import Inbound, Outbound
from bot.transports.whatsapp import WEBHOOK_PATH, WhatsAppTransport
from tests.support.fake_whatsapp_api import FakeUser, FakeWhatsAppApi

ARMS = ("ack-only", "echo", "full-bot")


def _transport(api: FakeWhatsAppApi) -> WhatsAppTransport:
    return WhatsAppTransport(api.access_token, api.phone_number_id, api.app_secret,
                             api.verify_token, api_base_url=api.base_url, port=0, clock=api.now)


@contextlib.asynccontextmanager
async def _serving(arm: str, api: FakeWhatsAppApi, folder: Path) -> AsyncIterator[None]:
    transport = _transport(api)
    if arm == "full-bot":
        settings = replace(Settings.from_env({"BOT_VOLUNTEER_HOURS": "00:00-00:00"}),
                           models_dir=folder / "no-models")
        task = asyncio.ensure_future(run_bot(settings, transport, db_path=folder / "bot.sqlite3"))
    else:
        replying: set[asyncio.Task[None]] = set()

        async def handler(batch: Sequence[Inbound]) -> None:
            if arm == "echo":  # like the intake: return at once, reply after
                for inbound in batch:
                    task = asyncio.ensure_future(transport.send(
                        Outbound(inbound.chat_key, f"you said {inbound.text}")))
                    replying.add(task)
                    task.add_done_callback(replying.discard)

        task = asyncio.ensure_future(transport.run(handler))
    await asyncio.wait_for(transport.running.wait(), 30)
    api.webhook_url = f"http://127.0.0.1:{transport.port}{WEBHOOK_PATH}"
    try:
        yield
    finally:
        await transport.stop()
        await asyncio.wait_for(task, 30)
        await transport.close()


async def _person(api: FakeWhatsAppApi, user: FakeUser, messages: int, arm: str,
                  latencies: list[float]) -> None:
    texts = ["hi", "English", *(f"note {n}" for n in range(messages - 2))][:messages]
    for text in texts:
        before = len(api.messages_to(user))
        acked = sum(1 for d in api.deliveries if d.status == 200)
        started = time.perf_counter()
        api.send_text(user, text)
        if arm == "ack-only":
            await api.wait_until(lambda a=acked: sum(1 for d in api.deliveries
                                                     if d.status == 200) > a, within=30)
        else:
            await api.wait_until(lambda b=before: len(api.messages_to(user)) > b, within=30)
            latencies.append(time.perf_counter() - started)


async def _round(arm: str, users: int, messages: int) -> tuple[list[float], list[float], float]:
    api = await FakeWhatsAppApi(webhook_workers=8).start()
    try:
        with tempfile.TemporaryDirectory() as folder:
            async with _serving(arm, api, Path(folder)):
                people = [api.user(f"4477{n:08d}", f"GB.{n}") for n in range(users)]
                latencies: list[float] = []
                started = time.perf_counter()
                await asyncio.gather(*(_person(api, p, messages, arm, latencies) for p in people))
                elapsed = time.perf_counter() - started
        acks = [d.seconds for d in api.deliveries if d.status == 200]
        return acks, latencies, users * messages / elapsed
    finally:
        await api.stop()


def _ms(values: list[float], q: float) -> str:
    if not values:
        return "-"
    ordered = sorted(values)
    return f"{1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]:.1f}"


async def main(users: int, messages: int, rounds: int) -> None:
    print(f"python {platform.python_version()} on {platform.machine()}; {users} people x "
          f"{messages} messages; {rounds} rounds per arm, arms alternated")
    acks: dict[str, list[float]] = {arm: [] for arm in ARMS}
    replies: dict[str, list[float]] = {arm: [] for arm in ARMS}
    rates: dict[str, list[float]] = {arm: [] for arm in ARMS}
    for _ in range(rounds):
        for arm in ARMS:
            a, r, rate = await _round(arm, users, messages)
            acks[arm] += a
            replies[arm] += r
            rates[arm].append(rate)
    print(f"{'arm':<10} {'webhook answer ms: p50':>22} {'p90':>7} {'max':>7}   "
          f"{'reply ms: p50':>13} {'p90':>7}   {'msgs/s: median':>14} {'spread':>15}")
    for arm in ARMS:
        spread = f"{min(rates[arm]):.0f}-{max(rates[arm]):.0f}"
        print(f"{arm:<10} {_ms(acks[arm], 0.5):>22} {_ms(acks[arm], 0.9):>7} "
              f"{_ms(acks[arm], 1.0):>7}   {_ms(replies[arm], 0.5):>13} {_ms(replies[arm], 0.9):>7}"
              f"   {statistics.median(rates[arm]):>14.0f} {spread:>15}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--messages", type=int, default=15)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.users, args.messages, args.rounds))
