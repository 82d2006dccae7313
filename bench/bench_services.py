"""What the directory of services costs: reading it, and a search.

    python bench/bench_services.py [--runs N]

Arms, alternated run by run, each timed in this process (medians and spread):

  parse        services/ read and checked from the YAML text (a first start, or an edit)
  cached       the same through the cache of parsed files kept beside the database (every
               later start: the bot's start-up path; PyYAML is not needed)
  search       one find_help search: a typed town matched against every place's spellings,
               then the services for a need there, most local first (a person's turn)
  search x100  the search on a directory of 100 times as many entries (a large charity's)
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import date
from pathlib import Path

from bot.flowspec.yaml_cache import YamlCache
from bot.services.load import default_services_dir, load_directory
from bot.services.matching import find_place, matching_services
from bot.services.model import Directory

TODAY = date(2026, 12, 2)


def timed(work: Callable[[], object], repeat: int) -> float:
    started = time.perf_counter()
    for _ in range(repeat):
        work()
    return (time.perf_counter() - started) / repeat


def spread(values: list[float]) -> str:
    ordered = sorted(values)
    q1, q3 = ordered[len(ordered) // 4], ordered[(3 * len(ordered)) // 4]
    return (f"median {statistics.median(values) * 1e3:8.3f} ms  (IQR {q1 * 1e3:.3f}-{q3 * 1e3:.3f}, "
            f"min {ordered[0] * 1e3:.3f}, max {ordered[-1] * 1e3:.3f})")


def main(runs: int) -> None:
    folder = default_services_dir()
    directory = load_directory(folder, TODAY)
    big = Directory(directory.places, tuple(
        replace(s, id=f"{s.id}_{i}") for i in range(100) for s in directory.services))
    with tempfile.TemporaryDirectory() as tmp:
        cache_file = Path(tmp) / "parsed-yaml.cache"

        def cached() -> object:
            with YamlCache(cache_file):  # read from the file, as at start-up
                return load_directory(folder, TODAY)

        cached()  # fill it
        arms: dict[str, tuple[Callable[[], object], int]] = {
            "parse": (lambda: load_directory(folder, TODAY), 1),
            "cached": (cached, 5),
            "search": (lambda: matching_services(
                directory, ["legal_advice"],
                (find_place(directory, "ګلاسګو") or directory.places["uk"]).id, "ps"), 200),
            "search x100": (lambda: matching_services(big, ["legal_advice"], "glasgow", "ps"), 20),
        }
        results: dict[str, list[float]] = {name: [] for name in arms}
        for _ in range(runs):
            for name, (work, repeat) in arms.items():
                results[name].append(timed(work, repeat))
    print(f"{len(directory.services)} services, {len(directory.places)} places; {runs} runs per arm, "
          f"alternated")
    for name, values in results.items():
        print(f"{name:<12} {spread(values)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    main(parser.parse_args().runs)
