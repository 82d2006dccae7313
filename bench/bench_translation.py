"""Offline translation latency: live (CTranslate2 + SentencePiece on an .argosmodel) vs cache hit.

    python bench/bench_translation.py [--sentences 300] [--threads 1]
    python bench/bench_translation.py --model PATH.argosmodel --source en --target fa

By default a tiny hand-weighted model is built on the spot (tests/support/tiny_argos.py),
so the run needs no download; its live latency is the FLOOR of the real pipeline (SentencePiece
tokenising, sentence splitting, CTranslate2 beam search, masking, the hop to the worker
thread), not the speed of a real model. Pass ``--model`` to time a real .argosmodel.

Everything is measured in the same run on the same sentences:
  direct   the loaded package's translate() called on this thread (no masking, no thread hop)
  live     ArgosTranslator.translate(): cache miss, one worker thread, masking
  cached   ArgosTranslator.translate() again on the same sentences: cache hit
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

WORDS = ("hello", "friend", "help", "lawyer", "the", "appeal", "letter", "home", "office",
         "you", "can", "ask", "a", "free", "adviser", "about", "your", "case", "today")
EXTRAS = ("{name}", "0808 800 0630", "https://www.gov.uk/asylum-support", "help@example.org")


def sentences(count: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    out: list[str] = []
    seen: set[str] = set()
    while len(out) < count:
        words = [rng.choice(WORDS) for _ in range(rng.randint(4, 14))]
        if rng.random() < 0.3:
            words.insert(rng.randrange(len(words)), rng.choice(EXTRAS))
        text = " ".join(words).capitalize() + rng.choice(".?!")
        if text not in seen:
            seen.add(text)
            out.append(text)
    return out


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def report(name: str, latencies: list[float]) -> float:
    p50 = percentile(latencies, 0.5)
    print(f"{name:<8} {len(latencies):>5} calls  p50 {p50 * 1e3:9.3f} ms  "
          f"p99 {percentile(latencies, 0.99) * 1e3:9.3f} ms  "
          f"mean {statistics.fmean(latencies) * 1e3:9.3f} ms")
    return p50


async def run(args: argparse.Namespace, work: Path) -> None:
    from bot.translation.argos import ArgosTranslator
    from bot.translation.argos_models import install_models
    from tests.support.tiny_argos import build_tiny_model

    if args.model is None:
        start = time.perf_counter()
        archive = build_tiny_model(work, args.source, args.target)
        print(f"built tiny model {archive.name} in {(time.perf_counter() - start) * 1e3:.1f} ms")
    else:
        archive = Path(args.model)
    packages = work / "packages"
    install_models([archive], packages)

    translator = ArgosTranslator(packages, timeout=120, threads=args.threads,
                                 cache_size=2 * args.sentences)
    try:
        start = time.perf_counter()
        await translator.warm_up()
        print(f"CTranslate2 import + model load (warm_up): "
              f"{(time.perf_counter() - start) * 1e3:.1f} ms")
        texts = sentences(args.sentences)

        direct_translation = translator._argos_translation((args.source, args.target))
        direct = []
        for text in texts:
            start = time.perf_counter()
            direct_translation.translate(text)
            direct.append(time.perf_counter() - start)

        live = []
        for text in texts:
            start = time.perf_counter()
            await translator.translate(text, args.source, args.target)
            live.append(time.perf_counter() - start)

        cached = []
        for text in texts:
            start = time.perf_counter()
            await translator.translate(text, args.source, args.target)
            cached.append(time.perf_counter() - start)

        stats = translator.cache_stats()
        assert stats.hits == len(texts) and stats.misses == len(texts), stats
        print(f"{len(texts)} distinct sentences, CTranslate2 intra_threads={args.threads}, "
              f"{os.cpu_count()} CPU(s)")
        p_direct = report("direct", direct)
        p_live = report("live", live)
        p_cached = report("cached", cached)
        print(f"ratio: a live translation (p50) costs {p_live / p_cached:,.0f}x a cache hit; "
              f"live - direct (thread hop + masking) = {(p_live - p_direct) * 1e3:+.3f} ms "
              f"on the direct {p_direct * 1e3:.3f} ms")
        example = texts[0]
        print(f"example: {example!r} -> "
              f"{await translator.translate(example, args.source, args.target)!r}")
    finally:
        translator.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sentences", type=int, default=300)
    parser.add_argument("--threads", type=int, default=1, help="CTranslate2 intra_threads")
    parser.add_argument("--model", help="a real .argosmodel to time instead of the tiny one")
    parser.add_argument("--source", default="en")
    parser.add_argument("--target", default="fa")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-translation-") as tmp:
        work = Path(tmp)
        # Keep anything written under $HOME (and the default packages folder) in tmp.
        for var in ("XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME"):
            os.environ[var] = str(work / var.lower())
        os.environ["ARGOS_PACKAGES_DIR"] = str(work / "packages")
        asyncio.run(run(args, work))


if __name__ == "__main__":
    main()
