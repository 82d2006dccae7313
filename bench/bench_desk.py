"""What the volunteer desk costs as the queue grows: a handover, /available, /queue, a tick.

    python bench/bench_desk.py [--sizes 10,100,1000,10000] [--runs 15]

For each size, a real SQLite store on a temporary file holds that many waiting chats
(built in bulk through the store's own turn commits: mixed languages, queues and
priorities, 1% crisis and 9% deadline, queued over the last two hours) and three available
volunteers, each already offered every chat they may see, as the running bot would have.
Then, through the real dispatcher and desk with the shipped flows:

- handover: a new person taps "My asylum case" in /human: the turn that queues the chat,
  tells them their place and offers it to volunteers;
- /available: a volunteer just registered comes on shift and is offered the whole queue;
- /queue: a volunteer asks what waits for them;
- tick: the desk's clock (run every few seconds) with nothing due.

Sizes are alternated within each run, so a drift of the machine falls on all of them alike.
It prints the median and the spread (10th-90th percentile) per size, and how each grows:
the median over the median at the smallest size. Also what one volunteer is sent.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from bot.dispatcher import Dispatcher
from bot.engine.events import Handover
from bot.engine.session import Session
from bot.flowspec.library import FlowLibrary, default_flows_dir, load_library
from bot.flowspec.model import Priority
from bot.handover.desk import DeskSettings, HandoverDesk
from bot.handover.model import Status, Volunteer
from bot.i18n.localizer import Localizer
from bot.messages import Inbound, InboundKind, Outbound
from bot.storage.base import TurnRecord
from bot.storage.sqlite import SqliteStore
from bot.transports.memory import MemoryTransport

LANGUAGES = ("fa", "ps", "prs", "en", "ur", "hi")
QUEUES = ("legal", "general", "safeguarding")
VOLUNTEERS = (Volunteer("bench:farid", "Farid", ("fa", "prs", "en"), ("*",), available=True),
              Volunteer("bench:emma", "Emma", ("en",), ("legal", "general"), available=True),
              Volunteer("bench:zara", "Zara", ("ps", "en"), ("*",), available=True))
OPERATIONS = ("handover", "/available", "/queue", "tick")
SETTLE_SECONDS = 0.1


class Clock:
    """Simulated wall clock of the store and the desk; ``step`` seconds pass per reading."""

    def __init__(self, start: float) -> None:
        self.now = start
        self.step = 0.0

    def __call__(self) -> float:
        self.now += self.step
        return self.now


@dataclass
class Bench:
    size: int
    store: SqliteStore
    dispatcher: Dispatcher
    transport: MemoryTransport
    clock: Clock
    samples: dict[str, list[float]] = field(default_factory=lambda: {op: [] for op in OPERATIONS})
    people: int = 0
    sent_on_available: list[int] = field(default_factory=list)
    queue_bytes: list[int] = field(default_factory=list)

    async def send(self, inbound: Inbound) -> list[Outbound]:
        await self.dispatcher.handle(inbound)
        return self.transport.take()

    async def timed(self, op: str, action: Callable[[], Awaitable[object]]) -> None:
        # Background work of earlier steps (sent replies leaving the outbox 50 ms later, in
        # this store or another size's) finishes first, and the garbage collector runs now
        # rather than inside the measurement: each sample is the one operation alone.
        await asyncio.sleep(SETTLE_SECONDS)
        gc.collect()
        start = time.perf_counter()
        await action()
        self.samples[op].append(time.perf_counter() - start)


async def open_bench(folder: Path, size: int, library: FlowLibrary, seed: int) -> Bench:
    clock = Clock(time.time())
    store = await SqliteStore.open(folder / f"desk-{size}.sqlite3", clock=clock)
    localizer = Localizer()
    desk = HandoverDesk(store, localizer, settings=DeskSettings(hours="00:00-00:00"), clock=clock,
                        flow_queues=library.handover_queues)
    transport = MemoryTransport()
    bench = Bench(size, store, Dispatcher(store, lambda: library, localizer, transport, desk=desk),
                  transport, clock)
    for volunteer in VOLUNTEERS:
        await store.add_volunteer(volunteer)
    # The waiting chats, queued over the last two hours, through the store's turn commits
    # (many turns share one transaction, as under load).
    rng = random.Random(seed)
    start = clock.now
    clock.now -= 2 * 3600
    clock.step = 2 * 3600 / size
    turns = []
    for n in range(size):
        roll = rng.random()
        priority = Priority.CRISIS if roll < 0.01 else Priority.DEADLINE if roll < 0.1 else \
            Priority.NORMAL
        language = rng.choice(LANGUAGES)
        handover = Handover("talk_to_person", "waiting", rng.choice(QUEUES), priority,
                            "Person asked for a volunteer about their asylum case.")
        turns.append(TurnRecord(f"bench:waiting:{n}", Session(language=language, started=True),
                                (), [handover]))
    for chunk in range(0, size, 1000):
        await asyncio.gather(*(store.commit_turn(t) for t in turns[chunk:chunk + 1000]))
    clock.now, clock.step = start, 0.001
    # As the running bot would have: every chat offered to the volunteers who may see it.
    offered = await desk.offer()
    await store.mark_sent([p.id for p in offered])
    assert len(await store.entries(Status.WAITING)) == size
    return bench


async def handover(bench: Bench) -> None:
    bench.people += 1
    chat = f"bench:person:{bench.people}"
    [pick, *_] = await bench.send(Inbound.from_text(chat, "hello"))
    await bench.send(Inbound(chat, InboundKind.BUTTON, button=pick.buttons[0].callback))
    topic = (await bench.send(Inbound.from_text(chat, "/human")))[-1]
    tap = Inbound(chat, InboundKind.BUTTON, button=topic.buttons[2].callback)  # My asylum case
    await bench.timed("handover", lambda: bench.dispatcher.handle(tap))
    sent = bench.transport.take()
    assert any(m.key == "handover.queued" for m in sent), [m.key for m in sent]


async def available(bench: Bench, run: int) -> None:
    volunteer = Volunteer(f"bench:shift:{run}", f"Shift {run}", ("fa", "en"), ("*",))
    await bench.store.add_volunteer(volunteer)
    await bench.timed("/available", lambda: bench.dispatcher.handle(
        Inbound.from_text(volunteer.chat_key, "/available")))
    sent = bench.transport.take()
    bench.sent_on_available.append(sum(1 for m in sent if m.chat_key == volunteer.chat_key))
    await bench.send(Inbound.from_text(volunteer.chat_key, "/away"))  # the next run's is new


async def queue(bench: Bench) -> None:
    asked = Inbound.from_text(VOLUNTEERS[0].chat_key, "/queue")
    await bench.timed("/queue", lambda: bench.dispatcher.handle(asked))
    bench.queue_bytes.append(sum(len(m.text.encode()) for m in bench.transport.take()))


async def tick(bench: Bench) -> None:
    await bench.timed("tick", bench.dispatcher.tick)
    bench.transport.take()


def spread(samples: list[float]) -> tuple[float, float, float]:
    deciles = statistics.quantiles(samples, n=10, method="inclusive")
    return statistics.median(samples), deciles[0], deciles[-1]


async def run(sizes: list[int], runs: int, warmup: int, seed: int) -> None:
    library = load_library([default_flows_dir()])
    with tempfile.TemporaryDirectory() as folder:
        benches = []
        for size in sizes:
            built = time.perf_counter()
            benches.append(await open_bench(Path(folder), size, library, seed))
            print(f"built {size} waiting chats in {time.perf_counter() - built:.1f} s", flush=True)
        try:
            for n in range(warmup + runs):
                for bench in benches:  # sizes alternated within each run
                    await handover(bench)
                    await available(bench, n)
                    await queue(bench)
                    await tick(bench)
                if n < warmup:
                    for bench in benches:
                        for samples in bench.samples.values():
                            samples.clear()
                        bench.sent_on_available.clear()
                        bench.queue_bytes.clear()
        finally:
            for bench in benches:
                await bench.store.close()
    print(f"\n{runs} runs after {warmup} warm-up; ms; spread = 10th-90th percentile; "
          f"growth = median / median at {sizes[0]} waiting")
    print(f"{'operation':<11} {'waiting':>7} {'median':>9} {'spread':>17} {'growth':>8}")
    for op in OPERATIONS:
        base = statistics.median(benches[0].samples[op])
        for bench in benches:
            median, low, high = spread(bench.samples[op])
            print(f"{op:<11} {bench.size:>7} {median * 1e3:>9.3f} "
                  f"{f'{low * 1e3:.3f}-{high * 1e3:.3f}':>17} {median / base:>7.2f}x")
    print("\nwhat one volunteer receives")
    for bench in benches:
        print(f"{bench.size:>7} waiting: /available sends {max(bench.sent_on_available)} "
              f"message(s); /queue answers {max(bench.queue_bytes)} bytes")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10,100,1000,10000",
                        help="waiting chats, comma-separated, smallest first")
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    asyncio.run(run([int(s) for s in args.sizes.split(",")], args.runs, args.warmup, args.seed))


if __name__ == "__main__":
    main()
