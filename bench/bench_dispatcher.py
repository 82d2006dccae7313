"""Turns per second and turn latency through the dispatcher with the real SQLite store.

    python bench/bench_dispatcher.py [--users 200] [--turns 30] [--cores 1]

N simulated users walk the shipped flows at random (seeded): they tap a button of the
last question, or type an answer where free text is asked. Every turn goes through the
dispatcher: per-chat lock, load, pure engine, localizer, one SQLite transaction, send to an
in-memory transport, outbox confirmed. The baseline, measured in the same run on the same
inputs, is the pure engine alone (no storage, no localizer).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bot.dispatcher import Dispatcher
from bot.engine.events import Say
from bot.engine.runtime import resume
from bot.engine.session import Session
from bot.flowspec.library import FlowLibrary, default_flows_dir, load_library
from bot.i18n.localizer import Localizer
from bot.messages import Inbound, InboundKind, Outbound
from bot.storage.sqlite import SqliteStore
from bot.transports.memory import MemoryTransport


def next_input(chat: str, rng: random.Random, callbacks: Sequence[str] | None, turn: int) -> Inbound:
    """The simulated person's next message, given the buttons of the last question."""
    if callbacks is None or turn == 0:
        return Inbound.from_text(chat, "hello")
    if callbacks:
        return Inbound(chat, InboundKind.BUTTON, button=rng.choice(callbacks))
    return Inbound.from_text(chat, "My letter arrived on Monday and I do not understand it.")


class Recorder(MemoryTransport):
    """Keeps only each chat's last question, so memory stays flat however long the run."""

    def __init__(self) -> None:
        super().__init__()
        self.last: dict[str, Outbound] = {}

    async def send(self, message: Outbound) -> None:
        if message.token is not None:
            self.last[message.chat_key] = message

    def callbacks(self, chat: str) -> list[str] | None:
        last = self.last.get(chat)
        return None if last is None else [b.callback for b in last.buttons]


def percentile(samples: list[float], q: float) -> float:
    return statistics.quantiles(samples, n=1000)[int(q * 1000) - 1] if len(samples) > 1 else samples[0]


def report(name: str, latencies: list[float], elapsed: float) -> float:
    rate = len(latencies) / elapsed
    print(f"{name:<48} {len(latencies):>7} turns  {rate:>9.0f} turns/s  "
          f"p50 {percentile(latencies, 0.5) * 1e3:6.3f} ms  p99 {percentile(latencies, 0.99) * 1e3:6.3f} ms")
    return rate


def engine_only(library: FlowLibrary, users: int, turns: int, seed: int) -> float:
    latencies: list[float] = []
    start = time.perf_counter()
    for user in range(users):
        rng = random.Random(seed + user)
        chat = f"bench:{user}"
        session = Session()
        callbacks: list[str] | None = None
        for turn in range(turns):
            inbound = next_input(chat, rng, callbacks, turn)
            t0 = time.perf_counter()
            result = resume(library, session, inbound)
            latencies.append(time.perf_counter() - t0)
            session = result.session
            questions = [e for e in result.events if isinstance(e, Say) and e.token is not None]
            if questions:
                callbacks = [c.callback for c in questions[-1].choices]
    return report("baseline: pure engine", latencies, time.perf_counter() - start)


async def with_storage(library: FlowLibrary, users: int, turns: int, seed: int, db: Path,
                       rate: float | None = None) -> float:
    """All users at once. With ``rate``, each user pauses between turns (exponential think
    time) so that together they offer ``rate`` turns/s: latency then shows service time
    at that load rather than the queue of a flood with no pauses."""
    store = await SqliteStore.open(db)
    transport = Recorder()
    dispatcher = Dispatcher(store, lambda: library, Localizer(), transport)
    latencies: list[float] = []

    async def user(number: int) -> None:
        rng = random.Random(seed + number)
        chat = f"bench:{number}"
        for turn in range(turns):
            if rate:
                await asyncio.sleep(rng.expovariate(rate / users))
            inbound = next_input(chat, rng, transport.callbacks(chat), turn)
            t0 = time.perf_counter()
            await dispatcher.handle(inbound)
            latencies.append(time.perf_counter() - t0)

    start = time.perf_counter()
    await asyncio.gather(*(user(n) for n in range(users)))
    elapsed = time.perf_counter() - start
    await store.close()
    name = f"{users} users, offered {rate:.0f}/s" if rate else f"{users} users, no pauses"
    return report(f"dispatcher+SQLite {name}", latencies, elapsed)


async def sequential(library: FlowLibrary, users: int, turns: int, seed: int, db: Path) -> float:
    """One turn at a time: the latency a single person sees with no one else around."""
    store = await SqliteStore.open(db)
    transport = Recorder()
    dispatcher = Dispatcher(store, lambda: library, Localizer(), transport)
    latencies: list[float] = []
    start = time.perf_counter()
    for number in range(users):
        rng = random.Random(seed + number)
        chat = f"bench:{number}"
        for turn in range(turns):
            inbound = next_input(chat, rng, transport.callbacks(chat), turn)
            t0 = time.perf_counter()
            await dispatcher.handle(inbound)
            latencies.append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - start
    await store.close()
    return report("dispatcher + SQLite (one at a time)", latencies, elapsed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--turns", type=int, default=30)
    parser.add_argument("--cores", type=int, default=1, help="CPUs to pin to (0 = no pinning)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rate", type=float, default=2000,
                        help="offered load for the paced run, turns/s (the issue's target)")
    args = parser.parse_args()
    if args.cores and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[: args.cores]))
    library = load_library([default_flows_dir()])
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"{len(library.flows)} flows, {args.users} users x {args.turns} turns, {cpus} CPU(s)")
    base = engine_only(library, args.users, args.turns, args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        full = asyncio.run(with_storage(library, args.users, args.turns, args.seed,
                                        Path(tmp) / "a.sqlite3"))
        asyncio.run(with_storage(library, args.users, args.turns, args.seed,
                                 Path(tmp) / "c.sqlite3", rate=args.rate))
        asyncio.run(sequential(library, min(args.users, 50), args.turns, args.seed,
                               Path(tmp) / "b.sqlite3"))
    print(f"ratio: dispatcher+SQLite throughput is {full / base:.3f} of the pure engine's "
          f"({base / full:.0f}x slower)")


if __name__ == "__main__":
    main()
