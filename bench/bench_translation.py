"""Offline translation: what a message costs with NLLB-200 600M's shape, against an Argos model's.

    python bench/bench_translation.py [--reps 20] [--sentences 200]

Part 1, the pipeline and the cache, on the tiny hand-weighted models of the tests (built
on the spot): OfflineTranslator.translate_batch with a cache miss (masking, sentence split,
the hop to the worker thread, CTranslate2 on a model that costs almost nothing) against a
cache hit, for the Argos and the NLLB family. This is the FLOOR of the pipeline.

Part 2, model cost, on two random-weight int8 models of real shapes, built once and cached
in ~/.cache/helpbot-bench (outside the repository; about 620 MB and a minute to build):

    nllb-600m   NLLB-200 distilled 600M: 12+12 layers, d_model 1024, FFN 4096, 16 heads,
                vocabulary 256,206, embeddings shared (as facebook/nllb-200-distilled-600M)
    argos       an Argos package's Transformer: 6+6 layers, d_model 512, FFN 2048, 8 heads,
                vocabulary 32,000 (the OpenNMT "transformer base" argos-train uses)

Each model is timed in a fresh process per thread count (so load time and RSS are its own):
load time, RSS after load and at the peak, and p50/p95 of one message of 10, 20 and 40
tokens, with CTranslate2 intra_threads 1 and 2 and beam 1 and 2 (2 is CTranslate2's
default), the configurations alternated round-robin. Random weights do not know when to
stop, so every call decodes exactly as many tokens as it was given (min = max decoding
length), which is what a real translation of that length costs. The NLLB model is called
through the bot's own MultilingualRunner (language token, target prefix, first token
dropped); the Argos model with ArgosPackage's options (beam aside).

Part 3, the same NLLB shape with a vocabulary map (vmap.txt, as the install writes it): the
output limited to 128k, 96k, 64k and 32k of its 256,206 tokens (the real model's count per
direction is printed by `models install`/`models list`; the NLLB vocabulary itself was not
available offline), each size in a fresh process, sizes alternated round-robin over
--rounds rounds; then the median p50 per size with its spread, the ratio to the full
vocabulary with library defaults (the baseline), and the size at which 20 tokens take
800 ms. "alternating": a per-direction map of that size each way with every call going the
other way (en->ps, ps->en, ...), as in a relay: each change of direction costs the
output-layer reset of MultilingualRunner._select_output_layer (a CTranslate2 quirk).

    python bench/bench_translation.py --parts 3 --rounds 3    # part 3 alone, ~5 minutes

Goals (issue 12): a 20-token message <= 800 ms p50 with the NLLB-600M shape on 2 cores;
RSS with it loaded <= 1.2 GB; a cache hit < 1 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

CACHE = Path(os.environ.get("HELPBOT_BENCH_CACHE") or Path.home() / ".cache" / "helpbot-bench")
LENGTHS = (10, 20, 40)
THREADS = (1, 2)
BEAMS = (1, 2)
SHAPES: dict[str, dict[str, int]] = {
    "argos": {"layers": 6, "d_model": 512, "ffn": 2048, "heads": 8, "vocabulary": 32_000},
    "nllb-600m": {"layers": 12, "d_model": 1024, "ffn": 4096, "heads": 16, "vocabulary": 256_206},
}
# The FLORES-200 codes the bot uses; the rest of NLLB's 202 are stand-ins of the same form.
LANGUAGE_TOKENS = ["eng_Latn", "pbt_Arab", "prs_Arab", "pes_Arab", "urd_Arab", "hin_Deva"]

WORDS = ("hello", "friend", "help", "lawyer", "the", "appeal", "letter", "home", "office",
         "you", "can", "ask", "a", "free", "adviser", "about", "your", "case", "today")
EXTRAS = ("{name}", "0808 800 0630", "https://www.gov.uk/asylum-support", "help@example.org")


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def rss_mb() -> tuple[float, float]:
    """(current, peak) resident set size of this process in MB, from /proc."""
    values = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024
    return values["VmRSS"], values["VmHWM"]


# --------------------------------------------------------------------------- part 1


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


async def pipeline(count: int, work: Path) -> float:
    from bot.translation.argos_models import install_models
    from bot.translation.installed import install_path
    from bot.translation.translator import OfflineTranslator
    from tests.support.tiny_argos import build_tiny_model
    from tests.support.tiny_nllb import build_tiny_nllb

    models = work / "models"
    install_models([build_tiny_model(work, "en", "fa")], models)
    install_path(build_tiny_nllb(work), models, accept_licence=True)
    texts = sentences(count)
    worst_hit = 0.0
    print(f"part 1: the pipeline on tiny models, {count} distinct sentences, one per message")
    for family, target, order in (("argos", "fa", ("argos",)), ("nllb", "ps", ("nllb",))):
        translator = OfflineTranslator(models, timeout=120, cache_size=2 * count, order=order)
        try:
            await translator.warm_up()
            live, cached = [], []
            for text in texts:  # alternated: a miss, then the hit of the same text
                start = time.perf_counter()
                await translator.translate_batch([text], "en", target, cacheable=True)
                live.append(time.perf_counter() - start)
                start = time.perf_counter()
                [hit] = await translator.translate_batch([text], "en", target, cacheable=True)
                cached.append(time.perf_counter() - start)
                assert hit.cached
            for name, samples in (("miss", live), ("hit", cached)):
                print(f"  {family:<6} en->{target:<3} cache {name:<4} "
                      f"p50 {percentile(samples, .5) * 1e3:8.3f} ms  "
                      f"p95 {percentile(samples, .95) * 1e3:8.3f} ms  mean "
                      f"{statistics.fmean(samples) * 1e3:8.3f} ms")
            worst_hit = max(worst_hit, percentile(cached, 0.5))
        finally:
            translator.close()
    return worst_hit


# --------------------------------------------------------------------------- part 2: models


def build_shape(kind: str, folder: Path) -> None:
    """A random-weight int8 CTranslate2 model of a real shape (see the module doc)."""
    import numpy as np
    from ctranslate2.specs import transformer_spec

    from tests.support.tiny_argos import _train_sentencepiece

    shape = SHAPES[kind]
    d, ffn, size = shape["d_model"], shape["ffn"], shape["vocabulary"]
    rng = np.random.default_rng(12)

    def weights(*dims: int) -> Any:
        return (rng.standard_normal(dims, dtype=np.float32) * 0.02).astype(np.float32)

    def norm(spec: Any) -> None:
        spec.gamma = np.ones(d, dtype=np.float32)
        spec.beta = np.zeros(d, dtype=np.float32)

    def linear(spec: Any, out: int, inp: int) -> None:
        spec.weight = weights(out, inp)
        spec.bias = weights(out)

    spec = transformer_spec.TransformerSpec.from_config((shape["layers"], shape["layers"]),
                                                        num_heads=shape["heads"])
    embeddings = weights(size, d)  # one array: shared, as NLLB ties them
    spec.encoder.embeddings[0].weight = embeddings
    spec.decoder.embeddings.weight = embeddings
    spec.decoder.projection.weight = embeddings
    spec.decoder.projection.bias = np.zeros(size, dtype=np.float32)
    norm(spec.encoder.layer_norm)
    norm(spec.decoder.layer_norm)
    for layer in [*spec.encoder.layer, *spec.decoder.layer]:
        norm(layer.self_attention.layer_norm)
        linear(layer.self_attention.linear[0], 3 * d, d)
        linear(layer.self_attention.linear[1], d, d)
        norm(layer.ffn.layer_norm)
        linear(layer.ffn.linear_0, ffn, d)
        linear(layer.ffn.linear_1, d, ffn)
        if hasattr(layer, "attention"):
            norm(layer.attention.layer_norm)
            linear(layer.attention.linear[0], d, d)
            linear(layer.attention.linear[1], 2 * d, d)
            linear(layer.attention.linear[2], d, d)
    sp = _train_sentencepiece(list(WORDS))
    pieces = [sp.id_to_piece(i) for i in range(3, sp.get_piece_size())]
    specials = LANGUAGE_TOKENS if kind != "argos" else []
    fillers = size - 4 - len(pieces) - len(specials) - (1 if specials else 0)
    vocab = ["<s>", "<pad>", "</s>", "<unk>", *pieces, *(f"▁w{i}" for i in range(fillers)),
             *specials, *(["<mask>"] if specials else [])]
    assert len(vocab) == size
    spec.register_source_vocabulary(vocab)
    spec.register_target_vocabulary(vocab)
    spec.config.decoder_start_token = "</s>" if kind != "argos" else "<s>"
    spec.validate()
    spec.optimize(quantization="int8")
    staging = folder.with_name(folder.name + ".building")
    if staging.exists():
        import shutil

        shutil.rmtree(staging)
    model_dir = staging / "model" if kind == "argos" else staging
    model_dir.mkdir(parents=True)
    spec.save(str(model_dir))
    tokenizer = "sentencepiece.model" if kind == "argos" else "sentencepiece.bpe.model"
    (staging / tokenizer).write_bytes(sp.serialized_model_proto())
    if kind == "argos":
        (staging / "metadata.json").write_text(json.dumps({"from_code": "en", "to_code": "fa",
                                                           "type": "translate"}))
    staging.rename(folder)


def model_folder(kind: str) -> Path:
    folder = CACHE / f"{kind}-shape-int8"
    if not (folder / ("model/model.bin" if kind == "argos" else "model.bin")).is_file():
        CACHE.mkdir(parents=True, exist_ok=True)
        print(f"building the {kind} shape once into {folder} ...", flush=True)
        start = time.perf_counter()
        build_shape(kind, folder)
        print(f"  built in {time.perf_counter() - start:.0f} s", flush=True)
    return folder


def mapped_copy(folder: Path, allowed: int, work: Path, per_direction: bool = False) -> Path:
    """The model with a vmap.txt letting it output only ``allowed`` tokens (hard links: no copy).

    Which tokens does not matter for the cost, only how many: the install writes the map
    of the real model from its vocabulary (bot/translation/ct2_folder.py). ``per_direction``:
    as the install writes it, one line per source language (en->ps and ps->en get
    different tokens, ``allowed`` each), so alternating directions costs the output-layer
    reset of MultilingualRunner._select_output_layer."""
    copy = work / f"{folder.name}-{allowed}"
    copy.mkdir()
    for file in folder.iterdir():
        os.link(file, copy / file.name)
    vocabulary = json.loads((folder / "shared_vocabulary.json").read_text(encoding="utf-8"))
    fillers = vocabulary[4:-len(LANGUAGE_TOKENS) - 1]
    if per_direction:
        lines = ["\t" + " ".join(LANGUAGE_TOKENS),
                 "eng_Latn\t" + " ".join(fillers[:allowed]),
                 "pbt_Arab\t" + " ".join(fillers[-allowed:])]
    else:
        lines = ["\t" + " ".join([*fillers[:allowed], "pbt_Arab"])]
    (copy / "vmap.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return copy


def worker(kind: str, folder: Path, threads: int, reps: int,
           lengths: tuple[int, ...] = LENGTHS, alternate: bool = False) -> dict[str, Any]:
    """In its own process: load the model, then time every (beam, length) round-robin."""
    import ctranslate2  # imported before the clock starts: the import is not the model

    from bot.translation.argos_package import LENGTH_PENALTY, MAX_BATCH_TOKENS, ArgosPackage
    from bot.translation.families import NLLB
    from bot.translation.multilingual import MultilingualRunner

    rss_before, _ = rss_mb()
    start = time.perf_counter()
    if kind == "argos":
        runner: Any = ArgosPackage(folder, threads=threads)
    else:
        runner = MultilingualRunner(folder, NLLB, "sentencepiece.bpe.model", threads=threads)
    load = time.perf_counter() - start
    rss_loaded, _ = rss_mb()
    assert isinstance(runner.translator, ctranslate2.Translator)
    rng = random.Random(3)
    inputs = {n: [f"▁w{rng.randrange(5000)}" for _ in range(n)] for n in lengths}

    turn = [0]

    def once(beam: int, n: int) -> float:
        # With alternate, every call goes the other way (en->ps, ps->en, ...), as in a relay.
        source, target = ("ps", "en") if alternate and turn[0] % 2 else ("en", "ps")
        turn[0] += 1
        start = time.perf_counter()
        if kind == "argos":
            runner.translator.translate_batch(
                [inputs[n]], replace_unknowns=True, max_batch_size=MAX_BATCH_TOKENS,
                batch_type="tokens", beam_size=beam, length_penalty=LENGTH_PENALTY,
                min_decoding_length=n, max_decoding_length=n)
        else:
            runner.beam_size = beam
            [out] = runner.translate_tokens([inputs[n]], source, target, min_length=n + 1,
                                            max_length=n + 1)
            assert len(out) == n
        return time.perf_counter() - start

    configs = [(beam, n) for beam in BEAMS for n in lengths]
    for beam, n in configs:  # one warm-up call each
        once(beam, n)
    samples: dict[str, list[float]] = {f"{b}/{n}": [] for b, n in configs}
    for rep in range(reps):
        shift = rep % len(configs)
        for beam, n in configs[shift:] + configs[:shift]:
            samples[f"{beam}/{n}"].append(once(beam, n))
    rss_now, rss_peak = rss_mb()
    return {"kind": kind, "threads": threads, "load": load, "rss_before": rss_before,
            "vmap": kind != "argos" and runner.vocabulary_map is not None,
            "resets": getattr(runner, "resets", 0),
            "rss_loaded": rss_loaded, "rss_after": rss_now, "rss_peak": rss_peak,
            "samples": samples, "size": sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())}


def models_part(reps: int) -> list[dict[str, Any]]:
    for kind in SHAPES:  # built (once) before anything is timed
        model_folder(kind)
    print(f"\npart 2: model cost, random int8 weights, {reps} calls per cell, "
          f"{os.cpu_count()} CPU(s), load average {os.getloadavg()[0]:.2f}")
    results = []
    for threads in THREADS:
        for kind in SHAPES:  # the two models alternated, each in a fresh process
            done = subprocess.run(
                [sys.executable, __file__, "--worker", kind, "--threads", str(threads),
                 "--reps", str(reps)], capture_output=True, text=True, check=True, cwd=REPO)
            results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(f"{'model':<10} {'threads':>7} {'load':>7} {'RSS loaded':>11} {'RSS peak':>9}  beam  "
          + "  ".join(f"{n:>2} tokens p50 / p95  " for n in LENGTHS))
    for r in results:
        for beam in BEAMS:
            cells = []
            for n in LENGTHS:
                s = r["samples"][f"{beam}/{n}"]
                cells.append(f"{percentile(s, .5) * 1e3:7.0f} / {percentile(s, .95) * 1e3:5.0f} ms")
            print(f"{r['kind']:<10} {r['threads']:>7} {r['load']:>6.2f}s {r['rss_loaded']:>8.0f} MB "
                  f"{r['rss_peak']:>6.0f} MB  {beam:>4}  " + "  ".join(cells))
    return results


def mapped_part(reps: int, sizes: list[int], rounds: int) -> dict[str, list[dict[str, Any]]]:
    """NLLB-600M's shape, 2 threads, 20 tokens, with the output limited to ``sizes`` tokens;
    each size in a fresh process, the sizes alternated round-robin for ``rounds`` rounds.
    "N/alt": a per-direction map of N tokens each way, directions alternating every call."""
    arms = [str(n) for n in sizes] + [f"{n}/alt" for n in sizes if n]
    done: dict[str, list[dict[str, Any]]] = {arm: [] for arm in arms}
    for round_ in range(rounds):
        shift = round_ % len(arms)
        print(f"\npart 3, round {round_ + 1}/{rounds}: nllb-600m, 2 threads, 20 tokens, output limited "
              f"by a vocabulary map, load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
        for arm in arms[shift:] + arms[:shift]:
            allowed, _, alt = arm.partition("/")
            command = [sys.executable, __file__, "--worker", "nllb-600m", "--threads", "2",
                       "--reps", str(reps), "--output-tokens", allowed] + (["--alternate"] if alt else [])
            run = subprocess.run(command, capture_output=True, text=True, check=True, cwd=REPO)
            result = json.loads(run.stdout.strip().splitlines()[-1])
            assert result["vmap"] == bool(int(allowed))
            done[arm].append(result)
            cells = [f"beam {b}: p50 {percentile(result['samples'][f'{b}/20'], .5) * 1e3:5.0f} / p95 "
                     f"{percentile(result['samples'][f'{b}/20'], .95) * 1e3:5.0f} ms" for b in BEAMS]
            label = f"{int(allowed) or 256_206:>7,} of 256,206 tokens" + (" each way, alternating"
                                                                         if alt else "")
            print(f"  {label:<46} " + "   ".join(cells)
                  + (f"   ({result['resets']} resets)" if alt else ""))
    return done


def summarise_mapped(done: dict[str, list[dict[str, Any]]]) -> None:
    """Median over rounds of each arm's p50, with the spread, and the break-even size."""
    print("\npart 3 summary (2 threads, 20 tokens): median of the rounds' p50 [min-max], ratio to "
          "the full vocabulary with library defaults")
    medians: dict[str, dict[int, float]] = {}
    for arm, results in done.items():
        medians[arm] = {}
        for beam in BEAMS:
            p50s = [percentile(r["samples"][f"{beam}/20"], .5) for r in results]
            medians[arm][beam] = statistics.median(p50s)
    for beam in BEAMS:
        base = medians.get("0", {}).get(beam)
        for arm, results in done.items():
            p50s = [percentile(r["samples"][f"{beam}/20"], .5) * 1e3 for r in results]
            allowed, _, alt = arm.partition("/")
            ratio = f"  {medians[arm][beam] / base:.2f}x" if base else ""
            print(f"  beam {beam}  {int(allowed) or 256_206:>7,} tokens{' alternating' if alt else '':<12} "
                  f"p50 {medians[arm][beam] * 1e3:5.0f} ms [{min(p50s):.0f}-{max(p50s):.0f}]{ratio}"
                  f"  {'<= 800 ms' if medians[arm][beam] <= 0.8 else '> 800 ms'}")
        points = sorted((int(a), m[beam]) for a, m in medians.items() if "/" not in a and int(a))
        below = [p for p in points if p[1] <= 0.8]
        above = [p for p in points if p[1] > 0.8]
        if below and above:
            (n0, t0), (n1, t1) = max(below), min(above)
            if n1 > n0:
                even = n0 + (0.8 - t0) * (n1 - n0) / (t1 - t0)
                print(f"  beam {beam}: break-even for 800 ms at about {even:,.0f} output tokens "
                      f"(linear between {n0:,} and {n1:,})")
        elif points:
            print(f"  beam {beam}: every size {'met' if not above else 'missed'} 800 ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=20, help="timed calls per configuration")
    parser.add_argument("--sentences", type=int, default=200, help="part 1: messages")
    parser.add_argument("--worker", choices=sorted(SHAPES), help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--output-tokens", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--alternate", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--mapped", default="0,128000,96000,64000,32000",
                        help="part 3: output vocabulary sizes to time (0: no map; comma-separated)")
    parser.add_argument("--rounds", type=int, default=2, help="part 3: rounds over the sizes")
    parser.add_argument("--mapped-reps", type=int, default=8, help="part 3: timed calls per cell")
    parser.add_argument("--parts", default="1,2,3", help="which parts to run (comma-separated)")
    args = parser.parse_args()
    if args.worker:
        folder = model_folder(args.worker)
        if args.output_tokens is not None:
            if not args.output_tokens:
                print(json.dumps(worker(args.worker, folder, args.threads, args.reps, (20,))))
                return
            with tempfile.TemporaryDirectory(prefix="bench-vmap-", dir=CACHE) as tmp:
                mapped = mapped_copy(folder, args.output_tokens, Path(tmp), args.alternate)
                print(json.dumps(worker(args.worker, mapped, args.threads, args.reps, (20,),
                                        args.alternate)))
            return
        print(json.dumps(worker(args.worker, folder, args.threads, args.reps)))
        return
    parts = {p.strip() for p in args.parts.split(",")}
    hit = None
    if "1" in parts:
        with tempfile.TemporaryDirectory(prefix="bench-translation-") as tmp:
            work = Path(tmp)
            for var in ("XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME"):
                os.environ[var] = str(work / var.lower())
            hit = asyncio.run(pipeline(args.sentences, work))
    results = models_part(args.reps) if "2" in parts else []
    sizes = [int(n) for n in args.mapped.split(",") if n.strip()]
    mapped = mapped_part(args.mapped_reps, sizes, args.rounds) if "3" in parts and sizes else {}
    if mapped:
        summarise_mapped(mapped)
    print("\ngoals (2 threads):")
    nllb2 = next((r for r in results if r["kind"] == "nllb-600m" and r["threads"] == 2), None)
    argos2 = next((r for r in results if r["kind"] == "argos" and r["threads"] == 2), None)
    for beam in BEAMS if nllb2 and argos2 else ():
        assert nllb2 is not None and argos2 is not None
        p50 = percentile(nllb2["samples"][f"{beam}/20"], .5)
        ratio = p50 / percentile(argos2["samples"][f"{beam}/20"], .5)
        print(f"  nllb-600m 20 tokens, beam {beam}: p50 {p50 * 1e3:.0f} ms (goal <= 800 ms: "
              f"{'met' if p50 <= 0.8 else 'NOT met'}); {ratio:.1f}x the Argos shape")
    peaks = [r["rss_peak"] for r in [*results, *(r for rs in mapped.values() for r in rs)]
             if r["kind"] == "nllb-600m"]
    if peaks:
        print(f"  nllb-600m RSS peak {max(peaks):.0f} MB (goal <= 1200 MB: "
              f"{'met' if max(peaks) <= 1200 else 'NOT met'})")
    if hit is not None:
        print(f"  cache hit p50 {hit * 1e3:.3f} ms (goal < 1 ms: {'met' if hit < 1e-3 else 'NOT met'})")

if __name__ == "__main__":
    main()
