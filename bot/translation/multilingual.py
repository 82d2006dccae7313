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
from bot.translation.ct2_folder import read_vocabulary_map
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


def _chunks(batch: Sequence[Sequence[str]]) -> list[list[int]]:
    """Indices of the batch in parts of at most MAX_BATCH_TOKENS (examples x the longest,
    padding included), similar lengths together."""
    chunks: list[list[int]] = []
    for i in sorted(range(len(batch)), key=lambda i: len(batch[i])):
        if chunks and (len(chunks[-1]) + 1) * len(batch[i]) <= MAX_BATCH_TOKENS:
            chunks[-1].append(i)
        else:
            chunks.append([i])
    return chunks


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
        #: The install writes vmap.txt: per direction, only the tokens the target language
        #: is written with are scored (bot/translation/ct2_folder.py).
        self.vocabulary_map = read_vocabulary_map(path, family)
        #: Which candidate tokens the output layer holds (VocabularyMap.candidates_key of
        #: the last mapped call), None after a call without the map.
        self._output_layer: tuple[str, ...] | None = None
        #: How often the output layer was reset (for tests and the bench).
        self.resets = 0
        #: max_decoding_length of the reset call (_reset_output_layer).
        self._reset_length = 0
        self._check_reset()

    def uses_map(self, source: str, target: str) -> bool:
        """Whether translations from ``source`` into ``target`` score only the map's tokens."""
        mapping = self.vocabulary_map
        return mapping is not None and mapping.serves(self.token(source), self.token(target))

    def token(self, code: str) -> str:
        try:
            return self.family.tokens[code]
        except KeyError:
            raise TranslationError(f"{self.name} ({self.family.title}) has no language {code!r}") from None

    def _select_output_layer(self, batch: list[list[str]], target_token: str, use_map: bool) -> None:
        """Reset CTranslate2's output layer before a mapped call with other candidate tokens.

        CTranslate2 (4.x, Decoder::update_output_layer) never clears its original id ->
        restricted id table when a call selects a different set of candidates: it only adds
        to it, so the target prefix and </s> are looked up at their place in an EARLIER set,
        and the output starts with the wrong language token, or fails. Only a call without
        the map clears the table (see _reset_output_layer). The table is the one replica's
        (inter_threads=1), so tracking it here is exact."""
        mapping = self.vocabulary_map
        wanted = mapping.candidates_key(batch) if use_map and mapping else None
        if use_map and self._output_layer is not None and self._output_layer != wanted:
            self._reset_output_layer(batch[0][0], target_token)
        self._output_layer = wanted

    def _reset_output_layer(self, source_token: str, target_token: str) -> None:
        """A call without the map. With ``max_decoding_length=0`` CTranslate2 resets the
        output layer, encodes two tokens and only then refuses the options, before any
        decoding step: ~35 ms for NLLB-600M, against ~145 ms for a call stopped after the
        target prefix (one full-vocabulary step), which is used if the cheap one is found
        not to work (``_check_reset``, when the model is loaded)."""
        try:
            self.translator.translate_batch([[source_token, EOS]], target_prefix=[[target_token]],
                                            beam_size=1, max_decoding_length=self._reset_length)
        except ValueError:
            if self._reset_length:
                raise
        self.resets += 1

    def _check_reset(self) -> None:
        """Find the cheapest reset that works on this CTranslate2: English -> another
        language, reset, that language -> English must start with the English token."""
        mapping = self.vocabulary_map
        if mapping is None or not mapping.per_direction:
            return
        english = mapping.english
        other = next((t for t in mapping.by_source if t != english), None)
        if other is None or english not in mapping.by_source:
            return
        for self._reset_length in (0, 1):
            try:
                self._probe(english, other)
                self._reset_output_layer(english, other)
                works = self._probe(other, english) == english
            except (IndexError, RuntimeError):  # CTranslate2 indexing with a stale table
                works = False
            if works:
                self._output_layer = mapping.candidates_key([[other, EOS]])
                break
            self.translator.translate_batch([[english, EOS]], target_prefix=[[other]],
                                            beam_size=1, max_decoding_length=1)  # surely cleared
            self._output_layer = None
        self.resets = 0

    def _probe(self, source_token: str, target_token: str) -> str:
        """The first output token of a mapped call: the target prefix, if looked up right."""
        [result] = self.translator.translate_batch([[source_token, EOS]],
                                                   target_prefix=[[target_token]], beam_size=1,
                                                   max_decoding_length=1, use_vmap=True)
        return str(result.hypotheses[0][0]) if result.hypotheses[0] else ""

    def translate_tokens(self, pieces: Sequence[Sequence[str]], source: str, target: str, *,
                         min_length: int = 1, max_length: int | None = None) -> list[list[str]]:
        """Output pieces for each input's pieces, the language token checked and dropped."""
        source_token, target_token = self.token(source), self.token(target)
        batch = [[source_token, *p, EOS] for p in pieces]
        longest = max(len(b) for b in batch)
        limit = max_length if max_length is not None else decoding_limit(longest)
        use_map = self.uses_map(source, target)
        hypotheses: list[list[str]] = [[] for _ in batch]
        for chunk in _chunks(batch):
            # CTranslate2 is never left to split a batch itself: its parts would select
            # different candidates without the reset in between.
            self._select_output_layer([batch[i] for i in chunk], target_token, use_map)
            results = self.translator.translate_batch(
                [batch[i] for i in chunk],
                target_prefix=[[target_token]] * len(chunk),
                beam_size=self.beam_size,
                max_batch_size=0,
                max_decoding_length=limit,
                min_decoding_length=min_length,
                return_end_token=True,  # a hypothesis without it was cut at the limit
                use_vmap=use_map,
            )
            for i, result in zip(chunk, results, strict=True):
                hypotheses[i] = list(result.hypotheses[0])
        out = []
        for source_pieces, hypothesis in zip(pieces, hypotheses, strict=True):
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
