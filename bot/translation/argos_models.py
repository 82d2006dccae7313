"""Install and list offline translation models (``.argosmodel`` files) in a packages directory.

Backs ``python -m bot models install PATH...`` and ``python -m bot models list``.

An ``.argosmodel`` is a zip archive holding ONE top-level folder with ``metadata.json``
(``from_code``, ``to_code``, ``package_version``...), a CTranslate2 model in ``model/`` and
a SentencePiece tokenizer (``sentencepiece.model``; packages tokenized with ``bpe.model``
instead are refused: bot/translation/argos_package.py runs SentencePiece models only).
Models are downloaded by a person on a machine with internet access
(https://www.argosopentech.com/argospm/index/) and copied to the server; nothing here
touches the network.

We unzip into the packages directory ourselves rather than calling
``argostranslate.package.install_from_path``: that function always extracts into the global
``argostranslate.settings.package_data_dir`` (fixed when argostranslate is first imported),
accepts any zip without checking it, and importing argostranslate creates directories under
the user's home. Here every archive is checked before anything is written, extraction goes
to a hidden temporary folder first and is moved into place in one rename, and a model for a
pair that is already installed replaces the old one (argostranslate would keep both and use
whichever it happens to list first).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from bot.errors import TranslationError

__all__ = ["MAX_MODEL_BYTES", "InstalledModel", "install_models", "list_models"]

MAX_MODEL_BYTES = 4 * 1024**3
"""Refuse archives that would unpack to more than this (real models are 100-300 MB)."""

_TOKENIZER = "sentencepiece.model"
_HIDDEN_PREFIX = "."  # temporary folders of an install in progress; never listed


@dataclass(frozen=True)
class InstalledModel:
    """One translation model installed in a packages directory."""

    from_code: str
    to_code: str
    name: str
    """Folder name inside the packages directory (unique there)."""
    version: str
    path: Path
    from_name: str = ""
    to_name: str = ""

    @property
    def pair(self) -> tuple[str, str]:
        return (self.from_code, self.to_code)

    def __str__(self) -> str:
        names = f" ({self.from_name} -> {self.to_name})" if self.from_name and self.to_name else ""
        return f"{self.from_code}->{self.to_code}{names} v{self.version or '?'}  {self.path}"


@dataclass(frozen=True)
class _Archive:
    path: Path
    folder: str
    metadata: dict[str, Any]


def _refuse(path: Path, reason: str) -> TranslationError:
    return TranslationError(
        f"{path}: not a usable .argosmodel file: {reason}. "
        "Download a model from https://www.argosopentech.com/argospm/index/ and install it "
        "with: python -m bot models install PATH.argosmodel"
    )


def _codes(metadata: dict[str, Any]) -> tuple[str, str] | None:
    from_code, to_code = metadata.get("from_code"), metadata.get("to_code")
    if isinstance(from_code, str) and isinstance(to_code, str) and from_code and to_code:
        return from_code, to_code
    return None


def _inspect(path: Path) -> _Archive:
    """Check an archive without extracting it; raise TranslationError saying what is wrong."""
    if not path.is_file():
        raise _refuse(path, "no such file")
    if not zipfile.is_zipfile(path):
        raise _refuse(path, "it is not a zip archive")
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            names = [PurePosixPath(info.filename) for info in infos]
            if any(n.is_absolute() or ".." in n.parts for n in names):
                raise _refuse(path, "it contains absolute paths or '..'")
            tops = {n.parts[0] for n in names if n.parts}
            if len(tops) != 1:
                raise _refuse(
                    path, f"expected one top-level folder, found {len(tops)}: {sorted(tops)[:5]}"
                )
            folder = tops.pop()
            if folder.startswith(_HIDDEN_PREFIX) or not any(len(n.parts) > 1 for n in names):
                raise _refuse(path, f"top-level entry {folder!r} is not a package folder")
            if sum(info.file_size for info in infos) > MAX_MODEL_BYTES:
                raise _refuse(path, f"it would unpack to more than {MAX_MODEL_BYTES} bytes")
            members = {n.as_posix() for n in names}
            if f"{folder}/metadata.json" not in members:
                raise _refuse(path, f"{folder}/metadata.json is missing")
            try:
                metadata = json.loads(zf.read(f"{folder}/metadata.json").decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise _refuse(path, f"{folder}/metadata.json is not valid JSON ({exc})") from exc
            if not isinstance(metadata, dict):
                raise _refuse(path, "metadata.json does not hold a JSON object")
            if metadata.get("type", "translate") != "translate":
                raise _refuse(path, f"package type is {metadata.get('type')!r}, not 'translate'")
            if _codes(metadata) is None:
                raise _refuse(path, "metadata.json has no from_code/to_code")
            if f"{folder}/model/model.bin" not in members:
                raise _refuse(path, f"{folder}/model/model.bin (the CTranslate2 model) is missing")
            if f"{folder}/{_TOKENIZER}" not in members:
                if f"{folder}/bpe.model" in members:
                    raise _refuse(path, "it is tokenized with bpe.model; only SentencePiece "
                                        "models (sentencepiece.model) are supported")
                raise _refuse(path, f"{folder}/{_TOKENIZER} (the tokenizer) is missing")
    except zipfile.BadZipFile as exc:
        raise _refuse(path, f"the zip archive is damaged ({exc})") from exc
    return _Archive(path=path, folder=folder, metadata=metadata)


def _read_model(folder: Path) -> InstalledModel | None:
    try:
        metadata = json.loads((folder / "metadata.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(metadata, dict) or metadata.get("type", "translate") != "translate":
        return None
    codes = _codes(metadata)
    if codes is None or not (folder / _TOKENIZER).is_file():
        return None
    return InstalledModel(
        from_code=codes[0],
        to_code=codes[1],
        name=folder.name,
        version=str(metadata.get("package_version", "")),
        path=folder,
        from_name=str(metadata.get("from_name", "")),
        to_name=str(metadata.get("to_name", "")),
    )


def list_models(packages_dir: str | os.PathLike[str]) -> list[InstalledModel]:
    """Translation models installed in ``packages_dir``, sorted by pair then folder name.

    Folders without a readable metadata.json or a sentencepiece.model, non-translation
    packages and hidden folders (an install in progress) are skipped. A missing directory holds no models.
    """
    root = Path(packages_dir)
    if not root.is_dir():
        return []
    models = []
    for folder in root.iterdir():
        if folder.name.startswith(_HIDDEN_PREFIX) or not folder.is_dir():
            continue
        model = _read_model(folder)
        if model is not None:
            models.append(model)
    return sorted(models, key=lambda m: (m.pair, m.name))


def install_models(
    paths: Iterable[str | os.PathLike[str]], packages_dir: str | os.PathLike[str]
) -> list[InstalledModel]:
    """Install ``.argosmodel`` files from disk into ``packages_dir``; return what was installed.

    Every file is checked first: if any is unusable, TranslationError names it and nothing
    is installed. A model for a pair that is already installed replaces the old one.
    A running ArgosTranslator sees new models after ``reload()`` (or a restart).
    """
    archives = [_inspect(Path(p)) for p in paths]
    pairs = [_codes(a.metadata) for a in archives]
    if len(set(pairs)) != len(pairs):
        raise TranslationError(
            "more than one of these files is a model for the same language pair: "
            + ", ".join(str(a.path) for a in archives)
        )
    root = Path(packages_dir)
    root.mkdir(parents=True, exist_ok=True)
    installed = []
    for archive in archives:
        staging = Path(tempfile.mkdtemp(prefix=f"{_HIDDEN_PREFIX}install-", dir=root))
        try:
            with zipfile.ZipFile(archive.path) as zf:
                zf.extractall(staging)
            target = root / archive.folder
            pair = _codes(archive.metadata)
            for old in list_models(root):
                if old.pair == pair or old.path == target:
                    shutil.rmtree(old.path)
            if target.exists():  # a folder of that name that is not a valid model
                shutil.rmtree(target)
            os.replace(staging / archive.folder, target)
        except OSError as exc:
            raise TranslationError(f"could not install {archive.path} into {root}: {exc}") from exc
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        model = _read_model(target)
        if model is None:  # pragma: no cover - checked by _inspect
            raise TranslationError(f"{archive.path}: installed, but its metadata is unreadable")
        installed.append(model)
    return installed
