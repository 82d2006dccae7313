"""Translation catalogs: locales/<language>/<flow>.yaml, one entry per localisation key.

An entry keeps the English it was translated from, so an edit to the English marks the
translation stale (and the renderer stops using it) until a translator updates it::

    claim_refused.intro:
      status: needs_review        # reviewed | needs_review | machine
      source: |
        I am sorry your claim was refused. ...
      text: |
        ...

``reviewed``: checked by a native speaker. ``needs_review``: written by the team, to be
checked. ``machine``: an offline machine draft. Keywords of a flow are one entry,
``<flow>.keywords``, whose text is a comma-separated list; so are its safeguarding
phrases, ``<flow>.safeguarding``, and its distress words, ``<flow>.distress``.

Short phrases: greetings (``phrase.*`` keys, bot/engine/system_text.py) and every text of
at most ``SHORT_PHRASE_WORDS`` words (button labels such as "Yes") make a phrase book. A
short message is looked up there before any model sees it: translation models are at
their worst on one to three words (NLLB-200 repeats itself), and a person has translated
these already.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from bot.errors import Problem
from bot.flowspec.model import PLACEHOLDER
from bot.flowspec.strict_yaml import YamlMap, YamlSyntaxError, load_yaml
from bot.text.languages import DEFAULT_LANGUAGE, LANGUAGES
from bot.text.normalize import normalize

__all__ = ["PHRASE_PREFIX", "SHORT_PHRASE_WORDS", "WORD_LIST_SUFFIXES", "CatalogSet", "Entry", "Status",
           "catalog_file", "distress_key",
           "keywords_key", "load_catalogs", "safeguarding_key"]

ENTRY_KEYS = ("status", "source", "text")
PHRASE_PREFIX = "phrase."
SHORT_PHRASE_WORDS = 3


class Status(StrEnum):
    REVIEWED = "reviewed"
    NEEDS_REVIEW = "needs_review"
    MACHINE = "machine"

    @property
    def human(self) -> bool:
        return self is not Status.MACHINE


@dataclass(frozen=True)
class Entry:
    key: str
    language: str
    text: str
    source: str
    status: Status
    path: str
    line: int


def keywords_key(flow_id: str) -> str:
    return f"{flow_id}.keywords"


def safeguarding_key(flow_id: str) -> str:
    return f"{flow_id}.safeguarding"


def distress_key(flow_id: str) -> str:
    return f"{flow_id}.distress"


#: Entries whose text is a comma-separated list of words rather than a message.
WORD_LIST_SUFFIXES = (".keywords", ".safeguarding", ".distress")


def catalog_file(locales_dir: Path, language: str, key: str) -> Path:
    """The file an entry belongs in: one per flow, and system.yaml for system texts."""
    return locales_dir / language / f"{key.split('.', 1)[0]}.yaml"


def placeholders(text: str) -> set[str]:
    return set(PLACEHOLDER.findall(text))


_SPACE = re.compile(r"\s+")


def same_source(a: str, b: str) -> bool:
    """Sources compare without caring about line wrapping or trailing spaces."""
    return a == b or _SPACE.sub(" ", a).strip() == _SPACE.sub(" ", b).strip()


class CatalogSet:
    """Every translation, looked up by (language, key). Implements the localizer's Catalog."""

    def __init__(self, entries: Iterable[Entry] = (), sources: Mapping[str, str] | None = None) -> None:
        self.entries: dict[tuple[str, str], Entry] = {(e.language, e.key): e for e in entries}
        self._sources = dict(sources or {})
        # Normalised once, not on every message: typed answers and keywords are compared in
        # normalised form (see bot.text.normalize). Keywords and safeguarding phrases here,
        # as every message is checked against them; a key's texts when first asked for, as
        # a chat only ever matches a few of them (normalising them all took a quarter of start-up).
        self._variant_texts: dict[str, list[str]] = {}
        self._variants: dict[str, list[str]] = {}
        self._keywords: dict[str, str] = {}
        self._safeguarding: dict[str, str] = {}
        self._distress: dict[str, str] = {}
        #: language -> normalised short text -> keys that have it (see short_phrase).
        self._phrases: dict[str, dict[str, list[str]]] = {}
        for entry in self.entries.values():
            # A word list stays in use when the English list changes: its words are still
            # that language's words (a stale safeguarding list must never fall silent because
            # staff added one English phrase). Only messages need their English to match.
            if not self._fresh(entry) and not entry.key.endswith(WORD_LIST_SUFFIXES):
                continue
            for suffix, pool in ((".keywords", self._keywords),
                                 (".safeguarding", self._safeguarding),
                                 (".distress", self._distress)):
                if entry.key.endswith(suffix):
                    flow_id = entry.key.removesuffix(suffix)
                    for word in entry.text.split(","):
                        if folded := normalize(word):
                            pool.setdefault(folded, flow_id)
                    break
            else:
                self._variant_texts.setdefault(entry.key, []).append(entry.text)
                if entry.status.human:
                    self._add_phrase(entry.language, entry.key, entry.text)
        for key, source in self._sources.items():
            if not key.endswith(WORD_LIST_SUFFIXES):
                self._add_phrase(DEFAULT_LANGUAGE, key, source)

    def _add_phrase(self, language: str, key: str, text: str) -> None:
        # Counted on the raw words first, so only short texts are normalised at start-up.
        if (key.startswith(PHRASE_PREFIX) or len(text.split()) <= SHORT_PHRASE_WORDS) and \
                (folded := normalize(text)):
            self._phrases.setdefault(language, {}).setdefault(folded, []).append(key)

    def _fresh(self, entry: Entry) -> bool:
        source = self._sources.get(entry.key)
        return source is None or same_source(source, entry.source)

    def entry(self, key: str, language: str) -> Entry | None:
        return self.entries.get((language, key))

    def lookup_entry(self, key: str, language: str, source: str) -> Entry | None:
        """The entry, unless missing or stale (the English changed since it was translated)."""
        entry = self.entries.get((language, key))
        return entry if entry is not None and same_source(entry.source, source) else None

    def lookup(self, key: str, language: str, source: str) -> str | None:
        entry = self.lookup_entry(key, language, source)
        return entry.text if entry is not None else None

    def variants(self, key: str) -> Sequence[str]:
        """The key's text in every language it has, normalised."""
        found = self._variants.get(key)
        if found is None:
            found = self._variants[key] = [normalize(t) for t in self._variant_texts.get(key, ())]
        return found

    def keywords(self) -> Mapping[str, str]:
        """Normalised keyword in any language -> flow id."""
        return self._keywords

    def safeguarding(self) -> Mapping[str, str]:
        """Normalised safeguarding phrase in any language -> flow id."""
        return self._safeguarding

    def distress(self) -> Mapping[str, str]:
        """Normalised distress word in any language -> flow id."""
        return self._distress

    def _text(self, key: str, language: str) -> str | None:
        """A person's text for the key in the language (fresh), or the English source."""
        if language == DEFAULT_LANGUAGE:
            return self._sources.get(key)
        entry = self.entries.get((language, key))
        if entry is None or not entry.status.human or not self._fresh(entry):
            return None
        return entry.text

    def short_phrase(self, text: str, source: str, target: str) -> str | None:
        """``text`` in ``target`` if it is one of the phrase book's short texts in ``source``
        (or in English: people type "ok" in any language), else None.

        Greetings (``phrase.*``) win; among other keys with that text, the translation most
        of them share. ``text`` may be what a person typed: nothing here keeps it.
        """
        folded = normalize(text)
        if not folded:
            return None
        for language in dict.fromkeys((source, DEFAULT_LANGUAGE)):
            keys = self._phrases.get(language, {}).get(folded, [])
            ranked = sorted(keys, key=lambda k: (not k.startswith(PHRASE_PREFIX), k))
            found = [t for k in ranked if (t := self._text(k, target)) is not None]
            if not found:
                continue
            if ranked[0].startswith(PHRASE_PREFIX) and self._text(ranked[0], target) is not None:
                return found[0]
            counts = Counter(found)
            return max(found, key=lambda t: counts[t])  # first of the most common
        return None


def load_catalogs(locales_dir: Path, sources: Mapping[str, str] | None = None) -> tuple[
        CatalogSet, list[Problem]]:
    """Read every locales/<lang>/*.yaml. Bad entries are reported and skipped, never fatal:
    a missing translation falls back to another source; a crash would help nobody."""
    entries: list[Entry] = []
    problems: list[Problem] = []
    if not locales_dir.is_dir():
        return CatalogSet((), sources), problems
    for lang_dir in sorted(p for p in locales_dir.iterdir() if p.is_dir()):
        language = lang_dir.name
        for file in sorted(lang_dir.glob("*.yaml")):
            shown = str(file)
            if language not in LANGUAGES or language == DEFAULT_LANGUAGE:
                problems.append(Problem(shown, 1, f"'{language}' is not a language the bot offers",
                                        "folders are named by code: " + ", ".join(LANGUAGES)))
                break
            found, file_problems = _read_file(file, language)
            entries += found
            problems += file_problems
    return CatalogSet(entries, sources), problems


def _read_file(file: Path, language: str) -> tuple[list[Entry], list[Problem]]:
    shown = str(file)
    try:
        data = load_yaml(file.read_text(encoding="utf-8"))
    except YamlSyntaxError as exc:
        return [], [Problem(shown, exc.line, exc.message, exc.hint)]
    except (OSError, UnicodeDecodeError) as exc:
        return [], [Problem(shown, 0, f"cannot read the file: {exc}", "save it as UTF-8 text")]
    if data is None:
        return [], []
    if not isinstance(data, YamlMap):
        return [], [Problem(shown, 1, "a catalog is a mapping of keys to entries")]
    entries: list[Entry] = []
    problems: list[Problem] = []
    for key, raw in data.items():
        line = data.line_of(key)
        if not isinstance(raw, YamlMap):
            problems.append(Problem(shown, line, f"entry '{key}' needs status, source and text"))
            continue
        unknown = [k for k in raw if k not in ENTRY_KEYS]
        if unknown:
            problems.append(Problem(shown, raw.line_of(unknown[0]), f"unknown key '{unknown[0]}'",
                                    "an entry has only: " + ", ".join(ENTRY_KEYS)))
        text, source, status = raw.get("text"), raw.get("source"), raw.get("status")
        if not isinstance(text, str) or not text.strip():
            problems.append(Problem(shown, line, f"entry '{key}' has no text"))
            continue
        if not isinstance(source, str):
            problems.append(Problem(shown, line, f"entry '{key}' has no English source",
                                    "copy the English it was translated from into 'source:'"))
            continue
        try:
            parsed = Status(str(status))
        except ValueError:
            problems.append(Problem(shown, raw.line_of("status"), f"unknown status {status!r}",
                                    "use reviewed, needs_review or machine"))
            continue
        entries.append(Entry(str(key), language, text.strip(), source.strip(), parsed, shown, line))
    return entries, problems
