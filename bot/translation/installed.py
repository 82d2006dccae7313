"""The models in BOT_MODELS_DIR, of every family: list them, install one, load one.

Backs ``python -m bot models install PATH...`` and ``python -m bot models list``, and tells
the translator what it can route to.

* An ``.argosmodel`` FILE is unzipped into the folder as before (bot/translation/argos_models.py).
* A CTranslate2 FOLDER (NLLB-200, M2M-100) is checked (bot/translation/ct2_folder.py), its
  licence must be accepted when it forbids commercial use, a short test translation must
  pass on the copy, and only then is the copy moved into place, with its install record
  ``helpbot-model.json``. Only the files the model needs are copied (a downloaded folder may
  also hold a PyTorch checkpoint of several GB). A model of the same name is replaced.

Nothing here touches the network: models are fetched and converted by a person on a
machine with internet access (README, "Translation models").
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.errors import TranslationError
from bot.text.languages import LANGUAGES
from bot.translation import argos_models
from bot.translation.ct2_folder import (
    MANIFEST,
    MAX_OUTPUT_TOKENS,
    FolderModel,
    VocabularyMap,
    inspect_folder,
    read_manifest,
    read_vocabulary,
    read_vocabulary_map,
    write_vocabulary_map,
)
from bot.translation.families import ARGOS, FAMILIES, Family
from bot.translation.multilingual import MultilingualRunner
from bot.translation.routing import Candidate, variant_of
from bot.translation.runner import Runner

__all__ = ["TEST_SENTENCE", "Ignored", "Installed", "ModelInfo", "check_licence",
           "describe_vocabulary_map", "install_path", "list_models", "load_runner"]

TEST_SENTENCE = "Hello, how can we help you today?"
_HIDDEN_PREFIX = "."


@dataclass(frozen=True)
class ModelInfo:
    """One usable installed model, whatever its family."""

    name: str
    """Folder name in the models directory (unique there)."""
    family: Family
    path: Path
    languages: tuple[str, ...]
    """Bot language codes the model has itself (never a stand-in)."""
    pairs: frozenset[tuple[str, str]]
    licence: str
    size_bytes: int
    variant: str | None = None
    """The published model it is (quality data in bot/translation/routing.py), if known."""
    detail: str = ""
    all_languages: int = 0
    tokenizer: str = ""
    licence_accepted: str = ""
    """When a non-commercial licence was accepted (ISO date), for models that need it."""

    def candidate(self) -> Candidate:
        return Candidate(self.name, self.family.id, self.variant, self.pairs)

    def describe_languages(self) -> str:
        if self.family.multilingual:
            others = self.all_languages - len(self.languages)
            return " ".join(self.languages) + (f" (+{others} the bot does not use)" if others > 0 else "")
        return " ".join(f"{a}->{b}" for a, b in sorted(self.pairs)) or self.detail

    def describe_licence(self) -> str:
        if not self.licence:
            return "not stated (see the package's README)"
        if self.family.commercial_use:
            return self.licence
        accepted = f", accepted {self.licence_accepted}" if self.licence_accepted else ""
        return f"{self.licence} (non-commercial use only{accepted})"


@dataclass(frozen=True)
class Ignored:
    """A folder in the models directory that is not used, and why."""

    path: Path
    reason: str


@dataclass(frozen=True)
class Installed:
    model: ModelInfo
    #: (language, text): the test translations that passed, for the person installing.
    tests: list[tuple[str, str]] = field(default_factory=list)
    #: What it may output, per direction: see vmap.txt in ct2_folder.py.
    vocabulary_map: VocabularyMap | None = None


def _folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _from_argos(model: argos_models.InstalledModel) -> ModelInfo:
    pair = model.pair
    usable = all(code in LANGUAGES for code in pair)
    # Argos packages state no licence in their metadata; each one's README says it.
    return ModelInfo(
        name=model.name, family=ARGOS, path=model.path,
        languages=pair if usable else (), pairs=frozenset({pair}) if usable else frozenset(),
        licence="", size_bytes=_folder_size(model.path), variant=variant_of("argos", 0, 0, 0),
        detail=f"{model.from_code}->{model.to_code} v{model.version or '?'}")


def _from_manifest(folder: Path, manifest: dict[str, Any]) -> ModelInfo | str:
    """The model an install record describes, or why it cannot be used."""
    family = FAMILIES.get(str(manifest.get("family", "")))
    if family is None or not family.multilingual:
        return f"{MANIFEST} names an unknown family {manifest.get('family')!r}"
    if not family.commercial_use and not manifest.get("licence_accepted"):
        return f"its {family.licence} licence was not accepted; install it again with --accept-licence"
    languages = tuple(c for c in manifest.get("languages", []) if c in family.tokens)
    shape = manifest.get("shape") or {}
    tokenizer = str(manifest.get("tokenizer", ""))
    if not (folder / "model.bin").is_file() or not tokenizer or not (folder / tokenizer).is_file():
        return "files are missing (model.bin or the tokenizer); install it again"
    detail = f"{family.title}"
    if manifest.get("variant"):
        detail += f" {str(manifest['variant']).split('-', 1)[1].upper()}"
    if shape:
        detail += (f" ({shape.get('encoder_layers')}+{shape.get('decoder_layers')} layers, "
                   f"{shape.get('quantization')})")
    return ModelInfo(
        name=folder.name, family=family, path=folder, languages=languages,
        pairs=frozenset((a, b) for a in languages for b in languages if a != b),
        licence=family.licence, size_bytes=_folder_size(folder),
        variant=manifest.get("variant") or None, detail=detail,
        all_languages=int(manifest.get("all_languages", len(languages))), tokenizer=tokenizer,
        licence_accepted=str(manifest.get("licence_accepted") or ""))


def list_models(models_dir: str | os.PathLike[str]) -> tuple[list[ModelInfo], list[Ignored]]:
    """Usable models sorted by name, and the folders that are not used with the reason."""
    root = Path(models_dir)
    models = [_from_argos(m) for m in argos_models.list_models(root)]
    ignored: list[Ignored] = []
    argos_paths = {m.path for m in models}
    if root.is_dir():
        for folder in sorted(root.iterdir()):
            if folder.name.startswith(_HIDDEN_PREFIX) or not folder.is_dir() or folder in argos_paths:
                continue
            manifest = read_manifest(folder)
            if manifest is None:
                reason = ("not installed with 'python -m bot models install' (no install record)"
                          if (folder / "model.bin").is_file() else "not a translation model")
                ignored.append(Ignored(folder, reason))
                continue
            found = _from_manifest(folder, manifest)
            if isinstance(found, str):
                ignored.append(Ignored(folder, found))
            else:
                models.append(found)
    return sorted(models, key=lambda m: m.name), ignored


def load_runner(model: ModelInfo, *, threads: int = 1, beam_size: int | None = None) -> Runner:
    """Load the model (seconds for a real one): call it in the translation worker thread."""
    try:
        if model.family is ARGOS:
            from bot.translation.argos_package import ArgosPackage

            return ArgosPackage(model.path, threads=threads)
        options = {} if beam_size is None else {"beam_size": beam_size}
        return MultilingualRunner(model.path, model.family, model.tokenizer, threads=threads,
                                  **options)
    except TranslationError:
        raise
    except Exception as exc:  # CTranslate2 or SentencePiece refusing the files
        raise TranslationError(
            f"could not load the translation model {model.path}: {type(exc).__name__}: {exc}. "
            "It may be damaged: install it again with python -m bot models install") from exc


def describe_vocabulary_map(model: ModelInfo) -> list[str]:
    """How many tokens the model may output per direction, for ``models install`` and
    ``models list`` (fewer tokens, faster steps: bench/bench_translation.py)."""
    if not model.family.multilingual:
        return []
    mapping = read_vocabulary_map(model.path, model.family)
    # Installing a model from its own installed folder rewrites its map (the files are
    # copied before the old folder is replaced).
    again = (f"python -m bot models install {model.path}"
             + ("" if model.family.commercial_use else " --accept-licence"))
    if mapping is None:
        return [f"no vocabulary map: every direction scores all its tokens; {again} makes it faster"]
    total = f"{mapping.vocabulary:,}"
    if not mapping.per_direction:
        return [f"{len(mapping.always):,} of {total} tokens in every direction (the map of an "
                f"older install); {again} writes a smaller one per direction, which is faster"]
    codes = {token: code for code, token in model.family.tokens.items()}
    others = [codes[t] for t in mapping.by_source if t != mapping.english and t in codes]
    manifest = read_manifest(model.path) or {}
    candidates = manifest.get("output_candidates")
    if not isinstance(candidates, dict):  # installed before the cap
        candidates = {}

    def count(token: str, kind: str) -> str:
        allowed = mapping.allowed(token)
        known = candidates.get(token)
        cut = (f", capped: {allowed:,} of {known:,} candidates (the most frequent kept)"
               if isinstance(known, int) and known > allowed else "")
        return f"{allowed:,} of {total} tokens ({kind}){cut}"

    lines = []
    if mapping.english in mapping.by_source:
        lines.append(f"en->{'/'.join(others)}: "
                     f"{count(mapping.english, 'Arabic and Devanagari script')}, and the Latin "
                     "pieces of the message itself")
    for token in mapping.by_source:
        if token != mapping.english and token in codes:
            lines.append(f"{codes[token]}->en: {count(token, 'ASCII and single Latin-1 letters')}")
    lines.append(f"between two of {'/'.join(others)}: all {total} tokens (no map)")
    if not candidates and any(mapping.allowed(t) > MAX_OUTPUT_TOKENS for t in mapping.by_source):
        lines.append(f"more than {MAX_OUTPUT_TOKENS:,} tokens in a direction (installed before "
                     f"the cap); {again} caps them, which is faster")
    return lines


# --------------------------------------------------------------------------- installing


def check_licence(found: FolderModel, accept_licence: bool) -> None:
    """TranslationError unless the licence allows use, or the person accepted its terms."""
    family = found.family
    if family.commercial_use or accept_licence:
        return
    raise TranslationError(
        f"{found.path}: {family.title} is licensed {family.licence} ({family.licence_url}): it "
        "may be used for non-commercial purposes only, with attribution. If your "
        "organisation's use is non-commercial and you accept these terms, run the install "
        "again with --accept-licence")


def _test_translations(folder: Path, found: FolderModel) -> list[tuple[str, str]]:
    """Translate TEST_SENTENCE into each bot language the model has, on the installed copy."""
    from bot.translation.runner import Step, translate_texts
    from bot.translation.sentences import OfflineSentencizer

    try:
        runner = MultilingualRunner(folder, found.family, found.tokenizer)
    except Exception as exc:  # CTranslate2 or SentencePiece refusing the files
        raise TranslationError(f"{found.path}: the model could not be loaded ({type(exc).__name__}: "
                               f"{exc}); the files may be damaged or from another converter "
                               "version, so it was not installed") from exc
    tests = []
    for code in found.languages:
        if code == "en":
            continue
        try:
            [text] = translate_texts([TEST_SENTENCE], [Step(runner, "en", code)], OfflineSentencizer())
        except TranslationError as exc:
            raise TranslationError(f"{found.path}: the test translation into {code} failed, so the "
                                   f"model was not installed: {exc}") from exc
        if not text.strip():
            raise TranslationError(f"{found.path}: the test translation into {code} came out "
                                   "empty, so the model was not installed")
        tests.append((code, text))
    return tests


def _install_folder(found: FolderModel, root: Path, name: str | None,
                    accept_licence: bool) -> Installed:
    import json

    check_licence(found, accept_licence)
    if "en" not in found.languages or len(found.languages) < 2:
        raise TranslationError(f"{found.path}: this {found.family.title} model has no language "
                               "the bot offers besides English")
    target_name = name or found.path.name
    if not target_name or target_name.startswith(_HIDDEN_PREFIX) or "/" in target_name:
        raise TranslationError(f"{target_name!r} cannot be a model name; pass --name NAME")
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{_HIDDEN_PREFIX}install-", dir=root))
    try:
        copy = staging / target_name
        copy.mkdir()
        for file in found.files():
            shutil.copy2(found.path / file, copy / file)
        vocabulary, _ = read_vocabulary(copy)
        mapping = write_vocabulary_map(copy, vocabulary, found.family)
        tests = _test_translations(copy, found)
        shape = found.shape
        variant = variant_of(found.family.id, shape.encoder_layers, shape.decoder_layers,
                             shape.d_model) if shape else None
        manifest = {
            "family": found.family.id,
            "languages": list(found.languages),
            "all_languages": found.all_languages,
            "tokenizer": found.tokenizer,
            "variant": variant,
            "shape": shape.__dict__ if shape else None,
            "output_tokens": {token: mapping.allowed(token) for token in mapping.by_source},
            # What each direction would allow without the cap (vmap.txt cannot say it).
            "output_candidates": mapping.candidates,
            "output_cap": mapping.cap,
            "vocabulary": len(vocabulary),
            "licence": found.family.licence,
            "licence_accepted": time.strftime("%Y-%m-%d") if not found.family.commercial_use else None,
            "installed_from": str(found.path),
            "tests": dict(tests),
        }
        (copy / MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False, indent=2) + "\n",
                                     encoding="utf-8")
        target = root / target_name
        if target.exists():
            shutil.rmtree(target)
        os.replace(copy, target)
    except OSError as exc:
        raise TranslationError(f"could not install {found.path} into {root}: {exc}") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    info = _from_manifest(target, manifest)
    assert isinstance(info, ModelInfo)
    return Installed(info, tests, mapping)


def install_path(path: Path, models_dir: str | os.PathLike[str], *, accept_licence: bool = False,
                 name: str | None = None) -> Installed:
    """Install an .argosmodel file or a CTranslate2 folder into ``models_dir``."""
    root = Path(models_dir)
    if path.is_dir():
        return _install_folder(inspect_folder(path), root, name, accept_licence)
    [argos] = argos_models.install_models([path], root)
    return Installed(_from_argos(argos))
