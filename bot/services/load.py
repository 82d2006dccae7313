"""Read the directory of services (services/*.yaml) as strictly as flows are read.

``places.yaml`` holds the places (nations, regions, towns, with the other spellings a
person may type); every other file holds entries under ``services:``. Reading never stops
at the first mistake: every problem comes back with its file, line and a hint, and the
whole directory is refused if there is any, so a half-edited file never reaches a person.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence
from datetime import date
from pathlib import Path
from typing import Any

from bot._shipped import shipped_dir
from bot.errors import DirectoryLoadError, Problem
from bot.flowspec.parse import ID_HINT, IDENTIFIER, Collector, string_list, text_field
from bot.flowspec.strict_yaml import YamlList, YamlMap, YamlSyntaxError, load_yaml
from bot.services.model import FACTS, TAGS, UK, Directory, Place, PlaceKind, Service, Source, tag_hint
from bot.text.normalize import normalize

__all__ = ["PLACES_FILE", "default_services_dir", "directory_files", "load_directory",
           "parse_directory"]

PLACES_FILE = "places.yaml"
PLACE_KEYS = ("id", "name", "kind", "in", "spellings", "note")
SERVICE_KEYS = ("id", *FACTS, "sources", "note")
SOURCE_KEYS = ("source", "checked", "facts")
_LANGUAGE_CODE = re.compile(r"^[a-z]{2,3}$")
_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
#: A place's kind may only be inside a place of a lower rank (no loops, no town holding a nation).
_RANK = {PlaceKind.UK: 0, PlaceKind.NATION: 1, PlaceKind.REGION: 2, PlaceKind.TOWN: 3}


def default_services_dir() -> Path:
    """The shipped directory: services/ at the repository root, or the installed copy."""
    return shipped_dir("services")


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def directory_files(folder: Path) -> list[Path]:
    """The YAML files of the directory, in the order they are read."""
    return sorted(p for p in [*folder.glob("*.yaml"), *folder.glob("*.yml")]
                  if not p.name.startswith("."))


def load_directory(folder: Path, today: date | None = None) -> Directory:
    """Read every file of the folder. Raises DirectoryLoadError listing every problem.

    ``today``, when given, refuses a 'checked' date in the future (a typing slip)."""
    files = directory_files(folder)
    texts: list[tuple[str, str]] = []
    problems: list[Problem] = []
    for file in files:
        try:
            texts.append((_display(file), file.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(Problem(_display(file), 0, f"cannot read the file: {exc}",
                                    "save it as UTF-8 text"))
    directory, found = parse_directory(texts, today)
    problems += found
    if problems:
        raise DirectoryLoadError(problems)
    return directory


def parse_directory(texts: Sequence[tuple[str, str]],
                    today: date | None = None) -> tuple[Directory, list[Problem]]:
    """(path, text) of each file -> the directory and every problem found. Pure."""
    problems: list[Problem] = []
    places: dict[str, Place] = {}
    raw_services: list[tuple[Collector, YamlMap]] = []
    for path, text in texts:
        out = Collector(path)
        data = _document(out, text, "places" if Path(path).name == PLACES_FILE else "services")
        if data is not None and Path(path).name == PLACES_FILE:
            for index, raw in enumerate(data):
                place = _parse_place(out, raw, data.line_of(index))
                if place is None:
                    continue
                if place.id in places or place.id == UK:
                    first = places.get(place.id)
                    out.add(place.line, f"place id '{place.id}' is used twice"
                            + (f" (first on line {first.line})" if first else " ('uk' is built in)"),
                            "each place needs its own id")
                    continue
                places[place.id] = place
        elif data is not None:
            raw_services += [(out, raw) for raw in data]
        problems += out.problems
    directory = Directory(places)
    problems += _check_places(directory)
    services: list[Service] = []
    seen: dict[str, Service] = {}
    for out, raw in raw_services:
        before = len(out.problems)
        service = _parse_service(out, raw, directory, today)
        problems += out.problems[before:]
        if service is None:
            continue
        if service.id in seen:
            earlier = seen[service.id]
            problems.append(Problem(service.path, service.line, f"service id '{service.id}' is "
                                    f"also used by {earlier.path}:{earlier.line}",
                                    "each service needs its own id"))
            continue
        seen[service.id] = service
        services.append(service)
    return Directory(places, tuple(services)), problems


def _document(out: Collector, text: str, key: str) -> YamlList | None:
    try:
        data = load_yaml(text)
    except YamlSyntaxError as exc:
        out.add(exc.line, exc.message, exc.hint)
        return None
    if data is None:
        return None  # an empty file: nothing yet
    if not isinstance(data, YamlMap):
        out.add(1, f"the file must start with '{key}:'", f"write {key}: then one '- id: ...' per entry")
        return None
    out.unknown_keys(data, (key,), "the file")
    entries = data.get(key)
    if entries is None:
        out.add(data.line, f"missing '{key}:'", f"write {key}: then one '- id: ...' per entry")
        return None
    if not isinstance(entries, YamlList):
        out.add(data.line_of(key), f"'{key}' must be a list", "write one '- id: ...' per entry")
        return None
    return entries


def _entry(out: Collector, raw: Any, line: int, what: str,
           keys: Sequence[str]) -> tuple[YamlMap, str, str, str] | None:
    """An entry's mapping, id, how problems name it, and its name (its id if none)."""
    if not isinstance(raw, YamlMap):
        out.add(line, f"each {what} must be a mapping starting with '- id: ...'")
        return None
    entry_id = text_field(out, raw, "id", f"a {what}", required=True)
    if entry_id is None:
        return None
    if not IDENTIFIER.match(entry_id):
        out.add(raw.line_of("id"), f"{what} id '{entry_id}' is not a valid id", ID_HINT)
    where = f"{what} '{entry_id}'"
    out.unknown_keys(raw, keys, where)
    name = text_field(out, raw, "name", where, required=True) or entry_id
    return raw, entry_id, where, name


def _parse_place(out: Collector, raw: Any, line: int) -> Place | None:
    found = _entry(out, raw, line, "place", PLACE_KEYS)
    if found is None:
        return None
    raw, place_id, where, name = found
    kind_text = text_field(out, raw, "kind", where, required=True)
    kinds = [k.value for k in PlaceKind if k is not PlaceKind.UK]
    kind = PlaceKind.TOWN
    if kind_text is not None:
        if kind_text in kinds:
            kind = PlaceKind(kind_text)
        else:
            out.add(raw.line_of("kind"), f"unknown kind of place '{kind_text}'",
                    _did_you_mean(kind_text, kinds) or "use one of: " + ", ".join(kinds))
    within = text_field(out, raw, "in", where, required=kind is not PlaceKind.NATION)
    if kind is PlaceKind.NATION:
        within = within or UK
    spellings = tuple(string_list(out, raw, "spellings"))
    return Place(place_id, name, kind, within, spellings, out.path, raw.line)


def _check_places(directory: Directory) -> list[Problem]:
    problems: list[Problem] = []
    spelled: dict[str, Place] = {}
    for place in directory.places.values():
        if place.kind is PlaceKind.UK:
            continue
        parent = directory.places.get(place.within or "")
        if parent is None:
            problems.append(Problem(place.path, place.line, f"place '{place.id}' is in "
                                    f"'{place.within}', which is not a place",
                                    _did_you_mean(place.within or "", directory.places)
                                    or "write the id of a nation or region listed in this file"))
        elif _RANK[parent.kind] >= _RANK[place.kind]:
            problems.append(Problem(place.path, place.line, f"a {place.kind.value} cannot be in "
                                    f"a {parent.kind.value} ('{place.id}' is in '{parent.id}')",
                                    "a region is in a nation; a town is in a region or a nation"))
        for spelling in (place.name, *place.spellings):
            key = normalize(spelling)
            other = spelled.get(key)
            if other is not None and other.id != place.id:
                problems.append(Problem(place.path, place.line, f"'{spelling}' names both "
                                        f"'{other.id}' and '{place.id}'",
                                        "a typed name must lead to one place: remove one of them"))
            spelled.setdefault(key, place)
    return problems


def _parse_service(out: Collector, raw: Any, directory: Directory,
                   today: date | None) -> Service | None:
    found = _entry(out, raw, getattr(raw, "line", 1), "service", SERVICE_KEYS)
    if found is None:
        return None
    raw, service_id, where, name = found
    tags = _tags(out, raw, where)
    serves = _serves(out, raw, where, directory)
    languages = tuple(string_list(out, raw, "languages"))
    for code in languages:
        if not _LANGUAGE_CODE.match(code):
            out.add(raw.line_of("languages"), f"'{code}' is not a language code",
                    "write short codes such as [ps, prs, fa, ur, hi, ar, ku]")
    interpreters = _yes_no(out, raw, "interpreters", "interpreters: true (it provides interpreters)")
    referral = _yes_no(out, raw, "referral", "referral: true (a referral is needed) or false")
    phone = text_field(out, raw, "phone", where, required=False)
    web = text_field(out, raw, "web", where, required=False)
    if web is not None and not web.startswith(("https://", "http://")):
        out.add(raw.line_of("web"), f"'web' of {where} must be a full link",
                f"write it as it shows in the browser, e.g. web: https://{web}")
    address = text_field(out, raw, "address", where, required=False)
    hours = text_field(out, raw, "hours", where, required=False)
    if phone is None and web is None and address is None:
        out.add(raw.line, f"{where} has no phone, web or address",
                "give at least one way to reach it")
    sources = _sources(out, raw, where, today)
    if sources:
        covered = {fact for s in sources for fact in s.facts}
        missing = [fact for fact in FACTS if fact in raw and fact not in covered]
        if missing:
            out.add(raw.line, f"{where}: no source for {', '.join(missing)}",
                    "add them to the 'facts:' of the source they come from, or add a source")
    return Service(service_id, name, tags, serves, tuple(sources), languages, interpreters,
                   phone, web, address, hours, referral, out.path, raw.line)


def _tags(out: Collector, raw: YamlMap, where: str) -> tuple[str, ...]:
    values = string_list(out, raw, "tags")
    if not values and raw.get("tags") in (None, []):  # (a malformed list is reported already)
        out.add(raw.line_of("tags"), f"{where} needs 'tags:', what it helps with",
                "e.g. tags: [legal_advice, housing]; the list is in docs/services-format.md")
        return ()
    for tag in values:
        if tag not in TAGS:
            out.add(raw.line_of("tags"), f"unknown tag '{tag}' in {where}", tag_hint(tag))
    return tuple(t for t in values if t in TAGS)


def _serves(out: Collector, raw: YamlMap, where: str, directory: Directory) -> tuple[str, ...]:
    value = raw.get("serves")
    values = [value.strip()] if isinstance(value, str) and value.strip() else \
        string_list(out, raw, "serves") if value is not None else []
    if not values:
        out.add(raw.line_of("serves"), f"{where} needs 'serves:', where it serves",
                "write serves: uk for the whole UK, or the ids of nations, regions or towns "
                "from services/places.yaml, e.g. serves: [glasgow, edinburgh]")
        return ()
    for place in values:
        if place not in directory.places:
            out.add(raw.line_of("serves"), f"{where} serves '{place}', which is not a place",
                    _did_you_mean(place, directory.places)
                    or "add the place to services/places.yaml, or use its id from there")
    return tuple(p for p in values if p in directory.places)


def _yes_no(out: Collector, raw: YamlMap, key: str, example: str) -> bool | None:
    if key not in raw:
        return None
    value = raw[key]
    if not isinstance(value, bool):
        out.add(raw.line_of(key), f"'{key}' must be true or false",
                f"write {example}; only true/false are accepted, not yes/no")
        return None
    return value


def _sources(out: Collector, raw: YamlMap, where: str, today: date | None) -> list[Source]:
    value = raw.get("sources")
    if not isinstance(value, YamlList) or not value:
        out.add(raw.line_of("sources"), f"{where} needs 'sources:', where each fact comes from",
                "e.g. sources: [{source: \"https://... (the page)\", checked: 2026-12-02}]")
        return []
    sources: list[Source] = []
    for index, entry in enumerate(value):
        line = value.line_of(index)
        if not isinstance(entry, YamlMap):
            out.add(line, "each source is a mapping with source, checked and facts")
            continue
        out.unknown_keys(entry, SOURCE_KEYS, "a source")
        text = text_field(out, entry, "source", "a source", required=True)
        checked = _date(out, entry, today)
        facts = string_list(out, entry, "facts")
        if "facts" not in entry and len(value) > 1:
            out.add(entry.line, "with more than one source, each says which facts it gives",
                    "add facts: [phone, hours] (any of: " + ", ".join(FACTS) + ")")
        for fact in facts:
            if fact not in FACTS:
                out.add(entry.line_of("facts"), f"unknown fact '{fact}' in a source",
                        _did_you_mean(fact, FACTS) or "facts are: " + ", ".join(FACTS))
        if text is not None and checked is not None:
            covers = tuple(f for f in facts if f in FACTS) if "facts" in entry else FACTS
            sources.append(Source(text, checked, covers, entry.line))
    return sources


def _date(out: Collector, entry: YamlMap, today: date | None) -> date | None:
    value = entry.get("checked")
    hint = "write the day it was checked as checked: 2026-12-02 (year-month-day)"
    if value is None:
        out.add(entry.line, "a source needs 'checked:', the day its facts were checked", hint)
        return None
    match = _DATE.match(str(value).strip()) if isinstance(value, str) else None
    if match is None:
        out.add(entry.line_of("checked"), f"'checked' must be a date, not {value!r}", hint)
        return None
    try:
        checked = date(*(int(part) for part in match.groups()))
    except ValueError:
        out.add(entry.line_of("checked"), f"'{value}' is not a day of the calendar", hint)
        return None
    if today is not None and checked > today:
        out.add(entry.line_of("checked"), f"'checked: {value}' is in the future", hint)
    return checked


def _did_you_mean(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f"did you mean '{close[0]}'?" if close else ""
