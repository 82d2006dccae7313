"""Build a tiny but REAL ``.argosmodel`` in about 0.05 s, for tests and benchmarks.

Nothing is mocked: the package holds a SentencePiece model trained on the spot and a
CTranslate2 Transformer saved with ``TransformerSpec``, so argostranslate, ctranslate2 and
sentencepiece run their real code paths on it. The weights are set by hand so the model is
deterministic and its output is known in advance:

* every source piece is copied through, except the whole words in ``table``, which come
  out as their translation (``hello`` -> ``سلام``). Words are matched case-sensitively and
  only at the start of a word (``othello`` stays, ``helloworld`` becomes ``سلامworld``);
* any text can be encoded (SentencePiece byte fallback), so placeholders, URLs and digits
  survive exactly as they went in, which makes the tests of masking meaningful.

How the hand-set Transformer copies (d = residual width, one attention head):

* residual layout: T = a ±1 binary code of a token id, with its negation ([c, -c]) so that
  every vector has mean 0 and LayerNorm only rescales it; P = the same for a position.
* encoder: embedding(source piece s) = T(code of table[s]); position encoding = P(pos);
  its one layer is switched off (zero output projections), so the encoder output is
  LayerNorm(T + P).
* decoder: token embeddings are zero; position encoding = P(step). Its cross-attention
  puts a large weight on query P(step) . key P(pos), so step t reads encoder position t
  and copies that position's T into the residual. Self-attention and FFN are switched off.
* output projection: row v = T(code of v), so the argmax at step t is table[source[t]].
* ``add_source_eos`` appends ``</s>`` to the source, whose code maps to itself, so the
  decoder stops after the last source piece.
"""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import numpy.typing as npt
import sentencepiece as spm
from ctranslate2.specs import transformer_spec

__all__ = ["DEFAULT_TABLE", "LANGUAGE_NAMES", "MAX_POSITIONS", "build_tiny_model"]

DEFAULT_TABLE: Mapping[str, str] = {
    "hello": "سلام",
    "friend": "دوست",
    "help": "کمک",
    "lawyer": "وکیل",
}

LANGUAGE_NAMES: Mapping[str, str] = {
    "en": "English",
    "fa": "Persian",
    "ur": "Urdu",
    "hi": "Hindi",
    "ps": "Pashto",
    "ar": "Arabic",
}

MAX_POSITIONS = 1024  # ctranslate2 truncates inputs at 1024 tokens by default
_ATTENTION_SHARPNESS = 40.0  # logit gap per differing position bit, before 1/sqrt(d) scaling
_OUTPUT_SHARPNESS = 10.0  # logit gap per differing token bit
# Generic text so that the space marker and common letters become pieces of their own.
_CORPUS = (
    "the quick brown fox jumps over the lazy dog",
    "call us on the phone or write an e-mail, we can help you today.",
    "THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG 0123456789 [0] {x}",
)

FloatArray = npt.NDArray[np.float32]


def _train_sentencepiece(words: list[str]) -> spm.SentencePieceProcessor:
    proto = io.BytesIO()
    sentences = [*_CORPUS, " ".join(words)]
    characters = set("".join(sentences))
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences),
        model_writer=proto,
        model_type="bpe",
        # 3 specials + 256 byte pieces + characters + table words + room for a few merges
        vocab_size=3 + 256 + len(characters) + len(words) + 32,
        hard_vocab_limit=False,
        byte_fallback=True,  # any text can be encoded, nothing becomes <unk>
        character_coverage=1.0,
        normalization_rule_name="identity",  # keep Persian letters exactly as given
        user_defined_symbols=[f"▁{w}" for w in words],  # each table word is one piece
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        minloglevel=2,
    )
    return spm.SentencePieceProcessor(model_proto=proto.getvalue())


def _code(value: int, bits: int) -> FloatArray:
    return np.array([1.0 if (value >> b) & 1 else -1.0 for b in range(bits)], dtype=np.float32)


def _balanced(value: int, bits: int) -> FloatArray:
    code = _code(value, bits)
    return np.concatenate([code, -code])


def _zeros(*shape: int) -> FloatArray:
    return np.zeros(shape, dtype=np.float32)


def _layer_norm(spec: object, width: int) -> None:
    spec.gamma = np.ones(width, dtype=np.float32)  # type: ignore[attr-defined]
    spec.beta = _zeros(width)  # type: ignore[attr-defined]


def _linear(spec: object, weight: FloatArray) -> None:
    spec.weight = weight.astype(np.float32)  # type: ignore[attr-defined]
    spec.bias = _zeros(weight.shape[0])  # type: ignore[attr-defined]


def _switch_off(layer: object, width: int, *, cross_attention: bool) -> None:
    """Zero the output projections of a layer's self-attention and FFN: it adds nothing."""
    self_attention = layer.self_attention  # type: ignore[attr-defined]
    _layer_norm(self_attention.layer_norm, width)
    _linear(self_attention.linear[0], _zeros(3 * width, width))
    _linear(self_attention.linear[1], _zeros(width, width))
    ffn = layer.ffn  # type: ignore[attr-defined]
    _layer_norm(ffn.layer_norm, width)
    _linear(ffn.linear_0, _zeros(4, width))
    _linear(ffn.linear_1, _zeros(width, 4))
    if cross_attention:
        _layer_norm(layer.attention.layer_norm, width)  # type: ignore[attr-defined]


def _build_ctranslate2_model(
    sp: spm.SentencePieceProcessor, mapping: Mapping[int, int], out_dir: Path
) -> None:
    vocab = [sp.id_to_piece(i) for i in range(sp.get_piece_size())]
    size = len(vocab)
    tbits = max(1, (size - 1).bit_length())
    pbits = (MAX_POSITIONS - 1).bit_length()
    tok = slice(0, 2 * tbits)
    pos = slice(2 * tbits, 2 * tbits + 2 * pbits)
    width = 2 * tbits + 2 * pbits

    def token_vector(token_id: int) -> FloatArray:
        vec = _zeros(width)
        vec[tok] = _balanced(token_id, tbits)
        return vec

    positions = _zeros(MAX_POSITIONS, width)
    for p in range(MAX_POSITIONS):
        positions[p, pos] = _balanced(p, pbits)

    spec = transformer_spec.TransformerSpec.from_config((1, 1), num_heads=1)
    encoder, decoder = spec.encoder, spec.decoder

    encoder.embeddings[0].weight = np.stack(
        [token_vector(mapping.get(i, i)) for i in range(size)]
    )
    encoder.scale_embeddings = False
    encoder.position_encodings.encodings = positions
    _layer_norm(encoder.layer_norm, width)
    _switch_off(encoder.layer[0], width, cross_attention=False)

    decoder.embeddings.weight = _zeros(size, width)
    decoder.scale_embeddings = False
    decoder.position_encodings.encodings = positions
    _layer_norm(decoder.layer_norm, width)
    layer = decoder.layer[0]
    _switch_off(layer, width, cross_attention=True)
    query = _zeros(width, width)
    query[pos, pos] = np.eye(2 * pbits) * _ATTENTION_SHARPNESS
    key_value = _zeros(2 * width, width)
    key_value[:width][pos, pos] = np.eye(2 * pbits)
    key_value[width:][tok, tok] = np.eye(2 * tbits)
    # The encoder's final LayerNorm scaled its ±1 entries by sqrt(width / nonzero); undo it
    # so the decoder residual holds the copied token code as exact ±1 values.
    output = _zeros(width, width)
    output[tok, tok] = np.eye(2 * tbits)  # width == nonzero entries here: the scale is 1
    _linear(layer.attention.linear[0], query)
    _linear(layer.attention.linear[1], key_value)
    _linear(layer.attention.linear[2], output)

    _linear(
        decoder.projection,
        np.stack([token_vector(v) * _OUTPUT_SHARPNESS for v in range(size)]),
    )

    spec.register_source_vocabulary(vocab)
    spec.register_target_vocabulary(vocab)
    spec.config.add_source_eos = True
    spec.validate()
    spec.optimize()
    spec.save(str(out_dir))


def build_tiny_model(
    tmp_dir: str | Path,
    from_code: str = "en",
    to_code: str = "fa",
    table: Mapping[str, str] | None = None,
    *,
    package_version: str = "1.0",
    folder_name: str | None = None,
) -> Path:
    """Write ``<tmp_dir>/translate-<from>_<to>-<version>.argosmodel`` and return its path.

    ``table`` maps whole source words to whole target words (no spaces); every other piece
    of the input is copied through unchanged. The archive holds one top-level folder with
    ``metadata.json``, ``model/`` (CTranslate2) and ``sentencepiece.model``, like the
    packages argospm downloads.
    """
    table = dict(DEFAULT_TABLE if table is None else table)
    for source, target in table.items():
        if not source or not target or any(ch.isspace() for ch in source + target):
            raise ValueError(f"table entries must be single words: {source!r} -> {target!r}")

    words = list(dict.fromkeys([*table, *table.values()]))
    sp = _train_sentencepiece(words)
    mapping = {sp.piece_to_id(f"▁{s}"): sp.piece_to_id(f"▁{t}") for s, t in table.items()}

    tmp_dir = Path(tmp_dir)
    name = folder_name or f"translate-{from_code}_{to_code}-{package_version}"
    work = tmp_dir / f"{name}.build"
    if work.exists():
        shutil.rmtree(work)
    package_dir = work / name
    (package_dir / "model").mkdir(parents=True)
    _build_ctranslate2_model(sp, mapping, package_dir / "model")
    (package_dir / "sentencepiece.model").write_bytes(sp.serialized_model_proto())
    metadata = {
        "package_version": package_version,
        "argos_version": "1.9.0",
        "from_code": from_code,
        "from_name": LANGUAGE_NAMES.get(from_code, from_code),
        "to_code": to_code,
        "to_name": LANGUAGE_NAMES.get(to_code, to_code),
        "type": "translate",
        "links": [],
    }
    (package_dir / "metadata.json").write_text(
        json.dumps(metadata, ensure_ascii=False, indent=2), encoding="utf-8"
    )
    (package_dir / "README.md").write_text(
        f"Tiny deterministic test model {from_code}->{to_code}: {table}\n", encoding="utf-8"
    )

    archive = tmp_dir / f"{name}.argosmodel"
    # ZIP_STORED: the model is ~0.3 MB and compressing it would cost more than it saves.
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_STORED) as zf:
        for path in sorted(package_dir.rglob("*")):
            zf.write(path, path.relative_to(work).as_posix())
    shutil.rmtree(work)
    return archive
