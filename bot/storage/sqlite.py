"""The store on one SQLite file through aiosqlite.

Durability: WAL journal with synchronous=NORMAL. A commit is in the WAL before
``commit_turn`` returns, so killing the process at any moment loses no confirmed turn
(only a power cut can lose the last few commits; set BOT_SQLITE_SYNC=FULL to pay an
fsync per turn for that too).

Schema changes are numbered migrations; a database written by a newer bot is refused.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import aiosqlite

from bot.engine.session import Session
from bot.errors import StorageError
from bot.messages import Outbound, OutButton
from bot.storage.base import PendingMessage, TurnRecord

__all__ = ["SCHEMA_VERSION", "SqliteStore"]

#: Each entry upgrades the schema by one version; never edit a released entry, append.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE sessions (
        chat_key   TEXT PRIMARY KEY,
        data       TEXT NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE TABLE outbox (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        chat_key   TEXT NOT NULL,
        payload    TEXT NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE INDEX outbox_chat ON outbox (chat_key, id);
    CREATE TABLE processed_updates (
        update_id  TEXT PRIMARY KEY,
        chat_key   TEXT NOT NULL,
        at         REAL NOT NULL
    );
    CREATE INDEX processed_chat ON processed_updates (chat_key);
    CREATE TABLE handovers (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        chat_key   TEXT NOT NULL,
        flow       TEXT NOT NULL,
        step       TEXT NOT NULL,
        queue      TEXT NOT NULL,
        priority   TEXT NOT NULL,
        summary    TEXT NOT NULL,
        language   TEXT,
        created_at REAL NOT NULL,
        status     TEXT NOT NULL DEFAULT 'waiting'
    );
    CREATE INDEX handovers_chat ON handovers (chat_key);
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)

#: Update ids are kept this long to recognise a platform's redelivery, then pruned.
PROCESSED_KEEP_SECONDS = 2 * 24 * 3600


def _encode(message: Outbound) -> str:
    return json.dumps(asdict(message), ensure_ascii=False, separators=(",", ":"))


def _decode(payload: str) -> Outbound:
    data = json.loads(payload)
    data["buttons"] = tuple(OutButton(**b) for b in data.get("buttons", ()))
    return Outbound(**data)


class SqliteStore:
    """Implements :class:`bot.storage.base.Store`. Open with ``await SqliteStore.open(path)``."""

    def __init__(self, conn: aiosqlite.Connection, path: str) -> None:
        self._conn = conn
        self.path = path
        # One connection serves every chat; transactions of different chats must not
        # interleave on it, so writes take turns.
        self._write = asyncio.Lock()

    @classmethod
    async def open(cls, path: str | Path, *, synchronous: str = "NORMAL") -> SqliteStore:
        shown = str(path)
        if shown != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        try:
            # isolation_level=None: we issue BEGIN/COMMIT ourselves, one transaction per turn.
            conn = await aiosqlite.connect(shown, isolation_level=None)
        except Exception as exc:  # sqlite3.Error or OSError, from a thread
            raise StorageError(f"cannot open the database at {shown}: {exc}") from exc
        store = cls(conn, shown)
        try:
            await store._setup(synchronous)
        except BaseException:
            await conn.close()
            raise
        return store

    async def _setup(self, synchronous: str) -> None:
        if synchronous.upper() not in ("NORMAL", "FULL"):
            raise StorageError(f"BOT_SQLITE_SYNC must be NORMAL or FULL, not {synchronous!r}")
        try:
            await self._conn.execute("PRAGMA journal_mode=WAL")
            await self._conn.execute(f"PRAGMA synchronous={synchronous.upper()}")
            await self._conn.execute("PRAGMA busy_timeout=5000")
            async with self._conn.execute("PRAGMA user_version") as cursor:
                row = await cursor.fetchone()
            version = int(row[0]) if row else 0
            if version > SCHEMA_VERSION:
                raise StorageError(
                    f"{self.path} has schema version {version}, newer than this bot "
                    f"({SCHEMA_VERSION}); upgrade the bot or use another --db file")
            for number in range(version, SCHEMA_VERSION):
                await self._conn.execute("BEGIN IMMEDIATE")
                for statement in MIGRATIONS[number].split(";"):
                    if statement.strip():
                        await self._conn.execute(statement)
                await self._conn.execute(f"PRAGMA user_version={number + 1}")
                await self._conn.execute("COMMIT")
        except StorageError:
            raise
        except Exception as exc:
            raise StorageError(f"cannot prepare the database at {self.path}: {exc}") from exc

    async def close(self) -> None:
        await self._conn.close()

    async def load_session(self, chat_key: str) -> Session | None:
        # execute_fetchall is one trip to the database thread; a cursor is three.
        rows = await self._conn.execute_fetchall(
            "SELECT data FROM sessions WHERE chat_key = ?", (chat_key,))
        for row in rows:
            return Session.from_json(row[0])
        return None

    async def is_processed(self, update_id: str) -> bool:
        rows = await self._conn.execute_fetchall(
            "SELECT 1 FROM processed_updates WHERE update_id = ?", (update_id,))
        return bool(list(rows))

    async def commit_turn(self, turn: TurnRecord) -> list[PendingMessage]:
        async with self._write:
            return await self._commit_turn(turn)

    async def _commit_turn(self, turn: TurnRecord) -> list[PendingMessage]:
        now = time.time()
        conn = self._conn
        await conn.execute("BEGIN IMMEDIATE")
        try:
            await conn.execute(
                "INSERT INTO sessions (chat_key, data, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT (chat_key) DO UPDATE SET data = excluded.data, "
                "updated_at = excluded.updated_at",
                (turn.chat_key, turn.session.to_json(), now),
            )
            if turn.update_id is not None:
                await conn.execute(
                    "INSERT OR IGNORE INTO processed_updates (update_id, chat_key, at) "
                    "VALUES (?, ?, ?)", (turn.update_id, turn.chat_key, now))
            pending: list[PendingMessage] = []
            if turn.outbound:
                # All of a turn's replies in one statement: one trip, ids in order.
                values = ", ".join(["(?, ?, ?)"] * len(turn.outbound))
                args = [a for m in turn.outbound for a in (m.chat_key, _encode(m), now)]
                ids = await conn.execute_fetchall(
                    f"INSERT INTO outbox (chat_key, payload, created_at) VALUES {values} "
                    "RETURNING id", args)
                pending = [PendingMessage(int(row[0]), message)
                           for row, message in zip(ids, turn.outbound, strict=True)]
            for handover in turn.handovers:
                await conn.execute(
                    "INSERT INTO handovers (chat_key, flow, step, queue, priority, summary, "
                    "language, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (turn.chat_key, handover.flow, handover.step, handover.queue,
                     handover.priority.value, handover.summary, turn.session.language, now))
            await conn.execute("COMMIT")
        except BaseException:
            await conn.execute("ROLLBACK")
            raise
        return pending

    async def mark_sent(self, message_ids: Sequence[int]) -> None:
        if not message_ids:
            return
        marks = ",".join("?" * len(message_ids))
        async with self._write:
            await self._conn.execute(f"DELETE FROM outbox WHERE id IN ({marks})", tuple(message_ids))

    async def pending(self, chat_key: str | None = None) -> list[PendingMessage]:
        query = "SELECT id, payload FROM outbox"
        args: tuple[str, ...] = ()
        if chat_key is not None:
            query += " WHERE chat_key = ?"
            args = (chat_key,)
        rows = await self._conn.execute_fetchall(query + " ORDER BY id", args)
        return [PendingMessage(int(r[0]), _decode(r[1])) for r in rows]

    async def prune_processed(self, older_than: float = PROCESSED_KEEP_SECONDS) -> None:
        async with self._write:
            await self._conn.execute("DELETE FROM processed_updates WHERE at < ?",
                                 (time.time() - older_than,))

    async def forget(self, chat_key: str) -> None:
        conn = self._conn
        async with self._write:
            await conn.execute("BEGIN IMMEDIATE")
            try:
                for table in ("sessions", "outbox", "processed_updates", "handovers"):
                    await conn.execute(f"DELETE FROM {table} WHERE chat_key = ?", (chat_key,))
                await conn.execute("COMMIT")
            except BaseException:
                await conn.execute("ROLLBACK")
                raise

    async def handovers(self, chat_key: str) -> list[dict[str, str | None]]:
        """Handovers recorded for a chat (the volunteer queue builds on this table)."""
        async with self._conn.execute(
            "SELECT flow, step, queue, priority, summary, status, language FROM handovers "
            "WHERE chat_key = ? ORDER BY id", (chat_key,)
        ) as cursor:
            rows = await cursor.fetchall()
        names = ("flow", "step", "queue", "priority", "summary", "status", "language")
        return [dict(zip(names, row, strict=True)) for row in rows]
