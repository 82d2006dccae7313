"""The bot's one MachineTranslator: every installed model, routed per language pair, offline.

    OfflineTranslator      models in BOT_MODELS_DIR (Argos, NLLB-200, M2M-100)
      routing.py             which model serves a pair (published quality, configured order)
      runner.py              masking, sentences, one batch per step, for every family
      installed.py           what is installed; loading a model

Model work runs in ONE dedicated worker thread, off the event loop: one CTranslate2 call at
a time was faster than two on small machines, and it keeps a big model loaded once. A
MESSAGE is one job: its parts (a question and its buttons) go to the model as one batch,
under one deadline for the whole message, so a live-translated menu costs one call, not
one per button, each with its own timeout.

The cache holds only the bot's own texts (flows, catalogs, system messages), which are the
same for everyone: callers pass ``cacheable=True`` for those. What a person or a volunteer
typed is never cached, so nothing of theirs stays in memory after the reply and /forget has
nothing here to clear. (A relayed message is almost never sent twice word for word, so a
cache would not help it; and a job that finished after a /forget could put it back.)
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path

from bot.errors import TranslationError
from bot.text.languages import LANGUAGES
from bot.translation.base import CacheStats, Translation
from bot.translation.families import STAND_IN
from bot.translation.installed import ModelInfo, list_models, load_runner
from bot.translation.routing import Route, best_route, routes
from bot.translation.runner import Runner, Step, translate_texts
from bot.translation.sentences import OfflineSentencizer

__all__ = ["DEFAULT_CACHE_SIZE", "DEFAULT_TIMEOUT", "INSTALL_HINT", "OfflineTranslator",
           "default_models_dir"]

DEFAULT_TIMEOUT = 10.0
DEFAULT_CACHE_SIZE = 2048
INSTALL_HINT = "python -m bot models install PATH (an .argosmodel file or an NLLB-200 folder)"

_Key = tuple[str, str, str]


def default_models_dir() -> Path:
    """BOT_MODELS_DIR, else the older ARGOS_PACKAGES_DIR, else data/models."""
    return Path(os.environ.get("BOT_MODELS_DIR") or os.environ.get("ARGOS_PACKAGES_DIR")
                or Path("data") / "models")


def _check_code(code: str) -> None:
    if code not in LANGUAGES:
        raise TranslationError(f"unknown language code {code!r}; the bot knows {sorted(LANGUAGES)}")


class OfflineTranslator:
    """MachineTranslator backed by the models installed in ``models_dir``.

    Nothing is loaded at construction. ``supports()``/``available_pairs()`` read the install
    records only; CTranslate2 is imported and models are loaded in the worker thread on
    first use (or ``await warm_up()`` at start-up), and only the models some route uses.
    """

    def __init__(
        self,
        models_dir: str | os.PathLike[str] | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        cache_size: int = DEFAULT_CACHE_SIZE,
        threads: int = 1,
        order: Sequence[str] = (),
        beam_size: int | None = None,
    ) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        if cache_size < 0:
            raise ValueError("cache_size must be >= 0")
        self.models_dir = Path(models_dir) if models_dir is not None else default_models_dir()
        self.timeout = timeout
        self.order = tuple(order)
        self._threads = threads  # CTranslate2 intra_threads
        self._beam_size = beam_size
        self.sentencizer = OfflineSentencizer()
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="offline-mt")
        self._closed = False
        self._lock = threading.Lock()  # guards everything below
        self._models: list[ModelInfo] | None = None
        self._routes: dict[tuple[str, str], Route | None] = {}
        self._runners: dict[Path, Runner] = {}
        self._cache: OrderedDict[_Key, str] = OrderedDict()
        self._cache_size = cache_size
        self._hits = 0
        self._misses = 0

    # -- what can be translated (cheap: reads install records only) -----------------------

    def models(self) -> list[ModelInfo]:
        with self._lock:
            if self._models is None:
                self._models = list_models(self.models_dir)[0]
                self._routes = {}
            return self._models

    def route(self, source: str, target: str) -> Route | None:
        """The route for a pair (None: no installed model serves it). source != target."""
        models = self.models()
        with self._lock:
            if (source, target) not in self._routes:
                by_name = {m.name: m.candidate() for m in models}
                self._routes[(source, target)] = best_route(
                    routes(list(by_name.values()), source, target), self.order)
            return self._routes[(source, target)]

    def supports(self, source: str, target: str) -> bool:
        """True if ``translate(text, source, target)`` can work now (or source == target)."""
        if source not in LANGUAGES or target not in LANGUAGES:
            return False
        return source == target or self.route(source, target) is not None

    def available_pairs(self) -> set[tuple[str, str]]:
        return {(s, t) for s in LANGUAGES for t in LANGUAGES if s != t and self.supports(s, t)}

    def _route_or_explain(self, source: str, target: str) -> Route:
        _check_code(source)
        _check_code(target)
        found = self.route(source, target)
        if found is not None:
            return found
        models = self.models()
        have = {code for m in models for code in m.languages}
        if {source, target} == {"prs", "fa"} and "prs" not in have and "fa" in have:
            raise TranslationError(f"{source} and {target} are both served by the 'fa' model; "
                                   "there is no machine translation between them (use reviewed "
                                   "catalog text)")
        missing = [c for c in (source, target) if c not in have and STAND_IN.get(c) not in have]
        installed = ", ".join(m.name for m in models) or "none"
        lack = (f"no installed model has {', '.join(LANGUAGES[c].english_name for c in missing)}"
                if missing else "the installed models do not connect these languages")
        raise TranslationError(
            f"no offline translation model for {source} -> {target}: {lack} (in {self.models_dir}; "
            f"installed: {installed}). Install one with: {INSTALL_HINT}")

    def describe(self, source: str, target: str) -> str:
        """Which model(s) translate the pair, for people (``bot translate``, ``models list``)."""
        found = self._route_or_explain(source, target)
        text = str(found)
        if found.via:
            replaced = source if found.steps[0][1] != source else target
            text += (f" [draft: {LANGUAGES[found.via].english_name} model for "
                     f"{LANGUAGES[replaced].english_name}]")
        return text

    # -- cache ------------------------------------------------------------------------

    def cache_stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(self._hits, self._misses, len(self._cache), self._cache_size)

    def clear_cache(self) -> None:
        with self._lock:
            self._cache.clear()
            self._hits = self._misses = 0

    def _cache_get(self, key: _Key) -> str | None:
        with self._lock:
            value = self._cache.get(key)
            if value is None:
                self._misses += 1
                return None
            self._cache.move_to_end(key)
            self._hits += 1
            return value

    def _cache_put(self, key: _Key, value: str) -> None:
        if self._cache_size == 0:
            return
        with self._lock:
            self._cache[key] = value
            self._cache.move_to_end(key)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)

    # -- translation --------------------------------------------------------------------

    async def translate(self, text: str, source: str, target: str, *, cacheable: bool = False) -> str:
        return (await self.translate_batch([text], source, target, cacheable=cacheable))[0].text

    async def translate_detailed(self, text: str, source: str, target: str, *,
                                 cacheable: bool = False) -> Translation:
        return (await self.translate_batch([text], source, target, cacheable=cacheable))[0]

    async def translate_batch(self, texts: Sequence[str], source: str, target: str, *,
                              cacheable: bool = False) -> list[Translation]:
        """Every text in ``target``, as ONE job with ONE deadline (``timeout``).

        ``cacheable``: the texts are the bot's own (flows, catalogs), the same for everyone,
        and may be kept in the cache. Never pass what a person typed with it.
        """
        if self._closed:
            raise TranslationError("the translator is closed")
        if source == target:
            _check_code(source)
            return [Translation(text, source, target, None) for text in texts]
        found = self._route_or_explain(source, target)
        model = str(found)
        done: dict[str, Translation] = {}
        todo: list[str] = []
        for text in dict.fromkeys(texts):  # a text twice in one message is translated once
            if not text.strip():
                done[text] = Translation(text, source, target, found.via, model=model)
                continue
            hit = self._cache_get((source, target, text)) if cacheable else None
            if hit is not None:
                done[text] = Translation(hit, source, target, found.via, cached=True, model=model)
            else:
                todo.append(text)
        if todo:
            future = self._executor.submit(self._translate_blocking, todo, found)
            if cacheable:
                # Cache from the worker when the job ends, even if the caller stopped waiting:
                # a translation that beat nobody's timeout still serves the next person.
                future.add_done_callback(self._cache_when_done(source, target, todo))
            limit = self.timeout
            try:
                results = await asyncio.wait_for(asyncio.wrap_future(future), limit)
            except TimeoutError as exc:
                raise TranslationError(f"offline translation {source} -> {target} took longer than "
                                       f"{limit:g} s") from exc
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if self._closed and future.cancelled() and (task is None or not task.cancelling()):
                    raise TranslationError("the translator was closed") from None
                raise
            for text, result in zip(todo, results, strict=True):
                done[text] = Translation(result, source, target, found.via, model=model)
        return [done[text] for text in texts]

    def _cache_when_done(self, source: str, target: str, texts: list[str]
                         ) -> Callable[[concurrent.futures.Future[list[str]]], None]:
        def store(future: concurrent.futures.Future[list[str]]) -> None:
            if not future.cancelled() and future.exception() is None:
                for text, result in zip(texts, future.result(), strict=True):
                    self._cache_put((source, target, text), result)

        return store

    def _translate_blocking(self, texts: list[str], found: Route) -> list[str]:
        """Runs in the worker thread: load what the route needs, then translate."""
        steps = [Step(self._runner(model.name), a, b) for model, a, b in found.steps]
        return translate_texts(texts, steps, self.sentencizer)

    def _runner(self, name: str) -> Runner:
        """The loaded model, loaded on first use in the worker thread (outside the lock, so
        the event loop is never blocked on it)."""
        model = next((m for m in self.models() if m.name == name), None)
        if model is None:  # pragma: no cover - routes come from models()
            raise TranslationError(f"model {name} is no longer installed")
        with self._lock:
            runner = self._runners.get(model.path)
        if runner is None:
            runner = load_runner(model, threads=self._threads, beam_size=self._beam_size)
            with self._lock:
                self._runners[model.path] = runner
        return runner

    def loaded(self) -> list[str]:
        """Names of the models loaded now (for tests and logs)."""
        with self._lock:
            return sorted(path.name for path in self._runners)

    async def warm_up(self) -> None:
        """Load, in the worker thread, every model a route to or from English uses, and run
        one short translation through each (the first call of a model is slower)."""
        wanted = {route for code in LANGUAGES if code != "en"
                  for route in (self.route("en", code), self.route(code, "en")) if route}

        def load() -> None:
            for found in wanted:
                try:
                    self._translate_blocking(["Hello."], found)
                except TranslationError:
                    continue  # a short test sentence may be refused; the model is loaded

        await asyncio.wrap_future(self._executor.submit(load))

    def reload(self) -> None:
        """Forget loaded models and re-read the models directory on next use."""
        with self._lock:
            self._models = None
            self._routes = {}
            self._runners = {}
            self._cache.clear()

    def close(self) -> None:
        """Stop the worker thread; queued translations are cancelled."""
        self._closed = True
        self._executor.shutdown(wait=False, cancel_futures=True)
