"""Kill soak: `python -m bot run` killed with SIGKILL at random moments, restarted on the
same SQLite file, against the fake Bot API on loopback. Prints what was lost.

Two loads, alternated kill by kill:
  closed loop  N people each write one message after another, each once answered;
  burst        one person sends B messages at once, and the kill lands while they are read.

Then a graceful stop: SIGTERM in the middle of the closed loop, timed.

    python bench/bench_crash.py --kills 20 --people 20 --burst 500
"""

from __future__ import annotations

import argparse
import asyncio
import random
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.bot_process import BotProcess, Person, converse, processed_count
from tests.support.fake_bot_api import FakeBotApi

WELCOME = "Welcome. Please choose your language."


async def soak(kills: int, people: int, burst: int, seed: int) -> None:
    chance = random.Random(seed)
    api = await FakeBotApi(max_poll_seconds=1.0).start()
    with tempfile.TemporaryDirectory() as tmp:
        bot = BotProcess(api, Path(tmp), BOT_LOG_LEVEL="WARNING")
        await bot.start()
        loop_people = [Person(api, chat_id=10_000 + i) for i in range(people)]
        done = asyncio.Event()
        talking = [asyncio.create_task(converse(p, done)) for p in loop_people]
        restarts: list[float] = []
        burst_people: list[Person] = []
        for kill in range(kills):
            if kill % 2:  # a burst, killed while it is read or answered
                person = Person(api, chat_id=20_000 + kill)
                await person.say("hi")
                await person.say("English")
                for n in range(burst):
                    api.send_text(person.chat_id, f"burst {n}", language_code=None)
                person.sent += burst
                burst_people.append(person)
                await asyncio.sleep(chance.uniform(0.0, 3.0))
            else:
                await asyncio.sleep(chance.uniform(0.3, 2.0))
            bot.kill()
            await bot.wait()
            started = time.monotonic()
            await bot.start()
            restarts.append(time.monotonic() - started)
        await asyncio.sleep(2.0)

        stop_started = time.monotonic()
        bot.signal(signal.SIGTERM)
        code = await bot.wait(within=30)
        stop_took = time.monotonic() - stop_started
        await bot.start()
        await asyncio.sleep(2.0)
        done.set()
        await asyncio.wait_for(asyncio.gather(*talking), 300)
        for person in burst_people:
            await api.wait_until(
                lambda p=person: processed_count(bot.db, p.chat_id)[1] == 0, within=120,
                what="bursts read")
        bot.signal(signal.SIGTERM)
        await bot.wait(within=30)

        lost_loop = sum(len(p.lost) for p in loop_people)
        sent_loop = sum(p.sent for p in loop_people)
        dup_loop = sum(len(p.replies()) - p.sent for p in loop_people)
        over = sum(max(0, p.replies().count(WELCOME) - 1) for p in loop_people + burst_people)
        unread = 0
        for person in burst_people:
            handled, waiting = processed_count(bot.db, person.chat_id)
            unread += person.sent - handled + waiting
        waits = sorted(w for p in loop_people for w in p.waits)
        print(f"{kills} SIGKILLs ({kills - kills // 2} in a closed loop of {people} people, "
              f"{kills // 2} in bursts of {burst}); restart to polling: median "
              f"{statistics.median(restarts):.2f} s, max {max(restarts):.2f} s")
        print(f"closed loop: {sent_loop} messages, {lost_loop} never answered "
              f"({lost_loop / kills:.2f} per kill), {dup_loop} answered twice "
              f"({dup_loop / kills:.2f} per kill); answer wait p50 "
              f"{waits[len(waits) // 2]:.2f} s, p99 {waits[int(len(waits) * 0.99)]:.2f} s")
        print(f"bursts: {sum(p.sent for p in burst_people)} messages, {unread} never read")
        print(f"conversations started over: {over}")
        print(f"SIGTERM under load: exit {code} in {stop_took:.2f} s")
    await api.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--people", type=int, default=20)
    parser.add_argument("--burst", type=int, default=500)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    asyncio.run(soak(args.kills, args.people, args.burst, args.seed))


if __name__ == "__main__":
    main()
