"""Composition root: builds the house from settings and runs it until the transport stops."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

from bot.config import Settings
from bot.dispatcher import Dispatcher
from bot.flowspec.library import FlowLibrary
from bot.flowspec.live import LiveLibrary
from bot.i18n.argos_models import list_models
from bot.i18n.catalog import CatalogSet, load_catalogs
from bot.i18n.locales_tools import expected_sources
from bot.i18n.localizer import Localizer
from bot.i18n.machine_translation import ArgosTranslator
from bot.storage.sqlite import SqliteStore
from bot.transports.base import Transport

__all__ = ["build_localizer", "load_catalog_set", "run_bot"]

log = logging.getLogger(__name__)


def load_catalog_set(settings: Settings, library: FlowLibrary) -> CatalogSet:
    catalogs, problems = load_catalogs(settings.locales_dir, expected_sources(library))
    for problem in problems:
        log.error("translation skipped: %s", problem)
    return catalogs


def build_localizer(settings: Settings, library: FlowLibrary) -> tuple[Localizer, ArgosTranslator | None]:
    """Catalogs always; offline machine translation when models are installed."""
    translator = None
    if list_models(settings.argos_packages_dir):
        translator = ArgosTranslator(settings.argos_packages_dir, timeout=settings.translation_timeout)
    return Localizer(load_catalog_set(settings, library), translator), translator


async def run_bot(settings: Settings, transport: Transport, *, db_path: Path | None = None,
                  language: str | None = None, reopen: str | None = None,
                  rate_limit: bool = True) -> None:
    """Serve ``transport`` until its input ends.

    ``reopen`` names a chat whose unanswered question is asked again on start (the
    console uses it so a restarted chat shows where it was).
    """
    db = db_path or settings.db_path
    flows = LiveLibrary([settings.flows_dir], snapshot_dir=Path(db).parent / "flows-last-good")
    localizer, translator = build_localizer(settings, flows.current)
    store = await SqliteStore.open(db, synchronous=settings.sqlite_sync)
    watcher = asyncio.create_task(flows.watch(settings.flows_poll_seconds))
    try:
        dispatcher = Dispatcher(store, lambda: flows.current, localizer, transport,
                                default_language=language, rate_limit=rate_limit)
        if reopen is not None:
            await dispatcher.reopen(reopen)
        await dispatcher.flush_outbox()
        await transport.run(dispatcher.handle)
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        await store.close()
        if translator is not None:
            translator.close()
