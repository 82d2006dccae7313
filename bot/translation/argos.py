"""Offline machine translation with Argos models: no text ever leaves the server.

    MachineTranslator (Protocol)      what the localizer needs: translate / available_pairs / supports
     +-- ArgosTranslator              .argosmodel packages (CTranslate2 + SentencePiece) from a directory

Bot language codes are mapped to argos model codes: ``prs`` (Dari) is served by the Persian
``fa`` model, and such a result is a DRAFT that needs review (``Translation.via_model ==
'fa'``); Pashto (``ps``) has no model at all, so ``supports()`` is False and Pashto needs
human-written catalogs.

Models are run by bot/translation/argos_package.py with CTranslate2 and SentencePiece
directly; argostranslate itself is not installed. What it would have done wrong, and what
is done instead:

* Its ``translate()`` splits sentences with MiniSBD, which on first use DOWNLOADS an ONNX
  model (offline it fails) and needs onnxruntime. :class:`OfflineSentencizer` here is a
  small punctuation splitter that needs neither.
* Its ``get_installed_languages()`` reads package directories fixed at import, keeps
  translations in a module-global list keyed only by ``"from-to"`` and crashes on a folder
  without metadata.json. Each ArgosTranslator reads ITS packages directory, and pivots
  through English itself.
* The SentencePiece decoder turns ``_`` into spaces and models mangle URLs and numbers:
  placeholders ``{name}``, URLs, e-mail addresses and phone numbers are masked as ``[N]``
  before translating and restored after; a mask the model lost makes the call fail rather
  than send a message without its phone number.
* CTranslate2 stops decoding at 256 tokens, which silently cuts a long sentence: the
  splitter also cuts runs longer than ``MAX_SENTENCE_CHARS`` at a space.
* A missing pair is checked first and named, with how to install a model.

Model work runs in ONE dedicated worker thread (one CTranslate2 call at a time was faster
than two on small machines), off the event loop, under a timeout.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

from bot.errors import TranslationError
from bot.translation.argos_models import list_models
from bot.translation.argos_package import ArgosPackage, Pivot
from bot.translation.base import CacheStats, Translation
from bot.translation.masking import mask_protected, unmask_protected

__all__ = [
    "ARGOS_MODEL_FOR",
    "DEFAULT_TIMEOUT",
    "INSTALL_HINT",
    "MAX_SENTENCE_CHARS",
    "ArgosTranslator",
    "OfflineSentencizer",
]

ARGOS_MODEL_FOR: dict[str, str | None] = {
    "en": "en",
    "fa": "fa",
    "prs": "fa",  # Dari: drafted with the Persian model, needs review
    "ur": "ur",
    "hi": "hi",
    "ps": None,  # Pashto: no model exists; human-written catalogs only
}
"""Bot language code -> Argos model code (None: no model exists)."""

PIVOT = "en"
DEFAULT_TIMEOUT = 10.0
DEFAULT_CACHE_SIZE = 2048
MAX_SENTENCE_CHARS = 250
INSTALL_HINT = "python -m bot models install PATH.argosmodel"


# --------------------------------------------------------------------------- sentences

_SENTENCE_END = re.compile(r"(?<=[.!?؟।۔…])\s+")


class OfflineSentencizer:
    """Sentence splitter that needs no model and no network.

    Stands in for argostranslate's MiniSBD (same ``split_sentences`` method). Splits after
    . ! ? ؟ (Arabic) । (Devanagari) ۔ (Urdu) and cuts runs longer than ``MAX_SENTENCE_CHARS``
    at a space, so CTranslate2's 256-token decoding limit cannot silently truncate a sentence.
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


# --------------------------------------------------------------------------- translator


def _default_packages_dir() -> Path:
    """ARGOS_PACKAGES_DIR, else where argostranslate keeps its packages (XDG data folder)."""
    env = os.environ.get("ARGOS_PACKAGES_DIR")
    if env:
        return Path(env)
    data_home = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data_home) / "argos-translate" / "packages"


def _model_code(code: str) -> str | None:
    if code not in ARGOS_MODEL_FOR:
        raise TranslationError(
            f"unknown language code {code!r}; the bot knows {sorted(ARGOS_MODEL_FOR)}"
        )
    return ARGOS_MODEL_FOR[code]


class ArgosTranslator:
    """MachineTranslator backed by Argos models installed in ``packages_dir``.

    Nothing is loaded at construction. ``supports()``/``available_pairs()`` only read the
    packages' metadata.json; CTranslate2 is imported and models are loaded in the worker
    thread on the first translation (or ``await warm_up()`` at start-up).
    """

    def __init__(
        self,
        packages_dir: str | os.PathLike[str] | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        cache_size: int = DEFAULT_CACHE_SIZE,
        threads: int = 1,
    ) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        if cache_size < 0:
            raise ValueError("cache_size must be >= 0")
        self._packages_dir = Path(packages_dir) if packages_dir is not None else None
        self.timeout = timeout
        self._threads = threads  # CTranslate2 intra_threads: 1 suits a shared 2-core box
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="argos-mt"
        )
        self._closed = False
        self._lock = threading.Lock()  # guards everything below
        self._pairs: frozenset[tuple[str, str]] | None = None
        self._model_paths: dict[tuple[str, str], Path] = {}
        self._translations: dict[tuple[str, str], ArgosPackage] = {}
        self._cache: OrderedDict[tuple[str, str, str], str] = OrderedDict()
        self._cache_size = cache_size
        self._hits = 0
        self._misses = 0

    # -- what can be translated (cheap: reads metadata.json only) ---------------------

    @property
    def packages_dir(self) -> Path:
        with self._lock:
            if self._packages_dir is None:
                self._packages_dir = _default_packages_dir()
            return self._packages_dir

    def _installed_pairs(self) -> frozenset[tuple[str, str]]:
        packages_dir = self.packages_dir
        with self._lock:
            if self._pairs is None:
                paths: dict[tuple[str, str], Path] = {}
                for model in list_models(packages_dir):
                    paths.setdefault(model.pair, model.path)
                self._model_paths = paths
                self._pairs = frozenset(paths)
            return self._pairs

    def _argos_path(self, source: str, target: str) -> tuple[str, ...] | None:
        """Argos codes to go through: (a, b) direct or (a, en, b) pivot."""
        if source == target:  # e.g. Dari <-> Persian: one model, nothing to translate with
            return None
        pairs = self._installed_pairs()
        if (source, target) in pairs:
            return (source, target)
        if (source, PIVOT) in pairs and (PIVOT, target) in pairs:
            return (source, PIVOT, target)
        return None

    def supports(self, source: str, target: str) -> bool:
        """True if ``translate(text, source, target)`` can work now (or source == target)."""
        src, tgt = ARGOS_MODEL_FOR.get(source), ARGOS_MODEL_FOR.get(target)
        if src is None or tgt is None:
            return False
        return source == target or self._argos_path(src, tgt) is not None

    def available_pairs(self) -> set[tuple[str, str]]:
        return {
            (s, t)
            for s in ARGOS_MODEL_FOR
            for t in ARGOS_MODEL_FOR
            if s != t and self.supports(s, t)
        }

    def _route(self, source: str, target: str) -> tuple[tuple[str, ...], str | None]:
        """(argos path, via_model) or TranslationError saying exactly what is missing."""
        src, tgt = _model_code(source), _model_code(target)
        for code, model in ((source, src), (target, tgt)):
            if model is None:
                raise TranslationError(
                    f"no offline translation model exists for {code!r} (Pashto); "
                    f"{source} -> {target} needs human-written catalog text"
                )
        assert src is not None and tgt is not None
        if source == target:
            return (src,), None
        if src == tgt:
            raise TranslationError(
                f"{source} and {target} are both served by the {src!r} model; there is no "
                "machine translation between them (use reviewed catalog text)"
            )
        path = self._argos_path(src, tgt)
        if path is None:
            installed = ", ".join(f"{a}->{b}" for a, b in sorted(self._installed_pairs()))
            raise TranslationError(
                f"no offline translation model for {source} -> {target} (argos {src}->{tgt}) "
                f"in {self.packages_dir} (installed: {installed or 'none'}). Install one with: "
                f"{INSTALL_HINT}"
            )
        via = next((m for c, m in ((source, src), (target, tgt)) if c != m), None)
        return path, via

    # -- cache ------------------------------------------------------------------------

    def cache_stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(self._hits, self._misses, len(self._cache), self._cache_size)

    def clear_cache(self) -> None:
        with self._lock:
            self._cache.clear()
            self._hits = self._misses = 0

    def _cache_get(self, key: tuple[str, str, str]) -> str | None:
        with self._lock:
            value = self._cache.get(key)
            if value is None:
                self._misses += 1
                return None
            self._cache.move_to_end(key)
            self._hits += 1
            return value

    def _cache_put(self, key: tuple[str, str, str], value: str) -> None:
        if self._cache_size == 0:
            return
        with self._lock:
            self._cache[key] = value
            self._cache.move_to_end(key)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)

    # -- translation --------------------------------------------------------------------

    async def translate(self, text: str, source: str, target: str) -> str:
        return (await self.translate_detailed(text, source, target)).text

    async def translate_detailed(self, text: str, source: str, target: str) -> Translation:
        """Like translate(), also saying whether it came from the cache or is a draft."""
        if self._closed:
            raise TranslationError("the translator is closed")
        path, via = self._route(source, target)
        if len(path) == 1 or not text.strip():
            return Translation(text, source, target, via)
        key = (source, target, text)
        hit = self._cache_get(key)
        if hit is not None:
            return Translation(hit, source, target, via, cached=True)

        future = self._executor.submit(self._translate_blocking, text, path)
        # Cache from the worker when the job ends, even if the caller stopped waiting:
        # a translation that beat nobody's timeout still serves the next person.
        future.add_done_callback(self._cache_when_done(key))
        limit = self.timeout
        try:
            result = await asyncio.wait_for(asyncio.wrap_future(future), limit)
        except TimeoutError as exc:
            raise TranslationError(
                f"offline translation {source} -> {target} took longer than {limit:g} s"
            ) from exc
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if self._closed and future.cancelled() and (task is None or not task.cancelling()):
                raise TranslationError("the translator was closed") from None
            raise
        return Translation(result, source, target, via)

    def _cache_when_done(
        self, key: tuple[str, str, str]
    ) -> Callable[[concurrent.futures.Future[str]], None]:
        def done(future: concurrent.futures.Future[str]) -> None:
            if not future.cancelled() and future.exception() is None:
                self._cache_put(key, future.result())

        return done

    def _translate_blocking(self, text: str, path: tuple[str, ...]) -> str:
        """Runs in the worker thread: mask, translate, unmask."""
        stripped = text.strip()
        lead, trail = text[: len(text) - len(text.lstrip())], text[len(text.rstrip()) :]
        masked, spans = mask_protected(stripped)
        try:
            raw = self._argos_translation(path).translate(masked)
        except TranslationError:
            raise
        except Exception as exc:  # third-party errors are wrapped at the adapter
            raise TranslationError(
                f"offline translation failed for {'->'.join(path)}: {type(exc).__name__}: {exc}"
            ) from exc
        return lead + unmask_protected(str(raw), spans) + trail

    def _argos_translation(self, path: tuple[str, ...]) -> ArgosPackage | Pivot:
        """The loaded package (or pivot through English) for an argos path, built on first use.

        Runs in the worker thread: loading a real model takes about a second, and it happens
        outside ``self._lock`` so the event loop is never blocked on it.
        """
        self._installed_pairs()
        steps = []
        for pair in itertools.pairwise(path):
            with self._lock:
                step = self._translations.get(pair)
                model_path = self._model_paths.get(pair)
            if step is None:
                if model_path is None:
                    raise TranslationError(f"model {pair[0]}->{pair[1]} is no longer installed")
                # Threads: CTranslate2's intra_threads; 1 suits a shared 2-core box.
                step = ArgosPackage(model_path, OfflineSentencizer(), threads=self._threads)
                with self._lock:
                    step = self._translations.setdefault(pair, step)
            steps.append(step)
        return steps[0] if len(steps) == 1 else Pivot(steps)

    # -- lifecycle ----------------------------------------------------------------------

    async def warm_up(self) -> None:
        """Import CTranslate2 and load every installed model now, in the worker thread."""

        def load() -> None:
            for pair in self._installed_pairs():
                translation = self._argos_translation(pair)
                translation.translate("warm up")

        await asyncio.wrap_future(self._executor.submit(load))

    def reload(self) -> None:
        """Forget loaded models and re-read the packages directory on next use."""
        with self._lock:
            self._pairs = None
            self._model_paths = {}
            self._translations = {}
            self._cache.clear()

    def close(self) -> None:
        """Stop the worker thread; queued translations are cancelled."""
        self._closed = True
        self._executor.shutdown(wait=False, cancel_futures=True)
