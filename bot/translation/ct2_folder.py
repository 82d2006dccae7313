"""A CTranslate2 model folder (NLLB-200, M2M-100): its files, vocabulary, shape and install record.

A folder made by ``ct2-transformers-converter ... --copy_files sentencepiece.bpe.model``
holds ``model.bin`` (the weights), ``config.json``, ``shared_vocabulary.json`` (or ``.txt``
from older converters) and the SentencePiece tokenizer. Everything here only READS such a
folder, without loading the model: what family it is (from the language tokens of its
vocabulary), which languages it serves, and its shape (layers, width, parameters,
quantization) from the header of ``model.bin``, which names every weight and its size.

An installed folder also holds ``helpbot-model.json``, written by ``python -m bot models
install``: the family, the licence and that it was accepted, and the test translation
that passed. A folder without it was not installed by the bot and is never used.

And ``vmap.txt``, a CTranslate2 vocabulary map written on install. Every decoding step
scores every token the model may output, reading its row of the output layer: with one
message at a time that reading is most of a step's time (bench/bench_translation.py), and
NLLB-200 has 256,206 tokens for 202 languages. CTranslate2 allows, for a batch, the tokens of
the map's line with an empty key, plus those of every line whose key is a token (or run of
tokens) of a source, plus the target prefix. The bot translates between English and
Arabic-script or Devanagari languages, and every source starts with its language token, so
the map is keyed by that token:

* always: the family's tokens for the bot's languages and pieces made only of digits,
  punctuation and SentencePiece's word marker (masks such as ``[0]``, which stand for
  links, numbers and placeholders, are written with these: bot/translation/masking.py);
* source ``eng_Latn``: pieces in Arabic or Devanagari script (the translation is in
  Pashto, Dari, Persian, Urdu or Hindi);
* source ``pbt_Arab``, ``prs_Arab``, ``pes_Arab``, ``urd_Arab``, ``hin_Deva``: the pieces
  English is written with, i.e. ASCII pieces and single Latin-1 letters (``é`` alone, so
  "café" can still be spelled, but the ~150 other Latin-script languages' ``für``, ``ção``
  are not scored), and no Arabic or Devanagari piece;
* every Latin piece maps to itself: a name or an acronym of the message ("NHS",
  "Médecins") may be kept as written in its translation, as NLLB often does.

Each direction allows at most MAX_OUTPUT_TOKENS tokens, whatever the model's vocabulary
holds, so a decoding step scores at most that many rows whichever NLLB-200 or M2M-100
folder is installed (the cost per size: bench/bench_translation.py, parts 3 and 4). A
direction with more candidates keeps the most frequent ones (``_most_frequent``), and never
cuts the tokens marked "always" above, nor the single letters of its script; the Latin
pieces a message itself holds are added on top (a few per message).

Between two non-English languages (Pashto -> Urdu) the map would forbid the target's own
script, so the runner does not use it there (``VocabularyMap.serves``). A model installed
before per-direction maps has a one-line map (everything in the bot's scripts, for every
direction); it keeps working, and ``models list`` says to install it again.
"""

from __future__ import annotations

import json
import os
import re
import struct
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from bot.errors import TranslationError
from bot.translation.families import Family, recognise

__all__ = ["MANIFEST", "MAX_OUTPUT_TOKENS", "TOKENIZERS", "VOCABULARY_MAP", "FolderModel",
           "ModelShape", "VocabularyMap",
           "build_vocabulary_map", "inspect_folder", "read_manifest", "read_shape", "read_vocabulary",
           "read_vocabulary_map", "write_vocabulary_map"]

MANIFEST = "helpbot-model.json"
MODEL_FILE = "model.bin"
CONFIG_FILE = "config.json"
VOCABULARIES = ("shared_vocabulary.json", "shared_vocabulary.txt")
#: SentencePiece model names, as the converter's --copy_files leaves them.
TOKENIZERS = ("sentencepiece.bpe.model", "sentencepiece.model")
#: Files copied on install: a folder may also hold a PyTorch checkpoint of several GB.
EXTRA_FILES = ("README.md", "LICENSE", "LICENSE.md", "LICENSE.txt")
VOCABULARY_MAP = "vmap.txt"
#: The most tokens a direction's map allows (its "always" line and its language's line),
#: so that a step's cost is bounded whatever the model's vocabulary. With NLLB-600M's shape
#: on the project's 2 shared cores, 20 tokens with the direction changing every call took
#: 615 ms greedy, 665 ms with beam 2 (p50, median of 3 rounds; bench/bench_translation.py
#: part 4), against 800 ms at ~124k (greedy) and ~92k (beam 2) tokens (part 3).
MAX_OUTPUT_TOKENS = 64_000
#: Characters any translation may hold: SentencePiece's word marker, the digits and the
#: punctuation of the bot's scripts (ZWNJ, which Persian and Dari write inside words, too).
_COMMON = (
    (0x0021, 0x0040), (0x005B, 0x0060), (0x007B, 0x007E),  # ASCII digits and punctuation
    (0x00A1, 0x00BF), (0x00D7, 0x00D7), (0x00F7, 0x00F7),  # Latin-1 signs: £ « » ×
    (0x060C, 0x060C), (0x061B, 0x061B), (0x061F, 0x061F), (0x0660, 0x066D), (0x06D4, 0x06D4),
    (0x06F0, 0x06F9),  # Arabic comma, semicolon, question mark, digits, full stop
    (0x0964, 0x0965), (0x0966, 0x096F),  # Devanagari danda and digits
    (0x2000, 0x206F), (0x20A0, 0x20CF),  # general punctuation (ZWNJ, dashes, quotes), currency
    (0x2581, 0x2581),  # SentencePiece's word marker
)
#: Pashto, Dari, Persian, Urdu (Arabic script) and Hindi (Devanagari).
_EASTERN = (
    (0x0600, 0x06FF), (0x0750, 0x077F), (0x08A0, 0x08FF),  # Arabic and its supplements
    (0xFB50, 0xFDFF), (0xFE70, 0xFEFF),  # Arabic presentation forms
    (0x0900, 0x097F), (0xA8E0, 0xA8FF),  # Devanagari
)
_WORD_MARKER = "\u2581"  # SentencePiece's, before a piece that starts a word
_LATIN_1_LETTERS = (0x00C0, 0x00FF)  # À..ÿ (× and ÷ are in _COMMON)
#: model.bin versions whose header layout is the one read here (CTranslate2 3.x and 4.x).
_BINARY_VERSIONS = (5, 6)
_DTYPES = ("float32", "int8", "int16", "int32", "float16", "bfloat16")
_DTYPE_BYTES = (4, 1, 2, 4, 2, 2)


@dataclass(frozen=True)
class ModelShape:
    """What the header of model.bin says."""

    encoder_layers: int
    decoder_layers: int
    d_model: int
    ffn: int
    vocabulary: int
    parameters: int
    quantization: str

    def __str__(self) -> str:
        return (f"{self.encoder_layers}+{self.decoder_layers} layers, d_model {self.d_model}, "
                f"{self.parameters / 1e6:.0f}M parameters, {self.quantization}")


@dataclass(frozen=True)
class FolderModel:
    """A CTranslate2 folder, checked: the files are there and the vocabulary is a family's."""

    path: Path
    family: Family
    languages: tuple[str, ...]
    """Bot language codes it serves (its own language tokens)."""
    all_languages: int
    """How many languages the model has in all (202 for NLLB-200)."""
    tokenizer: str
    vocabulary_file: str
    shape: ModelShape | None
    size_bytes: int

    def files(self) -> list[str]:
        names = [MODEL_FILE, CONFIG_FILE, self.vocabulary_file, self.tokenizer]
        return names + [n for n in EXTRA_FILES if (self.path / n).is_file()]


def _refuse(path: Path, reason: str) -> TranslationError:
    return TranslationError(
        f"{path}: not a usable CTranslate2 translation model: {reason}. See README "
        "'Translation models' for how to convert NLLB-200 with ct2-transformers-converter")


def read_vocabulary(folder: Path) -> tuple[list[str], str]:
    """The vocabulary (one token per id) and the file it was read from."""
    for name in VOCABULARIES:
        path = folder / name
        if not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise _refuse(folder, f"{name} cannot be read ({exc})") from exc
        if name.endswith(".json"):
            try:
                tokens = json.loads(text)
            except json.JSONDecodeError as exc:
                raise _refuse(folder, f"{name} is not valid JSON ({exc})") from exc
            if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
                raise _refuse(folder, f"{name} is not a list of tokens")
        else:
            tokens = text.split("\n")
            if tokens and tokens[-1] == "":
                tokens.pop()
        if not tokens:
            raise _refuse(folder, f"{name} is empty")
        return tokens, name
    if (folder / "source_vocabulary.json").is_file():
        raise _refuse(folder, "it has separate source and target vocabularies; NLLB-200 and "
                              "M2M-100 share one (shared_vocabulary.json)")
    raise _refuse(folder, "shared_vocabulary.json is missing")


def _read(stream: BinaryIO, size: int, path: Path) -> bytes:
    data = stream.read(size)
    if len(data) != size:
        raise _refuse(path.parent, f"{path.name} is cut short (damaged or still being copied)")
    return data


def _variables(path: Path) -> Iterator[tuple[str, tuple[int, ...], str]]:
    """(name, shape, dtype) of every weight in model.bin, skipping over the data."""
    with path.open("rb") as stream:
        def number(fmt: str) -> int:
            return int(struct.unpack(fmt, _read(stream, struct.calcsize(fmt), path))[0])

        def string() -> str:
            length = number("<H")
            return _read(stream, length, path)[:-1].decode("utf-8", errors="replace")

        version = number("<I")
        if version not in _BINARY_VERSIONS:
            raise _refuse(path.parent, f"{path.name} has format version {version}, which this "
                                       f"bot does not read (known: {_BINARY_VERSIONS}); it may "
                                       "not be a CTranslate2 model at all")
        spec = string()
        if spec != "TransformerSpec":
            raise _refuse(path.parent, f"{path.name} holds a {spec!r}, not a translation "
                                       "Transformer (TransformerSpec)")
        number("<I")  # revision
        for _ in range(number("<I")):
            name = string()
            rank = number("<B")
            shape = tuple(number("<I") for _ in range(rank))
            dtype_id = number("<B")
            if dtype_id >= len(_DTYPES):
                raise _refuse(path.parent, f"{path.name} is damaged (unknown data type {dtype_id} "
                                           f"for {name})")
            size = number("<I")
            expected = _DTYPE_BYTES[dtype_id]
            for dim in shape:
                expected *= dim
            if size != expected:
                raise _refuse(path.parent, f"{path.name} is damaged ({name}: {size} bytes for "
                                           f"shape {shape})")
            stream.seek(size, os.SEEK_CUR)
            yield name, shape, _DTYPES[dtype_id]
        if stream.tell() > path.stat().st_size:
            raise _refuse(path.parent, f"{path.name} is cut short (damaged or still being copied)")


def read_shape(path: Path) -> ModelShape:
    """Layers, width and size of a model.bin, from its header (the weights are not loaded)."""
    encoder: set[int] = set()
    decoder: set[int] = set()
    d_model = ffn = vocabulary = parameters = 0
    quantization = "?"
    for name, shape, dtype in _variables(path):
        count = 1
        for dim in shape:
            count *= dim
        if not name.endswith("_scale"):
            parameters += count
        parts = name.split("/")
        if len(parts) > 1 and parts[1].startswith("layer_"):
            (encoder if parts[0] == "encoder" else decoder).add(int(parts[1].removeprefix("layer_")))
        # The output projection is often tied to the decoder embeddings, and then stored once.
        if name in ("decoder/embeddings/weight", "decoder/projection/weight") and len(shape) == 2:
            vocabulary, d_model = shape
        if name == "decoder/layer_0/ffn/linear_0/weight" and len(shape) == 2:
            ffn = shape[0]
            quantization = dtype
    if not decoder or not d_model:
        raise _refuse(path.parent, f"{path.name} has no decoder: it is not a translation model")
    return ModelShape(len(encoder), len(decoder), d_model, ffn, vocabulary, parameters, quantization)


def _size(folder: Path, names: list[str]) -> int:
    return sum((folder / n).stat().st_size for n in names if (folder / n).is_file())


def inspect_folder(path: Path) -> FolderModel:
    """Check a CTranslate2 folder and recognise its family; TranslationError says what is wrong."""
    if not path.is_dir():
        raise _refuse(path, "no such folder")
    checkpoint = (path / "pytorch_model.bin").is_file() or (path / "model.safetensors").is_file()
    if checkpoint and not (path / MODEL_FILE).is_file():
        raise _refuse(path, "this is a Hugging Face (PyTorch) model, not yet converted; convert "
                                "it with ct2-transformers-converter first")
    for name in (MODEL_FILE, CONFIG_FILE):
        if not (path / name).is_file():
            raise _refuse(path, f"{name} is missing")
    try:
        config = json.loads((path / CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _refuse(path, f"{CONFIG_FILE} is not valid JSON ({exc})") from exc
    if not isinstance(config, dict):
        raise _refuse(path, f"{CONFIG_FILE} does not hold a JSON object")
    vocabulary, vocabulary_file = read_vocabulary(path)
    found = recognise(vocabulary)
    if found is None:
        raise _refuse(path, "its vocabulary has no NLLB-200 (eng_Latn) or M2M-100 (__en__) "
                            "language tokens; only those multilingual models can be installed "
                            "from a folder (.argosmodel files are installed as files)")
    family, languages, total = found
    tokenizer = next((n for n in TOKENIZERS if (path / n).is_file()), None)
    if tokenizer is None:
        raise _refuse(path, f"the SentencePiece tokenizer ({TOKENIZERS[0]}) is missing; convert "
                            f"with --copy_files {TOKENIZERS[0]}")
    shape = read_shape(path / MODEL_FILE)
    if shape.vocabulary and shape.vocabulary != len(vocabulary):
        raise _refuse(path, f"{vocabulary_file} has {len(vocabulary)} tokens but model.bin "
                            f"expects {shape.vocabulary}: they come from different models")
    model = FolderModel(path, family, languages, total, tokenizer, vocabulary_file, shape, 0)
    return FolderModel(path, family, languages, total, tokenizer, vocabulary_file, shape,
                       _size(path, model.files()))


def _within(ch: str, ranges: tuple[tuple[int, int], ...]) -> bool:
    return any(low <= ord(ch) <= high for low, high in ranges)


def _kind(token: str) -> str:
    """"common", "english", "latin" (Latin-1 letters in a longer piece), "eastern" or ""
    (none of the bot's: other scripts, and anything vmap.txt cannot hold: it splits at
    spaces)."""
    if not token or any(ch.isspace() or unicodedata.category(ch) == "Cc" for ch in token):
        return ""
    if len(token) > 2 and token[0] == "<" and token[-1] == ">":
        # Byte pieces (<0x3F>) spell characters a byte-fallback tokenizer has no piece for;
        # <pad> and <mask> are never output; CTranslate2 always allows <unk> <s> </s> itself.
        return "common" if re.fullmatch(r"<0x[0-9A-F]{2}>", token) else ""
    letters = [ch for ch in token if not _within(ch, _COMMON)]
    if not letters:
        return "common"
    if all(ch.isascii() for ch in letters):
        return "english"
    if all(ch.isascii() or _within(ch, (_LATIN_1_LETTERS,)) for ch in letters):
        return "english" if len(letters) == 1 else "latin"
    if all(_within(ch, _EASTERN) for ch in letters):
        return "eastern"
    return ""


@dataclass(frozen=True)
class VocabularyMap:
    """What vmap.txt lets a model output (see the module doc)."""

    vocabulary: int
    """Tokens in the model's vocabulary."""
    always: frozenset[str]
    by_source: dict[str, frozenset[str]]
    """Source language token -> the tokens it allows besides ``always``. Empty in a map
    written before per-direction maps: then ``always`` holds them all."""
    english: str
    """The family's English token (which directions a line serves)."""
    copied: frozenset[str] = frozenset()
    """Pieces allowed when the source holds them (Latin: names, acronyms)."""
    candidates: dict[str, int] = field(default_factory=dict)
    """Source language token -> how many tokens its direction would allow without
    the cap (known when the map is built, not when read back from vmap.txt)."""
    cap: int = 0
    """The cap it was built with (0: read back from vmap.txt, not known)."""

    @property
    def per_direction(self) -> bool:
        return bool(self.by_source)

    def serves(self, source_token: str, target_token: str) -> bool:
        """Whether the map holds the tokens of translations from ``source_token`` into
        ``target_token`` (English to another language, or another language to English)."""
        if not self.per_direction:
            return True
        into_english = target_token == self.english
        return source_token in self.by_source and (source_token == self.english) != into_english

    def allowed(self, source_token: str) -> int:
        """How many tokens a translation from this language may use (besides the Latin
        pieces of its own source, and <unk> <s> </s>, which CTranslate2 adds)."""
        return len(self.always | self.by_source.get(source_token, frozenset()))

    def capped(self, source_token: str) -> bool:
        """Whether the cap cut this direction (its most frequent tokens kept)."""
        return self.candidates.get(source_token, 0) > self.allowed(source_token)

    def lines(self) -> Iterator[str]:
        yield "\t" + " ".join(sorted(self.always))
        for key, tokens in self.by_source.items():
            yield f"{key}\t" + " ".join(sorted(tokens))
        for piece in sorted(self.copied):
            yield f"{piece}\t{piece}"

    def candidates_key(self, batch: Sequence[Sequence[str]]) -> tuple[str, ...]:
        """What decides the tokens CTranslate2 allows for this batch (with its target prefix,
        always in the map): the source language token and the source's copied pieces."""
        if not self.per_direction:
            return ()
        return (batch[0][0], *sorted({t for source in batch for t in source if t in self.copied}))


def _most_frequent(pieces: list[str], room: int) -> frozenset[str]:
    """``pieces`` (in vocabulary order) cut to ``room``: the single letters, then the
    lowest ids, which are the most frequent pieces.

    Why the order is frequency: the converter keeps the Hugging Face tokenizer's id order
    (CTranslate2 python/ctranslate2/converters/transformers.py, ModelLoader.get_vocabulary
    sorts tokenizer.get_vocab() by id; M2M100Loader only moves <unk> and appends the
    language tokens and madeupwords). M2M-100's come from its vocab.json (transformers
    M2M100Tokenizer), the fairseq dictionary, which Dictionary.finalize "sort[s] ... by
    frequency in descending order, ignoring special ones" (fairseq/data/dictionary.py,
    Counter.most_common of the training data's counts). NLLB-200's are its SentencePiece
    model's + 1 (transformers NllbTokenizer: "Original fairseq vocab and spm vocab must be
    aligned", fairseq_offset = 1), and SentencePiece's BPE trainer emits the pieces in
    merge order, each merge the most frequent pair left (score = -rank, so the scores hold
    the same order), and THEN every single character (google/sentencepiece
    src/bpe_model_trainer.cc, "Adds required_chars_"). So the single letters come last
    although they are what spells any word: they are kept first, never cut."""
    singles = [p for p in pieces if len(p.removeprefix(_WORD_MARKER)) == 1]
    longer = [p for p in pieces if len(p.removeprefix(_WORD_MARKER)) != 1]
    return frozenset(singles) | frozenset(longer[:max(0, room - len(singles))])


def build_vocabulary_map(vocabulary: list[str], family: Family,
                         cap: int | None = None) -> VocabularyMap:
    """The per-direction map of a model (see the module doc), each direction cut to
    ``cap`` tokens (MAX_OUTPUT_TOKENS by default)."""
    limit = MAX_OUTPUT_TOKENS if cap is None else cap
    languages = set(family.tokens.values())
    pattern = family.token_pattern
    kinds: dict[str, list[str]] = {"common": [], "english": [], "latin": [], "eastern": []}
    for token in vocabulary:
        if token in languages or (pattern and pattern.match(token)):
            continue
        kind = _kind(token)
        if kind:
            kinds[kind].append(token)
    english = family.tokens["en"]
    present = [token for token in family.tokens.values() if token in set(vocabulary)]
    always = frozenset(kinds["common"]) | frozenset(present)
    room = limit - len(always)  # never cut: masks, digits, punctuation, language tokens
    from_english = _most_frequent(kinds["eastern"], room)
    into_english = _most_frequent(kinds["english"], room)
    by_source = {token: from_english if token == english else into_english for token in present}
    candidates = {token: len(always) + len(kinds["eastern" if token == english else "english"])
                  for token in present}
    return VocabularyMap(len(vocabulary), always, by_source, english,
                         frozenset(kinds["english"] + kinds["latin"]), candidates, limit)


def write_vocabulary_map(folder: Path, vocabulary: list[str], family: Family,
                         cap: int | None = None) -> VocabularyMap:
    """Write vmap.txt for the model in ``folder``; returns what it allows."""
    mapping = build_vocabulary_map(vocabulary, family, cap)
    (folder / VOCABULARY_MAP).write_text("".join(line + "\n" for line in mapping.lines()),
                                         encoding="utf-8")
    return mapping


def read_vocabulary_map(folder: Path, family: Family) -> VocabularyMap | None:
    """The map in ``folder`` (None if it has none), as CTranslate2 reads it."""
    try:
        text = (folder / VOCABULARY_MAP).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise TranslationError(f"{folder / VOCABULARY_MAP} cannot be read ({exc}); install the "
                               "model again") from exc
    languages = set(family.tokens.values())
    always: frozenset[str] = frozenset()
    by_source: dict[str, frozenset[str]] = {}
    copied: set[str] = set()
    for line in text.splitlines():
        key, tab, values = line.partition("\t")
        if not tab:
            continue
        if not key:
            always = frozenset(values.split())
        elif key in languages:
            by_source[key] = frozenset(values.split())
        else:
            copied.add(key)
    vocabulary = len(read_vocabulary(folder)[0])
    return VocabularyMap(vocabulary, always, by_source, family.tokens["en"], frozenset(copied))


def read_manifest(folder: Path) -> dict[str, Any] | None:
    """The install record of an installed folder, or None if it has none (or a broken one)."""
    try:
        data = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None
