"""Composition root: builds the house from settings and runs it until the transport stops."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot import limits
from bot.config import PURGE_EVERY_SECONDS, Settings
from bot.dispatcher import Dispatcher
from bot.engine.system_text import COMMAND_TEXT
from bot.errors import ConfigError
from bot.flowspec.library import FlowLibrary
from bot.flowspec.live import LiveLibrary
from bot.flowspec.yaml_cache import CACHE_FILE_NAME, YamlCache
from bot.handover.desk import HandoverDesk
from bot.i18n.catalog import CatalogSet, load_catalogs
from bot.i18n.locales_tools import expected_sources
from bot.i18n.localizer import Localizer
from bot.intake import Intake
from bot.messages import Inbound
from bot.services.live import LiveDirectory
from bot.storage.base import Store
from bot.storage.open import open_store
from bot.text.languages import LANGUAGES
from bot.transports.base import Transport

if TYPE_CHECKING:
    from bot.translation.translator import OfflineTranslator

__all__ = ["PURGE_EVERY_SECONDS", "build_localizer", "build_transports", "command_menus",
           "keep_purging", "load_catalog_set", "run_bot", "serve"]

log = logging.getLogger(__name__)

def load_catalog_set(settings: Settings, library: FlowLibrary) -> CatalogSet:
    catalogs, problems = load_catalogs(settings.locales_dir, expected_sources(library))
    for problem in problems:
        log.error("translation skipped: %s", problem)
    return catalogs


def build_localizer(settings: Settings, library: FlowLibrary) -> tuple[Localizer, OfflineTranslator | None]:
    """Catalogs always; offline machine translation when models are installed."""
    translator = None
    # Imported only when there are models: the local chat and a first install start
    # without the translator or the model tools.
    if Path(settings.models_dir).is_dir():
        from bot.translation.installed import list_models

        models, ignored = list_models(settings.models_dir)
        for folder in ignored:
            log.warning("translation model folder %s is not used: %s", folder.path, folder.reason)
        if models:
            from bot.translation.translator import OfflineTranslator

            translator = OfflineTranslator(settings.models_dir, timeout=settings.translation_timeout,
                                           threads=settings.translation_threads,
                                           order=settings.translation_order,
                                           beam_size=settings.translation_beam)
            for code in LANGUAGES:
                if code != "en" and translator.supports("en", code):
                    log.info("live translation en->%s: %s", code, translator.describe("en", code))
    return Localizer(load_catalog_set(settings, library), translator), translator


def command_menus(localizer: Localizer) -> dict[str, list[tuple[str, str]]]:
    """The command menu in every language that has all its descriptions translated."""
    menus: dict[str, list[tuple[str, str]]] = {}
    for code in LANGUAGES:
        entries = [(key.removeprefix("command."), localizer.system_text(key, code))
                   for key in COMMAND_TEXT]
        if all(text for _, text in entries):
            menus[code] = [(name, text) for name, text in entries if text]
    return menus


def build_transports(settings: Settings) -> list[Transport]:
    """The platforms the settings name: Telegram when its token is set, WhatsApp when its
    four settings are."""
    transports: list[Transport] = []
    if settings.telegram_token:
        from bot.transports.telegram import TelegramTransport, TelegramWebhook

        webhook = None
        if settings.telegram_webhook_url:
            webhook = TelegramWebhook(url=settings.telegram_webhook_url,
                                      listen=settings.telegram_webhook_listen,
                                      port=settings.telegram_webhook_port,
                                      secret_token=settings.telegram_webhook_secret)
        transports.append(TelegramTransport(
            settings.telegram_token, base_url=settings.telegram_api_base_url,
            base_file_url=settings.telegram_file_base_url, webhook=webhook))
    if settings.whatsapp_enabled:
        from bot.transports.whatsapp import DEFAULT_API_BASE_URL, ReopenTemplate, WhatsAppTransport

        assert settings.whatsapp_access_token and settings.whatsapp_phone_number_id
        assert settings.whatsapp_app_secret and settings.whatsapp_verify_token
        template = None
        if settings.whatsapp_reopen_template:
            template = ReopenTemplate(settings.whatsapp_reopen_template,
                                      dict(settings.whatsapp_template_languages))
        transports.append(WhatsAppTransport(
            settings.whatsapp_access_token, settings.whatsapp_phone_number_id,
            settings.whatsapp_app_secret, settings.whatsapp_verify_token,
            api_base_url=settings.whatsapp_api_base_url or DEFAULT_API_BASE_URL,
            listen=settings.whatsapp_webhook_listen, port=settings.whatsapp_webhook_port,
            reopen_template=template))
    return transports


async def serve(settings: Settings) -> None:
    """Serve every configured platform in this process until stopped (SIGTERM or Ctrl-C: a
    graceful stop). With both, one router feeds one intake and delivers each chat's
    messages through its own platform, so volunteers on one serve people on the other."""
    from bot.transports.router import RoutingTransport

    transports = build_transports(settings)
    if not transports:
        raise ConfigError("no platform is set up: set TELEGRAM_BOT_TOKEN, or the WhatsApp "
                          "settings (WHATSAPP_ACCESS_TOKEN ...), or both")
    transport = transports[0] if len(transports) == 1 else RoutingTransport(transports)
    telegram = next((t for t in transports if t.name == "telegram"), None)

    async def set_commands(localizer: Localizer) -> None:
        from bot.transports.telegram import TelegramTransport

        if isinstance(telegram, TelegramTransport):
            await telegram.set_commands(command_menus(localizer))

    await run_bot(settings, transport, on_start=set_commands)


async def run_bot(settings: Settings, transport: Transport, *, db_path: Path | None = None,
                  language: str | None = None, reopen: str | None = None,
                  flood_control: bool = True, one_at_a_time: bool = False,
                  flush_every: float = 5.0,
                  on_start: Callable[[Localizer], Awaitable[None]] | None = None) -> None:
    """Serve ``transport`` until its input ends or a stop signal comes.

    ``reopen`` names a chat whose unanswered question is asked again on start (the
    console uses it so a restarted chat shows where it was). ``one_at_a_time``: each
    message is answered before the transport reads the next (the console's transcript).

    SIGTERM and SIGINT stop gracefully: no more messages are taken, the turns in flight
    finish, what can be sent is sent, and the database is checkpointed and closed, all
    within limits.STOP_SECONDS_MAX. Messages saved but not answered yet are answered
    after the next start.
    """
    db = db_path or settings.db_path
    # The database first: a folder or file that cannot be written stops the start with one
    # clear error, before the flows snapshot (kept beside it) is written.
    store = await open_store(settings, db_path)
    try:
        # Unchanged flow and catalog files are not parsed again (kept beside the database).
        with _yaml_cache(db):
            flows = LiveLibrary([settings.flows_dir],
                                snapshot_dir=Path(db).parent / "flows-last-good")
            localizer, translator = build_localizer(settings, flows.current)
            directory = LiveDirectory([settings.services_dir],
                                      snapshot_dir=Path(db).parent / "services-last-good")
    except BaseException:
        await store.close()
        raise
    desk = HandoverDesk(store, localizer, translator, settings.desk,
                        flow_queues=lambda: flows.current.handover_queues(),
                        directory=lambda: directory.current)
    dispatcher = Dispatcher(store, lambda: flows.current, localizer, transport,
                            default_language=language, desk=desk,
                            directory=lambda: directory.current)
    intake = Intake(store, dispatcher, flood_control=flood_control)

    async def accept(inbounds: Sequence[Inbound]) -> None:
        await intake.accept(inbounds)
        if one_at_a_time:
            await intake.drain()

    loop = asyncio.get_running_loop()
    stop_signal = asyncio.Event()

    def stop() -> None:
        stop_signal.set()
        _spawn(transport.stop())

    signals = _on_stop_signals(loop, stop)
    input_ended = False
    background = [asyncio.create_task(flows.watch(settings.flows_poll_seconds)),
                  asyncio.create_task(directory.watch(settings.flows_poll_seconds)),
                  asyncio.create_task(dispatcher.keep_flushing(flush_every,
                                                               settings.desk_clock_seconds)),
                  asyncio.create_task(keep_purging(store, timedelta(days=settings.retention_days),
                                                   settings.purge_every_seconds))]
    if translator is not None:
        background.append(asyncio.create_task(translator.warm_up()))
    # Messages other processes queue for chats this one serves (PostgreSQL): sent at once.
    background.append(asyncio.create_task(dispatcher.follow_outbox()))
    try:
        if on_start is not None:
            await on_start(localizer)
        await intake.recover(transport.owns)
        if reopen is not None:
            await intake.drain()  # what was saved before the last stop comes first
            await dispatcher.reopen(reopen)
        await dispatcher.flush_outbox()
        if not stop_signal.is_set():
            await transport.run(accept)
            input_ended = not stop_signal.is_set()
    finally:
        started = loop.time()
        for sig in signals:
            loop.remove_signal_handler(sig)
        for task in background:
            task.cancel()
        for task in background:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        with contextlib.suppress(Exception):
            await transport.stop()
        if input_ended:  # the console's input ended: answer everything first
            await intake.drain()
        left = await intake.stop(limits.STOP_TURNS_SECONDS)
        if left:
            log.info("stopping: %d message(s) wait in the database for the next start", left)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(dispatcher.flush_outbox(), limits.STOP_SEND_SECONDS)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(transport.close(), limits.STOP_SEND_SECONDS)
        await store.close()
        if translator is not None:
            translator.close()
        if stop_signal.is_set():
            log.info("stopped in %.1f s", loop.time() - started)


def _yaml_cache(db: str | Path) -> contextlib.AbstractContextManager[object]:
    if str(db) == ":memory:":
        return contextlib.nullcontext()
    return YamlCache(Path(db).parent / CACHE_FILE_NAME)


def _on_stop_signals(loop: asyncio.AbstractEventLoop, stop: Callable[[], None]) -> list[int]:
    """SIGTERM (docker stop, systemd, a deploy) and SIGINT (Ctrl-C) stop gracefully. As PID 1
    in a container a process without its own handler would ignore SIGTERM and be killed."""
    installed: list[int] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread / Windows
            continue
        installed.append(sig)
    return installed


_spawned: set[asyncio.Task[None]] = set()


def _spawn(coro: Coroutine[Any, Any, None]) -> None:
    task = asyncio.ensure_future(coro)
    _spawned.add(task)
    task.add_done_callback(_spawned.discard)


async def keep_purging(store: Store, retention: timedelta,
                       every: float = PURGE_EVERY_SECONDS) -> None:
    """Delete what is older than ``retention`` now, then every ``every`` seconds, until
    cancelled; in one process of those sharing the database (Store.lead_timers, asked each
    round: another takes over within a round when it stops). Logs counts only: never whose
    data or what it said."""
    while True:
        try:
            if not await store.lead_timers():
                await asyncio.sleep(every)
                continue
            purged = await store.purge(retention)
            if purged.total:
                log.info("retention purge: %d idle session(s), %d closed handover(s) with %d "
                         "offer(s), %d undelivered message(s), %d update id(s) deleted",
                         purged.sessions, purged.handovers, purged.offers, purged.undelivered,
                         purged.update_ids)
        except Exception:  # one failed round (a locked or full disk) must not end the loop
            log.exception("retention purge failed; trying again in %.0f s", every)
        await asyncio.sleep(every)
