"""Safeguarding precision and recall on plain-text corpora (tests/corpora/).

Ordinary asylum-story sentences must never start a safeguarding flow (0 false positives);
real crisis phrasings must start the right one (recall, with a floor). Run with ``-s`` to
see the rates per language family, or ``python -m tests.test_safeguarding_corpus``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from bot.flowspec.library import FlowLibrary, default_flows_dir, load_library
from tests.conversation_runner import shipped_localizer

CORPORA = Path(__file__).parent / "corpora"
FAMILIES = {"en": "English", "fa_prs": "Persian/Dari", "ps": "Pashto", "ur_hi": "Urdu/Hindi"}
#: Each family must reach this share of crisis phrasings routed to the right flow.
RECALL_FLOOR = 0.95
ORDINARY_MIN = 100


def ordinary(family: str) -> list[str]:
    lines = (CORPORA / f"ordinary_{family}.txt").read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def crisis(family: str) -> dict[str, list[str]]:
    data = yaml.safe_load((CORPORA / f"crisis_{family}.yaml").read_text(encoding="utf-8"))
    return {str(flow): [str(s) for s in sentences] for flow, sentences in data.items()}


@dataclass
class Rates:
    ordinary: int = 0
    false_positives: list[tuple[str, str]] = field(default_factory=list)
    crisis: int = 0
    misses: list[tuple[str, str, str | None]] = field(default_factory=list)

    @property
    def recall(self) -> float:
        return (self.crisis - len(self.misses)) / self.crisis if self.crisis else 1.0


def measure(library: FlowLibrary, family: str) -> Rates:
    aliases = shipped_localizer(library).safeguarding_aliases()
    rates = Rates()
    for sentence in ordinary(family):
        rates.ordinary += 1
        found = library.flow_for_safeguarding(sentence, aliases)
        if found is not None:
            rates.false_positives.append((sentence, found.id))
    for flow_id, sentences in crisis(family).items():
        assert library.get(flow_id) is not None, f"crisis_{family}.yaml: no flow {flow_id}"
        for sentence in sentences:
            rates.crisis += 1
            found = library.flow_for_safeguarding(sentence, aliases)
            if found is None or found.id != flow_id:
                rates.misses.append((sentence, flow_id, found.id if found else None))
    return rates


def report(library: FlowLibrary) -> str:
    lines = []
    for family, name in FAMILIES.items():
        r = measure(library, family)
        lines.append(f"{name:<13} ordinary {r.ordinary:>3}: {len(r.false_positives)} false "
                     f"positives ({len(r.false_positives) / r.ordinary:.1%}); crisis "
                     f"{r.crisis:>3}: recall {r.recall:.1%}")
    return "\n".join(lines)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_ordinary_sentences_never_start_a_safeguarding_flow(library: FlowLibrary,
                                                            family: str) -> None:
    rates = measure(library, family)
    assert rates.ordinary >= ORDINARY_MIN
    assert rates.false_positives == [], "\n".join(f"{flow}: {s}" for s, flow in
                                                  rates.false_positives)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_crisis_phrasings_start_the_right_flow(library: FlowLibrary, family: str) -> None:
    rates = measure(library, family)
    print(f"\n{FAMILIES[family]}: recall {rates.recall:.1%} of {rates.crisis}; missed: "
          + "; ".join(f"{s!r} ({want}, got {got})" for s, want, got in rates.misses))
    assert rates.recall >= RECALL_FLOOR


def test_every_safeguarding_flow_is_in_every_crisis_corpus(library: FlowLibrary) -> None:
    owners = {f.id for f in library.flows.values() if f.safeguarding}
    for family in FAMILIES:
        assert set(crisis(family)) == owners, family


if __name__ == "__main__":
    print(report(load_library([default_flows_dir()])))
