"""Staff tools for catalogs: what needs translating, a coverage grid, machine drafts.

The grid counts, per language and flow, entries that are reviewed, need review, are
machine drafts, are missing, or are stale (the English changed since translation).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bot import limits
from bot.engine.system_text import SYSTEM_TEXT
from bot.errors import Problem
from bot.flowspec.library import FlowLibrary
from bot.flowspec.model import AskStep, Flow
from bot.i18n.catalog import (
    WORD_LIST_SUFFIXES,
    CatalogSet,
    Entry,
    Status,
    catalog_file,
    distress_key,
    keywords_key,
    placeholders,
    safeguarding_key,
    same_source,
)
from bot.text.languages import DEFAULT_LANGUAGE, LANGUAGES

__all__ = ["Coverage", "check_catalogs", "expected_sources", "stale_warnings", "write_entries"]

STATES = ("reviewed", "needs_review", "machine", "missing", "stale")


def expected_sources(library: FlowLibrary) -> dict[str, str]:
    """Every key a complete catalog holds, with its English source, in a stable order."""
    out: dict[str, str] = {}
    for flow in sorted(library.flows.values(), key=lambda f: f.id):
        out.update(flow.strings())
        if flow.keywords:
            out[keywords_key(flow.id)] = ", ".join(flow.keywords)
        if flow.safeguarding:
            out[safeguarding_key(flow.id)] = ", ".join(flow.safeguarding)
        if flow.distress:
            out[distress_key(flow.id)] = ", ".join(flow.distress)
    out.update(SYSTEM_TEXT)
    return out


def group_of(key: str) -> str:
    return key.split(".", 1)[0]


@dataclass
class Coverage:
    #: counts[language][group][state]
    counts: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    missing: dict[str, list[str]] = field(default_factory=dict)
    stale: dict[str, list[str]] = field(default_factory=dict)

    def add(self, language: str, key: str, state: str) -> None:
        group = self.counts.setdefault(language, {}).setdefault(group_of(key), dict.fromkeys(STATES, 0))
        group[state] += 1
        if state == "missing":
            self.missing.setdefault(language, []).append(key)
        if state == "stale":
            self.stale.setdefault(language, []).append(key)

    def failed(self) -> bool:
        return bool(self.problems) or any(self.missing.values())

    def stale_keys(self) -> dict[str, list[str]]:
        """key -> the languages where it is stale, in the order keys were checked."""
        return _by_key(self.stale)

    def missing_keys(self) -> dict[str, list[str]]:
        """key -> the languages that lack it."""
        return _by_key(self.missing)

    def grid(self) -> str:
        languages = [code for code in LANGUAGES if code != DEFAULT_LANGUAGE]
        groups = sorted({g for per in self.counts.values() for g in per})
        width = max([18, *(len(g) + 2 for g in groups)])
        lines = ["each cell: reviewed / needs review / machine draft / missing / stale", "",
                 f"{'':<{width}}" + "".join(f"{code:>16}" for code in languages)]
        for group in groups:
            row = f"{group:<{width}}"
            for code in languages:
                c = self.counts.get(code, {}).get(group, dict.fromkeys(STATES, 0))
                row += f"{'/'.join(str(c[s]) for s in STATES):>16}"
            lines.append(row)
        return "\n".join(lines)


def stale_warnings(coverage: Coverage) -> list[str]:
    """One line per stale key naming its languages, then one per flow with untranslated
    texts: what ``validate`` warns about and ``locales check`` lists."""
    lines = [f"warning: {key}: the English changed since it was translated; stale in "
             f"{', '.join(codes)} " + (
                 "(their lists still work, without the new English words)"
                 if key.endswith(WORD_LIST_SUFFIXES) else
                 "(messages with it are sent in English there until it is translated again)")
             for key, codes in coverage.stale_keys().items()]
    by_group: dict[str, tuple[set[str], set[str]]] = {}
    for key, codes in coverage.missing_keys().items():
        keys, languages = by_group.setdefault(group_of(key), (set(), set()))
        keys.add(key)
        languages.update(codes)
    for group, (keys, languages) in by_group.items():
        ordered = [code for code in LANGUAGES if code in languages]
        lines.append(f"warning: {group}: {len(keys)} text(s) not translated into "
                     f"{', '.join(ordered)} yet (sent in English there; "
                     "python -m bot locales export)")
    return lines


def _by_key(per_language: Mapping[str, list[str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for code in LANGUAGES:
        for key in per_language.get(code, ()):
            out.setdefault(key, []).append(code)
    return out


def check_catalogs(library: FlowLibrary, catalogs: CatalogSet,
                   load_problems: Iterable[Problem] = ()) -> Coverage:
    """Coverage of every offered language, with placeholder and button-length problems."""
    sources = expected_sources(library)
    labels = _button_limits(library)
    coverage = Coverage(problems=list(load_problems))
    for code in LANGUAGES:
        if code == DEFAULT_LANGUAGE:
            continue
        for key, source in sources.items():
            entry = catalogs.entry(key, code)
            if entry is None:
                coverage.add(code, key, "missing")
                continue
            if not same_source(entry.source, source):
                coverage.add(code, key, "stale")
                continue
            coverage.add(code, key, entry.status.value)
            coverage.problems += _entry_problems(entry, source, labels.get(key))
    coverage.problems += _keyword_clashes(library, catalogs)
    known = set(sources)
    for entry in catalogs.entries.values():
        if entry.key not in known:
            coverage.problems.append(Problem(entry.path, entry.line,
                                             f"'{entry.key}' is not a key of any flow",
                                             "delete it, or fix the key (see flows/)"))
    return coverage


def _keyword_clashes(library: FlowLibrary, catalogs: CatalogSet) -> list[Problem]:
    """Typed words from every language share one pool per kind (keywords, safeguarding
    phrases, distress words): one word must lead to one flow."""
    from bot.text.normalize import normalize

    problems: list[Problem] = []
    pools: tuple[tuple[str, Callable[[Flow], tuple[str, ...]]], ...] = (
        (".keywords", lambda f: f.keywords), (".safeguarding", lambda f: f.safeguarding),
        (".distress", lambda f: f.distress))
    for suffix, own in pools:
        owner: dict[str, tuple[str, str]] = {}  # word -> (flow id, where it was written)
        for flow in library.flows.values():
            for word in own(flow):
                owner.setdefault(normalize(word), (flow.id, flow.path))
        kind = {".keywords": "keyword", ".safeguarding": "safeguarding phrase",
                ".distress": "distress word"}[suffix]
        for entry in sorted(catalogs.entries.values(), key=lambda e: (e.path, e.line)):
            if not entry.key.endswith(suffix):
                continue
            flow_id = entry.key.removesuffix(suffix)
            for word in (w.strip() for w in entry.text.split(",")):
                folded = normalize(word)
                if not folded:
                    continue
                first = owner.setdefault(folded, (flow_id, entry.path))
                if first[0] != flow_id:
                    problems.append(Problem(
                        entry.path, entry.line, f"{kind} '{word}' of {flow_id} already leads to "
                        f"{first[0]} ({first[1]})", "use it for one flow only, in every language"))
    return problems


def _button_limits(library: FlowLibrary) -> dict[str, int]:
    out: dict[str, int] = {}
    for flow in library.flows.values():
        for step in flow.steps:
            if isinstance(step, AskStep) and step.buttons:
                limit = limits.button_label_max(len(step.buttons))
                out.update({b.key: limit for b in step.buttons})
    for flow in library.menu():
        out[flow.title_key] = limits.WHATSAPP_LIST_ROW_CHARS
    out["handover.leave_button"] = limits.WHATSAPP_REPLY_BUTTON_CHARS  # the queue notice's one button
    out["system.choose"] = limits.WHATSAPP_LIST_BUTTON_CHARS  # opens a WhatsApp list of choices
    return out


def _entry_problems(entry: Entry, source: str, label_limit: int | None) -> list[Problem]:
    problems: list[Problem] = []
    if placeholders(entry.text) != placeholders(source):
        want = ", ".join(sorted(placeholders(source))) or "none"
        problems.append(Problem(entry.path, entry.line,
                                f"'{entry.key}': placeholders differ from the English",
                                f"keep exactly these {{names}} untranslated: {want}"))
    if label_limit is not None and len(entry.text) > label_limit:
        problems.append(Problem(entry.path, entry.line,
                                f"'{entry.key}': button label is {len(entry.text)} characters; "
                                f"the limit is {label_limit}", "shorten the label"))
    return problems


def write_entries(locales_dir: Path, language: str, new: Mapping[str, tuple[str, str, Status]],
                  order: Iterable[str], existing: CatalogSet) -> list[Path]:
    """Merge entries (key -> (text, source, status)) into the language's files."""
    ordered = list(order)
    position = {key: i for i, key in enumerate(ordered)}
    by_file: dict[Path, dict[str, tuple[str, str, Status]]] = {}
    # Resolved paths: the catalogs may have been read through another spelling of the
    # folder (absolute, relative), and a file must never be rewritten without its entries.
    for entry in existing.entries.values():
        if entry.language == language:
            by_file.setdefault(Path(entry.path).resolve(), {})[entry.key] = (
                entry.text, entry.source, entry.status)
    for key, value in new.items():
        by_file.setdefault(catalog_file(locales_dir, language, key).resolve(), {})[key] = value
    written: list[Path] = []
    for path, entries in by_file.items():
        if not any(k in new for k in entries):
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        keys = sorted(entries, key=lambda k: (position.get(k, len(ordered)), k))
        header = (f"# {LANGUAGES[language].english_name} translations of {path.stem}. "
                  "status: reviewed (checked by a native speaker), needs_review, or machine.\n"
                  "# 'source' is the English this was translated from; when the English changes "
                  "the entry is stale.\n")
        body = "\n".join(_emit(k, *entries[k]) for k in keys)
        path.write_text(header + "\n" + body, encoding="utf-8")
        written.append(path)
    return written


def _emit(key: str, text: str, source: str, status: Status) -> str:
    return f"{key}:\n  status: {status.value}\n  source: {_block(source)}\n  text: {_block(text)}\n"


def _block(value: str) -> str:
    lines = value.strip().splitlines() or [""]
    return "|-\n" + "\n".join(f"    {line}".rstrip() for line in lines)


Progress = Callable[[int, int], None]
TranslateMany = Callable[[list[str]], Awaitable[list[str]]]
#: Texts per model call when drafting: one batch each, progress shown between them.
DRAFT_BATCH = 8


async def draft_missing(library: FlowLibrary, catalogs: CatalogSet, language: str,
                        translate: TranslateMany, progress: Progress) -> dict[str, tuple[str, str, Status]]:
    """Machine drafts for every missing or stale key of a language, marked ``machine``.

    A short text a person already translated under another key (a "Yes" button) is taken
    from there rather than from the model; it is still marked ``machine`` until reviewed
    for its new place."""
    sources = expected_sources(library)

    def needed(key: str) -> bool:
        entry = catalogs.entry(key, language)
        return entry is None or not same_source(entry.source, sources[key])

    todo = [key for key in sources if needed(key)]
    drafts: dict[str, tuple[str, str, Status]] = {}
    to_model = []
    for key in todo:
        known = catalogs.short_phrase(sources[key], DEFAULT_LANGUAGE, language)
        if known is not None:
            drafts[key] = (known, sources[key], Status.MACHINE)
        else:
            to_model.append(key)
    if drafts:
        progress(len(drafts), len(todo))
    for start in range(0, len(to_model), DRAFT_BATCH):
        keys = to_model[start:start + DRAFT_BATCH]
        texts = await translate([sources[key] for key in keys])
        for key, text in zip(keys, texts, strict=True):
            drafts[key] = (text, sources[key], Status.MACHINE)
        progress(len(drafts), len(todo))
    return {key: drafts[key] for key in todo}


def export_for_translator(sources: Mapping[str, str], catalogs: CatalogSet, language: str,
                          *, everything: bool = False) -> str:
    """A YAML file of key: English text, for a translator to overwrite with translations."""
    out = [f"# Translate each text into {LANGUAGES[language].english_name}; keep the keys.",
           "# Keep {placeholders}, phone numbers, links and /commands exactly as they are.",
           "# Then: python -m bot locales import --lang " + language + " THIS_FILE", ""]
    for key, source in sources.items():
        entry = catalogs.entry(key, language)
        if everything or entry is None or not same_source(entry.source, source):
            out.append(f"{key}: {_block(source)}")
    return "\n".join(out) + "\n"


def read_translator_file(path: Path, sources: Mapping[str, str],
                         status: Status) -> tuple[dict[str, tuple[str, str, Status]], list[Problem]]:
    """Read key: translated text; each entry records the English it was made from (now)."""
    from bot.flowspec.strict_yaml import YamlMap, YamlSyntaxError, load_yaml

    shown = str(path)
    try:
        data = load_yaml(path.read_text(encoding="utf-8"))
    except YamlSyntaxError as exc:
        return {}, [Problem(shown, exc.line, exc.message, exc.hint)]
    if not isinstance(data, YamlMap):
        return {}, [Problem(shown, 1, "expected lines of the form  key: translated text")]
    entries: dict[str, tuple[str, str, Status]] = {}
    problems: list[Problem] = []
    for key, text in data.items():
        line = data.line_of(key)
        if key not in sources:
            problems.append(Problem(shown, line, f"'{key}' is not a key of any flow",
                                    "run: python -m bot locales sources"))
        elif not isinstance(text, str) or not text.strip():
            problems.append(Problem(shown, line, f"'{key}' has no text"))
        elif placeholders(text) != placeholders(sources[key]):
            want = ", ".join(sorted(placeholders(sources[key]))) or "none"
            problems.append(Problem(shown, line, f"'{key}': placeholders differ from the English",
                                    f"keep exactly: {want}"))
        else:
            entries[key] = (text.strip(), sources[key], status)
    return entries, problems
