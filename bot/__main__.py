"""Command line: python -m bot {chat,run,validate,services,graph,locales,models,translate,volunteers,
purge} ...

The only place that prints errors for people and chooses exit codes.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from bot.config import Settings, check_language
from bot.errors import (
    BotError,
    DirectoryLoadError,
    FlowLoadError,
    MissingFolderError,
    StorageUnavailable,
)
from bot.flowspec.library import FlowLibrary, in_folder_context, load_library
from bot.services.load import PLACES_FILE, load_directory

if TYPE_CHECKING:
    from bot.i18n.localizer import Localizer
    from bot.translation.translator import OfflineTranslator

__all__ = ["main"]


_DB_HELP = ("SQLite file (default: the PostgreSQL database of BOT_DATABASE_URL if set, else "
            "BOT_DB_PATH or data/bot.sqlite3)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bot", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    chat = sub.add_parser("chat", help="talk to the bot in this terminal (or from piped input)")
    chat.add_argument("--lang", help="start in this language instead of asking (en, ps, prs, fa, ur, hi)")
    chat.add_argument("--db", type=Path, help=_DB_HELP)
    chat.add_argument("--user", default="local", help="who is chatting (separate conversations)")

    sub.add_parser("run", help="serve Telegram and/or WhatsApp (needs TELEGRAM_BOT_TOKEN or the "
                   "WHATSAPP_* settings, or both)")

    validate = sub.add_parser("validate", help="check flow files and the directory of services; "
                              "exit 1 listing every problem")
    validate.add_argument("paths", nargs="*", type=Path,
                          help="files or folders (default: flows/ and services/)")
    services = sub.add_parser("services", help="the directory of services in services/")
    services_sub = services.add_subparsers(dest="services_command", required=True)
    services_check = services_sub.add_parser(
        "check", help="every entry by when it was last checked; exit 1 if one is over six months")
    services_check.add_argument("--today", type=date.fromisoformat, default=None,
                                help="count ages from this day (YYYY-MM-DD) instead of today")

    graph = sub.add_parser("graph", help="draw a flow as a Mermaid flowchart (and, with --html, "
                           "as a page that works offline)")
    graph.add_argument("flow", help="a flow id (e.g. claim_refused) or a flow file (a draft is "
                       "drawn in place of the flow of the same name)")
    graph.add_argument("--html", type=Path, metavar="FILE",
                       help="also write a self-contained HTML page that draws the flow")

    locales = sub.add_parser("locales", help="translation catalogs in locales/")
    locales_sub = locales.add_subparsers(dest="locales_command", required=True)
    locales_sub.add_parser("check", help="coverage grid; exit 1 on a missing key or a placeholder mismatch")
    draft = locales_sub.add_parser("draft", help="fill missing strings with offline machine drafts")
    draft.add_argument("--lang", required=True, help="language code, e.g. fa")
    locales_sub.add_parser("sources", help="print every key with its English source")
    export = locales_sub.add_parser(
        "export", help="write the keys a language lacks (or all) with their English, for a translator")
    export.add_argument("--lang", required=True)
    export.add_argument("--all", action="store_true", help="every key, not only missing and stale")
    imp = locales_sub.add_parser("import", help="take a translator's file (key: translated text)")
    imp.add_argument("--lang", required=True)
    imp.add_argument("--status", default="needs_review", choices=["reviewed", "needs_review"],
                     help="reviewed only when a native speaker has checked every entry")
    imp.add_argument("file", type=Path)

    volunteers = sub.add_parser("volunteers", help="who may answer chats handed to a person")
    volunteers_sub = volunteers.add_subparsers(dest="volunteers_command", required=True)
    add = volunteers_sub.add_parser("add", help="register (or update) a volunteer")
    add.add_argument("id", help="Telegram user id (a number), wa:ID for WhatsApp (the phone number "
                     "with country code, or the user id WhatsApp gives), or console:NAME for the "
                     "local chat")
    add.add_argument("--name", required=True, help="shown to staff; never to the person")
    add.add_argument("--languages", required=True, help="comma-separated codes, e.g. en,fa,prs")
    add.add_argument("--queues", default="*", help="comma-separated queues, or * for all (default)")
    add.add_argument("--db", type=Path, help=_DB_HELP)
    remove = volunteers_sub.add_parser("remove", help="unregister a volunteer")
    remove.add_argument("id")
    remove.add_argument("--db", type=Path)
    listing = volunteers_sub.add_parser("list", help="show registered volunteers")
    listing.add_argument("--db", type=Path)

    purge = sub.add_parser("purge", help="delete now what is older than the retention period")
    purge.add_argument("--older-than", metavar="DAYS",
                       help="days to keep (default: BOT_RETENTION_DAYS, or 30)")
    purge.add_argument("--db", type=Path, help=_DB_HELP)

    models = sub.add_parser("models", help="offline translation models")
    models_sub = models.add_subparsers(dest="models_command", required=True)
    install = models_sub.add_parser(
        "install", help="install .argosmodel files or NLLB-200 / M2M-100 CTranslate2 folders")
    install.add_argument("paths", nargs="+", type=Path)
    install.add_argument("--accept-licence", action="store_true",
                         help="accept a non-commercial licence (NLLB-200: CC-BY-NC-4.0)")
    install.add_argument("--name", help="folder name for a CTranslate2 model (default: its own)")
    models_sub.add_parser("list", help="show installed models and which one serves each language")

    translate = sub.add_parser("translate", help="translate a text with the installed models")
    translate.add_argument("--to", dest="target", required=True, help="language code, e.g. ps")
    translate.add_argument("--from", dest="source", default="en", help="language code (default: en)")
    translate.add_argument("text", nargs="+", help="the text (several words are joined by spaces)")
    return parser


def _validate(paths: Sequence[Path], settings: Settings) -> int:
    # services/ (a folder holding places.yaml, or a file in one) is the directory; the rest
    # are flows. A single flow file links to other flows: it is checked with its folder.
    services_dirs = [p if p.is_dir() else p.parent for p in paths if _in_services_dir(p)]
    flow_paths = [p for p in paths if not _in_services_dir(p)]
    library = None
    if flow_paths or not paths:
        try:
            library = load_library(in_folder_context(flow_paths, settings.flows_dir))
        except FlowLoadError as exc:
            for problem in exc.problems:
                print(problem)
            print(f"\n{len(exc.problems)} problem(s) found; nothing was changed.", file=sys.stderr)
            return 1
        steps = sum(len(f.steps) for f in library.flows.values())
        print(f"OK: {len(library.flows)} flows, {steps} steps, {len(library.strings())} texts.")
        # Valid, but worded like advice on a person's own case: warn, with where and how to reword.
        from bot.flowspec.advice import advice_warnings

        for problem in advice_warnings(library.flows):
            print(f"warning: {problem}")
    directory_ok = _validate_directory(services_dirs[0] if services_dirs else settings.services_dir,
                                       library)
    if library is not None:
        # Valid, but a changed English text leaves its translations stale: say which, and where.
        from bot.i18n.catalog import load_catalogs
        from bot.i18n.locales_tools import check_catalogs, expected_sources, stale_warnings

        catalogs, _ = load_catalogs(settings.locales_dir, expected_sources(library))
        for line in stale_warnings(check_catalogs(library, catalogs)):
            print(line)
    return 0 if directory_ok else 1


def _in_services_dir(path: Path) -> bool:
    folder = path if path.is_dir() else path.parent
    return (folder / PLACES_FILE).is_file()


def _validate_directory(folder: Path, library: FlowLibrary | None) -> bool:
    """Check the directory of services (and the flows' place buttons against it)."""
    from bot.services.check import flow_place_problems, stale_warnings

    today = date.today()
    try:
        directory = load_directory(folder, today)
    except DirectoryLoadError as exc:
        for problem in exc.problems:
            print(problem)
        print(f"\n{len(exc.problems)} problem(s) found in the directory of services; nothing was "
              "changed.", file=sys.stderr)
        return False
    print(f"OK: {len(directory.services)} services, {len(directory.places)} places.")
    # A place button the directory lacks still works (the nation's services are shown).
    for problem in flow_place_problems(library.flows, directory) if library is not None else []:
        print(f"warning: {problem}")
    for line in stale_warnings(directory, today):
        print(line)
    return True


def _services(args: argparse.Namespace, settings: Settings) -> int:
    from bot.services.check import age_lines
    from bot.services.matching import stale_services

    today = args.today or date.today()
    directory = load_directory(settings.services_dir, today)
    if not directory.services:
        print(f"No services in {settings.services_dir}.")
        return 0
    print(f"{len(directory.services)} services in {settings.services_dir}, least recently checked "
          f"first (STALE: not checked for more than six months, as of {today.isoformat()}):")
    for line in age_lines(directory, today):
        print(line)
    return 1 if stale_services(directory, today) else 0


def _graph(args: argparse.Namespace, settings: Settings) -> int:
    import difflib

    from bot.diagram.graph import flow_graph
    from bot.diagram.mermaid import to_mermaid

    named = Path(args.flow)
    is_file = named.suffix in (".yaml", ".yml")
    library = load_library(in_folder_context([named] if is_file else [], settings.flows_dir))
    flow_id = named.stem if is_file else args.flow
    flow = library.get(flow_id)
    if flow is None:
        close = difflib.get_close_matches(flow_id, list(library.flows), n=1)
        print(f"error: there is no flow called '{flow_id}'"
              + (f"; did you mean '{close[0]}'?" if close else "") + "\nflows: "
              + ", ".join(sorted(library.flows)), file=sys.stderr)
        return 1
    graph = flow_graph(flow, library.menu())
    mermaid = to_mermaid(graph)
    print(mermaid, end="")
    if args.html is not None:
        from bot.diagram.page import to_html

        try:
            args.html.write_text(to_html(graph, mermaid), encoding="utf-8")
        except OSError as exc:
            print(f"error: cannot write {args.html}: {exc.strerror or exc}", file=sys.stderr)
            return 1
        print(f"wrote {args.html} ({len(graph.steps)} steps); open it in any browser, "
              "it needs no network", file=sys.stderr)
    return 0


def _chat(args: argparse.Namespace, settings: Settings) -> int:
    from bot.app import run_bot
    from bot.transports.console import ConsoleTransport

    language = check_language(args.lang)
    transport = ConsoleTransport(user=args.user)
    if sys.stdin.isatty():
        print("Type a message to start; Ctrl-D to leave.", file=sys.stderr)
    # A short flush interval: messages from a volunteer in another terminal (another
    # process on the same SQLite file) show up within half a second.
    asyncio.run(run_bot(settings, transport, db_path=args.db, language=language,
                        reopen=transport.chat_key, flood_control=False, one_at_a_time=True,
                        flush_every=0.5))
    return 0


def _run(settings: Settings) -> int:
    if not settings.telegram_token and not settings.whatsapp_enabled:
        print("No platform is set up: neither TELEGRAM_BOT_TOKEN nor the WhatsApp settings are set.\n"
              "  Telegram: get a token from @BotFather and run: "
              "TELEGRAM_BOT_TOKEN=123:abc python -m bot run\n"
              "  WhatsApp: set WHATSAPP_ACCESS_TOKEN, WHATSAPP_PHONE_NUMBER_ID, WHATSAPP_APP_SECRET "
              "and WHATSAPP_VERIFY_TOKEN (see the README)\n"
              "  To try the bot without either, use the local chat: python -m bot chat",
              file=sys.stderr)
        return 2
    from bot.app import serve

    asyncio.run(serve(settings))
    return 0


def _locales(args: argparse.Namespace, settings: Settings) -> int:
    from bot.i18n.catalog import Status, load_catalogs
    from bot.i18n.locales_tools import (
        check_catalogs,
        draft_missing,
        expected_sources,
        export_for_translator,
        read_translator_file,
        write_entries,
    )

    library = load_library([settings.flows_dir])
    sources = expected_sources(library)
    catalogs, problems = load_catalogs(settings.locales_dir, sources)
    if args.locales_command == "sources":
        for key, source in sources.items():
            print(f"{key}: {source!r}")
        return 0
    if args.locales_command == "export":
        print(export_for_translator(sources, catalogs, _language(args.lang), everything=args.all), end="")
        return 0
    if args.locales_command == "import":
        language = _language(args.lang)
        entries, errors = read_translator_file(args.file, sources, Status(args.status))
        for problem in errors:
            print(problem, file=sys.stderr)
        if errors:
            print(f"\n{len(errors)} problem(s); nothing was imported.", file=sys.stderr)
            return 1
        written = write_entries(settings.locales_dir, language, entries, sources, catalogs)
        print(f"{len(entries)} entries imported into {len(written)} file(s) as {args.status}.")
        return 0
    if args.locales_command == "check":
        coverage = check_catalogs(library, catalogs, problems)
        print(coverage.grid())
        stale = coverage.stale_keys()
        if stale:
            print(f"\n{len(stale)} key(s) stale (English changed since translation):")
            for key, codes in stale.items():
                print(f"  {key}: {', '.join(codes)}")
        for language, keys in sorted(coverage.missing.items()):
            print(f"\n{language}: {len(keys)} missing: " + ", ".join(keys[:10])
                  + (" ..." if len(keys) > 10 else ""))
        for problem in coverage.problems:
            print(problem)
        return 1 if coverage.failed() else 0
    # draft
    language = _language(args.lang)
    translator = _translator(settings, timeout=120)
    try:
        if not translator.supports("en", language):
            print(f"error: no offline model translates English to {language}. Install one with:\n"
                  "  python -m bot models install PATH", file=sys.stderr)
            return 1
        print(f"drafting with {translator.describe('en', language)}", file=sys.stderr)

        def progress(done: int, total: int) -> None:
            width = 30
            filled = width * done // total
            print(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total}", end="",
                  file=sys.stderr, flush=True)

        async def translate(texts: list[str]) -> list[str]:
            done = await translator.translate_batch(texts, "en", language, cacheable=True)
            return [t.text for t in done]

        drafts = asyncio.run(draft_missing(library, catalogs, language, translate, progress))
    finally:
        translator.close()
    if drafts:
        print(file=sys.stderr)
    written = write_entries(settings.locales_dir, language, drafts, sources, catalogs)
    print(f"{len(drafts)} machine drafts written to {len(written)} file(s); "
          "they are marked 'machine' until a native speaker reviews them.")
    return 0


def _translator(settings: Settings, *, timeout: float) -> OfflineTranslator:
    from bot.translation.translator import OfflineTranslator

    return OfflineTranslator(settings.models_dir, timeout=timeout,
                             threads=settings.translation_threads, order=settings.translation_order,
                             beam_size=settings.translation_beam)


def _volunteer_key(raw: str) -> str:
    from bot.errors import ConfigError

    if raw.isdigit():
        return f"telegram:{raw}"
    prefix, _, rest = raw.partition(":")
    if prefix in ("wa", "whatsapp"):
        # A phone number as WhatsApp writes it (digits, country code first), or a user id.
        ident = "".join(rest.split()).removeprefix("+")
        digits = ident.replace("-", "")
        if digits.isdigit():  # +44 7700-900123 or 0044... -> 447700900123
            ident = digits[2:] if digits.startswith("00") else digits
        if ident and ident.isascii() and all(c.isalnum() or c in "._-" for c in ident):
            return f"whatsapp:{ident}"
    elif prefix in ("telegram", "console") and rest:
        return raw
    raise ConfigError(f"volunteer id {raw!r}: give a Telegram user id (a number), wa:PHONE or "
                      "wa:USER_ID for WhatsApp (e.g. wa:447700900123), or console:NAME")


async def _volunteers(args: argparse.Namespace, settings: Settings) -> int:
    from bot.errors import ConfigError
    from bot.handover.desk import HandoverDesk
    from bot.handover.model import Volunteer
    from bot.storage.open import open_store
    from bot.text.languages import LANGUAGES

    store = await open_store(settings, args.db)
    try:
        if args.volunteers_command == "add":
            languages = tuple(c.strip() for c in args.languages.split(",") if c.strip())
            unknown = [c for c in languages if c not in LANGUAGES]
            if unknown or not languages:
                raise ConfigError(f"unknown language(s) {', '.join(unknown) or '(none)'}; "
                                  f"choose from: {', '.join(LANGUAGES)}")
            queues = tuple(q.strip().lower() for q in args.queues.split(",") if q.strip()) or ("*",)
            volunteer = Volunteer(_volunteer_key(args.id), args.name.strip(), languages, queues)
            await store.add_volunteer(volunteer)
            print(f"registered {volunteer.name} ({volunteer.chat_key}): languages "
                  f"{', '.join(languages)}; queues {', '.join(queues)}. They start /away: "
                  "they send /available when ready.")
            return 0
        if args.volunteers_command == "remove":
            key = _volunteer_key(args.id)
            desk = HandoverDesk(store, _desk_localizer(settings), settings=settings.desk)
            removal = await desk.remove_volunteer(key)
            if removal is None:
                print(f"no volunteer {key}", file=sys.stderr)
                return 1
            print(f"removed {key}")
            if removal.requeued is not None:
                # The running bot sends what this wrote to the outbox within its flush interval.
                print(f"chat #{removal.requeued.id} went back to the queue; the person is told "
                      "their place is kept")
            return 0
        people = await store.volunteers()
        if not people:
            print("no volunteers registered; add one with: python -m bot volunteers add ID "
                  "--name NAME --languages en,fa")
        for v in people:
            state = "available" if v.available else "away"
            print(f"{v.chat_key:<24} {v.name:<20} {','.join(v.languages):<16} "
                  f"{','.join(v.queues):<20} {state}")
        return 0
    finally:
        await store.close()


def _desk_localizer(settings: Settings) -> Localizer:
    """The catalogs, for telling a person in their language (English if the flows are broken)."""
    from bot.app import load_catalog_set
    from bot.i18n.localizer import Localizer

    try:
        library = load_library([settings.flows_dir])
    except FlowLoadError as exc:
        print(f"warning: the flows could not be loaded ({len(exc.problems)} problem(s)); "
              "people are told in English", file=sys.stderr)
        return Localizer()
    return Localizer(load_catalog_set(settings, library))


async def _purge(args: argparse.Namespace, settings: Settings) -> int:
    from datetime import timedelta

    from bot.config import check_retention_days
    from bot.storage.open import open_store

    days = settings.retention_days if args.older_than is None else \
        check_retention_days(args.older_than, "--older-than")
    store = await open_store(settings, args.db)
    try:
        purged = await store.purge(timedelta(days=days))
    finally:
        await store.close()
    # Counts only: never whose data or what it said.
    print(f"deleted what was older than {days:g} days: {purged.sessions} idle session(s), "
          f"{purged.handovers} closed handover(s) with {purged.offers} offer(s), "
          f"{purged.undelivered} undelivered message(s), {purged.update_ids} update id(s)")
    if not purged.wal_cleared:
        print("warning: another program was reading the database, so deleted data may stay in "
              "its files (SQLite: the -wal file) until the next purge", file=sys.stderr)
    return 0


def _language(code: str) -> str:
    from bot.errors import ConfigError
    from bot.text.languages import DEFAULT_LANGUAGE

    checked = check_language(code)
    if checked is None or checked == DEFAULT_LANGUAGE:
        raise ConfigError("English is the source language; choose ps, prs, fa, ur or hi")
    return checked


def _models(args: argparse.Namespace, settings: Settings) -> int:
    from bot.errors import ConfigError
    from bot.text.languages import LANGUAGES
    from bot.translation.argos_models import install_models
    from bot.translation.ct2_folder import inspect_folder
    from bot.translation.installed import (
        check_licence,
        describe_vocabulary_map,
        install_path,
        list_models,
    )

    root = settings.models_dir
    if args.models_command == "install":
        folders = [p for p in args.paths if p.is_dir()]
        files = [p for p in args.paths if not p.is_dir()]
        if args.name and len(folders) != 1:
            raise ConfigError("--name names one CTranslate2 folder; give exactly one")
        for found in [inspect_folder(p) for p in folders]:  # every folder checked first
            family = found.family
            print(f"{found.path}: {family.title} model"
                  + (f", {found.shape}" if found.shape else "") + f", {_megabytes(found.size_bytes)}")
            others = found.all_languages - len(found.languages)
            print(f"  languages the bot uses: {' '.join(found.languages)}"
                  + (f" (it has {others} more)" if others > 0 else ""))
            if "prs" in LANGUAGES and "prs" not in found.languages:
                print("  it has no Dari: Dari would be drafted with its Persian, marked as a draft")
            print(f"  licence: {family.licence}"
                  + ("" if family.commercial_use else
                     f", NON-COMMERCIAL use only, with attribution ({family.licence_url})"))
            check_licence(found, args.accept_licence)
        for archive in install_models(files, root) if files else []:
            print(f"installed {archive}")
        for folder in folders:
            print(f"testing {folder.name} (a short translation into each language)...")
            done = install_path(folder, root, accept_licence=args.accept_licence, name=args.name)
            for code, text in done.tests:
                print(f"  en->{code}: {text}")
            if done.vocabulary_map:
                print("  tokens it may output (fewer make each step faster):")
                for line in describe_vocabulary_map(done.model):
                    print(f"    {line}")
            print(f"installed {done.model.name} in {root}")
        return 0
    models, ignored = list_models(root)
    for folder in ignored:
        print(f"warning: {folder.path} is not used: {folder.reason}", file=sys.stderr)
    if not models:
        print(f"no models installed in {root}")
        return 0
    rows = [("NAME", "FAMILY", "LANGUAGES", "LICENCE", "SIZE")]
    rows += [(m.name, m.detail if m.family.multilingual else f"{m.family.title} {m.detail}",
              m.describe_languages(), m.describe_licence(), _megabytes(m.size_bytes)) for m in models]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False))
              + "  " + row[4])
    for model in models:
        described = describe_vocabulary_map(model)
        if described:
            print(f"\n{model.name}: tokens it may output (fewer make each step faster):")
            for line in described:
                print(f"  {line}")
    translator = _translator(settings, timeout=1)
    try:
        print("\nused for:")
        for code in LANGUAGES:
            if code == "en":
                continue
            for source, target in (("en", code), (code, "en")):
                used = translator.describe(source, target) if translator.supports(source, target) \
                    else "no model"
                print(f"  {source}->{target}: {used}")
    finally:
        translator.close()
    return 0


def _megabytes(size: int) -> str:
    return f"{size / 1e6:.1f} MB" if size < 1e8 else f"{size / 1e6:.0f} MB"


def _translate(args: argparse.Namespace, settings: Settings) -> int:
    import time

    from bot.config import check_language

    source, target = check_language(args.source), check_language(args.target)
    assert source is not None and target is not None
    text = " ".join(args.text)
    translator = _translator(settings, timeout=300)  # the first call loads the model
    try:
        started = time.perf_counter()
        [done] = asyncio.run(translator.translate_batch([text], source, target))
        elapsed = time.perf_counter() - started
    finally:
        translator.close()
    print(done.text)
    made_by = done.model or "no model needed (same language)"
    draft = " - a DRAFT: no installed model has this language" if done.is_draft else ""
    print(f"[{source}->{target} by {made_by}{draft}; {elapsed:.2f} s with loading]", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = Settings.from_env()
        # The local chat prints to the same terminal: only warnings, unless asked.
        level = "WARNING" if args.command == "chat" and "BOT_LOG_LEVEL" not in os.environ \
            else settings.log_level
        logging.basicConfig(level=level, stream=sys.stderr,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        # A folder that is not there would leave the bot silent or English-only: say so first.
        if args.command in ("chat", "run"):
            settings.require_folders()
        elif args.command in ("locales", "graph") or (args.command == "validate"
                                                      and not args.paths):
            settings.require_folders(locales=False)  # locales import may create the folder
        if args.command == "validate":
            return _validate(args.paths, settings)
        if args.command == "services":
            return _services(args, settings)
        if args.command == "chat":
            return _chat(args, settings)
        if args.command == "graph":
            return _graph(args, settings)
        if args.command == "locales":
            return _locales(args, settings)
        if args.command == "models":
            return _models(args, settings)
        if args.command == "translate":
            return _translate(args, settings)
        if args.command == "volunteers":
            return asyncio.run(_volunteers(args, settings))
        if args.command == "purge":
            return asyncio.run(_purge(args, settings))
        return _run(settings)
    except StorageUnavailable as exc:  # a start-up fault, like a missing token: exit 2
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except FlowLoadError as exc:
        print("The flows could not be loaded:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    except DirectoryLoadError as exc:
        print("The directory of services could not be loaded (python -m bot validate):",
              file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    except MissingFolderError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BotError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
