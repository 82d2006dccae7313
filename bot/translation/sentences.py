"""Cutting a message into the sentences a model translates, and putting it back together."""

from __future__ import annotations

import re

__all__ = ["MAX_SENTENCE_CHARS", "OfflineSentencizer"]

MAX_SENTENCE_CHARS = 250

_SENTENCE_END = re.compile(r"(?<=[.!?؟।۔…])\s+")


class OfflineSentencizer:
    """Sentence splitter that needs no model and no network.

    Stands in for argostranslate's MiniSBD, which downloads an ONNX model on first use.
    Splits after . ! ? ؟ (Arabic) । (Devanagari) ۔ (Urdu) and cuts runs longer than
    ``MAX_SENTENCE_CHARS`` at a space, so CTranslate2's 256-token decoding limit cannot
    silently truncate a sentence.
    """

    def __init__(self, max_chars: int = MAX_SENTENCE_CHARS) -> None:
        self.max_chars = max_chars

    def split_sentences(self, text: str) -> list[str]:
        sentences: list[str] = []
        for sentence in _SENTENCE_END.split(text):
            sentence = sentence.strip()
            while len(sentence) > self.max_chars:
                cut = sentence.rfind(" ", 0, self.max_chars + 1)
                if cut <= 0:
                    cut = self.max_chars
                sentences.append(sentence[:cut].strip())
                sentence = sentence[cut:].strip()
            if sentence:
                sentences.append(sentence)
        return sentences

    def __str__(self) -> str:
        return "OfflineSentencizer"
