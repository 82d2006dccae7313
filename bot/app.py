"""Composition root: builds the house from settings and runs it until the transport stops."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

from bot.config import Settings
from bot.dispatcher import Dispatcher
from bot.flowspec.live import LiveLibrary
from bot.i18n.localizer import Localizer
from bot.storage.sqlite import SqliteStore
from bot.transports.base import Transport

__all__ = ["run_bot"]

log = logging.getLogger(__name__)


async def run_bot(settings: Settings, transport: Transport, *, db_path: Path | None = None,
                  language: str | None = None, reopen: str | None = None,
                  rate_limit: bool = True) -> None:
    """Serve ``transport`` until its input ends.

    ``reopen`` names a chat whose unanswered question is asked again on start (the
    console uses it so a restarted chat shows where it was).
    """
    db = db_path or settings.db_path
    flows = LiveLibrary([settings.flows_dir], snapshot_dir=Path(db).parent / "flows-last-good")
    store = await SqliteStore.open(db, synchronous=settings.sqlite_sync)
    watcher = asyncio.create_task(flows.watch(settings.flows_poll_seconds))
    try:
        dispatcher = Dispatcher(store, lambda: flows.current, Localizer(), transport,
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
