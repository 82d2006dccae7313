"""Run NLLB-200 and M2M-100 (CTranslate2 folders) as a Runner: language tokens in, first token out.

The one calling convention of both families (Hugging Face's tokenizers do the same):

* source = ``[source language token] + SentencePiece pieces + ["</s>"]``;
* ``translate_batch(..., target_prefix=[[target language token]])``: without it the model
  picks a language itself (often the source's) and raises no error;
* the output starts with that language token: it is checked and dropped.

Both are known to repeat themselves on very short inputs (CTranslate2 issue 1582: one word
in, the same word ten times out). The bot matches short messages against the catalogs'
phrases first (bot/i18n/catalog.py); what still reaches the model is decoded with a length
limit in proportion to the input, and an output that hits the limit, repeats a phrase the
input does not repeat, or switches language token in mid-sentence is refused
(TranslationError) rather than sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bot.errors import TranslationError
from bot.translation.families import Family

__all__ = ["DEFAULT_BEAM_SIZE", "MultilingualRunner", "decoding_limit", "repeats"]

EOS = "</s>"
#: Greedy, as Hugging Face's generation settings for NLLB-200 ship. Beam 2 (CTranslate2's
#: default) cost 25-60% more time per message on 2 cores (bench/bench_translation.py);
#: BOT_TRANSLATION_BEAM raises it.
DEFAULT_BEAM_SIZE = 1
MAX_BATCH_TOKENS = 1024
MAX_DECODING_LENGTH = 256


def decoding_limit(source_pieces: int) -> int:
    """Output tokens allowed for an input of this many tokens (CTranslate2 counts the target
    language token in it).

    Translations into these languages run up to about 1.6x the English piece count; twice
    the input plus a margin leaves room for that, and stops a model that loops.
    """
    return min(MAX_DECODING_LENGTH, 2 * source_pieces + 8)


def repeats(tokens: Sequence[str], times: int = 3, longest: int = 4) -> bool:
    """True if some run of 1..``longest`` tokens comes ``times`` times in a row."""
    for size in range(1, longest + 1):
        for start in range(len(tokens) - size * times + 1):
            chunk = tokens[start:start + size]
            if all(tokens[start + k * size:start + (k + 1) * size] == chunk for k in range(1, times)):
                return True
    return False


class MultilingualRunner:
    """A loaded NLLB-200 or M2M-100 folder. Not thread-safe: one caller at a time."""

    def __init__(self, path: Path, family: Family, tokenizer: str, *, threads: int = 1,
                 beam_size: int = DEFAULT_BEAM_SIZE) -> None:
        import ctranslate2
        import sentencepiece

        self.path = path
        self.name = path.name
        self.family = family
        self.beam_size = beam_size
        self.tokenizer: Any = sentencepiece.SentencePieceProcessor(model_file=str(path / tokenizer))
        self.translator: Any = ctranslate2.Translator(str(path), device="cpu", inter_threads=1,
                                                      intra_threads=threads)
        self._language_tokens = frozenset(family.tokens.values())
        #: The install writes vmap.txt: only tokens of the bot's scripts are scored.
        self.use_vmap = (path / "vmap.txt").is_file()

    def token(self, code: str) -> str:
        try:
            return self.family.tokens[code]
        except KeyError:
            raise TranslationError(f"{self.name} ({self.family.title}) has no language {code!r}") from None

    def translate_tokens(self, pieces: Sequence[Sequence[str]], source: str, target: str, *,
                         min_length: int = 1, max_length: int | None = None) -> list[list[str]]:
        """Output pieces for each input's pieces, the language token checked and dropped."""
        source_token, target_token = self.token(source), self.token(target)
        batch = [[source_token, *p, EOS] for p in pieces]
        longest = max(len(b) for b in batch)
        limit = max_length if max_length is not None else decoding_limit(longest)
        results = self.translator.translate_batch(
            batch,
            target_prefix=[[target_token]] * len(batch),
            beam_size=self.beam_size,
            max_batch_size=MAX_BATCH_TOKENS,
            batch_type="tokens",
            max_decoding_length=limit,
            min_decoding_length=min_length,
            return_end_token=True,  # a hypothesis without it was cut at the limit
            use_vmap=self.use_vmap,
        )
        out = []
        for source_pieces, result in zip(pieces, results, strict=True):
            hypothesis = list(result.hypotheses[0])
            if not hypothesis or hypothesis[0] != target_token:
                raise TranslationError(f"{self.name} did not start its output with {target_token}; "
                                       f"is it really a {self.family.title} model?")
            finished = hypothesis[-1] == EOS
            body = hypothesis[1:-1] if finished else hypothesis[1:]
            if max_length is None:
                if not finished:
                    raise TranslationError(f"{self.name} did not finish a sentence within {limit} "
                                           "tokens (it was probably repeating itself)")
                if repeats(body) and not repeats(source_pieces):
                    raise TranslationError(f"{self.name} repeated itself; not sending that")
                stray = next((t for t in body if self._is_language_token(t)), None)
                if stray is not None:
                    raise TranslationError(f"{self.name} switched to {stray} in mid-sentence; "
                                           "not sending that")
            out.append(body)
        return out

    def _is_language_token(self, token: str) -> bool:
        pattern = self.family.token_pattern
        return token in self._language_tokens or (pattern is not None and pattern.match(token) is not None)

    def translate_sentences(self, sentences: Sequence[str], source: str, target: str) -> list[str]:
        if not sentences:
            return []
        pieces = [self.tokenizer.encode(sentence, out_type=str) for sentence in sentences]
        outputs = self.translate_tokens(pieces, source, target)
        return [str(self.tokenizer.decode_pieces([t for t in body if t not in self._language_tokens]))
                for body in outputs]

    def __repr__(self) -> str:
        return f"MultilingualRunner({self.family.id}, {self.path})"
