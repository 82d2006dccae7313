"""Which installed model translates a language pair: published quality, as data, decides.

FLORES-200 devtest chrF++ from the OPUS-MT leaderboard (higher is better), per published
model. Argos packages are trained on OPUS data, so the best OPUS-MT figure stands for them.
A direction the table lacks is estimated from the other direction of the same pair, and a
pair without English from its two halves through English; a model with no figure at all
ranks below any model with one.

Rules, in this order:

1. A language is served by a model that has it. Only when NO installed model has it may a
   related language's model stand in (Dari drafted with a Persian model): the result is a
   draft (``via`` names the stand-in). So Dari never silently uses a Persian model when a
   Dari-capable one is installed, whatever the configured order.
2. With a configured order (``BOT_TRANSLATION_ORDER=nllb,argos``: family ids or installed
   model names), the first listed family or model that can do the pair wins; quality
   decides between models of the same rank.
3. Otherwise the best published quality wins. Figures less than ``TIE_CHRF`` apart are a
   tie (FLORES devtest differences that small are within noise), broken by the family
   order ``DEFAULT_ORDER`` (NLLB, then M2M-100, then Argos), then fewer steps. This keeps
   one big model serving every language rather than loading a second for 0.1 chrF++.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bot.translation.families import STAND_IN

__all__ = ["DEFAULT_ORDER", "PIVOT", "PUBLISHED_CHRF", "TIE_CHRF", "Candidate", "Route", "best_route",
           "quality", "routes", "variant_of"]

PIVOT = "en"
TIE_CHRF = 1.0
DEFAULT_ORDER: tuple[str, ...] = ("nllb", "m2m100", "argos")

#: (source, target) -> chrF++ per published model. The M2M-100 column gives one figure for
#: both sizes for Persian.
PUBLISHED_CHRF: Mapping[str, Mapping[tuple[str, str], float]] = {
    "nllb-600m": {("en", "ps"): 35.3, ("ps", "en"): 53.8, ("en", "prs"): 49.0, ("prs", "en"): 58.4,
                  ("en", "fa"): 45.7, ("en", "ur"): 45.0, ("en", "hi"): 52.8},
    "nllb-1.3b": {("en", "ps"): 37.3, ("ps", "en"): 57.2, ("en", "prs"): 51.5,
                  ("en", "fa"): 47.3, ("en", "ur"): 46.7, ("en", "hi"): 53.8},
    "m2m100-418m": {("en", "ps"): 22.8, ("en", "fa"): 45.8},
    "m2m100-1.2b": {("en", "ps"): 28.0, ("en", "fa"): 45.8},
    "opus-mt": {("en", "ps"): 12.2, ("en", "prs"): 41.0, ("en", "fa"): 33.5},
}

#: (family, encoder layers, decoder layers, d_model) -> published model.
_VARIANTS: Mapping[tuple[str, int, int, int], str] = {
    ("nllb", 12, 12, 1024): "nllb-600m",
    ("nllb", 24, 24, 1024): "nllb-1.3b",
    ("nllb", 24, 24, 2048): "nllb-3.3b",
    ("m2m100", 12, 12, 1024): "m2m100-418m",
    ("m2m100", 24, 24, 1024): "m2m100-1.2b",
}


def variant_of(family: str, encoder_layers: int, decoder_layers: int, d_model: int) -> str | None:
    """The published model of this shape, or None (then its quality is unknown)."""
    if family == "argos":
        return "opus-mt"
    return _VARIANTS.get((family, encoder_layers, decoder_layers, d_model))


def quality(variant: str | None, source: str, target: str) -> float | None:
    """Published (or estimated, see the module doc) chrF++ of a model for a direction."""
    table = PUBLISHED_CHRF.get(variant or "", {})
    if (source, target) in table:
        return table[(source, target)]
    if (target, source) in table:
        return table[(target, source)]
    if PIVOT not in (source, target):
        halves = [quality(variant, source, PIVOT), quality(variant, PIVOT, target)]
        return min(h for h in halves if h is not None) if None not in halves else None
    return None


@dataclass(frozen=True)
class Candidate:
    """An installed model, as routing sees it."""

    name: str
    family: str
    variant: str | None
    pairs: frozenset[tuple[str, str]]

    @property
    def languages(self) -> set[str]:
        return {code for pair in self.pairs for code in pair}


@dataclass(frozen=True)
class Route:
    """How to translate ``source`` -> ``target``: one step, or two through English."""

    source: str
    target: str
    steps: tuple[tuple[Candidate, str, str], ...]
    """(model, from, to) in the codes the model serves (``fa`` for a Dari stand-in)."""
    via: str | None = None
    """The stand-in language used for a bot language no installed model has."""

    @property
    def score(self) -> float | None:
        scores = [quality(m.variant, a, b) for m, a, b in self.steps]
        known = [s for s in scores if s is not None]
        return min(known) if len(known) == len(scores) else None

    def __str__(self) -> str:
        return " then ".join(f"{m.name} ({a}->{b})" for m, a, b in self.steps)


_Steps = tuple[tuple[Candidate, str, str], ...]


def _paths(models: Sequence[Candidate], source: str, target: str) -> list[_Steps]:
    out: list[_Steps] = [
        ((m, source, target),) for m in models if (source, target) in m.pairs]
    if PIVOT in (source, target):
        return out
    for first, second in itertools.product(models, models):
        if (source, PIVOT) in first.pairs and (PIVOT, target) in second.pairs and \
                not (first is second and (source, target) in first.pairs):
            out.append(((first, source, PIVOT), (second, PIVOT, target)))
    return out


def routes(models: Sequence[Candidate], source: str, target: str) -> list[Route]:
    """Every way the installed models can translate ``source`` -> ``target`` (rule 1)."""
    found = [Route(source, target, p) for p in _paths(models, source, target)]
    if found:
        return found
    native: set[str] = set()
    for model in models:
        native |= model.languages
    ends = []
    for code in (source, target):
        stand_in = STAND_IN.get(code)
        ends.append(stand_in if code not in native and stand_in else code)
    src, tgt = ends
    if (src, tgt) == (source, target) or src == tgt:
        return []
    via = src if src != source else tgt
    return [Route(source, target, p, via=via) for p in _paths(models, src, tgt)]


def _rank(route: Route, order: Sequence[str]) -> int:
    ranks = []
    for model, _, _ in route.steps:
        if model.name in order:
            ranks.append(order.index(model.name))
        elif model.family in order:
            ranks.append(order.index(model.family))
        else:
            ranks.append(len(order))
    return max(ranks)


def best_route(candidates: Sequence[Route], order: Sequence[str] = ()) -> Route | None:
    """The route rules 2 and 3 pick among ``candidates`` (all for the same pair)."""
    if not candidates:
        return None

    def names(route: Route) -> tuple[str, ...]:
        return tuple(m.name for m, _, _ in route.steps)

    if order:
        return min(candidates, key=lambda r: (_rank(r, order), -(r.score or 0.0), len(r.steps),
                                              names(r)))
    best = max(r.score or 0.0 for r in candidates)
    near = [r for r in candidates if (r.score or 0.0) >= best - TIE_CHRF]
    return min(near, key=lambda r: (_rank(r, DEFAULT_ORDER), len(r.steps), -(r.score or 0.0),
                                    names(r)))
