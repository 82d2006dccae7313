"""Build a tiny but REAL NLLB-200-shaped CTranslate2 folder in a few milliseconds, for tests.

The folder is what ``ct2-transformers-converter --copy_files sentencepiece.bpe.model``
leaves: ``model.bin``, ``config.json``, ``shared_vocabulary.json`` and
``sentencepiece.bpe.model``. Its vocabulary is laid out as NLLB's is (``<s> <pad> </s>
<unk>``, the SentencePiece pieces, the language tokens, ``<mask>``) with the FLORES-200
codes eng_Latn, pbt_Arab, prs_Arab, pes_Arab, urd_Arab, hin_Deva (and a couple the bot does
not use); ``family="m2m100"`` lays it out as M2M-100's (``__en__``...). CTranslate2 and
SentencePiece run their real code on it.

Weights are set by hand so the output is known in advance and DEPENDS ON THE TARGET
LANGUAGE TOKEN: every source piece is copied through, except the whole words in the table
of the target language, which come out translated (``hello`` -> ``سلام`` for Pashto,
``درود`` for Persian). Called as NLLB must be called (source ``[src] + pieces + [</s>]``,
target prefix ``[tgt]``), the output is ``[tgt] + translated pieces``. Without the target
prefix, the model's first output is the SOURCE language token, so it "translates" into the
source language (English words stay English): like the real model, it gives a wrong answer
and no error. A caller that does not drop the first token gets the language token in its text.

How (one layer each side, one attention head, width d; every residual slot holds ±1 codes
in balanced pairs [c, -c], so LayerNorm only rescales, by a factor known in advance):

* residual slots: T (token id), P (position), L (this token's language, 0 for none),
  F (is a language token), L2 (the target language, read back by self-attention), X (set
  only by a looping model's FFN);
* encoder: embedding = T(token), position = P(pos); its layer is off; output LN(T + P);
* decoder embeddings: L and F only; position = P(step). Self-attention puts its weight on
  the position whose F says "language token" (the prefix) and copies its L into L2.
  Cross-attention reads encoder position = step (query P(step), key P(pos)) and copies its
  T. Then d = all filled slots, so LN is the identity;
* FFN: one unit per (target language, source word) fires when T = T(word) and L2 = L(lang),
  and adds T(translation) - T(word);
* output projection: row v = T(v), so the argmax is the token whose code is in T.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from ctranslate2.specs import transformer_spec

from tests.support.tiny_argos import (
    MAX_POSITIONS,
    _balanced,
    _layer_norm,
    _linear,
    _switch_off,
    _train_sentencepiece,
    _zeros,
)

__all__ = ["DEFAULT_TABLES", "M2M_TOKENS", "NLLB_TOKENS", "build_tiny_nllb"]

NLLB_TOKENS: Mapping[str, str] = {"en": "eng_Latn", "ps": "pbt_Arab", "prs": "prs_Arab",
                                  "fa": "pes_Arab", "ur": "urd_Arab", "hi": "hin_Deva"}
M2M_TOKENS: Mapping[str, str] = {"en": "__en__", "ps": "__ps__", "fa": "__fa__", "ur": "__ur__",
                                 "hi": "__hi__"}
_EXTRA = {"nllb": ("deu_Latn", "fra_Latn"), "m2m100": ("__de__", "__fr__")}

#: Target language (bot code) -> {source word: its translation}.
DEFAULT_TABLES: Mapping[str, Mapping[str, str]] = {
    "ps": {"hello": "سلام", "friend": "ملګری", "help": "مرسته", "lawyer": "وکیل"},
    "prs": {"hello": "سلام", "friend": "رفیق", "help": "کمک", "lawyer": "وکیل"},
    "fa": {"hello": "درود", "friend": "دوست", "help": "کمک", "lawyer": "وکیل", "رفیق": "دوست"},
    "ur": {"hello": "ہیلو", "friend": "دوست", "help": "مدد", "lawyer": "وکیل"},
    "hi": {"hello": "नमस्ते", "friend": "दोस्त", "help": "मदद", "lawyer": "वकील"},
    "en": {"سلام": "hello", "درود": "hello", "ملګری": "friend", "رفیق": "friend", "دوست": "friend",
           "مرسته": "help", "کمک": "help", "وکیل": "lawyer", "ہیلو": "hello", "مدد": "help",
           "नमस्ते": "hello", "दोस्त": "friend", "मदद": "help", "वकील": "lawyer"},
}

_SELF_GAP = 30.0  # self-attention logit gap: language token vs any other position
_CROSS_GAP = 40.0  # cross-attention logit gap per differing position bit
_OUTPUT_GAP = 10.0  # output logit scale per differing token bit (x4 for one bit)


def _bits(count: int) -> int:
    return max(1, (count - 1).bit_length())


def _build_spec(vocab: list[str], languages: list[str], entries: list[tuple[int, int, int]],
                loops: list[tuple[int, int]]) -> transformer_spec.TransformerSpec:
    """``entries``: (language index, source token id, target token id); ``loops``:
    (language index, token id) said at every step in that language."""
    size = len(vocab)
    language_index = {vocab.index(token): i + 1 for i, token in enumerate(languages)}
    tb, pb, lb = _bits(size), _bits(MAX_POSITIONS), _bits(len(languages) + 1)
    slots: dict[str, slice] = {}
    start = 0
    for name, width in (("T", 2 * tb), ("P", 2 * pb), ("L", 2 * lb), ("F", 2), ("L2", 2 * lb),
                        ("X", 2)):
        slots[name] = slice(start, start + width)
        start += width
    d = start
    T, P, L, F, L2, X = (slots[n] for n in ("T", "P", "L", "F", "L2", "X"))

    positions = _zeros(MAX_POSITIONS, d)
    for p in range(MAX_POSITIONS):
        positions[p, P] = _balanced(p, pb)

    spec = transformer_spec.TransformerSpec.from_config((1, 1), num_heads=1)
    encoder, decoder = spec.encoder, spec.decoder

    # Encoder: output LN(T + P), scaled by ge.
    embeddings = _zeros(size, d)
    for i in range(size):
        embeddings[i, T] = _balanced(i, tb)
    encoder.embeddings[0].weight = embeddings
    encoder.scale_embeddings = False
    encoder.position_encodings.encodings = positions
    _layer_norm(encoder.layer_norm, d)
    _switch_off(encoder.layer[0], d, cross_attention=False)
    ge = math.sqrt(d / (2 * tb + 2 * pb))

    # Decoder input: L, F (from the token) and P (from the step).
    dec_embeddings = _zeros(size, d)
    for i in range(size):
        dec_embeddings[i, L] = _balanced(language_index.get(i, 0), lb)
        dec_embeddings[i, F] = [1.0, -1.0] if i in language_index else [-1.0, 1.0]
    decoder.embeddings.weight = dec_embeddings
    decoder.scale_embeddings = False
    decoder.position_encodings.encodings = positions
    _layer_norm(decoder.layer_norm, d)
    layer = decoder.layer[0]
    g0 = math.sqrt(d / (2 * pb + 2 * lb + 2))  # LayerNorm gain before self-attention
    g1 = math.sqrt(d / (2 * pb + 4 * lb + 2))  # ... before cross-attention (L2 filled)

    # Self-attention: constant query, key = "is a language token", value = its L -> L2.
    attention = layer.self_attention
    _layer_norm(attention.layer_norm, d)
    qkv = _zeros(3 * d, d)
    qkv_bias = _zeros(3 * d)
    f0 = F.start
    qkv_bias[f0] = 1.0
    qkv[d + f0, f0] = _SELF_GAP / 2 * math.sqrt(d) / g0
    qkv[2 * d + L2.start:2 * d + L2.stop, L] = np.eye(2 * lb) / g0
    attention.linear[0].weight = qkv
    attention.linear[0].bias = qkv_bias
    out = _zeros(d, d)
    out[L2, L2] = np.eye(2 * lb)
    _linear(attention.linear[1], out)

    # Cross-attention: step t reads encoder position t and copies its T.
    _layer_norm(layer.attention.layer_norm, d)
    query = _zeros(d, d)
    query[P, P] = np.eye(2 * pb) * (_CROSS_GAP / 4 * math.sqrt(d) / (g1 * ge))
    key_value = _zeros(2 * d, d)
    key_value[:d][P, P] = np.eye(2 * pb)
    key_value[d:][T, T] = np.eye(2 * tb)
    output = _zeros(d, d)
    output[T, T] = np.eye(2 * tb) / ge
    _linear(layer.attention.linear[0], query)
    _linear(layer.attention.linear[1], key_value)
    _linear(layer.attention.linear[2], output)

    # FFN: the table. Every slot but X now holds ±1, so LayerNorm barely rescales (X is 0).
    units = max(1, len(entries) + len(loops))
    w0 = _zeros(units, d)
    b0 = np.full(units, -1000.0, dtype=np.float32)  # an unused unit never fires
    w1 = _zeros(d, units)
    matched = 2 * tb + 2 * lb
    for j, (lang, source, target) in enumerate(entries):
        w0[j, T] = _balanced(source, tb)
        w0[j, L2] = _balanced(lang, lb)
        b0[j] = -(matched - 1)
        w1[T, j] = _balanced(target, tb) - _balanced(source, tb)
    for j, (lang, _) in enumerate(loops, start=len(entries)):
        w0[j, L2] = _balanced(lang, lb)  # fires whenever the target is this language
        b0[j] = -(2 * lb - 1)
        w1[X, j] = [1.0, -1.0]
    _layer_norm(layer.ffn.layer_norm, d)
    layer.ffn.linear_0.weight = w0
    layer.ffn.linear_0.bias = b0
    _linear(layer.ffn.linear_1, w1)

    projection = _zeros(size, d)
    for v in range(size):
        projection[v, T] = _balanced(v, tb) * _OUTPUT_GAP
    for _, token in loops:  # X set: this token beats any other, </s> included
        projection[token, X] = [1000.0, -1000.0]
    _linear(decoder.projection, projection)

    spec.register_source_vocabulary(vocab)
    spec.register_target_vocabulary(vocab)
    config = spec.config
    config.add_source_bos = False  # the caller adds the language token and </s> itself
    config.add_source_eos = False
    config.decoder_start_token = "</s>"
    spec.validate()
    spec.optimize()
    return spec


def build_tiny_nllb(tmp_dir: str | Path, tables: Mapping[str, Mapping[str, str]] | None = None, *,
                    family: str = "nllb", name: str | None = None,
                    loops: Mapping[str, str] | None = None) -> Path:
    """Write a CTranslate2 folder ``<tmp_dir>/<name>`` and return its path.

    ``tables`` maps a target language (bot code) to {source word: translation} (single
    words); every other piece is copied through. ``family``: "nllb" or "m2m100" (which
    has no Dari: a "prs" table is ignored there). ``loops`` ({language: word}) makes the
    model say that word at every step in that language and never stop (the failure of
    CTranslate2 issue 1582, at its worst).
    """
    tables = DEFAULT_TABLES if tables is None else tables
    codes = NLLB_TOKENS if family == "nllb" else M2M_TOKENS
    words: list[str] = list((loops or {}).values())
    for table in tables.values():
        for source, target in table.items():
            if not source or not target or any(ch.isspace() for ch in source + target):
                raise ValueError(f"table entries must be single words: {source!r} -> {target!r}")
            words += [source, target]
    sp = _train_sentencepiece(list(dict.fromkeys(words)))
    languages = [*codes.values(), *_EXTRA[family]]
    pieces = [sp.id_to_piece(i) for i in range(3, sp.get_piece_size())]
    vocab = ["<s>", "<pad>", "</s>", "<unk>", *pieces, *languages]
    vocab += ["<mask>"] if family == "nllb" else ["madeupword0", "madeupword1"]
    ids = {token: i for i, token in enumerate(vocab)}
    entries = [(languages.index(codes[lang]) + 1, ids[f"▁{source}"], ids[f"▁{target}"])
               for lang, table in tables.items() if lang in codes
               for source, target in table.items()]
    looping = [(languages.index(codes[lang]) + 1, ids[f"▁{word}"]) for lang, word in (loops or {}).items()]

    folder = Path(tmp_dir) / (name or f"{family}-tiny")
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    _build_spec(vocab, languages, entries, looping).save(str(folder))
    (folder / "sentencepiece.bpe.model").write_bytes(sp.serialized_model_proto())
    return folder


def vocabulary(folder: Path) -> list[str]:
    tokens: list[str] = json.loads((folder / "shared_vocabulary.json").read_text(encoding="utf-8"))
    return tokens

