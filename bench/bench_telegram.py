"""Throughput, reply latency and CPU per reply over the Telegram Bot API, bot against bot.

    python bench/bench_telegram.py [--users 125] [--messages 8] [--repeat 3]
                                   [--arms ptb-echo,ptb-echo-tuned,full-bot] [--modes closed,burst]

This process runs the fake Bot API server (tests/support/fake_bot_api.py) and the simulated
users on its own event loop. Every bot runs in a process of its own, started fresh for
every run and pointed at the server by TELEGRAM_API_BASE_URL, as it would be at Telegram:

  ptb-echo        python-telegram-bot's echo bot as PTB ships it (examples/echobot.py):
                  ``Application.builder().token(...).build()``, a MessageHandler that
                  ``reply_text``s the text, ``run_polling()``; all of PTB's defaults (one
                  update at a time). Only the base URLs are set, to reach this server.
  ptb-echo-tuned  the same with ``concurrent_updates(True)`` (256 updates at once)
  transport-echo  bot.transports.telegram.TelegramTransport answering with the text
                  (not in the default arms)
  full-bot        ``python -m bot run``: the intake with its flood control as shipped, the
                  dispatcher, engine, catalogs, localizer, SQLite on a temporary file and
                  TelegramTransport, all as in production

Modes: ``closed``: each of N users sends a message, waits for the reply, sends the next (N
chats in flight at once); ``burst``: all users send all their messages at once. M messages
per user: the full bot answers a chat message by message up to limits.RATE_MESSAGES_MAX in
RATE_WINDOW_SECONDS (8 in 10 s); beyond that it waits for the person to pause and answers
once (so 8, the default, is exactly at the limit; the warm-up uses other chats). Latency
runs from the update being queued at the server to the reply's sendMessage arriving there
(in a burst, from the moment everything was queued). CPU per reply is the bot process's
own user + system time over the measured window, as the kernel accounts it for that
process (/proc/<pid>/stat, what getrusage(RUSAGE_SELF) reads inside it).

Arms alternate within each repetition, and every arm runs ``--repeat`` times per mode; the
medians and the spread (min-max) are printed, then full-bot's ratios to the echo bots.
Aims (issue 11), measured in the same run: full-bot >= 0.9x ptb-echo's throughput closed
loop and >= 0.7x in a burst; p95 latency closed loop <= 2x ptb-echo's.

``--py-spy DIR`` records each bot's stacks over the measured window (pip install py-spy).
``--serve ARM`` runs one bot (used by this script for the echo arms).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout

from tests.support.fake_bot_api import ApiCall, FakeBotApi  # noqa: E402

ARMS = ("ptb-echo", "ptb-echo-tuned", "transport-echo", "full-bot")
DEFAULT_ARMS = ("ptb-echo", "ptb-echo-tuned", "full-bot")
MODES = ("closed", "burst")
REPLY_TIMEOUT = 60.0  # seconds a run may wait for its replies before it is declared failed
START_TIMEOUT = 60.0  # seconds a bot may take to start and answer the warm-up
FIRST_CHAT_ID = 10_000
WARMUP_CHAT_ID = 900_000  # warm-up chats: apart from the measured ones (flood control)
_TICKS = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------- the bots


def serve(arm: str) -> None:
    """Run one echo bot until SIGTERM, against TELEGRAM_API_BASE_URL."""
    token = os.environ["TELEGRAM_BOT_TOKEN"]
    base_url = os.environ["TELEGRAM_API_BASE_URL"]
    base_file_url = os.environ["TELEGRAM_FILE_BASE_URL"]
    if arm in ("ptb-echo", "ptb-echo-tuned"):
        from telegram import Update
        from telegram.ext import Application, ContextTypes, MessageHandler, filters

        async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
            assert update.message is not None and update.message.text is not None
            await update.message.reply_text(update.message.text)

        builder = Application.builder().token(token).base_url(base_url).base_file_url(base_file_url)
        if arm == "ptb-echo-tuned":
            builder = builder.concurrent_updates(True)
        application = builder.build()
        application.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, echo))
        application.run_polling(allowed_updates=Update.ALL_TYPES)
    elif arm == "transport-echo":
        asyncio.run(_serve_transport_echo(token, base_url, base_file_url))
    else:
        raise SystemExit(f"--serve takes {', '.join(a for a in ARMS if a != 'full-bot')}")


async def _serve_transport_echo(token: str, base_url: str, base_file_url: str) -> None:
    from bot.messages import Inbound, Outbound
    from bot.transports.telegram import TelegramTransport

    transport = TelegramTransport(token, base_url=base_url, base_file_url=base_file_url)
    tasks: set[asyncio.Task[None]] = set()

    async def handle(batch: Sequence[Inbound]) -> None:
        for inbound in batch:  # like the intake: each message answered in its own task
            task = asyncio.create_task(transport.send(
                Outbound(inbound.chat_key, inbound.text or inbound.command or "?")))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, lambda: asyncio.ensure_future(transport.stop()))
    try:
        await transport.run(handle)
    finally:
        await transport.close()


def command_for(arm: str) -> list[str]:
    if arm == "full-bot":
        return [sys.executable, "-m", "bot", "run"]
    return [sys.executable, str(Path(__file__).resolve()), "--serve", arm]


# ---------------------------------------------------------------------- measuring


@dataclass
class Run:
    arm: str
    mode: str
    repetition: int
    messages: int
    seconds: float
    latencies: list[float]  # seconds, one per reply
    cpu: float  # the bot process's user + system seconds over the window
    own_cpu: float  # this process's (fake server and users) over the window
    calls: Counter[str] = field(default_factory=Counter)  # Bot API calls in the window

    @property
    def rate(self) -> float:
        return self.messages / self.seconds

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]

    @property
    def cpu_per_reply(self) -> float:
        return self.cpu / self.messages

    def line(self) -> str:
        per = ", ".join(f"{m} {n / self.messages:.2f}" for m, n in sorted(self.calls.items()))
        return (f"  {self.arm:<15}{self.mode:<7}#{self.repetition}  {self.rate:6.0f} msg/s  "
                f"p50 {self.percentile(50) * 1e3:6.0f} ms  p95 {self.percentile(95) * 1e3:6.0f} ms"
                f"  CPU {self.cpu_per_reply * 1e3:5.2f} ms/reply (server+users "
                f"{self.own_cpu / self.messages * 1e3:4.2f})  calls/msg: {per}")


def process_cpu(pid: int) -> float:
    """User + system seconds of a process (all its threads), from the kernel's accounting."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def own_cpu() -> float:
    times = os.times()
    return times.user + times.system


class Users:
    """The simulated people: they send through the server and watch its sendMessage calls."""

    def __init__(self, api: FakeBotApi) -> None:
        self.api = api
        self.replies: dict[int, list[float]] = {}  # chat -> arrival times of its replies
        self.calls: Counter[str] = Counter()
        self._wanted: dict[int, tuple[int, asyncio.Future[None]]] = {}
        api.listeners.append(self._on_call)

    def _on_call(self, call: ApiCall) -> None:
        self.calls[call.method] += 1
        chat = call.chat_id
        if call.method != "sendMessage" or not call.ok or chat is None:
            return
        self.replies.setdefault(chat, []).append(call.at)
        wanted = self._wanted.get(chat)
        if wanted is not None and len(self.replies[chat]) >= wanted[0] and not wanted[1].done():
            wanted[1].set_result(None)

    async def replies_reach(self, chat: int, count: int) -> None:
        if len(self.replies.get(chat, ())) >= count:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._wanted[chat] = (count, future)
        try:
            await future
        finally:
            self._wanted.pop(chat, None)

    async def closed_loop(self, chats: Sequence[int], messages: int) -> list[float]:
        async def person(chat: int) -> list[float]:
            latencies = []
            for i in range(messages):
                before = len(self.replies.get(chat, ()))
                sent = time.monotonic()
                self.api.send_text(chat, f"message {i} from {chat}")
                await self.replies_reach(chat, before + 1)
                latencies.append(self.replies[chat][before] - sent)
            return latencies

        per_person = await asyncio.gather(*(person(c) for c in chats))
        return [x for xs in per_person for x in xs]

    async def burst(self, chats: Sequence[int], messages: int) -> list[float]:
        before = {c: len(self.replies.get(c, ())) for c in chats}
        sent = time.monotonic()
        for i in range(messages):  # everyone at once: message i of every person, then i+1
            for chat in chats:
                self.api.send_text(chat, f"message {i} from {chat}")
        await asyncio.gather(*(self.replies_reach(c, before[c] + messages) for c in chats))
        return [at - sent for c in chats for at in self.replies[c][before[c]:]]


async def measure(arm: str, mode: str, repetition: int, users: int, messages: int,
                  folder: Path, py_spy: Path | None = None) -> Run:
    api = await FakeBotApi(max_poll_seconds=10.0).start()
    people = Users(api)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BOT_", "TELEGRAM_"))}
    env.update({
        "TELEGRAM_BOT_TOKEN": api.token, "TELEGRAM_API_BASE_URL": api.base_url,
        "TELEGRAM_FILE_BASE_URL": api.base_file_url, "PYTHONPATH": str(ROOT),
        "BOT_DB_PATH": str(folder / f"{arm}-{mode}-{repetition}.sqlite3"),
        "ARGOS_PACKAGES_DIR": str(folder / "no-models"), "BOT_LOG_LEVEL": "WARNING",
    })
    log = (folder / f"{arm}-{mode}-{repetition}.log").open("w")
    process = await asyncio.create_subprocess_exec(
        *command_for(arm), cwd=folder, env=env, stdin=asyncio.subprocess.DEVNULL,
        stdout=log, stderr=log)
    try:
        # Warm-up on chats of its own: the bot has started, opened its connections, filled
        # its caches. One message each keeps the measured chats clear of flood control.
        warm = [WARMUP_CHAT_ID + u for u in range(users)]
        await asyncio.wait_for(people.closed_loop(warm, 1), START_TIMEOUT)
        await asyncio.sleep(0.2)  # let the warm-up's last calls settle
        chats = [FIRST_CHAT_ID + u for u in range(users)]
        people.calls.clear()
        spy = None
        if py_spy is not None:  # samples the bot over the measured window only
            spy = await asyncio.create_subprocess_exec(
                "py-spy", "record", "--pid", str(process.pid), "--rate", "250", "--format",
                "raw", "--output", str(py_spy / f"{arm}-{mode}-{repetition}.txt"),
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
            await asyncio.sleep(1.0)  # attached
        cpu_before, own_before = process_cpu(process.pid), own_cpu()
        started = time.monotonic()
        drive = people.closed_loop if mode == "closed" else people.burst
        latencies = await asyncio.wait_for(drive(chats, messages), REPLY_TIMEOUT)
        seconds = time.monotonic() - started
        cpu, own = process_cpu(process.pid) - cpu_before, own_cpu() - own_before
        calls = Counter(people.calls)
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            await asyncio.wait_for(spy.wait(), 30)
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 30)
            except TimeoutError:
                process.kill()
                await process.wait()
        await api.stop()
        log.close()
    calls.pop("getUpdates", None)  # long polls: as many as the server's answers, not work
    return Run(arm, mode, repetition, len(latencies), seconds, latencies, cpu, own, calls)


# ---------------------------------------------------------------------- reporting


def spread(values: Sequence[float], scale: float = 1.0, digits: int = 0) -> str:
    return (f"{statistics.median(values) * scale:.{digits}f} "
            f"({min(values) * scale:.{digits}f}-{max(values) * scale:.{digits}f})")


def report(runs: list[Run], arms: Sequence[str], modes: Sequence[str]) -> None:
    def of(arm: str, mode: str) -> list[Run]:
        return [r for r in runs if r.arm == arm and r.mode == mode]

    def median(arm: str, mode: str, value: Callable[[Run], float]) -> float:
        return statistics.median(value(r) for r in of(arm, mode))

    print("\nmedian (min-max) over repetitions:")
    for mode in modes:
        for arm in arms:
            group = of(arm, mode)
            print(f"  {arm:<15}{mode:<7}{spread([r.rate for r in group]):>16} msg/s   "
                  f"p50 {spread([r.percentile(50) for r in group], 1e3):>14} ms   "
                  f"p95 {spread([r.percentile(95) for r in group], 1e3):>14} ms   "
                  f"CPU {spread([r.cpu_per_reply for r in group], 1e3, 2):>17} ms/reply")
    if "full-bot" not in arms:
        return
    print("\nfull-bot / baseline (ratio of medians):")
    for base in [a for a in arms if a != "full-bot"]:
        for mode in modes:
            rate = median("full-bot", mode, lambda r: r.rate) / median(base, mode, lambda r: r.rate)
            p95 = (median("full-bot", mode, lambda r: r.percentile(95))
                   / median(base, mode, lambda r: r.percentile(95)))
            cpu = (median("full-bot", mode, lambda r: r.cpu_per_reply)
                   / median(base, mode, lambda r: r.cpu_per_reply))
            print(f"  vs {base:<15}{mode:<7} throughput {rate:4.2f}x   p95 {p95:4.2f}x   "
                  f"CPU per reply {cpu:4.2f}x")
    if "ptb-echo" in arms:
        print("\naims against ptb-echo (PTB as shipped), same run:")
        aims = [("closed", "throughput", 0.9, True), ("burst", "throughput", 0.7, True),
                ("closed", "p95", 2.0, False)]
        for mode, what, aim, at_least in aims:
            if mode not in modes:
                continue
            if what == "throughput":
                ratio = (median("full-bot", mode, lambda r: r.rate)
                         / median("ptb-echo", mode, lambda r: r.rate))
            else:
                ratio = (median("full-bot", mode, lambda r: r.percentile(95))
                         / median("ptb-echo", mode, lambda r: r.percentile(95)))
            met = ratio >= aim if at_least else ratio <= aim
            print(f"  {mode:<7}{what:<11} {ratio:4.2f}x (aim {'>=' if at_least else '<='} "
                  f"{aim}x): {'met' if met else 'NOT met'}")


async def main(users: int, messages: int, repeat: int, arms: Sequence[str],
               modes: Sequence[str], py_spy: Path | None = None) -> None:
    print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPU(s), "
          f"load {os.getloadavg()[0]:.2f}; {users} users x {messages} messages; {repeat} "
          f"repetitions; arms alternated: {', '.join(arms)}; the fake Bot API and the users in "
          f"this process (pid {os.getpid()}), each bot in its own")
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="bench-telegram-") as tmp:
        for repetition in range(1, repeat + 1):
            for mode in modes:
                for arm in arms:
                    run = await measure(arm, mode, repetition, users, messages, Path(tmp),
                                        py_spy)
                    print(run.line(), flush=True)
                    runs.append(run)
    report(runs, arms, modes)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=125, help="people at once (default 125)")
    parser.add_argument("--messages", type=int, default=8, help="messages per person (default 8)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per arm and mode (default 3)")
    parser.add_argument("--arms", default=",".join(DEFAULT_ARMS),
                        help=f"comma-separated, of {', '.join(ARMS)}")
    parser.add_argument("--modes", default=",".join(MODES), help="closed, burst or both")
    parser.add_argument("--py-spy", type=Path, metavar="DIR",
                        help="record each bot with py-spy (raw stacks) into DIR; slows it")
    parser.add_argument("--serve", choices=[a for a in ARMS if a != "full-bot"],
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.arms = [a for a in args.arms.split(",") if a]
    args.modes = [m for m in args.modes.split(",") if m]
    if not (1 <= args.users <= 5000 and 1 <= args.messages <= 1000 and 1 <= args.repeat <= 50):
        parser.error("--users must be 1..5000, --messages 1..1000, --repeat 1..50")
    if not args.arms or set(args.arms) - set(ARMS) or not args.modes or set(args.modes) - set(MODES):
        parser.error(f"--arms takes {', '.join(ARMS)}; --modes takes {', '.join(MODES)}")
    return args


if __name__ == "__main__":
    arguments = parse_args()
    if arguments.serve:
        with contextlib.suppress(KeyboardInterrupt):
            serve(arguments.serve)
    else:
        if arguments.py_spy is not None:
            arguments.py_spy.mkdir(parents=True, exist_ok=True)
        asyncio.run(main(arguments.users, arguments.messages, arguments.repeat, arguments.arms,
                         arguments.modes, arguments.py_spy))
