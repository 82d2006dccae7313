"""Translate with one installed ``.argosmodel``: CTranslate2 and SentencePiece, directly.

These are the two libraries argostranslate itself translates with. The bot used to call them
through argostranslate (argos-translate-lt 1.12.1) but used only its ``PackageTranslation``
path, and replaced or avoided everything around it: the sentence splitter (MiniSBD, which
downloads an ONNX model on first use and brought onnxruntime, 78 MB, into every install),
the package manager, the global language graph and the settings read from ``$HOME`` at
import. What is left of that path is here, with argostranslate 1.12.1's defaults, so a model
translates as it did there:

* sentences (cut by bot/translation/runner.py) are encoded with the package's SentencePiece
  model and translated in one CTranslate2 batch (beam 4, length penalty 0.2, unknown
  tokens replaced from the source, batches of 32 tokens), with the package's
  ``target_prefix`` when it has one (multilingual models);
* the SentencePiece marker ``▁`` and also ``_`` become spaces (which is why the caller masks
  placeholders, URLs and e-mail addresses), then the target prefix and one leading space
  are removed.

Only SentencePiece packages are run: a package tokenized with ``bpe.model`` (Moses and
subword-nmt, which argostranslate carried a copy of) is refused when installed
(bot/translation/argos_models.py) and, if one is found on disk anyway, when loaded.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bot.errors import TranslationError

__all__ = ["ArgosPackage"]

BEAM_SIZE = 4
LENGTH_PENALTY = 0.2
MAX_BATCH_TOKENS = 32


class ArgosPackage:
    """One installed package folder (metadata.json, model/, sentencepiece.model), loaded: a
    Runner (bot/translation/runner.py) for its one language pair.

    Loading reads the whole CTranslate2 model (about a second for a real one): build it in
    the translation worker thread, not on the event loop. Not thread-safe: one caller at a time.
    """

    def __init__(self, path: Path, *, threads: int = 1) -> None:
        import ctranslate2
        import sentencepiece

        self.path = path
        self.name = path.name
        try:
            metadata = json.loads((path / "metadata.json").read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise TranslationError(f"{path}: cannot read metadata.json ({exc})") from exc
        self.from_code = str(metadata.get("from_code", ""))
        self.to_code = str(metadata.get("to_code", ""))
        self.target_prefix = str(metadata.get("target_prefix", "") or "")
        tokenizer = path / "sentencepiece.model"
        if not tokenizer.is_file():
            raise TranslationError(f"{path}: no sentencepiece.model; only SentencePiece models "
                                   "are supported (a bpe.model package is not)")
        self.tokenizer: Any = sentencepiece.SentencePieceProcessor(model_file=str(tokenizer))
        self.translator: Any = ctranslate2.Translator(
            str(path / "model"), device="cpu", inter_threads=1, intra_threads=threads)

    def translate_sentences(self, sentences: Sequence[str], source: str = "",
                            target: str = "") -> list[str]:
        """Translate sentences of this package's one pair (``source``/``target`` are not needed)."""
        if not sentences:
            return []
        tokens = [self.tokenizer.encode(sentence, out_type=str) for sentence in sentences]
        prefix = [[self.target_prefix]] * len(tokens) if self.target_prefix else None
        results = self.translator.translate_batch(
            tokens,
            target_prefix=prefix,
            replace_unknowns=True,
            max_batch_size=MAX_BATCH_TOKENS,
            batch_type="tokens",
            beam_size=BEAM_SIZE,
            num_hypotheses=1,
            length_penalty=LENGTH_PENALTY,
        )
        return [self._decode(result.hypotheses[0]) for result in results]

    def _decode(self, pieces: list[str]) -> str:
        value = str(self.tokenizer.decode_pieces(pieces)).replace("▁", " ").replace("_", " ")
        if self.target_prefix:
            value = value.removeprefix(self.target_prefix)
        return value.removeprefix(" ")

    def __repr__(self) -> str:
        return f"ArgosPackage({self.from_code}->{self.to_code}, {self.path})"

