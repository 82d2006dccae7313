"""Throughput and reply latency over the Telegram Bot API, against the loopback fake server.

    python bench/bench_telegram.py [--users N] [--messages M] [--poll-timeout S]

Runs, in one process and against a fresh fake Bot API each:

  ptb-echo        a plain python-telegram-bot echo bot (MessageHandler sends the text back),
                  PTB's defaults: the baseline the aim is set against
  transport       TelegramTransport with a handler that sends the text back
  ptb-same-reply  the PTB echo bot answering with a reply shaped like the bot's (text and six
                  buttons): what the same reply costs through PTB's objects
  ptb-echo-8      the PTB echo bot with 8 HTTP connections, as the transport has
  full-bot        the whole bot: dispatcher, engine, catalogs, localizer, SQLite on a temp file

N simulated users each send M messages in a closed loop (the next message once the reply came),
so N chats are in flight at once. Latency runs from the update being queued at the fake server
to the reply's sendMessage arriving there. Everything runs on one event loop (fake server,
PTB, handler) and so on one core: the numbers compare the bots with each other; they are not
Telegram's. Aim (issue 4): full-bot at no less than 0.8x ptb-echo's throughput.

:func:`bench_transport` takes a factory building the InboundHandler from the transport, to
measure any other handler the same way.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dtm
import gc
import os
import platform
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import ApplicationBuilder, ContextTypes, MessageHandler, filters

from bot.messages import Inbound, Outbound
from bot.transports.base import InboundHandler
from bot.transports.telegram import ALLOWED_UPDATES, TelegramTransport
from tests.support.fake_bot_api import ApiCall, FakeBotApi

#: A factory that builds the handler under test from the transport it will reply through.
HandlerFactory = Callable[[TelegramTransport], InboundHandler]
#: Starts a bot against the fake server for the duration of the ``async with``.
BotRunner = Callable[[FakeBotApi], AbstractAsyncContextManager[None]]

REPLY_TIMEOUT = 10.0  # seconds one reply may take before the run is declared failed
FIRST_CHAT_ID = 10_000


@dataclass(frozen=True)
class Result:
    label: str
    messages: int
    seconds: float
    latencies: list[float]  # seconds, one per message

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))
        return ordered[index]

    def line(self) -> str:
        return (f"{self.label:<12} {self.rate:9.1f} msg/s   p50 {self.percentile(50) * 1e3:7.2f} ms"
                f"   p99 {self.percentile(99) * 1e3:7.2f} ms   ({self.messages} msgs in "
                f"{self.seconds:.2f} s)")


async def drive(api: FakeBotApi, label: str, users: int, messages: int) -> Result:
    """Closed-loop load: each user sends a message, waits for the first reply, sends again."""
    waiting: dict[int, asyncio.Future[float]] = {}

    def on_call(call: ApiCall) -> None:
        if call.method == "sendMessage" and call.ok and call.chat_id is not None:
            future = waiting.pop(call.chat_id, None)
            if future is not None and not future.done():
                future.set_result(call.at)

    api.listeners.append(on_call)
    loop = asyncio.get_running_loop()

    async def user(chat_id: int) -> list[float]:
        latencies = []
        for i in range(messages):
            future: asyncio.Future[float] = loop.create_future()
            waiting[chat_id] = future
            sent_at = time.monotonic()
            api.send_text(chat_id, f"message {i} from {chat_id}")
            replied_at = await asyncio.wait_for(future, REPLY_TIMEOUT)
            latencies.append(replied_at - sent_at)
        return latencies

    started = time.monotonic()
    try:
        per_user = await asyncio.gather(*(user(FIRST_CHAT_ID + u) for u in range(users)))
    finally:
        api.listeners.remove(on_call)
    elapsed = time.monotonic() - started
    latencies = [x for xs in per_user for x in xs]
    return Result(label, len(latencies), elapsed, latencies)


async def measure(runner: BotRunner, label: str, users: int, messages: int,
                  warmup: int = 1) -> Result:
    """Start a fresh fake server, start the bot, warm up, then drive the load."""
    api = await FakeBotApi(max_poll_seconds=10.0).start()
    try:
        async with runner(api):
            await drive(api, label, users, warmup)  # open the HTTP connections, fill caches
            gc.collect()
            return await drive(api, label, users, messages)
    finally:
        await api.stop()


#: What the full bot answers the bench's messages with (they match no button): the same
#: shape of reply for the "same reply" echo bot, so payload size is not counted against us.
SAME_REPLY_TEXT = ("Sorry, I did not understand. Please tap one of the buttons, or type its "
                   "number.\n\nWhat do you need help with? Tap a topic, or type its number.")
SAME_REPLY_BUTTONS = ("I need urgent help", "My claim was refused", "How asylum works",
                      "Find local help", "Find my family", "Talk to a person")


def ptb_echo(poll_timeout: float, same_reply: bool = False, pool: int | None = None) -> BotRunner:
    """(a) A plain PTB echo bot: MessageHandler replying with the text. With ``same_reply``,
    it answers with a fixed message shaped like the full bot's (text and six buttons); with
    ``pool``, it uses that many HTTP connections instead of PTB's default."""

    @contextlib.asynccontextmanager
    async def run(api: FakeBotApi) -> AsyncIterator[None]:
        builder = (ApplicationBuilder().token(api.token).base_url(api.base_url)
                   .base_file_url(api.base_file_url).concurrent_updates(256).job_queue(None))
        if pool is not None:
            builder = builder.connection_pool_size(pool)
        app = builder.build()

        async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
            message = update.message
            if message is not None and message.text is not None:
                if same_reply:
                    keyboard = InlineKeyboardMarkup(
                        [[InlineKeyboardButton(label, callback_data=f"1.{i}")]
                         for i, label in enumerate(SAME_REPLY_BUTTONS)])
                    await context.bot.send_message(chat_id=message.chat.id, text=SAME_REPLY_TEXT,
                                                   reply_markup=keyboard)
                else:
                    await context.bot.send_message(chat_id=message.chat.id, text=message.text)

        app.add_handler(MessageHandler(filters.TEXT, echo))
        await app.initialize()
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling(timeout=dtm.timedelta(seconds=poll_timeout),
                                        allowed_updates=list(ALLOWED_UPDATES))
        try:
            yield
        finally:
            await app.updater.stop()
            await app.stop()
            await app.shutdown()

    return run


def echo_handler(transport: TelegramTransport) -> InboundHandler:
    """(b) The transport's counterpart of the echo bot."""

    tasks: set[asyncio.Task[None]] = set()

    async def handle(batch: Sequence[Inbound]) -> None:
        # Like the intake: take the batch, answer each message in its own task.
        for inbound in batch:
            task = asyncio.create_task(transport.send(
                Outbound(inbound.chat_key, inbound.text or inbound.command or "?")))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    return handle


def transport_runner(factory: HandlerFactory, poll_timeout: float) -> BotRunner:
    @contextlib.asynccontextmanager
    async def run(api: FakeBotApi) -> AsyncIterator[None]:
        transport = TelegramTransport(api.token, base_url=api.base_url,
                                      base_file_url=api.base_file_url, poll_timeout=poll_timeout)
        task = asyncio.create_task(transport.run(factory(transport)))
        try:
            await asyncio.wait_for(transport.running.wait(), 10)
            yield
        finally:
            await transport.stop()
            await asyncio.wait_for(task, 15)
            await transport.close()

    return run


async def bench_transport(factory: HandlerFactory, *, users: int = 20, messages: int = 50,
                          label: str = "transport", poll_timeout: float = 10.0) -> Result:
    """The hook: TelegramTransport with the handler ``factory(transport)`` builds."""
    return await measure(transport_runner(factory, poll_timeout), label, users, messages)


async def main(users: int, messages: int, poll_timeout: float) -> None:
    print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPU(s);"
          f" {users} users x {messages} messages, closed loop, one event loop;"
          " ptb-echo uses PTB's defaults, transport its own (HTTP pool of 8)")
    echo = await measure(ptb_echo(poll_timeout), "ptb-echo", users, messages)
    print(echo.line())
    ours = await bench_transport(echo_handler, users=users, messages=messages,
                                 poll_timeout=poll_timeout)
    print(ours.line())
    print(f"ratio transport/ptb-echo: throughput {ours.rate / echo.rate:.2f}x, "
          f"p50 latency {ours.percentile(50) / echo.percentile(50):.2f}x, "
          f"p99 latency {ours.percentile(99) / echo.percentile(99):.2f}x")
    same = await measure(ptb_echo(poll_timeout, same_reply=True), "ptb-same-reply", users, messages)
    print(same.line())
    tuned = await measure(ptb_echo(poll_timeout, pool=8), "ptb-echo-8", users, messages)
    print(tuned.line())
    full = await bench_full_bot(users=users, messages=messages, poll_timeout=poll_timeout)
    print(full.line())
    for name, base in (("ptb-echo", echo), ("ptb-same-reply", same), ("ptb-echo-8", tuned),
                       ("transport", ours)):
        print(f"ratio full-bot/{name}: throughput {full.rate / base.rate:.2f}x, "
              f"p50 latency {full.percentile(50) / base.percentile(50):.2f}x, "
              f"p99 latency {full.percentile(99) / base.percentile(99):.2f}x")


async def bench_full_bot(*, users: int, messages: int, poll_timeout: float) -> Result:
    """(c) The whole bot: dispatcher, engine, catalogs, localizer and one SQLite transaction
    per turn on a temporary file, replying through TelegramTransport.

    The intake's flood control is off here: a closed loop of 50 messages per chat IS a flood,
    and the limit would (rightly) answer it with silence.
    """
    from bot.app import load_catalog_set
    from bot.config import Settings
    from bot.dispatcher import Dispatcher
    from bot.flowspec.library import default_flows_dir, load_library
    from bot.i18n.localizer import Localizer
    from bot.intake import Intake
    from bot.storage.sqlite import SqliteStore

    library = load_library([default_flows_dir()])
    localizer = Localizer(load_catalog_set(Settings.from_env({}), library))
    with tempfile.TemporaryDirectory() as tmp:
        store = await SqliteStore.open(Path(tmp) / "bench.sqlite3")
        try:
            dispatchers: list[Dispatcher] = []

            def with_dispatcher(transport: TelegramTransport) -> InboundHandler:
                dispatchers.append(Dispatcher(store, lambda: library, localizer, transport))
                return Intake(store, dispatchers[-1], flood_control=False).accept

            result = await bench_transport(with_dispatcher, users=users, messages=messages,
                                           label="full-bot", poll_timeout=poll_timeout)
            turns = (messages + 1) * users  # with the warm-up round
            print("full-bot trips to the database thread per turn: " + ", ".join(
                f"{kind} {count / turns:.2f}" for kind, count in sorted(store.trips.items())))
            replies = sum((d.stats for d in dispatchers), Counter[str]())
            print("full-bot replies: " + ", ".join(f"{k} {n}" for k, n in sorted(replies.items())))
            return result
        finally:
            await store.close()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=20, help="concurrent chats (default 20)")
    parser.add_argument("--messages", type=int, default=50, help="messages per user (default 50)")
    parser.add_argument("--poll-timeout", type=float, default=10.0,
                        help="getUpdates long-poll timeout in seconds (default 10)")
    args = parser.parse_args(argv)
    if not (1 <= args.users <= 10_000 and 1 <= args.messages <= 100_000):
        parser.error("--users must be 1..10000 and --messages 1..100000")
    return args


if __name__ == "__main__":
    arguments = parse_args()
    asyncio.run(main(arguments.users, arguments.messages, arguments.poll_timeout))
