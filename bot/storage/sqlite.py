"""The store on one SQLite file through aiosqlite.

Durability: WAL journal with synchronous=NORMAL. A commit is in the WAL before
``commit_turn`` returns, so killing the process at any moment loses no confirmed turn
(only a power cut can lose the last few commits; set BOT_SQLITE_SYNC=FULL to pay an
fsync per turn for that too).

Schema changes are numbered migrations; a database written by a newer bot is refused.
Several processes may open one file at once (on one machine, as SQLite requires): the
first migrates it, and one of them at a time runs the shared timers (``lead_timers``).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiosqlite

from bot.engine.session import Session
from bot.errors import StorageError, StorageUnavailable
from bot.flowspec.model import Priority
from bot.handover.model import OfferQuery, OffersOwed, QueueEntry, Volunteer
from bot.handover.model import Status as HandoverStatus
from bot.messages import Inbound, Outbound
from bot.storage.base import PendingMessage, Purged, TurnRecord, TurnState
from bot.storage.batching import Batcher
from bot.storage.codec import ENTRY_COLUMN_NAMES as _ENTRY_COLUMN_NAMES
from bot.storage.codec import ENTRY_COLUMNS as _ENTRY_COLUMNS
from bot.storage.codec import VOLUNTEER_COLUMNS as _VOLUNTEER_COLUMNS
from bot.storage.codec import decode as _decode
from bot.storage.codec import entry as _entry
from bot.storage.codec import offer_volunteers, offers_owed, outbox_row
from bot.storage.codec import volunteer as _volunteer
from bot.storage.faults import explain_open_failure

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
    # 3: the volunteer queue. A handover row is a place in the queue; it is 'waiting',
    # then 'assigned' to one volunteer, then 'closed'. Offers record who was shown it,
    # because a volunteer may only ever see chats they were offered or took.
    """
    CREATE TABLE volunteers (
        chat_key   TEXT PRIMARY KEY,
        name       TEXT NOT NULL,
        languages  TEXT NOT NULL,
        queues     TEXT NOT NULL,
        available  INTEGER NOT NULL DEFAULT 0,
        added_at   REAL NOT NULL
    );
    ALTER TABLE handovers ADD COLUMN volunteer TEXT;
    ALTER TABLE handovers ADD COLUMN assigned_at REAL;
    ALTER TABLE handovers ADD COLUMN user_seen_at REAL;
    ALTER TABLE handovers ADD COLUMN volunteer_seen_at REAL;
    ALTER TABLE handovers ADD COLUMN closed_reason TEXT;
    CREATE INDEX handovers_status ON handovers (status, priority, created_at);
    CREATE INDEX handovers_volunteer ON handovers (volunteer, status);
    CREATE TABLE offers (
        handover_id INTEGER NOT NULL REFERENCES handovers (id) ON DELETE CASCADE,
        volunteer   TEXT NOT NULL,
        offered_at  REAL NOT NULL,
        PRIMARY KEY (handover_id, volunteer)
    );
    CREATE VIEW offer_writes (handover_id, volunteer, outbound, at)
        AS SELECT NULL, NULL, NULL, NULL WHERE 0;
    CREATE TRIGGER offer_writes_insert INSTEAD OF INSERT ON offer_writes BEGIN
        INSERT OR IGNORE INTO offers (handover_id, volunteer, offered_at)
            VALUES (NEW.handover_id, NEW.volunteer, NEW.at);
        INSERT INTO outbox (id, chat_key, payload, created_at)
            SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'),
                   json_extract(value, '$[2]'), NEW.at
            FROM json_each(NEW.outbound) ORDER BY key;
    END;
    DROP TRIGGER forget_requests_insert;
    CREATE TRIGGER forget_requests_insert INSTEAD OF INSERT ON forget_requests BEGIN
        DELETE FROM offers WHERE handover_id IN
            (SELECT id FROM handovers WHERE chat_key = NEW.chat_key);
        DELETE FROM sessions WHERE chat_key = NEW.chat_key;
        DELETE FROM outbox WHERE chat_key = NEW.chat_key;
        DELETE FROM processed_updates WHERE chat_key = NEW.chat_key;
        DELETE FROM handovers WHERE chat_key = NEW.chat_key;
    END;
    -- Turns may now leave the session alone (a relayed message), and say who was last heard
    -- in a chat with a volunteer. A new handover replaces an earlier one of the same chat
    -- still waiting: one place in the queue each.
    DROP VIEW turn_writes;
    CREATE VIEW turn_writes (chat_key, session, update_id, outbound, handovers, language, at,
                             seen_handover, seen_side)
        AS SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL WHERE 0;
    CREATE TRIGGER turn_writes_insert INSTEAD OF INSERT ON turn_writes BEGIN
        INSERT INTO sessions (chat_key, data, updated_at)
            SELECT NEW.chat_key, NEW.session, NEW.at WHERE NEW.session IS NOT NULL
            ON CONFLICT (chat_key) DO UPDATE SET data = excluded.data,
                                                 updated_at = excluded.updated_at;
        UPDATE handovers SET user_seen_at = NEW.at
            WHERE id = NEW.seen_handover AND NEW.seen_side = 'user';
        UPDATE handovers SET volunteer_seen_at = NEW.at
            WHERE id = NEW.seen_handover AND NEW.seen_side = 'volunteer';
        INSERT OR IGNORE INTO processed_updates (update_id, chat_key, at)
            SELECT NEW.update_id, NEW.chat_key, NEW.at WHERE NEW.update_id IS NOT NULL;
        INSERT INTO outbox (id, chat_key, payload, created_at)
            SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'),
                   json_extract(value, '$[2]'), NEW.at
            FROM json_each(NEW.outbound) ORDER BY key;
        UPDATE handovers SET status = 'closed', closed_reason = 'replaced'
            WHERE chat_key = NEW.chat_key AND status = 'waiting'
              AND json_array_length(NEW.handovers) > 0;
        INSERT INTO handovers (chat_key, flow, step, queue, priority, summary, language,
                               created_at, user_seen_at)
            SELECT NEW.chat_key, json_extract(value, '$.flow'), json_extract(value, '$.step'),
                   json_extract(value, '$.queue'), json_extract(value, '$.priority'),
                   json_extract(value, '$.summary'), NEW.language, NEW.at, NEW.at
            FROM json_each(NEW.handovers) ORDER BY key;
    END;
    """,
    # 4: durable intake. A message is saved here before the platform is told it arrived
    # (Telegram's getUpdates offset, a webhook's 200), and leaves in the transaction of the
    # turn that handled it, so a crash at any moment leaves it either here (handled after
    # the restart) or handled. A turn may also record messages of a burst that were read
    # and answered together with it (also_read: a JSON array of update ids). A /forget
    # leaves the inbox alone: what waits there was sent after it, is answered, and leaves.
    """
    CREATE TABLE inbox (
        seq         INTEGER PRIMARY KEY AUTOINCREMENT,
        update_id   TEXT NOT NULL UNIQUE,
        chat_key    TEXT NOT NULL,
        payload     TEXT NOT NULL,
        received_at REAL NOT NULL
    );
    CREATE INDEX inbox_chat ON inbox (chat_key, seq);
    DROP VIEW turn_writes;
    CREATE VIEW turn_writes (chat_key, session, update_id, outbound, handovers, language, at,
                             seen_handover, seen_side, also_read)
        AS SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL WHERE 0;
    CREATE TRIGGER turn_writes_insert INSTEAD OF INSERT ON turn_writes BEGIN
        INSERT INTO sessions (chat_key, data, updated_at)
            SELECT NEW.chat_key, NEW.session, NEW.at WHERE NEW.session IS NOT NULL
            ON CONFLICT (chat_key) DO UPDATE SET data = excluded.data,
                                                 updated_at = excluded.updated_at;
        UPDATE handovers SET user_seen_at = NEW.at
            WHERE id = NEW.seen_handover AND NEW.seen_side = 'user';
        UPDATE handovers SET volunteer_seen_at = NEW.at
            WHERE id = NEW.seen_handover AND NEW.seen_side = 'volunteer';
        INSERT OR IGNORE INTO processed_updates (update_id, chat_key, at)
            SELECT NEW.update_id, NEW.chat_key, NEW.at WHERE NEW.update_id IS NOT NULL;
        INSERT OR IGNORE INTO processed_updates (update_id, chat_key, at)
            SELECT value, NEW.chat_key, NEW.at FROM json_each(COALESCE(NEW.also_read, '[]'));
        DELETE FROM inbox WHERE update_id = NEW.update_id
            OR update_id IN (SELECT value FROM json_each(COALESCE(NEW.also_read, '[]')));
        INSERT INTO outbox (id, chat_key, payload, created_at)
            SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'),
                   json_extract(value, '$[2]'), NEW.at
            FROM json_each(NEW.outbound) ORDER BY key;
        UPDATE handovers SET status = 'closed', closed_reason = 'replaced'
            WHERE chat_key = NEW.chat_key AND status = 'waiting'
              AND json_array_length(NEW.handovers) > 0;
        INSERT INTO handovers (chat_key, flow, step, queue, priority, summary, language,
                               created_at, user_seen_at)
            SELECT NEW.chat_key, json_extract(value, '$.flow'), json_extract(value, '$.step'),
                   json_extract(value, '$.queue'), json_extract(value, '$.priority'),
                   json_extract(value, '$.summary'), NEW.language, NEW.at, NEW.at
            FROM json_each(NEW.handovers) ORDER BY key;
    END;
    """,
    # 5: the queue at scale. Every read of the desk is one indexed query rather than a pass
    # over the whole queue. priority_rank orders the queue (crisis, deadline, the rest);
    # waiting_by_rank counts the waiting chats of each rank, kept by triggers, so a new
    # chat's place is those counts minus the few queued after it. offers_due_at says when a
    # waiting chat next needs offering: at once when queued (0) or requeued (that time),
    # then at the end of its speakers-only delay, then never (NULL). offer_rounds records a
    # round's offers, its messages and those times in one statement.
    """
    ALTER TABLE handovers ADD COLUMN priority_rank INTEGER GENERATED ALWAYS AS
        (CASE priority WHEN 'crisis' THEN 0 WHEN 'deadline' THEN 1 ELSE 2 END) VIRTUAL;
    ALTER TABLE handovers ADD COLUMN offers_due_at REAL DEFAULT 0;
    DROP INDEX handovers_status;
    CREATE INDEX handovers_order ON handovers (status, priority_rank, created_at, id);
    -- With status in it, the chat's own index stays the planner's choice for "this chat's
    -- waiting entry" (a turn's write), not a pass over every waiting chat.
    DROP INDEX handovers_chat;
    CREATE INDEX handovers_chat ON handovers (chat_key, status);
    CREATE INDEX handovers_offers_due ON handovers (status, offers_due_at);
    CREATE INDEX offers_volunteer ON offers (volunteer, handover_id);
    CREATE TABLE waiting_by_rank (
        priority_rank INTEGER PRIMARY KEY,
        waiting       INTEGER NOT NULL
    );
    INSERT INTO waiting_by_rank (priority_rank, waiting)
        SELECT rank.value, (SELECT count(*) FROM handovers
                            WHERE status = 'waiting' AND priority_rank = rank.value)
        FROM json_each('[0, 1, 2]') AS rank;
    CREATE TRIGGER handovers_count_insert AFTER INSERT ON handovers
        WHEN NEW.status = 'waiting' BEGIN
        UPDATE waiting_by_rank SET waiting = waiting + 1 WHERE priority_rank = NEW.priority_rank;
    END;
    CREATE TRIGGER handovers_count_update AFTER UPDATE OF status, priority ON handovers BEGIN
        UPDATE waiting_by_rank SET waiting = waiting - 1
            WHERE OLD.status = 'waiting' AND priority_rank = OLD.priority_rank;
        UPDATE waiting_by_rank SET waiting = waiting + 1
            WHERE NEW.status = 'waiting' AND priority_rank = NEW.priority_rank;
    END;
    CREATE TRIGGER handovers_count_delete AFTER DELETE ON handovers
        WHEN OLD.status = 'waiting' BEGIN
        UPDATE waiting_by_rank SET waiting = waiting - 1 WHERE priority_rank = OLD.priority_rank;
    END;
    CREATE VIEW offer_rounds (offers, outbound, settle, due_by, at)
        AS SELECT NULL, NULL, NULL, NULL, NULL WHERE 0;
    CREATE TRIGGER offer_rounds_insert INSTEAD OF INSERT ON offer_rounds BEGIN
        INSERT OR IGNORE INTO offers (handover_id, volunteer, offered_at)
            SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), NEW.at
            FROM json_each(NEW.offers);
        INSERT INTO outbox (id, chat_key, payload, created_at)
            SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'),
                   json_extract(value, '$[2]'), NEW.at
            FROM json_each(NEW.outbound) ORDER BY key;
        -- [id, next time] of chats the round read as due by due_by; a chat requeued since
        -- (due later than that) is left due for the next round.
        UPDATE handovers SET offers_due_at = due.next
            FROM (SELECT json_extract(value, '$[0]') AS id, json_extract(value, '$[1]') AS next
                  FROM json_each(NEW.settle)) AS due
            WHERE handovers.id = due.id AND handovers.offers_due_at <= NEW.due_by;
    END;
    """,
    # 6: what an outbox row is about. A message for one chat may quote or summarise another
    # (a person's words relayed to their volunteer, an offer of their chat): ``about`` lists
    # those chats (a JSON array; NULL for a chat's own replies), and a forget deletes the
    # undelivered rows about the chat too. No index: the outbox holds only what is not
    # delivered yet, and a forget reads it once.
    """
    ALTER TABLE outbox ADD COLUMN about TEXT;
    DROP TRIGGER forget_requests_insert;
    CREATE TRIGGER forget_requests_insert INSTEAD OF INSERT ON forget_requests BEGIN
        DELETE FROM offers WHERE handover_id IN
            (SELECT id FROM handovers WHERE chat_key = NEW.chat_key);
        DELETE FROM sessions WHERE chat_key = NEW.chat_key;
        DELETE FROM outbox WHERE chat_key = NEW.chat_key OR (about IS NOT NULL AND EXISTS
            (SELECT 1 FROM json_each(outbox.about) WHERE value = NEW.chat_key));
        DELETE FROM processed_updates WHERE chat_key = NEW.chat_key;
        DELETE FROM handovers WHERE chat_key = NEW.chat_key;
    END;
    -- Replies arrive as [id, chat, payload] or [id, chat, payload, [chats about]].
    DROP TRIGGER turn_writes_insert;
    CREATE TRIGGER turn_writes_insert INSTEAD OF INSERT ON turn_writes BEGIN
        INSERT INTO sessions (chat_key, data, updated_at)
            SELECT NEW.chat_key, NEW.session, NEW.at WHERE NEW.session IS NOT NULL
            ON CONFLICT (chat_key) DO UPDATE SET data = excluded.data,
                                                 updated_at = excluded.updated_at;
        UPDATE handovers SET user_seen_at = NEW.at
            WHERE id = NEW.seen_handover AND NEW.seen_side = 'user';
        UPDATE handovers SET volunteer_seen_at = NEW.at
            WHERE id = NEW.seen_handover AND NEW.seen_side = 'volunteer';
        INSERT OR IGNORE INTO processed_updates (update_id, chat_key, at)
            SELECT NEW.update_id, NEW.chat_key, NEW.at WHERE NEW.update_id IS NOT NULL;
        INSERT OR IGNORE INTO processed_updates (update_id, chat_key, at)
            SELECT value, NEW.chat_key, NEW.at FROM json_each(COALESCE(NEW.also_read, '[]'));
        DELETE FROM inbox WHERE update_id = NEW.update_id
            OR update_id IN (SELECT value FROM json_each(COALESCE(NEW.also_read, '[]')));
        INSERT INTO outbox (id, chat_key, payload, created_at, about)
            SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'),
                   json_extract(value, '$[2]'), NEW.at, json_extract(value, '$[3]')
            FROM json_each(NEW.outbound) ORDER BY key;
        UPDATE handovers SET status = 'closed', closed_reason = 'replaced'
            WHERE chat_key = NEW.chat_key AND status = 'waiting'
              AND json_array_length(NEW.handovers) > 0;
        INSERT INTO handovers (chat_key, flow, step, queue, priority, summary, language,
                               created_at, user_seen_at)
            SELECT NEW.chat_key, json_extract(value, '$.flow'), json_extract(value, '$.step'),
                   json_extract(value, '$.queue'), json_extract(value, '$.priority'),
                   json_extract(value, '$.summary'), NEW.language, NEW.at, NEW.at
            FROM json_each(NEW.handovers) ORDER BY key;
    END;
    DROP TRIGGER offer_rounds_insert;
    CREATE TRIGGER offer_rounds_insert INSTEAD OF INSERT ON offer_rounds BEGIN
        INSERT OR IGNORE INTO offers (handover_id, volunteer, offered_at)
            SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), NEW.at
            FROM json_each(NEW.offers);
        INSERT INTO outbox (id, chat_key, payload, created_at, about)
            SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'),
                   json_extract(value, '$[2]'), NEW.at, json_extract(value, '$[3]')
            FROM json_each(NEW.outbound) ORDER BY key;
        UPDATE handovers SET offers_due_at = due.next
            FROM (SELECT json_extract(value, '$[0]') AS id, json_extract(value, '$[1]') AS next
                  FROM json_each(NEW.settle)) AS due
            WHERE handovers.id = due.id AND handovers.offers_due_at <= NEW.due_by;
    END;
    -- Migration 3's one-offer view: nothing writes to it since migration 5's offer_rounds.
    DROP VIEW offer_writes;
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)
#: Beside the database: the lock held by the process that runs the shared timers.
TIMERS_LOCK_SUFFIX = ".timers.lock"
#: How long a statement waits for another connection's write lock (another process's
#: turn, or its migration when several start at once on a new file) before failing.
BUSY_TIMEOUT_MS = 5000

log = logging.getLogger(__name__)

#: Update ids are kept this long to recognise a platform's redelivery, then pruned.
PROCESSED_KEEP_SECONDS = 2 * 24 * 3600
#: Sent replies leave the outbox in batches, this long after the first of a batch was sent.
SENT_DELETE_DELAY_SECONDS = 0.05
#: Clearing the WAL after a forget or purge: tries, how long each waits for readers (it
#: holds the write lock meanwhile, so short), and the first pause between tries (doubling).
WAL_CLEAR_TRIES = 5
WAL_CLEAR_WAIT_MS = 200
WAL_CLEAR_PAUSE_SECONDS = 0.1
#: Tables with indexes on chat keys or update ids (rebuilt by the scrub after a delete).
_KEYED_TABLES = ("sessions", "outbox", "processed_updates", "handovers", "inbox")


class SqliteStore:
    """Implements :class:`bot.storage.base.Store`. Open with ``await SqliteStore.open(path)``."""

    def __init__(self, conn: aiosqlite.Connection, path: str,
                 clock: Callable[[], float] = time.time) -> None:
        self._conn = conn
        self.path = path
        self.clock = clock  # wall-clock seconds for every timestamp stored
        self._last_id = 0
        # Sent replies whose outbox rows are not deleted yet. Deleting is batched off the
        # turn's path (one trip to the database thread for many turns); meanwhile pending()
        # never returns them, so nothing is sent twice. close() finishes the deletes.
        self._sent: set[int] = set()
        self._deleting: asyncio.Task[None] | None = None
        self._closing = asyncio.Event()
        # Group commit (see bot.storage.batching): loads and turns of many chats per trip.
        self._loads: Batcher[tuple[str, str | None], Any] = Batcher(self._load_batch)
        self._commits: Batcher[list[Any], None] = Batcher(self._commit_batch)
        self._receives: Batcher[list[str], bool] = Batcher(self._receive_batch)
        #: Trips to the database thread on the turn path, by kind (for the benchmarks).
        self.trips: Counter[str] = Counter()
        #: The timers lock file, open once asked; its flock is held from the first True on.
        self._timers_lock: int | None = None
        self._leads_timers = False

    @classmethod
    async def open(cls, path: str | Path, *, synchronous: str = "NORMAL",
                   clock: Callable[[], float] = time.time) -> SqliteStore:
        shown = str(path)
        try:
            if shown != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
                # A plain connection first: aiosqlite reports a failed connect from its thread,
                # possibly after asyncio.run closed the loop (a stray traceback on exit).
                await asyncio.to_thread(lambda: sqlite3.connect(shown).close())
            # isolation_level=None: we issue BEGIN/COMMIT ourselves, one transaction per turn.
            conn = await aiosqlite.connect(shown, isolation_level=None)
        except Exception as exc:  # sqlite3.Error or OSError, from a thread
            raise StorageUnavailable(explain_open_failure(Path(path), exc)) from exc
        store = cls(conn, shown, clock)
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
            # First: whatever follows may wait for another process starting on the same file.
            await self._conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            await self._use_wal()
            await self._conn.execute(f"PRAGMA synchronous={synchronous.upper()}")
            # Deleted rows are overwritten with zeros, not left readable in free space.
            await self._conn.execute("PRAGMA secure_delete=ON")
            await self._migrate()
            await self._check_writable()
        except StorageError as exc:
            raise StorageUnavailable(str(exc)) from exc
        except Exception as exc:
            raise StorageUnavailable(explain_open_failure(Path(self.path), exc)) from exc

    async def _use_wal(self) -> None:
        """Switch the file to WAL. On a new file another process may be switching it at the
        same moment; that switch fails at once with "database is locked" (it does not wait
        for busy_timeout), so it is tried again for as long as busy_timeout would wait."""
        deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
        while True:
            try:
                await self._conn.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
            await asyncio.sleep(0.01)

    async def _migrate(self) -> None:
        """Bring the schema up to SCHEMA_VERSION once, however many processes start at once
        on a new file: the version is read again under the write lock (BEGIN IMMEDIATE
        waits up to busy_timeout for another process's migration), so the first process
        applies every step in one transaction and the others find nothing left to do."""
        if await self._schema_version() == SCHEMA_VERSION:
            return  # the common start: no write lock taken
        # Statement by statement: executescript would COMMIT the open transaction first.
        await self._conn.execute("BEGIN IMMEDIATE")
        try:
            for number in range(await self._schema_version(), SCHEMA_VERSION):
                for statement in _statements(MIGRATIONS[number]):
                    await self._conn.execute(statement)
            await self._conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            await self._conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                await self._conn.execute("ROLLBACK")
            raise

    async def _schema_version(self) -> int:
        """The file's schema version; a StorageError when a newer bot wrote it."""
        async with self._conn.execute("PRAGMA user_version") as cursor:
            row = await cursor.fetchone()
        version = int(row[0]) if row else 0
        if version > SCHEMA_VERSION:
            raise StorageError(
                f"{self.path} has schema version {version}, newer than this bot "
                f"({SCHEMA_VERSION}); upgrade the bot or use another --db file")
        return version

    async def _check_writable(self) -> None:
        """Fail at start-up, not on the first turn, when the file opens but cannot be written
        (a read-only file, or a database already migrated on a read-only disk)."""
        try:
            await self._conn.executescript("BEGIN IMMEDIATE; DELETE FROM sessions WHERE 0;")
        finally:
            with contextlib.suppress(sqlite3.Error):
                await self._conn.execute("ROLLBACK")  # nothing was written either way

    async def close(self) -> None:
        await self._receives.idle()
        await self._loads.idle()
        await self._commits.idle()
        self._closing.set()
        while self._deleting is not None and not self._deleting.done():
            await self._deleting
        if self.path != ":memory:":
            # Everything into the main file, the WAL emptied: a stopped bot leaves one file.
            with contextlib.suppress(sqlite3.Error):
                await self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        await self._conn.close()
        if self._timers_lock is not None:
            os.close(self._timers_lock)  # releases the flock: another process takes over
            self._timers_lock, self._leads_timers = None, False

    async def lead_timers(self) -> bool:
        """See :meth:`Store.lead_timers`. An exclusive flock on a file beside the database,
        tried without waiting and, once taken, held until :meth:`close`. The kernel releases
        it when the process ends however it ends (kill -9, a crash), so the next process to
        ask takes it; the file itself stays (deleting it would let two processes lock two
        different files) and holds nothing. POSIX only: Windows is not a target."""
        if self._leads_timers:
            return True
        if self.path == ":memory:":  # no other process can open this database
            self._leads_timers = True
            return True
        if self._timers_lock is None:
            self._timers_lock = os.open(self.path + TIMERS_LOCK_SUFFIX, os.O_RDWR | os.O_CREAT,
                                        0o600)
        try:
            fcntl.flock(self._timers_lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # another process runs them
        self._leads_timers = True
        log.info("this process runs the shared timers now (delayed offers, silence timeouts, "
                 "the retention purge)")
        return True

    def hold_chat(self, chat_key: str) -> contextlib.AbstractAsyncContextManager[None]:
        """Nothing to hold beyond the dispatcher's own lock: processes sharing one file serve
        different transports (the console and Telegram), so each chat has one process."""
        return contextlib.nullcontext()

    async def outbox_news(self, wait: float) -> set[str]:
        """SQLite has no notifications: the dispatcher's flush loop polls the outbox."""
        await asyncio.sleep(wait)
        return set()

    async def load_session(self, chat_key: str) -> Session | None:
        # execute_fetchall is one trip to the database thread; a cursor is three.
        rows = await self._conn.execute_fetchall(
            "SELECT data FROM sessions WHERE chat_key = ?", (chat_key,))
        for row in rows:
            return Session.from_json(row[0])
        return None

    async def load_turn_state(self, chat_key: str, update_id: str | None) -> TurnState:
        """Session, duplicate flag and the chat's part in the volunteer queue. Chats asking
        together share one trip to the database thread; a volunteer's chat needs one more."""
        data, seen, is_volunteer, entry_id = await self._loads.submit((chat_key, update_id))
        return TurnState(
            session=Session.from_json(data) if data is not None else None,
            duplicate=bool(seen),
            volunteer=await self.volunteer(chat_key) if is_volunteer else None,
            entry=await self.queue_entry(int(entry_id)) if entry_id is not None else None)

    async def _load_batch(self, asks: list[tuple[str, str | None]]) -> list[Any]:
        self.trips["load"] += 1
        rows = await self._conn.execute_fetchall(_LOAD_STATES, (json.dumps(asks),))
        return [tuple(row[1:]) for row in rows]

    async def commit_turn(self, turn: TurnRecord) -> list[PendingMessage]:
        """Session, update id, replies and handovers together or not at all (migration 2).
        Returns this turn's replies, each with its outbox id.

        Turns committed together share one statement, so one transaction: if it fails,
        each of its turns is tried again alone, and only the turn at fault gets the error.
        """
        pending = [PendingMessage(self._next_id(), m) for m in turn.outbound]
        handovers = [{"flow": h.flow, "step": h.step, "queue": h.queue,
                      "priority": h.priority.value, "summary": h.summary} for h in turn.handovers]
        seen = turn.seen or (None, None)
        row = [turn.chat_key, turn.session.to_json() if turn.session else None, turn.update_id,
               _outbound_rows(pending), handovers,
               turn.session.language if turn.session else None, self.clock(), *seen,
               list(turn.also_read)]
        await self._commits.submit(row)
        return pending

    async def _commit_batch(self, rows: list[list[Any]]) -> list[BaseException | None]:
        self.trips["commit"] += 1
        try:
            await self._conn.execute(_COMMIT_TURNS, (json.dumps(rows, ensure_ascii=False),))
            return [None] * len(rows)
        except Exception:
            if len(rows) == 1:
                raise
        outcomes: list[BaseException | None] = []
        for row in rows:  # the batch rolled back as a whole: find the turn at fault
            try:
                await self._conn.execute(_COMMIT_TURNS, (json.dumps([row], ensure_ascii=False),))
                outcomes.append(None)
            except Exception as exc:
                outcomes.append(exc)
        return outcomes

    # -- durable intake ------------------------------------------------------------------

    async def receive(self, inbounds: Sequence[Inbound]) -> list[Inbound]:
        """Save arriving messages; returns those that are new (not waiting already, nor
        handled before). Messages arriving together, from any chat, share one trip."""
        rows = []
        for inbound in inbounds:
            if inbound.update_id is None:
                raise StorageError("a message needs an update id to be received")
            rows.append([inbound.update_id, inbound.chat_key, inbound.to_json()])
        new = await asyncio.gather(*(self._receives.submit(row) for row in rows))
        return [inbound for inbound, fresh in zip(inbounds, new, strict=True) if fresh]

    async def _receive_batch(self, rows: list[list[str]]) -> list[bool]:
        self.trips["receive"] += 1
        saved = await self._conn.execute_fetchall(
            _RECEIVE, (self.clock(), json.dumps(rows, ensure_ascii=False)))
        new = {str(row[0]) for row in saved}
        fresh: list[bool] = []
        for row in rows:  # the same update twice in one batch: the first one is the new one
            fresh.append(row[0] in new)
            new.discard(row[0])
        return fresh

    async def inbox(self) -> list[tuple[Inbound, float]]:
        """Messages saved but not yet handled (after a crash or a stop), oldest first, with
        the wall-clock time each arrived."""
        rows = await self._conn.execute_fetchall(
            "SELECT payload, received_at FROM inbox ORDER BY seq")
        return [(Inbound.from_json(row[0]), float(row[1])) for row in rows]

    async def discard(self, update_ids: Sequence[str]) -> None:
        """Drop messages from the inbox unhandled: only for a turn that failed, whose
        person was asked to send it again."""
        await self._conn.execute(
            "DELETE FROM inbox WHERE update_id IN (SELECT value FROM json_each(?))",
            (json.dumps(list(update_ids)),))

    def _next_id(self) -> int:
        """Outbox ids are nanosecond clock readings, strictly increasing in this process.

        Choosing the id here saves reading it back (a second trip to the database thread
        per turn); ordering by id is ordering by time, also across two processes sharing
        the file, and a clash between them fails the turn loudly (primary key).
        """
        self._last_id = max(self._last_id + 1, time.time_ns())
        return self._last_id

    async def mark_sent(self, message_ids: Sequence[int]) -> None:
        """The platform took these replies: they leave the outbox (in the next batch)."""
        if not message_ids:
            return
        self._sent.update(message_ids)
        if self._deleting is None or self._deleting.done():
            self._deleting = asyncio.ensure_future(self._delete_sent())

    async def _delete_sent(self) -> None:
        # Waiting a moment gathers the sends of many turns into one delete: deleting after
        # every send cost more trips to the database thread than loading and saving turns.
        # A crash in that moment sends those replies again: a duplicate, never a loss.
        while self._sent:
            with contextlib.suppress(TimeoutError):  # close() does not wait out the moment
                await asyncio.wait_for(self._closing.wait(), SENT_DELETE_DELAY_SECONDS)
            batch = sorted(self._sent)
            self.trips["delete"] += 1
            try:
                await self._conn.execute(
                    "DELETE FROM outbox WHERE id IN (SELECT value FROM json_each(?))",
                    (json.dumps(batch),))
            except Exception:  # the rows stay, to be sent again: a duplicate, never a loss
                log.exception("could not clear %d sent replies from the outbox", len(batch))
            finally:
                self._sent.difference_update(batch)

    async def pending(self, chat_key: str | None = None) -> list[PendingMessage]:
        query = "SELECT id, payload, about FROM outbox"
        args: tuple[str, ...] = ()
        if chat_key is not None:
            query += " WHERE chat_key = ?"
            args = (chat_key,)
        rows = await self._conn.execute_fetchall(query + " ORDER BY id", args)
        return [PendingMessage(int(r[0]), _decode(r[1], r[2])) for r in rows
                if int(r[0]) not in self._sent]

    # -- privacy on disk: forget, the retention purge, and scrubbing what they deleted ------

    async def forget(self, chat_key: str) -> None:
        """Delete everything about the chat, then scrub it from the file and its WAL."""
        await self._drop_sent_now()  # a relay to a volunteer may carry the person's words
        await self._conn.execute("INSERT INTO forget_requests (chat_key) VALUES (?)", (chat_key,))
        await self._scrub()

    async def purge(self, older_than: timedelta) -> Purged:
        """Delete what is older than the retention period; see :meth:`Store.purge`."""
        await self._drop_sent_now()
        now = self.clock()
        cutoff = now - older_than.total_seconds()
        sessions = await self._delete("DELETE FROM sessions WHERE updated_at < ?", cutoff)
        rows = await self._conn.execute_fetchall(_OLD_CLOSED_HANDOVERS, (cutoff,))
        old = json.dumps([int(row[0]) for row in rows])
        offers = await self._delete(
            "DELETE FROM offers WHERE handover_id IN (SELECT value FROM json_each(?))", old)
        handovers = await self._delete(
            "DELETE FROM handovers WHERE id IN (SELECT value FROM json_each(?)) "
            "AND status = 'closed'", old)
        # Rows still in the outbox this old were never delivered (sent rows leave it at once):
        # a message the platform refused for the whole retention period never will be taken,
        # and keeping it would keep what it says about the person.
        undelivered = await self._delete(
            "DELETE FROM outbox WHERE created_at < ? AND id NOT IN (SELECT value FROM json_each(?))",
            cutoff, json.dumps(sorted(self._sent)))
        if undelivered:
            log.warning("retention purge: dropped %d message(s) that could not be delivered in "
                        "%.0f days", undelivered, older_than.total_seconds() / 86400)
        # Update ids guard against a platform's redelivery: never dropped inside that window.
        keep = max(older_than.total_seconds(), PROCESSED_KEEP_SECONDS)
        updates = await self._delete("DELETE FROM processed_updates WHERE at < ?", now - keep)
        # Always, even when nothing was due: it also finishes a clear-up a reader held up.
        cleared = await self._scrub()
        return Purged(sessions, handovers, offers, undelivered, updates, wal_cleared=cleared)

    async def _delete(self, sql: str, *args: Any) -> int:
        cursor = await self._conn.execute(sql, args)
        return max(cursor.rowcount, 0)

    async def _drop_sent_now(self) -> None:
        """Delete sent replies now rather than after the batching moment, so the scrub that
        follows also removes them from the disk."""
        batch = sorted(self._sent)
        if batch:
            await self._conn.execute(
                "DELETE FROM outbox WHERE id IN (SELECT value FROM json_each(?))",
                (json.dumps(batch),))
            self._sent.difference_update(batch)

    async def _scrub(self) -> bool:
        """Make deleted rows unreadable on disk; False when the WAL could not be cleared.

        secure_delete zeroes a deleted row, but a page rebuilt when the b-tree rebalances
        keeps stale bytes of the cells that left it in its free gap; in index pages that
        left deleted chat keys in the file (found by scanning it), and rebuilding the
        indexes drops them. The WAL still holds every earlier version of each page: a
        truncating checkpoint copies the current pages into the file and empties it.
        """
        await self._conn.executescript("".join(f"REINDEX {t};" for t in _KEYED_TABLES))
        if self.path == ":memory:":
            return True
        for attempt in range(WAL_CLEAR_TRIES):
            if await asyncio.to_thread(_truncate_wal, self.path):
                return True
            if attempt + 1 < WAL_CLEAR_TRIES:
                await asyncio.sleep(WAL_CLEAR_PAUSE_SECONDS * 2 ** attempt)
        log.warning("could not clear the write-ahead log of %s after %d tries: another connection "
                    "kept reading it; deleted data stays in %s-wal until the next clear-up",
                    self.path, WAL_CLEAR_TRIES, self.path)
        return False

    async def handovers(self, chat_key: str) -> list[dict[str, str | None]]:
        """Handovers recorded for a chat (the volunteer queue builds on this table)."""
        async with self._conn.execute(
            "SELECT flow, step, queue, priority, summary, status, language FROM handovers "
            "WHERE chat_key = ? ORDER BY id", (chat_key,)
        ) as cursor:
            rows = await cursor.fetchall()
        names = ("flow", "step", "queue", "priority", "summary", "status", "language")
        return [dict(zip(names, row, strict=True)) for row in rows]

    # -- the volunteer queue (bot.handover) ------------------------------------------------

    async def add_volunteer(self, volunteer: Volunteer) -> None:
        await self._conn.execute(
            "INSERT INTO volunteers (chat_key, name, languages, queues, available, added_at) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (chat_key) DO UPDATE SET name = excluded.name, "
            "languages = excluded.languages, queues = excluded.queues",
            (volunteer.chat_key, volunteer.name, ",".join(volunteer.languages),
             ",".join(volunteer.queues), int(volunteer.available), self.clock()))

    async def remove_volunteer(self, chat_key: str) -> bool:
        """Unregister a volunteer, withdrawing their offers and deleting what the outbox
        holds for them (a removed volunteer receives nothing more). False if not one.

        The volunteer's row goes last, so a removal cut short is finished by running it again.
        """
        registered = "EXISTS (SELECT 1 FROM volunteers WHERE chat_key = ?)"
        await self._conn.execute(f"DELETE FROM offers WHERE volunteer = ? AND {registered}",
                                 (chat_key, chat_key))
        await self._conn.execute(f"DELETE FROM outbox WHERE chat_key = ? AND {registered}",
                                 (chat_key, chat_key))
        cursor = await self._conn.execute("DELETE FROM volunteers WHERE chat_key = ?", (chat_key,))
        return cursor.rowcount > 0

    async def volunteers(self) -> list[Volunteer]:
        rows = await self._conn.execute_fetchall(
            f"SELECT {_VOLUNTEER_COLUMNS} FROM volunteers ORDER BY name, chat_key")
        return [_volunteer(row) for row in rows]

    async def volunteer(self, chat_key: str) -> Volunteer | None:
        rows = await self._conn.execute_fetchall(
            f"SELECT {_VOLUNTEER_COLUMNS} FROM volunteers WHERE chat_key = ?", (chat_key,))
        return next((_volunteer(row) for row in rows), None)

    async def set_available(self, chat_key: str, available: bool) -> None:
        await self._conn.execute("UPDATE volunteers SET available = ? WHERE chat_key = ?",
                                 (int(available), chat_key))

    async def queue_entry(self, handover_id: int) -> QueueEntry | None:
        rows = await self._conn.execute_fetchall(
            f"SELECT {_ENTRY_COLUMNS} FROM handovers WHERE id = ?", (handover_id,))
        return next((_entry(row) for row in rows), None)

    async def open_entry(self, chat_key: str) -> QueueEntry | None:
        """The chat's place in the queue, waiting or with a volunteer, if any."""
        rows = await self._conn.execute_fetchall(
            f"SELECT {_ENTRY_COLUMNS} FROM handovers WHERE chat_key = ? AND status != 'closed' "
            "ORDER BY id DESC LIMIT 1", (chat_key,))
        return next((_entry(row) for row in rows), None)

    async def held_by(self, volunteer: str) -> QueueEntry | None:
        rows = await self._conn.execute_fetchall(
            f"SELECT {_ENTRY_COLUMNS} FROM handovers WHERE volunteer = ? AND status = 'assigned' "
            "ORDER BY id DESC LIMIT 1", (volunteer,))
        return next((_entry(row) for row in rows), None)

    async def entries(self, status: HandoverStatus) -> list[QueueEntry]:
        """Entries in queue order: crisis, then deadline, then the rest; oldest first."""
        rows = await self._conn.execute_fetchall(
            f"SELECT {_ENTRY_COLUMNS} FROM handovers WHERE status = ? ORDER BY {_QUEUE_ORDER}",
            (status.value,))
        return [_entry(row) for row in rows]

    async def queue_position(self, handover_id: int) -> int | None:
        """A waiting chat's place in the whole queue (1: next to be taken); None if it is
        not waiting. Costs the chats of its priority queued after it, so a chat just queued
        costs next to nothing however long the queue."""
        rows = await self._conn.execute_fetchall(_QUEUE_POSITION, (handover_id,))
        return next((int(row[0]) for row in rows), None)

    async def waiting_for(self, volunteer: str, *, limit: int, offset: int = 0) -> list[QueueEntry]:
        """Waiting chats offered to the volunteer, in queue order, a page at a time."""
        rows = await self._conn.execute_fetchall(
            f"SELECT {_ENTRY_COLUMNS} FROM handovers h WHERE status = 'waiting' AND "
            f"{_OFFERED_TO} ORDER BY {_QUEUE_ORDER} LIMIT ? OFFSET ?", (volunteer, limit, offset))
        return [_entry(row) for row in rows]

    async def waiting_counts(self, volunteer: str) -> dict[tuple[Priority, str | None], int]:
        """How many chats offered to the volunteer wait, by priority and language."""
        rows = await self._conn.execute_fetchall(
            f"SELECT priority, language, count(*) FROM handovers h WHERE status = 'waiting' "
            f"AND {_OFFERED_TO} GROUP BY priority, language", (volunteer,))
        return {(Priority(row[0]), row[1]): int(row[2]) for row in rows}

    async def offered_entry(self, volunteer: str, handover_id: int) -> QueueEntry | None:
        """The chat, if it is waiting and was offered to the volunteer."""
        rows = await self._conn.execute_fetchall(
            f"SELECT {_ENTRY_COLUMNS} FROM handovers h WHERE id = ? AND status = 'waiting' "
            f"AND {_OFFERED_TO}", (handover_id, volunteer))
        return next((_entry(row) for row in rows), None)

    async def offered_to(self, volunteer: str) -> set[int]:
        rows = await self._conn.execute_fetchall(
            "SELECT handover_id FROM offers WHERE volunteer = ?", (volunteer,))
        return {int(row[0]) for row in rows}

    async def offers_of(self, handover_id: int) -> set[str]:
        rows = await self._conn.execute_fetchall(
            "SELECT volunteer FROM offers WHERE handover_id = ?", (handover_id,))
        return {str(row[0]) for row in rows}

    async def offers_owed(self, query: OfferQuery) -> OffersOwed:
        """The offers a round owes, and the chats due for offering, in one query: it reads
        only chats due (new, requeued, past their delay), and every waiting chat only for
        volunteers in ``query.fresh``."""
        if not query.volunteers:
            return OffersOwed((), ())
        rows = await self._conn.execute_fetchall(_OFFERS_OWED, {
            "volunteers": offer_volunteers(query), "now": query.now,
            "cutoff": query.speakers_only_after, "all_served": query.served is None,
            "served": json.dumps(sorted(query.served or ()), ensure_ascii=False)})
        return offers_owed(rows)

    async def record_offers(self, offers: Sequence[tuple[int, str]],
                            messages: Sequence[Outbound],
                            settle: Sequence[tuple[int, float | None]] = (),
                            due_by: float = 0.0) -> list[PendingMessage]:
        """One round, in one statement: who was shown which chat (handover id, volunteer),
        the messages telling them, and when each chat read as due by ``due_by`` is next due
        (handover id, time; None: not again unless requeued)."""
        pending = [PendingMessage(self._next_id(), m) for m in messages]
        if offers or pending or settle:
            await self._conn.execute(
                "INSERT INTO offer_rounds (offers, outbound, settle, due_by, at) "
                "VALUES (?, ?, ?, ?, ?)",
                (json.dumps([list(o) for o in offers], ensure_ascii=False),
                 _outbound_json(pending), json.dumps([list(d) for d in settle]), due_by,
                 self.clock()))
        return pending

    async def record_offer(self, handover_id: int, volunteer: str,
                           messages: Sequence[Outbound]) -> list[PendingMessage]:
        """Remember that the volunteer was shown the chat, and queue the notice, together."""
        return await self.record_offers([(handover_id, volunteer)], messages)

    async def take(self, handover_id: int, volunteer: str) -> bool:
        """Assign a waiting chat. Exactly one of two volunteers racing for it gets True."""
        now = self.clock()
        cursor = await self._conn.execute(
            "UPDATE handovers SET status = 'assigned', volunteer = ?, assigned_at = ?, "
            "volunteer_seen_at = ?, user_seen_at = ? WHERE id = ? AND status = 'waiting' "
            "AND NOT EXISTS (SELECT 1 FROM handovers WHERE volunteer = ? AND status = 'assigned')",
            (volunteer, now, now, now, handover_id, volunteer))
        return cursor.rowcount == 1

    async def requeue(self, handover_id: int, queue: str | None = None) -> bool:
        """Back to waiting (released, transferred, or the volunteer went silent)."""
        cursor = await self._conn.execute(
            "UPDATE handovers SET status = 'waiting', volunteer = NULL, assigned_at = NULL, "
            "queue = COALESCE(?, queue), offers_due_at = ? WHERE id = ? AND status = 'assigned'",
            (queue, self.clock(), handover_id))
        if queue is not None:  # a new queue is offered afresh
            await self._conn.execute("DELETE FROM offers WHERE handover_id = ?", (handover_id,))
        return cursor.rowcount == 1

    async def close_entry(self, handover_id: int, reason: str) -> bool:
        cursor = await self._conn.execute(
            "UPDATE handovers SET status = 'closed', closed_reason = ? "
            "WHERE id = ? AND status != 'closed'", (reason, handover_id))
        return cursor.rowcount == 1

    async def set_summary(self, handover_id: int, summary: str) -> bool:
        """Replace a waiting chat's summary (the desk adds what the person typed meanwhile)."""
        cursor = await self._conn.execute(
            "UPDATE handovers SET summary = ? WHERE id = ? AND status = 'waiting'",
            (summary, handover_id))
        return cursor.rowcount == 1

    async def enqueue(self, messages: Sequence[Outbound]) -> list[PendingMessage]:
        """Queue messages outside a turn (notices from the queue's clock)."""
        if not messages:
            return []
        pending = [PendingMessage(self._next_id(), m) for m in messages]
        await self._conn.execute(
            "INSERT INTO outbox (id, chat_key, payload, created_at, about) "
            "SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), "
            "json_extract(value, '$[2]'), ?, json_extract(value, '$[3]') "
            "FROM json_each(?) ORDER BY key",
            (self.clock(), _outbound_json(pending)))
        return pending



#: The turn state of many chats at once, from a JSON array of [chat_key, update_id].
_LOAD_STATES = """
    WITH ask (n, chat, upd) AS (
        SELECT key, json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?))
    SELECT n,
        (SELECT data FROM sessions WHERE chat_key = ask.chat),
        EXISTS (SELECT 1 FROM processed_updates WHERE update_id = ask.upd),
        EXISTS (SELECT 1 FROM volunteers WHERE chat_key = ask.chat),
        (SELECT id FROM handovers WHERE chat_key = ask.chat AND status != 'closed'
         ORDER BY id DESC LIMIT 1)
    FROM ask ORDER BY n
"""

#: Many turns in one statement (so one transaction): a JSON array of turn_writes rows.
#: Outbound and handovers are nested arrays; json_extract hands them on as JSON text.
_COMMIT_TURNS = """
    INSERT INTO turn_writes (chat_key, session, update_id, outbound, handovers, language, at,
                             seen_handover, seen_side, also_read)
    SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'),
           json_extract(value, '$[3]'), json_extract(value, '$[4]'), json_extract(value, '$[5]'),
           json_extract(value, '$[6]'), json_extract(value, '$[7]'), json_extract(value, '$[8]'),
           json_extract(value, '$[9]')
    FROM json_each(?) ORDER BY key
"""

#: Saves messages as they arrive: a JSON array of [update_id, chat_key, payload]. A message
#: already waiting here, or already handled (a platform's redelivery), is left out; RETURNING
#: names the ones that are new, so only those are handed to the dispatcher.
_RECEIVE = """
    INSERT OR IGNORE INTO inbox (update_id, chat_key, payload, received_at)
    SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'), ?
    FROM json_each(?)
    WHERE NOT EXISTS (SELECT 1 FROM processed_updates
                      WHERE update_id = json_extract(value, '$[0]'))
    ORDER BY key
    RETURNING update_id
"""

#: Closed handovers whose last sign of life (created, taken, either side heard) is older
#: than the cutoff.
_OLD_CLOSED_HANDOVERS = """
    SELECT id FROM handovers WHERE status = 'closed'
      AND max(created_at, coalesce(assigned_at, 0), coalesce(user_seen_at, 0),
              coalesce(volunteer_seen_at, 0)) < ?
"""


#: Queue order (migration 5's priority_rank: crisis, deadline, the rest), oldest first.
_QUEUE_ORDER = "priority_rank, created_at, id"
#: Of handovers h: offered to the volunteer bound here.
_OFFERED_TO = "EXISTS (SELECT 1 FROM offers WHERE handover_id = h.id AND volunteer = ?)"

#: The waiting chats of a higher or equal rank (counted by triggers), less those of its own
#: rank queued after it.
_QUEUE_POSITION = """
    SELECT (SELECT sum(waiting) FROM waiting_by_rank WHERE priority_rank <= me.priority_rank)
         - (SELECT count(*) FROM handovers AS later
            WHERE later.status = 'waiting' AND later.priority_rank = me.priority_rank
              AND (later.created_at, later.id) > (me.created_at, me.id))
    FROM handovers AS me WHERE me.id = ? AND me.status = 'waiting'
"""

#: Rows (volunteer, entry...): one per offer owed, and one with no volunteer per chat due.
#: "fresh" volunteers are paired with every waiting chat; CROSS JOIN keeps the volunteers the
#: outer loop, so when no one is fresh that half reads nothing.
_OFFERS_OWED = f"""
    WITH vol (key, langs, queues, every, fresh) AS (
        SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'),
               json_extract(value, '$[2]'), json_extract(value, '$[3]'),
               json_extract(value, '$[4]')
        FROM json_each(:volunteers)),
    due AS MATERIALIZED (
        SELECT id FROM handovers WHERE status = 'waiting' AND offers_due_at <= :now),
    pairs (id, key) AS (
        SELECT due.id, vol.key FROM due CROSS JOIN vol
        UNION
        SELECT h.id, vol.key FROM vol CROSS JOIN handovers AS h
        WHERE vol.fresh AND h.status = 'waiting')
    SELECT pairs.key, {", ".join("h." + c for c in _ENTRY_COLUMN_NAMES)}
    FROM pairs JOIN handovers AS h ON h.id = pairs.id JOIN vol ON vol.key = pairs.key
    WHERE (vol.every OR instr(vol.queues, ',' || h.queue || ',')
           OR NOT (:all_served OR h.queue IN (SELECT value FROM json_each(:served))))
      AND (instr(vol.langs, ',' || coalesce(nullif(h.language, ''), 'en') || ',')
           OR h.created_at <= :cutoff)
      AND NOT EXISTS (SELECT 1 FROM offers WHERE handover_id = h.id AND volunteer = pairs.key)
    UNION ALL
    SELECT NULL, {", ".join("h." + c for c in _ENTRY_COLUMN_NAMES)}
    FROM due JOIN handovers AS h ON h.id = due.id
"""


def _truncate_wal(path: str) -> bool:
    """One truncating checkpoint on a connection of its own (in a worker thread), so its
    short busy timeout applies to it alone. True when the WAL is empty now."""
    try:
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            conn.execute(f"PRAGMA busy_timeout={WAL_CLEAR_WAIT_MS}")
            busy, frames, copied = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return False  # locked by another writer: the caller tries again
    # (busy, frames in the WAL, frames copied): busy means a reader still uses old frames.
    return bool(busy == 0 and frames == copied)


def _statements(script: str) -> list[str]:
    """A migration's statements one by one (a trigger's body holds ';' of its own)."""
    statements: list[str] = []
    part = ""
    for piece in script.split(";"):
        part += piece + ";"
        if sqlite3.complete_statement(part):
            if any(line.strip() and not line.strip().startswith("--")
                   for line in part[:-1].splitlines()):
                statements.append(part)
            part = ""
    return statements


def _outbound_rows(pending: Sequence[PendingMessage]) -> list[list[Any]]:
    return [[p.id, *outbox_row(p.message)] for p in pending]


def _outbound_json(pending: Sequence[PendingMessage]) -> str:
    return json.dumps(_outbound_rows(pending), ensure_ascii=False)

