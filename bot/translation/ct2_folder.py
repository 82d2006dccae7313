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

And ``vmap.txt``, a CTranslate2 vocabulary map written on install: the only tokens the model
may output are those written in the scripts of the bot's languages (Latin, Arabic,
Devanagari, with their digits and punctuation). NLLB-200's 256,206 tokens cover 202
languages; a Pashto or English translation never needs a Cyrillic or Chinese token, and
every decoding step scores every allowed token, reading its row of the output layer: with
batch size one that reading is most of the step's time (bench/bench_translation.py).
"""

from __future__ import annotations

import json
import os
import struct
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from bot.errors import TranslationError
from bot.translation.families import Family, recognise

__all__ = ["MANIFEST", "TOKENIZERS", "VOCABULARY_MAP", "FolderModel", "ModelShape", "inspect_folder",
           "output_tokens", "read_manifest", "read_shape", "read_vocabulary", "write_vocabulary_map"]

MANIFEST = "helpbot-model.json"
MODEL_FILE = "model.bin"
CONFIG_FILE = "config.json"
VOCABULARIES = ("shared_vocabulary.json", "shared_vocabulary.txt")
#: SentencePiece model names, as the converter's --copy_files leaves them.
TOKENIZERS = ("sentencepiece.bpe.model", "sentencepiece.model")
#: Files copied on install: a folder may also hold a PyTorch checkpoint of several GB.
EXTRA_FILES = ("README.md", "LICENSE", "LICENSE.md", "LICENSE.txt")
VOCABULARY_MAP = "vmap.txt"
#: Characters the bot's six languages are written with (SentencePiece's ▁ included).
_OUTPUT_SCRIPTS = (
    (0x0000, 0x00FF),  # ASCII and Latin-1: English, digits, masks such as [0]
    (0x0600, 0x06FF), (0x0750, 0x077F), (0x08A0, 0x08FF),  # Arabic script: ps, prs, fa, ur
    (0xFB50, 0xFDFF), (0xFE70, 0xFEFF),  # Arabic presentation forms
    (0x0900, 0x097F), (0xA8E0, 0xA8FF),  # Devanagari: hi
    (0x2000, 0x206F), (0x20A0, 0x20CF),  # punctuation, currency signs
    (0x2581, 0x2581),  # SentencePiece's word marker
)
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


def _writable(token: str) -> bool:
    """Written only in the bot's scripts (vmap.txt is split at spaces: none may be in a token)."""
    return bool(token) and all(
        not ch.isspace() and unicodedata.category(ch) != "Cc"
        and any(low <= ord(ch) <= high for low, high in _OUTPUT_SCRIPTS) for ch in token)


def output_tokens(vocabulary: list[str], family: Family) -> list[str]:
    """The tokens a translation into one of the bot's languages may contain: those written
    in their scripts, and the family's tokens for the bot's languages (the target prefix).
    Other languages' tokens (deu_Latn) are left out; CTranslate2 always adds <unk> <s> </s>."""
    languages = set(family.tokens.values())
    pattern = family.token_pattern
    return [t for t in vocabulary
            if t in languages or (_writable(t) and not (pattern and pattern.match(t)))]


def write_vocabulary_map(folder: Path, vocabulary: list[str], family: Family) -> int:
    """Write vmap.txt (one line: a tab, then the allowed tokens); returns how many."""
    tokens = output_tokens(vocabulary, family)
    (folder / VOCABULARY_MAP).write_text("\t" + " ".join(tokens) + "\n", encoding="utf-8")
    return len(tokens)


def read_manifest(folder: Path) -> dict[str, Any] | None:
    """The install record of an installed folder, or None if it has none (or a broken one)."""
    try:
        data = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None
