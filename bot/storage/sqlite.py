"""The store on one SQLite file through aiosqlite.

Durability: WAL journal with synchronous=NORMAL. A commit is in the WAL before
``commit_turn`` returns, so killing the process at any moment loses no confirmed turn
(only a power cut can lose the last few commits; set BOT_SQLITE_SYNC=FULL to pay an
fsync per turn for that too).

Schema changes are numbered migrations; a database written by a newer bot is refused.
"""

from __future__ import annotations

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
    # 2: every write becomes ONE statement. An INSERT into a view runs its INSTEAD OF
    # trigger, and a statement with everything its triggers do is a single atomic
    # transaction in SQLite. So a whole turn costs one trip to the database thread and
    # needs no lock in Python: turns of different chats can never interleave inside a
    # transaction, and there is no BEGIN ... COMMIT holding the connection across awaits.
    """
    CREATE VIEW turn_writes (chat_key, session, update_id, outbound, handovers, language, at)
        AS SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL WHERE 0;
    CREATE TRIGGER turn_writes_insert INSTEAD OF INSERT ON turn_writes BEGIN
        INSERT INTO sessions (chat_key, data, updated_at)
            VALUES (NEW.chat_key, NEW.session, NEW.at)
            ON CONFLICT (chat_key) DO UPDATE SET data = excluded.data,
                                                 updated_at = excluded.updated_at;
        INSERT OR IGNORE INTO processed_updates (update_id, chat_key, at)
            SELECT NEW.update_id, NEW.chat_key, NEW.at WHERE NEW.update_id IS NOT NULL;
        INSERT INTO outbox (id, chat_key, payload, created_at)
            SELECT json_extract(value, '$[0]'), NEW.chat_key, json_extract(value, '$[1]'), NEW.at
            FROM json_each(NEW.outbound) ORDER BY key;
        INSERT INTO handovers (chat_key, flow, step, queue, priority, summary, language, created_at)
            SELECT NEW.chat_key, json_extract(value, '$.flow'), json_extract(value, '$.step'),
                   json_extract(value, '$.queue'), json_extract(value, '$.priority'),
                   json_extract(value, '$.summary'), NEW.language, NEW.at
            FROM json_each(NEW.handovers) ORDER BY key;
    END;
    CREATE VIEW forget_requests (chat_key) AS SELECT NULL WHERE 0;
    CREATE TRIGGER forget_requests_insert INSTEAD OF INSERT ON forget_requests BEGIN
        DELETE FROM sessions WHERE chat_key = NEW.chat_key;
        DELETE FROM outbox WHERE chat_key = NEW.chat_key;
        DELETE FROM processed_updates WHERE chat_key = NEW.chat_key;
        DELETE FROM handovers WHERE chat_key = NEW.chat_key;
    END;
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
        self._last_id = 0

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
                # executescript runs the whole migration (triggers hold ';' inside) in one go.
                await self._conn.executescript(
                    f"BEGIN IMMEDIATE; {MIGRATIONS[number]}; PRAGMA user_version={number + 1}; COMMIT;")
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

    async def load_turn_state(self, chat_key: str, update_id: str | None) -> tuple[Session | None, bool]:
        """The chat's session and whether this update was handled already, in one trip."""
        rows = await self._conn.execute_fetchall(
            "SELECT (SELECT data FROM sessions WHERE chat_key = ?), "
            "EXISTS (SELECT 1 FROM processed_updates WHERE update_id = ?)", (chat_key, update_id))
        for data, seen in rows:
            return (Session.from_json(data) if data is not None else None), bool(seen)
        return None, False  # pragma: no cover - the SELECT always yields one row

    async def is_processed(self, update_id: str) -> bool:
        rows = await self._conn.execute_fetchall(
            "SELECT 1 FROM processed_updates WHERE update_id = ?", (update_id,))
        return bool(list(rows))

    async def commit_turn(self, turn: TurnRecord) -> list[PendingMessage]:
        """One statement (see migration 2): session, update id, replies and handovers
        together or not at all. Returns every reply of the chat still waiting to be sent,
        oldest first: this turn's, after any an outage left behind."""
        handovers = [{"flow": h.flow, "step": h.step, "queue": h.queue,
                      "priority": h.priority.value, "summary": h.summary} for h in turn.handovers]
        pending = [PendingMessage(self._next_id(), m) for m in turn.outbound]
        await self._conn.execute(
            "INSERT INTO turn_writes (chat_key, session, update_id, outbound, handovers, "
            "language, at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (turn.chat_key, turn.session.to_json(), turn.update_id,
             json.dumps([[p.id, _encode(p.message)] for p in pending], ensure_ascii=False),
             json.dumps(handovers, ensure_ascii=False), turn.session.language, time.time()))
        return pending

    def _next_id(self) -> int:
        """Outbox ids are nanosecond clock readings, strictly increasing in this process.

        Choosing the id here saves reading it back (a second trip to the database thread
        per turn); ordering by id is ordering by time, also across two processes sharing
        the file, and a clash between them fails the turn loudly (primary key).
        """
        self._last_id = max(self._last_id + 1, time.time_ns())
        return self._last_id

    async def mark_sent(self, message_ids: Sequence[int]) -> None:
        if not message_ids:
            return
        marks = ",".join("?" * len(message_ids))
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
        await self._conn.execute("DELETE FROM processed_updates WHERE at < ?",
                                 (time.time() - older_than,))

    async def forget(self, chat_key: str) -> None:
        await self._conn.execute("INSERT INTO forget_requests (chat_key) VALUES (?)", (chat_key,))

    async def handovers(self, chat_key: str) -> list[dict[str, str | None]]:
        """Handovers recorded for a chat (the volunteer queue builds on this table)."""
        async with self._conn.execute(
            "SELECT flow, step, queue, priority, summary, status, language FROM handovers "
            "WHERE chat_key = ? ORDER BY id", (chat_key,)
        ) as cursor:
            rows = await cursor.fetchall()
        names = ("flow", "step", "queue", "priority", "summary", "status", "language")
        return [dict(zip(names, row, strict=True)) for row in rows]
