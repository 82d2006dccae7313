"""One typed settings object, read once from the environment.

Nothing here exits the process: a bad value raises ConfigError naming the variable and
the fix, and only the CLI turns that into an exit code.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bot._shipped import shipped_dir
from bot.errors import ConfigError, MissingFolderError
from bot.flowspec.library import default_flows_dir
from bot.handover.desk import DeskSettings, parse_hours
from bot.services.load import default_services_dir
from bot.text.languages import LANGUAGES

__all__ = ["DEFAULT_MODELS_DIR", "DESK_CLOCK_SECONDS", "PURGE_EVERY_SECONDS", "WHATSAPP_REQUIRED",
           "Settings", "check_retention_days",
           "default_locales_dir", "parse_template_languages", "translation_order"]

DEFAULT_DB = Path("data") / "bot.sqlite3"
DEFAULT_MODELS_DIR = Path("data") / "models"
#: Days kept before the purge deletes idle sessions, closed handovers, stale messages.
DEFAULT_RETENTION_DAYS = 30.0
#: How often a running bot deletes what is past BOT_RETENTION_DAYS (and once at start).
#: Retention is counted in days: a few hours late is well inside it.
PURGE_EVERY_SECONDS = 6 * 3600.0
#: How often the desk's clock runs (delayed offers, silence timeouts).
DESK_CLOCK_SECONDS = 15.0


def default_locales_dir() -> Path:
    """The shipped catalogs: locales/ at the repository root in a checkout or an editable
    install, the copy inside the package once installed (see bot/_shipped)."""
    return shipped_dir("locales")


@dataclass(frozen=True)
class Settings:
    db_path: Path = DEFAULT_DB
    #: postgresql://... selects PostgreSQL (BOT_DATABASE_URL); None: SQLite at db_path.
    database_url: str | None = None
    #: Connections per process to PostgreSQL (BOT_DATABASE_POOL_SIZE): chats served at once.
    database_pool_size: int = 10
    flows_dir: Path = field(default_factory=default_flows_dir)
    locales_dir: Path = field(default_factory=default_locales_dir)
    #: The directory of services (services/*.yaml) that find_help and /services show.
    services_dir: Path = field(default_factory=default_services_dir)
    #: Offline translation models (.argosmodel packages and NLLB-200 / M2M-100 folders).
    models_dir: Path = DEFAULT_MODELS_DIR
    translation_timeout: float = 10.0
    #: Families or model names to prefer, in order ("nllb,argos"); empty: published quality.
    translation_order: tuple[str, ...] = ()
    #: CTranslate2 threads per translation (BOT_TRANSLATION_THREADS).
    translation_threads: int = 1
    #: Beam size for NLLB-200 / M2M-100 (BOT_TRANSLATION_BEAM); None: greedy (1).
    translation_beam: int | None = None
    sqlite_sync: str = "NORMAL"
    log_level: str = "INFO"
    flows_poll_seconds: float = 2.0
    retention_days: float = DEFAULT_RETENTION_DAYS
    #: The shared timers, run by one process on a database at a time (Store.lead_timers);
    #: another asks before each round and takes over within one when that process stops.
    purge_every_seconds: float = PURGE_EVERY_SECONDS
    desk_clock_seconds: float = DESK_CLOCK_SECONDS
    telegram_token: str | None = None
    telegram_api_base_url: str | None = None
    telegram_file_base_url: str | None = None
    telegram_webhook_url: str | None = None
    telegram_webhook_secret: str | None = None
    telegram_webhook_listen: str = "127.0.0.1"
    telegram_webhook_port: int = 8443
    whatsapp_access_token: str | None = None
    whatsapp_phone_number_id: str | None = None
    whatsapp_app_secret: str | None = None
    whatsapp_verify_token: str | None = None
    whatsapp_api_base_url: str | None = None  # None: the Graph API's current version
    whatsapp_webhook_listen: str = "127.0.0.1"
    whatsapp_webhook_port: int = 8444
    #: An approved template inviting a person to write again, and its language codes at
    #: WhatsApp by bot language (("en", "en_GB"), ("fa", "fa") ...).
    whatsapp_reopen_template: str | None = None
    whatsapp_template_languages: tuple[tuple[str, str], ...] = ()
    desk: DeskSettings = field(default_factory=DeskSettings)

    @property
    def whatsapp_enabled(self) -> bool:
        return all((self.whatsapp_access_token, self.whatsapp_phone_number_id,
                    self.whatsapp_app_secret, self.whatsapp_verify_token))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env

        def text(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        def number(name: str, default: float) -> float:
            raw = text(name)
            if raw is None:
                return default
            try:
                return float(raw)
            except ValueError:
                raise ConfigError(f"{name} must be a number, not {raw!r}") from None

        def positive(name: str, default: float) -> float:
            value = number(name, default)
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"{name} must be a positive number, not {text(name)!r}")
            return value

        sync = (text("BOT_SQLITE_SYNC") or "NORMAL").upper()
        if sync not in ("NORMAL", "FULL"):
            raise ConfigError(f"BOT_SQLITE_SYNC must be NORMAL or FULL, not {sync!r}")
        parse_hours(text("BOT_VOLUNTEER_HOURS") or "09:00-21:00")  # refuse a bad value early
        webhook_url = text("TELEGRAM_WEBHOOK_URL")
        secret = text("TELEGRAM_WEBHOOK_SECRET")
        if webhook_url and not secret:
            raise ConfigError("TELEGRAM_WEBHOOK_URL is set but TELEGRAM_WEBHOOK_SECRET is not: "
                              "set a random secret so only Telegram can call the webhook")
        whatsapp = {name: text(name) for name in WHATSAPP_REQUIRED}
        missing = [name for name, value in whatsapp.items() if value is None]
        if 0 < len(missing) < len(WHATSAPP_REQUIRED):
            raise ConfigError(f"WhatsApp is half set up: {', '.join(missing)} "
                              f"{'is' if len(missing) == 1 else 'are'} not set (WhatsApp needs all of "
                              f"{', '.join(WHATSAPP_REQUIRED)}; see the README's WhatsApp section)")
        database_url = text("BOT_DATABASE_URL")
        if database_url and not database_url.startswith(("postgresql://", "postgres://")):
            raise ConfigError("BOT_DATABASE_URL must be a PostgreSQL address, "
                              "postgresql://USER:PASSWORD@HOST:PORT/DATABASE; leave it unset "
                              "for SQLite at BOT_DB_PATH")
        return cls(
            db_path=Path(text("BOT_DB_PATH") or DEFAULT_DB),
            database_url=database_url,
            database_pool_size=int(positive("BOT_DATABASE_POOL_SIZE", 10)),
            flows_dir=Path(text("BOT_FLOWS_DIR") or default_flows_dir()),
            locales_dir=Path(text("BOT_LOCALES_DIR") or default_locales_dir()),
            services_dir=Path(text("BOT_SERVICES_DIR") or default_services_dir()),
            # ARGOS_PACKAGES_DIR: the variable's name before NLLB-200 models, still honoured.
            models_dir=Path(text("BOT_MODELS_DIR") or text("ARGOS_PACKAGES_DIR") or DEFAULT_MODELS_DIR),
            translation_timeout=positive("BOT_TRANSLATION_TIMEOUT", 10.0),
            translation_order=translation_order(text("BOT_TRANSLATION_ORDER")),
            translation_threads=int(positive("BOT_TRANSLATION_THREADS", 1)),
            translation_beam=int(positive("BOT_TRANSLATION_BEAM", 1)) if text("BOT_TRANSLATION_BEAM")
            else None,
            sqlite_sync=sync,
            log_level=(text("BOT_LOG_LEVEL") or "INFO").upper(),
            flows_poll_seconds=number("BOT_FLOWS_POLL_SECONDS", 2.0),
            retention_days=check_retention_days(text("BOT_RETENTION_DAYS"), "BOT_RETENTION_DAYS"),
            purge_every_seconds=3600 * positive("BOT_PURGE_EVERY_HOURS", PURGE_EVERY_SECONDS / 3600),
            desk_clock_seconds=positive("BOT_DESK_CLOCK_SECONDS", DESK_CLOCK_SECONDS),
            telegram_token=text("TELEGRAM_BOT_TOKEN"),
            telegram_api_base_url=text("TELEGRAM_API_BASE_URL"),
            telegram_file_base_url=text("TELEGRAM_FILE_BASE_URL"),
            telegram_webhook_url=webhook_url,
            telegram_webhook_secret=secret,
            telegram_webhook_listen=text("TELEGRAM_WEBHOOK_LISTEN") or "127.0.0.1",
            telegram_webhook_port=int(number("TELEGRAM_WEBHOOK_PORT", 8443)),
            whatsapp_access_token=whatsapp["WHATSAPP_ACCESS_TOKEN"],
            whatsapp_phone_number_id=whatsapp["WHATSAPP_PHONE_NUMBER_ID"],
            whatsapp_app_secret=whatsapp["WHATSAPP_APP_SECRET"],
            whatsapp_verify_token=whatsapp["WHATSAPP_VERIFY_TOKEN"],
            whatsapp_api_base_url=text("WHATSAPP_API_BASE_URL"),
            whatsapp_webhook_listen=text("WHATSAPP_WEBHOOK_LISTEN") or "127.0.0.1",
            whatsapp_webhook_port=int(number("WHATSAPP_WEBHOOK_PORT", 8444)),
            whatsapp_reopen_template=text("WHATSAPP_REOPEN_TEMPLATE"),
            whatsapp_template_languages=parse_template_languages(
                text("WHATSAPP_REOPEN_TEMPLATE_LANGUAGES")),
            desk=DeskSettings(
                offer_delay_seconds=number("BOT_OFFER_DELAY_SECONDS", 120),
                volunteer_timeout_seconds=60 * number("BOT_VOLUNTEER_TIMEOUT_MINUTES", 10),
                user_timeout_seconds=60 * number("BOT_USER_TIMEOUT_MINUTES", 30),
                average_chat_minutes=number("BOT_AVERAGE_CHAT_MINUTES", 15),
                hours=text("BOT_VOLUNTEER_HOURS") or "09:00-21:00",
                timezone=text("BOT_TIMEZONE") or "Europe/London",
            ),
        )

    def require_folders(self, *, flows: bool = True, locales: bool = True) -> None:
        """Raise MissingFolderError, in one line, for the first folder asked for that is not
        there: the variable that names it, or the shipped copy when none is set."""
        wanted = [("BOT_FLOWS_DIR", self.flows_dir, default_flows_dir(), "flow files"),
                  ("BOT_SERVICES_DIR", self.services_dir, default_services_dir(),
                   "service directory files")] if flows else []
        if locales:
            wanted.append(("BOT_LOCALES_DIR", self.locales_dir, default_locales_dir(),
                           "translation catalogs"))
        for variable, path, shipped, what in wanted:
            if path.is_dir():
                continue
            if path == shipped:
                raise MissingFolderError(
                    f"the shipped {what} are missing ({path}): reinstall the bot, or set "
                    f"{variable} to a folder of {what}")
            raise MissingFolderError(
                f"{variable}={path}: no such folder; set {variable} to your folder of {what}, "
                "or unset it to use the shipped ones")


#: WhatsApp is served when all of these are set.
WHATSAPP_REQUIRED = ("WHATSAPP_ACCESS_TOKEN", "WHATSAPP_PHONE_NUMBER_ID", "WHATSAPP_APP_SECRET",
                     "WHATSAPP_VERIFY_TOKEN")


def parse_template_languages(raw: str | None) -> tuple[tuple[str, str], ...]:
    """'en=en_GB, fa=fa' -> (("en", "en_GB"), ("fa", "fa")): the bot language each of the
    template's translations at WhatsApp is for."""
    if raw is None:
        return ()
    pairs: list[tuple[str, str]] = []
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        ours, sep, theirs = (x.strip() for x in item.partition("="))
        if not sep or not theirs or ours not in LANGUAGES:
            raise ConfigError(
                f"WHATSAPP_REOPEN_TEMPLATE_LANGUAGES: {item!r} should be LANGUAGE=CODE, e.g. "
                f"en=en_GB,fa=fa (the bot's languages are {', '.join(LANGUAGES)}; CODE is the "
                "template's language code in WhatsApp Manager)")
        pairs.append((ours, theirs))
    return tuple(pairs)


def check_retention_days(raw: str | None, name: str) -> float:
    """A positive, finite number of days (``name`` is what the person set: a variable or flag)."""
    if raw is None:
        return DEFAULT_RETENTION_DAYS
    try:
        days = float(raw)
    except ValueError:
        days = math.nan
    if not (math.isfinite(days) and days > 0):
        raise ConfigError(f"{name} must be a positive number of days (e.g. 30), not {raw!r}")
    return days


def translation_order(raw: str | None) -> tuple[str, ...]:
    """BOT_TRANSLATION_ORDER: comma-separated family ids (nllb, m2m100, argos) or model names."""
    if raw is None:
        return ()
    order = tuple(part.strip() for part in raw.split(",") if part.strip())
    if not order:
        raise ConfigError("BOT_TRANSLATION_ORDER is empty; list families such as nllb,argos, "
                          "or unset it to rank models by published quality")
    return order


def check_language(code: str | None) -> str | None:
    if code is not None and code not in LANGUAGES:
        raise ConfigError(f"unknown language {code!r}; choose one of: {', '.join(LANGUAGES)}")
    return code
