"""The one place that picks the store: PostgreSQL when BOT_DATABASE_URL is set, else SQLite
at BOT_DB_PATH (or the file a command was given with --db)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from bot.errors import StorageUnavailable

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.storage.postgres import PostgresStore
    from bot.storage.sqlite import SqliteStore

__all__ = ["open_store"]


async def open_store(settings: Settings, db_path: Path | None = None) -> SqliteStore | PostgresStore:
    """``db_path`` (a command's --db) names a SQLite file and wins over BOT_DATABASE_URL."""
    if settings.database_url and db_path is None:
        try:
            from bot.storage.postgres import PostgresStore
        except ImportError as exc:  # psycopg is an extra: pip install -e '.[postgres]'
            raise StorageUnavailable(
                "BOT_DATABASE_URL names a PostgreSQL database, but its driver is not installed: "
                "pip install -e '.[postgres]' (or 'asylum-help-bot[postgres]')") from exc
        return await PostgresStore.open(settings.database_url,
                                        pool_size=settings.database_pool_size)
    from bot.storage.sqlite import SqliteStore

    return await SqliteStore.open(db_path or settings.db_path, synchronous=settings.sqlite_sync)
