"""One way to run every model family: a Runner translates sentences; translate_texts does the rest.

    Runner (Protocol)          a loaded model: sentences in, sentences out, one batch
     +-- ArgosPackage          an .argosmodel: one language pair (argos_package.py)
     +-- MultilingualRunner    NLLB-200 / M2M-100: language tokens (multilingual.py)

:func:`translate_texts` is the part every family shares, so it is written once: the texts
of ONE message (a question and its buttons) are masked (placeholders, links, numbers),
cut into paragraphs and sentences, and every sentence of every text goes to the model in
one batch per step (a pivot ``fa -> en -> ur`` is two steps); then each text is put back
together and unmasked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from bot.errors import TranslationError
from bot.translation.masking import mask_protected, unmask_protected

__all__ = ["Runner", "Sentencizer", "Step", "translate_texts"]


@runtime_checkable
class Runner(Protocol):
    """A loaded model. Not thread-safe: the translator calls it from its one worker thread."""

    name: str

    def translate_sentences(self, sentences: Sequence[str], source: str, target: str) -> list[str]:
        """Each sentence translated (``source``/``target``: bot codes the model serves)."""
        ...


class Sentencizer(Protocol):
    def split_sentences(self, text: str) -> list[str]: ...


@dataclass(frozen=True)
class Step:
    runner: Runner
    source: str
    target: str


@dataclass
class _Layout:
    lead: str
    trail: str
    spans: list[str]
    paragraphs: list[int]  # sentences in each paragraph


def translate_texts(texts: Sequence[str], steps: Sequence[Step], sentencizer: Sentencizer) -> list[str]:
    """The texts translated through ``steps``, all sentences of all texts in one batch per step."""
    layouts: list[_Layout] = []
    sentences: list[str] = []
    for text in texts:
        stripped = text.strip()
        masked, spans = mask_protected(stripped)
        counts = []
        for paragraph in masked.split("\n") if stripped else []:
            parts = sentencizer.split_sentences(paragraph)
            counts.append(len(parts))
            sentences += parts
        layouts.append(_Layout(text[: len(text) - len(text.lstrip())],
                               text[len(text.rstrip()):] if stripped else "", spans, counts))
    for step in steps:
        if not sentences:
            break
        try:
            translated = step.runner.translate_sentences(sentences, step.source, step.target)
        except TranslationError:
            raise
        except Exception as exc:  # third-party errors are wrapped at the adapter
            raise TranslationError(f"offline translation {step.source} -> {step.target} with "
                                   f"{step.runner.name} failed: {type(exc).__name__}: {exc}") from exc
        if len(translated) != len(sentences):  # pragma: no cover - a runner's contract
            raise TranslationError(f"{step.runner.name} returned {len(translated)} sentences "
                                   f"for {len(sentences)}")
        sentences = translated
    out: list[str] = []
    position = 0
    for layout in layouts:
        paragraphs = []
        for count in layout.paragraphs:
            paragraphs.append(" ".join(sentences[position:position + count]))
            position += count
        body = unmask_protected("\n".join(paragraphs), layout.spans) if layout.paragraphs else ""
        out.append(layout.lead + body + layout.trail)
    return out
