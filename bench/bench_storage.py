"""Turns per second and p99 turn latency: SQLite in one process, PostgreSQL with 1, 2 and 4
bot processes on one database, on this machine, in the same run.

    python bench/bench_storage.py [--users 40] [--turns 25] [--repeat 3]

Each bot process runs the real dispatcher (per-chat gate, load, engine, localizer, one
transaction, send to an in-memory transport, outbox confirmed) for ``--users`` simulated
people walking the shipped flows at once (a closed loop, no pauses), so N processes serve
N x users people. The arms alternate within each round, every arm on a fresh database, and
the figures are medians over the rounds with their spread (min-max).

Baseline: each backend at the bot's shipped defaults. SQLite: WAL with synchronous=NORMAL (a
commit survives a crash of the bot, not a power cut). PostgreSQL: a throwaway server started
here with the server's own defaults (fsync on), on a Unix socket, and the bot's sessions at
synchronous_commit=off (the same promise as SQLite's; see bot/storage/postgres.py). The extra
arm "synchronous_commit=on" waits for a WAL flush per turn (as BOT_SQLITE_SYNC=FULL would).

The machine's load average is printed before and after: on a shared machine other work
takes CPU from the arms unevenly, so rerun on a quiet one for figures to quote.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.bench_dispatcher import Recorder, next_input, percentile  # noqa: E402
from tests.support.postgres import PostgresServer, find_bindir, missing_reason  # noqa: E402


async def worker(kind: str, where: str, users: int, turns: int, seed: int) -> None:
    """One bot process: ready, wait for "go" on stdin, run, print the latencies as JSON."""
    from bot.dispatcher import Dispatcher
    from bot.flowspec.library import default_flows_dir, load_library
    from bot.i18n.localizer import Localizer

    if kind == "postgres":
        from bot.storage.postgres import PostgresStore

        store: Any = await PostgresStore.open(where)
    else:
        from bot.storage.sqlite import SqliteStore

        store = await SqliteStore.open(where)
    library = load_library([default_flows_dir()])
    transport = Recorder()
    dispatcher = Dispatcher(store, lambda: library, Localizer(), transport)
    latencies: list[float] = []

    async def user(number: int) -> None:
        rng = random.Random(seed + number)
        chat = f"bench:{seed}:{number}"
        for turn in range(turns):
            inbound = next_input(chat, rng, transport.callbacks(chat), turn)
            t0 = time.perf_counter()
            await dispatcher.handle(inbound)
            latencies.append(time.perf_counter() - t0)

    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    start, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(user(n) for n in range(users)))
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    await store.close()
    print(json.dumps({"elapsed": elapsed, "cpu": cpu, "latencies": latencies}), flush=True)


def server_cpu(server: PostgresServer) -> float:
    """CPU seconds used so far by the server's processes (Linux /proc; 0 elsewhere)."""
    try:
        postmaster = int((server.data / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0.0
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(entry.name) == postmaster:  # with its ended children (cutime + cstime)
            total += sum(int(f) for f in fields[11:15])
        elif int(fields[1]) == postmaster:
            total += int(fields[11]) + int(fields[12])  # utime + stime, in clock ticks
    return total / os.sysconf("SC_CLK_TCK")


async def run_arm(kind: str, where: str, processes: int, users: int, turns: int,
                  seed: int, server: PostgresServer) -> tuple[float, float, float, float]:
    """Start the processes, release them together: aggregate turns/s, p99 (ms), and the CPU
    milliseconds per turn of the bot processes and of the database server."""
    procs = [await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--worker", kind, where, str(users), str(turns),
        str(seed + 1000 * n), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        cwd=REPO) for n in range(processes)]
    for proc in procs:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 120)
        assert line.strip() == b"ready", line
    started, server_before = time.perf_counter(), server_cpu(server)
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write(b"go\n")
        await proc.stdin.drain()
    results = []
    for proc in procs:
        assert proc.stdout is not None
        results.append(json.loads(await asyncio.wait_for(proc.stdout.readline(), 600)))
    wall = time.perf_counter() - started
    server_used = server_cpu(server) - server_before if kind == "postgres" else 0.0
    for proc in procs:
        await proc.wait()
    latencies = [x for r in results for x in r["latencies"]]
    bot_used = sum(r["cpu"] for r in results)  # SQLite's own thread included
    return (len(latencies) / wall, percentile(latencies, 0.99) * 1e3,
            bot_used / len(latencies) * 1e3, server_used / len(latencies) * 1e3)


def summary(samples: list[float]) -> str:
    return f"{statistics.median(samples):8.1f} ({min(samples):.1f}-{max(samples):.1f})"


async def bench(args: argparse.Namespace) -> None:
    bindir = find_bindir()
    if bindir is None:
        raise SystemExit(missing_reason())
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
          f"{os.cpu_count()} CPU(s); {args.users} users x {args.turns} turns per process, "
          f"{args.repeat} rounds")
    server = PostgresServer(bindir)
    # Server defaults (fsync and synchronous_commit on), only on a Unix socket.
    server.start(fast=False)
    arms = [("SQLite, 1 process", "sqlite", 1, None), ("PostgreSQL, 1 process", "postgres", 1, None),
            ("PostgreSQL, 2 processes", "postgres", 2, None),
            ("PostgreSQL, 4 processes", "postgres", 4, None),
            ("PostgreSQL, 1 process, synchronous_commit=on", "postgres", 1, "on")]
    rates: dict[str, list[float]] = {name: [] for name, *_ in arms}
    p99s: dict[str, list[float]] = {name: [] for name, *_ in arms}
    cpus: dict[str, list[tuple[float, float]]] = {name: [] for name, *_ in arms}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for round_number in range(args.repeat):
                order = arms if round_number % 2 == 0 else list(reversed(arms))
                for name, kind, processes, sync in order:
                    if kind == "postgres":
                        where = server.new_database()
                        if sync is not None:
                            where += f"&options=-c%20synchronous_commit%3D{sync}"
                    else:
                        where = str(Path(tmp) / f"r{round_number}.sqlite3")
                    rate, p99, bot_cpu, db_cpu = await run_arm(
                        kind, where, processes, args.users, args.turns, args.seed + round_number,
                        server)
                    rates[name].append(rate)
                    p99s[name].append(p99)
                    cpus[name].append((bot_cpu, db_cpu))
                    print(f"  round {round_number + 1}: {name:<48} {rate:8.1f} turns/s  "
                          f"p99 {p99:7.2f} ms  CPU/turn: bot {bot_cpu:.2f} ms, "
                          f"server {db_cpu:.2f} ms", flush=True)
    finally:
        server.stop()
    print("\nmedian (min-max) over the rounds:")
    for name, *_ in arms:
        bot = statistics.median(c[0] for c in cpus[name])
        db = statistics.median(c[1] for c in cpus[name])
        print(f"{name:<48} {summary(rates[name])} turns/s   p99 {summary(p99s[name])} ms   "
              f"CPU/turn bot {bot:.2f} + server {db:.2f} ms")
    median = {name: statistics.median(values) for name, values in rates.items()}
    one = median["PostgreSQL, 1 process"]
    print(f"\nPostgreSQL 2 processes / 1 process: {median['PostgreSQL, 2 processes'] / one:.2f}x "
          "(goal >= 1.6)")
    print(f"PostgreSQL 4 processes / 1 process: {median['PostgreSQL, 4 processes'] / one:.2f}x")
    print(f"PostgreSQL 1 process / SQLite: {one / median['SQLite, 1 process']:.2f}x (goal >= 0.5)")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("(CPU per turn bounds throughput at cores / (bot + server) ms: with 2 cores, one "
          "PostgreSQL process already needs most of them)")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        kind, where, users, turns, seed = sys.argv[2:7]
        asyncio.run(worker(kind, where, int(users), int(turns), int(seed)))
        return
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=40, help="simulated people per process")
    parser.add_argument("--turns", type=int, default=25, help="turns per person")
    parser.add_argument("--repeat", type=int, default=3, help="rounds (arms alternate)")
    parser.add_argument("--seed", type=int, default=7)
    asyncio.run(bench(parser.parse_args()))


if __name__ == "__main__":
    main()
