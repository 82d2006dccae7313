"""Start-up time of the local chat: ``printf 'hi\\n' | python -m bot chat --db <new file>``.

    python bench/bench_startup.py [--runs N] [--no-bytecode]

Each run starts a fresh process, writes "hi" and closes its input, and times the first line
the bot prints (the question it asks) and the exit. CPU is the child's
own user + system time (``resource.getrusage(RUSAGE_CHILDREN)``), which other load on the
machine disturbs less than the wall clock. Arms are alternated run by run:

  python        ``python -c pass``: the interpreter alone (the floor)
  asyncio       ``python -c "import asyncio"``: what any asyncio program pays
  chat same db  the bot on one database file for every run (``--db tmp`` typed again and
                again): it asks its open question again, then answers "hi"
  chat new db   the bot on a new database file each run (the schema is created first)
  chat cold     a new database in a new folder each run: nothing beside it from an earlier
                start (the flows snapshot, the cache of parsed flow and catalog files)

Python modules are byte-compiled as an install compiles them (pip does, and the Docker
image keeps them): into a temporary PYTHONPYCACHEPREFIX, filled by one warm-up run.
``--no-bytecode`` measures a checkout run with PYTHONDONTWRITEBYTECODE instead, every
module compiled on every start. Aim (issue 11): bot chat's first answer in <= 0.25 s.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
AIM_SECONDS = 0.25


@dataclass
class Arm:
    label: str
    argv: list[str]
    first: list[float] = field(default_factory=list)  # seconds to the first line out
    done: list[float] = field(default_factory=list)  # seconds to exit
    cpu: list[float] = field(default_factory=list)  # user + system seconds of the child


def run_once(arm: Arm, env: dict[str, str], folder: Path, index: int) -> None:
    cold = folder / f"cold{index}"
    cold.mkdir(exist_ok=True)
    argv = [a.replace("{new}", str(folder / f"run{index}.sqlite3"))
            .replace("{same}", str(folder / "same.sqlite3"))
            .replace("{cold}", str(cold / "bot.sqlite3")) for a in arm.argv]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    child = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, env=env, cwd=folder)
    assert child.stdin is not None and child.stdout is not None
    child.stdin.write(b"hi\n")
    child.stdin.close()
    line = child.stdout.readline()
    first = time.perf_counter() - started
    child.stdout.read()
    code = child.wait(timeout=60)
    done = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if code != 0:
        raise SystemExit(f"{arm.label} exited with {code}")
    if "chat" in arm.label and not line.strip():
        raise SystemExit("the bot answered nothing")
    arm.first.append(first if line else done)
    arm.done.append(done)
    arm.cpu.append((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))


def spread(values: list[float]) -> str:
    ordered = sorted(values)
    q1, _, q3 = statistics.quantiles(ordered, n=4) if len(ordered) >= 4 else (
        ordered[0], 0.0, ordered[-1])
    return (f"median {statistics.median(ordered) * 1e3:6.0f} ms  (IQR {q1 * 1e3:4.0f}-"
            f"{q3 * 1e3:4.0f}, min {ordered[0] * 1e3:4.0f}, max {ordered[-1] * 1e3:4.0f})")


def main(runs: int, bytecode: bool) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOT_")}
    env["PYTHONPATH"] = str(ROOT)
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        folder = Path(tmp)
        env["ARGOS_PACKAGES_DIR"] = str(folder / "no-models")
        if bytecode:
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            env["PYTHONPYCACHEPREFIX"] = str(folder / "pycache")
        else:
            env["PYTHONDONTWRITEBYTECODE"] = "1"
            env.pop("PYTHONPYCACHEPREFIX", None)
        arms = [Arm("python", [sys.executable, "-c", "pass"]),
                Arm("asyncio", [sys.executable, "-c", "import asyncio"]),
                Arm("chat same db", [sys.executable, "-m", "bot", "chat", "--db", "{same}"]),
                Arm("chat new db", [sys.executable, "-m", "bot", "chat", "--db", "{new}"]),
                Arm("chat cold", [sys.executable, "-m", "bot", "chat", "--db", "{cold}"])]
        for arm in arms:  # warm-up: fills the bytecode cache and the OS file cache
            run_once(arm, env, folder, -1)
            arm.first.clear()
            arm.done.clear()
            arm.cpu.clear()
        for index in range(runs):
            for arm in arms:
                run_once(arm, env, folder, index)
    print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPU(s), "
          f"load {os.getloadavg()[0]:.2f}; {runs} runs per arm, alternated; "
          + ("bytecode compiled once (as installed)" if bytecode else "no bytecode (compiled each start)"))
    for arm in arms:
        print(f"{arm.label:<13} first answer {spread(arm.first)}")
        print(f"{'':<13} exit         {spread(arm.done)}")
        print(f"{'':<13} CPU          {spread(arm.cpu)}")
    floor = statistics.median(arms[1].first)
    for arm in arms[2:]:
        bot = statistics.median(arm.first)
        print(f"{arm.label}: first answer {bot * 1e3:.0f} ms median ({bot - floor:+.3f} s over "
              f"importing asyncio); aim <= {AIM_SECONDS * 1e3:.0f} ms: "
              f"{'met' if bot <= AIM_SECONDS else 'NOT met'}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15, help="runs per arm (default 15)")
    parser.add_argument("--no-bytecode", action="store_true",
                        help="compile every module on every start (PYTHONDONTWRITEBYTECODE)")
    arguments = parser.parse_args()
    if not 1 <= arguments.runs <= 1000:
        parser.error("--runs must be 1..1000")
    main(arguments.runs, not arguments.no_bytecode)
