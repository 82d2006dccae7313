"""Offline translation: what a message costs with NLLB-200 600M's shape, against an Argos model's.

    python bench/bench_translation.py              # all parts, ~8 minutes on a quiet machine
    python bench/bench_translation.py --reps 20 --mapped-reps 10 --rounds 3   # tighter figures

Part 1, the pipeline and the cache, on the tiny hand-weighted models of the tests (built
on the spot): OfflineTranslator.translate_batch with a cache miss (masking, sentence split,
the hop to the worker thread, CTranslate2 on a model that costs almost nothing) against a
cache hit, for the Argos and the NLLB family. This is the FLOOR of the pipeline.

Part 2, model cost, on two random-weight int8 models of real shapes, built once and cached
in ~/.cache/helpbot-bench (outside the repository; about 620 MB and a minute to build), and
the NLLB shape again with a per-direction vocabulary map of --part2-map tokens each way
(by default MAX_OUTPUT_TOKENS, the install's cap), every call going the other way (en->ps,
ps->en, ...), so paying the output-layer reset each time:

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

Part 4, the cap the install ships (MAX_OUTPUT_TOKENS in bot/translation/ct2_folder.py: no
direction's map allows more, whatever the model's vocabulary): exactly that many tokens per
direction, every call going the other way (so paying the output-layer reset each time),
against all 256,206 tokens (no map, the baseline), both alternating directions; 10, 20 and
40 tokens, beam 1 and 2, 2 threads; the two arms alternated over --rounds rounds, each in a
fresh process. It prints the median p50 of the rounds per cell with its spread, the ratio
cap / all tokens, and whether 20 tokens meet 800 ms.

    python bench/bench_translation.py --parts 4 --rounds 3 --cap-reps 7   # ~6 minutes

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
    builds = []
    for n in range(5):  # the tests build these tiny models; "well under a second" is shown here
        start = time.perf_counter()
        build_tiny_nllb(work / f"build-{n}")
        builds.append((time.perf_counter() - start) * 1000)
    print(f"part 0: the tests' tiny NLLB model built in {statistics.median(builds):.0f} ms median "
          f"(min {min(builds):.0f}, max {max(builds):.0f}, 5 builds)")
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
    if per_direction:  # exactly ``allowed`` each way, the language tokens included
        each = allowed - len(LANGUAGE_TOKENS)
        lines = ["\t" + " ".join(LANGUAGE_TOKENS),
                 "eng_Latn\t" + " ".join(fillers[:each]),
                 "pbt_Arab\t" + " ".join(fillers[-each:])]
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


def models_part(reps: int, mapped: int) -> list[dict[str, Any]]:
    """Argos and NLLB-600M shapes, and (``mapped``) NLLB-600M with a per-direction map of
    that many tokens each way, every call going the other way (en->ps, ps->en, ...)."""
    for kind in SHAPES:  # built (once) before anything is timed
        model_folder(kind)
    print(f"\npart 2: model cost, random int8 weights, {reps} calls per cell, "
          f"{os.cpu_count()} CPU(s), load average {os.getloadavg()[0]:.2f}")
    results = []
    arms = [("argos", None), ("nllb-600m", None)] + ([("nllb-600m", mapped)] if mapped else [])
    for threads in THREADS:
        for kind, allowed in arms:  # the models alternated, each in a fresh process
            command = [sys.executable, __file__, "--worker", kind, "--threads", str(threads),
                       "--reps", str(reps), "--all-lengths"]
            if allowed:
                command += ["--output-tokens", str(allowed), "--alternate"]
            done = subprocess.run(command, capture_output=True, text=True, check=True, cwd=REPO)
            result = json.loads(done.stdout.strip().splitlines()[-1])
            result["label"] = kind + (f" {allowed // 1000}k" if allowed else "")
            results.append(result)
            print(f"  {result['label']}, {threads} thread(s) done, load average "
                  f"{os.getloadavg()[0]:.2f}", flush=True)
    print(f"{'model':<14} {'threads':>7} {'load':>7} {'RSS loaded':>11} {'RSS peak':>9}  beam  "
          + "  ".join(f"{n:>2} tokens p50 / p95  " for n in LENGTHS))
    for r in results:
        for beam in BEAMS:
            cells = []
            for n in LENGTHS:
                s = r["samples"][f"{beam}/{n}"]
                cells.append(f"{percentile(s, .5) * 1e3:7.0f} / {percentile(s, .95) * 1e3:5.0f} ms")
            print(f"{r['label']:<14} {r['threads']:>7} {r['load']:>6.2f}s {r['rss_loaded']:>8.0f} MB "
                  f"{r['rss_peak']:>6.0f} MB  {beam:>4}  " + "  ".join(cells))
    return results


#: Part 3's variants of an arm ("64000@1thread"): environment and thread count of the worker.
#: Levers tried and left out: compute_type int8 vs int8_float32 (on CPU "int8" IS
#: int8_float32: the same arm); return_scores (already off by default); CT2_USE_MKL=1 (on
#: this AMD EPYC CTranslate2 runs oneDNN for int8; forcing Intel MKL made one 20-token call
#: take over 120 s, so it is opt-in here: "@mkl"); CT2_USE_EXPERIMENTAL_PACKED_GEMM (needs
#: MKL, and packed weights cannot be used with a vocabulary map: Dense::select_weights
#: refuses them). The decoding limit in proportion to the input is already the runtime's
#: (multilingual.decoding_limit); here every call decodes exactly n tokens.
VARIANTS: dict[str, tuple[dict[str, str], int]] = {
    "": ({}, 2),
    "1thread": ({}, 1),
    "mkl": ({"CT2_USE_MKL": "1"}, 2),
}
DEFAULT_ARMS = "0,128000,96000,64000,32000,64000/alt,64000@1thread"


def parse_arm(arm: str) -> tuple[int, bool, str]:
    """"64000/alt@mkl" -> (64000 output tokens, directions alternate, variant "mkl")."""
    head, _, variant = arm.partition("@")
    allowed, _, alt = head.partition("/")
    if variant not in VARIANTS or alt not in ("", "alt"):
        raise SystemExit(f"unknown arm {arm!r}: N[/alt][@{'|'.join(v for v in VARIANTS if v)}]")
    return int(allowed), bool(alt), variant


def describe_arm(arm: str) -> str:
    allowed, alt, variant = parse_arm(arm)
    label = f"{allowed or 256_206:,} tokens" + (", alternating" if alt and not allowed else
                                                ", per direction, alternating" if alt else "")
    return label + (f", {variant}" if variant else "")


def mapped_part(reps: int, arms: list[str], rounds: int, part: int = 3,
                lengths: tuple[int, ...] = (20,)) -> dict[str, list[dict[str, Any]]]:
    """NLLB-600M's shape, ``lengths`` tokens, each arm in a fresh process, the arms alternated
    round-robin for ``rounds`` rounds (see the module doc)."""
    done: dict[str, list[dict[str, Any]]] = {arm: [] for arm in arms}
    for round_ in range(rounds):
        shift = round_ % len(arms)
        print(f"\npart {part}, round {round_ + 1}/{rounds}: nllb-600m, "
              f"{'/'.join(map(str, lengths))} tokens (20 shown), output limited by a "
              f"vocabulary map, load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}",
              flush=True)
        for arm in arms[shift:] + arms[:shift]:
            allowed, alt, variant = parse_arm(arm)
            env, threads = VARIANTS[variant]
            command = [sys.executable, __file__, "--worker", "nllb-600m", "--threads", str(threads),
                       "--reps", str(reps), "--output-tokens", str(allowed)]
            command += ["--all-lengths"] if lengths != (20,) else []
            run = subprocess.run(command + (["--alternate"] if alt else []), capture_output=True,
                                 text=True, check=True, cwd=REPO, env={**os.environ, **env})
            result = json.loads(run.stdout.strip().splitlines()[-1])
            assert result["vmap"] == bool(allowed)
            result["loadavg"] = os.getloadavg()[0]
            assert not alt or not allowed or result["resets"] >= reps  # a reset every call
            done[arm].append(result)
            cells = [f"beam {b}: p50 {percentile(result['samples'][f'{b}/20'], .5) * 1e3:5.0f} / p95 "
                     f"{percentile(result['samples'][f'{b}/20'], .95) * 1e3:5.0f} ms" for b in BEAMS]
            print(f"  {describe_arm(arm):<52} " + "   ".join(cells)
                  + (f"   ({result['resets']} resets)" if alt else "")
                  + f"   load {result['loadavg']:.2f}", flush=True)
    return done


def summarise_mapped(done: dict[str, list[dict[str, Any]]]) -> None:
    """Median over rounds of each arm's p50, with the spread, and the break-even size."""
    print("\npart 3 summary (20 tokens): median of the rounds' p50 [min-max over rounds], ratio "
          "to the baseline (all 256,206 tokens, library defaults, 2 threads)")
    medians = {arm: {beam: statistics.median(percentile(r["samples"][f"{beam}/20"], .5)
                                             for r in results) for beam in BEAMS}
               for arm, results in done.items()}
    for beam in BEAMS:
        base = medians.get("0", {}).get(beam)
        for arm, results in done.items():
            p50s = [percentile(r["samples"][f"{beam}/20"], .5) * 1e3 for r in results]
            ratio = f"  {medians[arm][beam] / base:.2f}x" if base else ""
            print(f"  beam {beam}  {describe_arm(arm):<52} p50 {medians[arm][beam] * 1e3:5.0f} ms "
                  f"[{min(p50s):.0f}-{max(p50s):.0f}]{ratio}"
                  f"  {'<= 800 ms' if medians[arm][beam] <= 0.8 else '> 800 ms'}")
        points = sorted((parse_arm(a)[0] or 256_206, m[beam]) for a, m in medians.items()
                        if parse_arm(a)[1:] == (False, ""))
        below = [p for p in points if p[1] <= 0.8]
        above = [p for p in points if p[1] > 0.8]
        if below and above and min(above)[0] > max(below)[0]:
            (n0, t0), (n1, t1) = max(below), min(above)
            even = n0 + (0.8 - t0) * (n1 - n0) / (t1 - t0)
            print(f"  beam {beam}: 800 ms at about {even:,.0f} output tokens (linear between "
                  f"{n0:,} and {n1:,}; noisy when the machine is shared)")
        elif points:
            print(f"  beam {beam}: {'every size timed met' if not above else 'no size timed met'} "
                  "800 ms; no break-even between them")


def summarise_cap(done: dict[str, list[dict[str, Any]]], cap: int) -> None:
    """Part 4: per beam and length, the median p50 over rounds [min-max] of all tokens and
    of the cap, and their ratio."""
    print(f"\npart 4 summary: the install's cap, {cap:,} tokens per direction, against all "
          "256,206, directions alternating, 2 threads: median of the rounds' p50 [min-max]")
    print(f"  {'beam':>4} {'tokens':>6}  {'all 256,206':>20}  {f'cap {cap:,}':>20}  ratio")
    full, capped = done["0/alt"], done[f"{cap}/alt"]

    def cell(results: list[dict[str, Any]], key: str) -> tuple[float, str]:
        p50s = [percentile(r["samples"][key], .5) * 1e3 for r in results]
        median = statistics.median(p50s)
        return median, f"{median:5.0f} ms [{min(p50s):.0f}-{max(p50s):.0f}]"

    for beam in BEAMS:
        for n in LENGTHS:
            key = f"{beam}/{n}"
            (base, base_text), (mine, mine_text) = cell(full, key), cell(capped, key)
            verdict = f"  (goal <= 800 ms: {'met' if mine <= 800 else 'NOT met'})" if n == 20 else ""
            print(f"  {beam:>4} {n:>6}  {base_text:>20}  {mine_text:>20}  {mine / base:.2f}x{verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=3, help="part 2: timed calls per configuration")
    parser.add_argument("--sentences", type=int, default=200, help="part 1: messages")
    parser.add_argument("--worker", choices=sorted(SHAPES), help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--output-tokens", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--alternate", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--all-lengths", action="store_true", help=argparse.SUPPRESS)
    from bot.translation.ct2_folder import MAX_OUTPUT_TOKENS

    parser.add_argument("--part2-map", type=int, default=MAX_OUTPUT_TOKENS,
                        help="part 2: also time NLLB-600M with a per-direction map of this many "
                             "tokens each way, directions alternating (0: not)")
    parser.add_argument("--mapped", default=DEFAULT_ARMS,
                        help="part 3: arms N[/alt][@variant], comma-separated: N output tokens "
                             "(0: no map), /alt per-direction map with alternating directions, "
                             f"variants {', '.join(v for v in VARIANTS if v)}")
    parser.add_argument("--rounds", type=int, default=2, help="part 3: rounds over the sizes")
    parser.add_argument("--mapped-reps", type=int, default=5, help="part 3: timed calls per cell")
    parser.add_argument("--cap-reps", type=int, default=5, help="part 4: timed calls per cell")
    parser.add_argument("--parts", default="1,2,3,4", help="which parts to run (comma-separated)")
    args = parser.parse_args()
    if args.worker:
        folder = model_folder(args.worker)
        lengths = LENGTHS if args.all_lengths else (20,)
        if not args.output_tokens:
            print(json.dumps(worker(args.worker, folder, args.threads, args.reps, lengths,
                                    args.alternate)))
            return
        with tempfile.TemporaryDirectory(prefix="bench-vmap-", dir=CACHE) as tmp:
            mapped = mapped_copy(folder, args.output_tokens, Path(tmp), args.alternate)
            print(json.dumps(worker(args.worker, mapped, args.threads, args.reps, lengths,
                                    args.alternate)))
        return
    parts = {p.strip() for p in args.parts.split(",")}
    hit = None
    if "1" in parts:
        with tempfile.TemporaryDirectory(prefix="bench-translation-") as tmp:
            work = Path(tmp)
            for var in ("XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME"):
                os.environ[var] = str(work / var.lower())
            hit = asyncio.run(pipeline(args.sentences, work))
    results = models_part(args.reps, args.part2_map) if "2" in parts else []
    arms = [a.strip() for a in args.mapped.split(",") if a.strip()]
    for arm in arms:
        parse_arm(arm)
    mapped = mapped_part(args.mapped_reps, arms, args.rounds) if "3" in parts and arms else {}
    if mapped:
        summarise_mapped(mapped)
    cap_arms = ["0/alt", f"{MAX_OUTPUT_TOKENS}/alt"]
    capped = mapped_part(args.cap_reps, cap_arms, args.rounds, 4, LENGTHS) if "4" in parts else {}
    if capped:
        summarise_cap(capped, MAX_OUTPUT_TOKENS)
    print("\ngoals (2 threads):")
    argos2 = next((r for r in results if r["kind"] == "argos" and r["threads"] == 2), None)
    for nllb2 in [r for r in results if r["kind"] == "nllb-600m" and r["threads"] == 2]:
        for beam in BEAMS:
            p50 = percentile(nllb2["samples"][f"{beam}/20"], .5)
            versus = (f"; {p50 / percentile(argos2['samples'][f'{beam}/20'], .5):.1f}x the Argos "
                      "shape" if argos2 else "")
            print(f"  {nllb2['label']} 20 tokens, beam {beam}: p50 {p50 * 1e3:.0f} ms (goal <= 800 ms: "
                  f"{'met' if p50 <= 0.8 else 'NOT met'}){versus}")
    timed = [*results, *(r for arms in (mapped, capped) for rs in arms.values() for r in rs)]
    peaks = [r["rss_peak"] for r in timed if r["kind"] == "nllb-600m"]
    if peaks:
        print(f"  nllb-600m RSS peak {max(peaks):.0f} MB (goal <= 1200 MB: "
              f"{'met' if max(peaks) <= 1200 else 'NOT met'})")
    if hit is not None:
        print(f"  cache hit p50 {hit * 1e3:.3f} ms (goal < 1 ms: {'met' if hit < 1e-3 else 'NOT met'})")

if __name__ == "__main__":
    main()
