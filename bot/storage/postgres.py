"""The store on PostgreSQL, for more than one bot process (and machine) on one database.

Driver: psycopg 3 (async) with psycopg_pool: LISTEN/NOTIFY and a pool come with it, statements
it runs often are prepared on their own, and the ``binary`` extra bundles libpq, so a fresh
machine needs no compiler and no client library. A turn is three statements, each one call of
a function installed here, and each shared with the turns of other chats answered at the same
time (bot/storage/postgres_turns.py: ``load_turns``, ``commit_turns``, ``release_chats``).

How processes share the database:

- A chat's turns run one at a time across processes: :meth:`PostgresStore.hold_chat` takes a
  session advisory lock on the chat with its load (``load_turns`` tries the locks, then
  reads), on the process's turn connection; held across the turn's commits and sends (so
  replies of one chat leave in order whichever process answers), and released with the sent
  replies' deletion when left. A chat busy in another process is waited for on a pooled
  connection of its own. A process that dies loses its connections, and the server releases
  the locks.
- A turn is ONE transaction (a ``commit_turns`` call, shared with other chats' turns):
  session, replies, handovers, update ids and the inbox removal commit together, and a
  batch that fails is retried turn by turn. Outbox ids come from an identity column.
- Replies for other chats (a relay, an offer) NOTIFY the chat's key; the process serving that
  chat delivers at once (:meth:`outbox_news`). The outbox row is the copy; the flush loop's
  polling stays the fallback.
- A volunteer's claim takes the row ``FOR UPDATE SKIP LOCKED``, and a partial unique index
  keeps one assigned chat per volunteer, so two processes never give one chat to two people.
- The shared timers run in the process holding an advisory lock on a connection of its own
  (:meth:`lead_timers`).

Durability: the intake's insert (:meth:`PostgresStore.receive`) waits for the WAL flush
(``synchronous_commit`` on for its transaction), so a message the platform was told is saved
survives a crash of the server or the machine. Turns commit as on SQLite's default (WAL,
synchronous=NORMAL): the bot's sessions set ``synchronous_commit=off``, so a turn's commit is in
the server's WAL buffers, not yet on disk, when ``commit_turn`` returns. Killing the bot loses
nothing; a crash of the server or the machine can lose the last fraction of a second of turns
(wal_writer_delay, 200 ms, times three at most), never a half turn, and never a message: the
WAL is replayed in order, so what is lost is a suffix of commits after every durable receive
before them, and a lost turn's inbox row (deleted by that same commit) is still there. The
next start's recovery answers it again (its reply, sent already, goes a second time, and its
session step is redone): a duplicate, never a loss. The same holds for sent replies' deletion.
For a flush per turn, put ``options=-c synchronous_commit=on`` in BOT_DATABASE_URL (as
BOT_SQLITE_SYNC=FULL does on SQLite).

Schema changes are numbered migrations, run once under a transaction advisory lock; a
database written by a newer bot is refused.

Deleted rows on disk (/forget, the retention purge): a DELETE leaves dead row versions in
the table files until VACUUM, and plain VACUUM frees their space without overwriting it. So
after deleting, the tables that hold people's data are rewritten with ``VACUUM FULL`` (new
files; the old ones are truncated at once), and no deleted row, nor an earlier version of a
kept one, stays readable in the table or index files. It takes each table's exclusive lock
for the rewrite, so turns wait meanwhile: milliseconds for a charity's tables, more for
very large ones (a /forget is rare; the purge runs every few hours). PostgreSQL's
write-ahead log still holds the changes until its segments are recycled (after the next
checkpoints), as do base backups and replicas: keep those on encrypted disks with the same
retention.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg_pool import AsyncConnectionPool

from bot.engine.session import Session
from bot.errors import StorageError, StorageUnavailable
from bot.flowspec.model import Priority
from bot.handover.model import OfferQuery, OffersOwed, QueueEntry, Volunteer
from bot.handover.model import Status as HandoverStatus
from bot.messages import Inbound, Outbound
from bot.storage.base import PendingMessage, Purged, TurnRecord, TurnState
from bot.storage.codec import (
    ENTRY_COLUMN_NAMES,
    ENTRY_COLUMNS,
    VOLUNTEER_COLUMNS,
    decode,
    offer_volunteers,
    offers_owed,
    outbox_row,
)
from bot.storage.codec import entry as _entry
from bot.storage.codec import volunteer as _volunteer
from bot.storage.postgres_faults import describe, explain_connect_failure
from bot.storage.postgres_turns import COMMIT_TURNS_ABOUT, TURN_FUNCTIONS, TurnBatches, commit_turns

__all__ = ["SCHEMA_VERSION", "PostgresStore"]

Connection = psycopg.AsyncConnection[tuple[Any, ...]]

#: Advisory lock namespaces (the first key of the two-key form): chats, the timers, migrations.
LOCK_CHAT = 7_160_001  # also written out in the load_turn(s) and release_chats functions
LOCK_TIMERS = 7_160_002
LOCK_MIGRATIONS = 7_160_003
#: The channel replies for another chat are announced on (payload: the chat key).
OUTBOX_CHANNEL = "helpbot_outbox"
#: Connections per process. A chat being served holds one from its load to the end of its
#: sends (so its replies leave in order whichever process answers): ten serve ten chats at
#: once, about 100 sends a second at 0.1 s each, above Telegram's 30 messages a second per bot.
DEFAULT_POOL_SIZE = 10
CONNECT_TIMEOUT_SECONDS = 10
#: Update ids are kept this long to recognise a platform's redelivery (as on SQLite).
PROCESSED_KEEP_SECONDS = 2 * 24 * 3600

#: Each entry upgrades the schema by one version; never edit a released entry, append.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE sessions (
        chat_key   text PRIMARY KEY,
        data       text NOT NULL,
        updated_at double precision NOT NULL
    );
    CREATE INDEX sessions_updated ON sessions (updated_at);
    CREATE TABLE outbox (
        id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        chat_key   text NOT NULL,
        payload    text NOT NULL,
        created_at double precision NOT NULL
    );
    CREATE INDEX outbox_chat ON outbox (chat_key, id);
    CREATE TABLE processed_updates (
        update_id  text PRIMARY KEY,
        chat_key   text NOT NULL,
        at         double precision NOT NULL
    );
    CREATE INDEX processed_chat ON processed_updates (chat_key);
    CREATE INDEX processed_at ON processed_updates (at);
    CREATE TABLE inbox (
        seq         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        update_id   text NOT NULL UNIQUE,
        chat_key    text NOT NULL,
        payload     text NOT NULL,
        received_at double precision NOT NULL
    );
    CREATE TABLE volunteers (
        chat_key   text PRIMARY KEY,
        name       text NOT NULL,
        languages  text NOT NULL,
        queues     text NOT NULL,
        available  boolean NOT NULL DEFAULT false,
        added_at   double precision NOT NULL
    );
    CREATE TABLE handovers (
        id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        chat_key          text NOT NULL,
        flow              text NOT NULL,
        step              text NOT NULL,
        queue             text NOT NULL,
        priority          text NOT NULL,
        summary           text NOT NULL,
        language          text,
        created_at        double precision NOT NULL,
        status            text NOT NULL DEFAULT 'waiting',
        volunteer         text,
        assigned_at       double precision,
        user_seen_at      double precision,
        volunteer_seen_at double precision,
        closed_reason     text,
        priority_rank     integer GENERATED ALWAYS AS
            (CASE priority WHEN 'crisis' THEN 0 WHEN 'deadline' THEN 1 ELSE 2 END) STORED,
        offers_due_at     double precision DEFAULT 0
    );
    CREATE INDEX handovers_order ON handovers (status, priority_rank, created_at, id);
    CREATE INDEX handovers_chat ON handovers (chat_key, status);
    CREATE INDEX handovers_offers_due ON handovers (status, offers_due_at);
    -- One chat at a time per volunteer, whichever process takes it.
    CREATE UNIQUE INDEX handovers_one_per_volunteer ON handovers (volunteer)
        WHERE status = 'assigned';
    CREATE TABLE offers (
        handover_id bigint NOT NULL REFERENCES handovers (id) ON DELETE CASCADE,
        volunteer   text NOT NULL,
        offered_at  double precision NOT NULL,
        PRIMARY KEY (handover_id, volunteer)
    );
    CREATE INDEX offers_volunteer ON offers (volunteer, handover_id);

    -- Replies into the outbox in order ([[chat_key, payload], ...]); their ids, in order.
    -- Chats other than own_chat are announced: NOTIFY is sent at commit, never before.
    CREATE FUNCTION queue_messages(outbound jsonb, at double precision, own_chat text)
        RETURNS bigint[] LANGUAGE plpgsql AS $$
    DECLARE
        message jsonb;
        new_id bigint;
        ids bigint[] := '{}';
        chat text;
    BEGIN
        FOR message IN SELECT value FROM jsonb_array_elements(outbound) LOOP
            INSERT INTO outbox (chat_key, payload, created_at)
                VALUES (message->>0, message->>1, at) RETURNING id INTO new_id;
            ids := ids || new_id;
        END LOOP;
        FOR chat IN SELECT DISTINCT value->>0 FROM jsonb_array_elements(outbound) LOOP
            IF chat IS DISTINCT FROM own_chat THEN
                PERFORM pg_notify('helpbot_outbox', chat);
            END IF;
        END LOOP;
        RETURN ids;
    END $$;

    -- One turn, one statement, so one transaction.
    CREATE FUNCTION commit_turn(chat text, session_data text, update_id text, outbound jsonb,
                                new_handovers jsonb, language text, at double precision,
                                seen_handover bigint, seen_side text, also_read text[])
        RETURNS bigint[] LANGUAGE plpgsql AS $$
    DECLARE
        read_ids text[] := array_append(coalesce(also_read, '{}'), update_id);
        ids bigint[];
    BEGIN
        IF session_data IS NOT NULL THEN
            INSERT INTO sessions (chat_key, data, updated_at) VALUES (chat, session_data, at)
                ON CONFLICT (chat_key) DO UPDATE SET data = excluded.data,
                                                     updated_at = excluded.updated_at;
        END IF;
        IF seen_side = 'user' THEN
            UPDATE handovers SET user_seen_at = at WHERE id = seen_handover;
        ELSIF seen_side = 'volunteer' THEN
            UPDATE handovers SET volunteer_seen_at = at WHERE id = seen_handover;
        END IF;
        INSERT INTO processed_updates (update_id, chat_key, at)
            SELECT r, chat, at FROM unnest(read_ids) AS r WHERE r IS NOT NULL
            ON CONFLICT DO NOTHING;
        DELETE FROM inbox WHERE inbox.update_id = ANY (read_ids);
        ids := queue_messages(outbound, at, chat);
        IF jsonb_array_length(new_handovers) > 0 THEN
            UPDATE handovers SET status = 'closed', closed_reason = 'replaced'
                WHERE chat_key = chat AND status = 'waiting';
            INSERT INTO handovers (chat_key, flow, step, queue, priority, summary, language,
                                   created_at, user_seen_at)
                SELECT chat, h->>'flow', h->>'step', h->>'queue', h->>'priority', h->>'summary',
                       language, at, at
                FROM jsonb_array_elements(new_handovers) WITH ORDINALITY AS t (h, n) ORDER BY n;
        END IF;
        RETURN ids;
    END $$;

    -- What a turn reads, after taking the chat's lock when asked: the query runs after the
    -- lock is granted, with a snapshot of its own (a VOLATILE function's statements each
    -- take one), so it sees what the chat's last holder committed. One round trip.
    CREATE FUNCTION load_turn(chat text, upd text, take_lock boolean)
        RETURNS TABLE (session_data text, duplicate boolean, v_key text, v_name text,
                       v_languages text, v_queues text, v_available boolean, h_id bigint,
                       h_chat text, h_flow text, h_queue text, h_priority text, h_summary text,
                       h_language text, h_created double precision, h_status text,
                       h_volunteer text, h_assigned double precision,
                       h_user_seen double precision, h_volunteer_seen double precision)
        LANGUAGE plpgsql VOLATILE AS $$
    BEGIN
        IF take_lock THEN
            PERFORM pg_advisory_lock(7160001, hashtext(chat));
        END IF;
        RETURN QUERY
            SELECT s.data, EXISTS (SELECT 1 FROM processed_updates p WHERE p.update_id = upd),
                   v.chat_key, v.name, v.languages, v.queues, v.available,
                   h.id, h.chat_key, h.flow, h.queue, h.priority, h.summary, h.language,
                   h.created_at, h.status, h.volunteer, h.assigned_at, h.user_seen_at,
                   h.volunteer_seen_at
            FROM (SELECT 1) AS one
            LEFT JOIN sessions AS s ON s.chat_key = chat
            LEFT JOIN volunteers AS v ON v.chat_key = chat
            LEFT JOIN LATERAL (SELECT * FROM handovers AS o
                               WHERE o.chat_key = chat AND o.status != 'closed'
                               ORDER BY o.id DESC LIMIT 1) AS h ON true;
    END $$;

    -- Leaving a held chat: its sent replies leave the outbox, its lock is released. The
    -- delete is not waited on to disk: lost to a crash of the server, the replies are sent
    -- again (a duplicate, never a loss).
    CREATE FUNCTION release_chat(sent bigint[]) RETURNS void LANGUAGE plpgsql AS $$
    BEGIN
        IF cardinality(sent) > 0 THEN
            PERFORM set_config('synchronous_commit', 'off', true);
            DELETE FROM outbox WHERE id = ANY (sent);
        END IF;
        PERFORM pg_advisory_unlock_all();
    END $$;

    -- A round of offers: who was shown which chat, the messages telling them, and when each
    -- chat read as due by due_by is next due (a chat requeued since stays due).
    CREATE FUNCTION record_offers(new_offers jsonb, outbound jsonb, settle jsonb,
                                  due_by double precision, at double precision)
        RETURNS bigint[] LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO offers (handover_id, volunteer, offered_at)
            SELECT (o->>0)::bigint, o->>1, at FROM jsonb_array_elements(new_offers) AS o
            ON CONFLICT DO NOTHING;
        UPDATE handovers SET offers_due_at = (d->>1)::double precision
            FROM jsonb_array_elements(settle) AS d
            WHERE handovers.id = (d->>0)::bigint AND handovers.offers_due_at <= due_by;
        RETURN queue_messages(outbound, at, NULL);
    END $$;
    """,
    # The turn path's batch functions (bot/storage/postgres_turns.py). Version 1's one-turn
    # functions stay: a process of the previous version still uses them in a rolling deploy.
    TURN_FUNCTIONS,
    # 3: what an outbox row is about. A message for one chat may quote or summarise another
    # (a person's words relayed to their volunteer, an offer of their chat): ``about`` lists
    # those chats (a JSON array; NULL for a chat's own replies), and a forget deletes the
    # undelivered rows about the chat too. No index: the outbox holds only what is not
    # delivered yet, and a forget reads it once. Replies come as [chat, payload] or
    # [chat, payload, [chats about]].
    """
    ALTER TABLE outbox ADD COLUMN about jsonb;
    CREATE OR REPLACE FUNCTION queue_messages(outbound jsonb, at double precision, own_chat text)
        RETURNS bigint[] LANGUAGE plpgsql AS $$
    DECLARE
        message jsonb;
        new_id bigint;
        ids bigint[] := '{}';
        chat text;
    BEGIN
        FOR message IN SELECT value FROM jsonb_array_elements(outbound) LOOP
            INSERT INTO outbox (chat_key, payload, created_at, about)
                VALUES (message->>0, message->>1, at, message->2) RETURNING id INTO new_id;
            ids := ids || new_id;
        END LOOP;
        FOR chat IN SELECT DISTINCT value->>0 FROM jsonb_array_elements(outbound) LOOP
            IF chat IS DISTINCT FROM own_chat THEN
                PERFORM pg_notify('helpbot_outbox', chat);
            END IF;
        END LOOP;
        RETURN ids;
    END $$;
    """ + COMMIT_TURNS_ABOUT,
)
SCHEMA_VERSION = len(MIGRATIONS)

log = logging.getLogger(__name__)

#: How long a rewrite after deleting waits for a table's exclusive lock.
REWRITE_LOCK_WAIT = "2s"
#: Tables a forget or purge may delete from (rewritten afterwards, see the module's notes).
_KEYED_TABLES = ("sessions", "outbox", "processed_updates", "handovers", "offers", "inbox")


@dataclass
class _Held:
    """A chat held by this task: where its advisory lock is (on the shared turn connection,
    ``shared`` its generation; or, when the chat was busy elsewhere, on ``conn``, a pooled
    connection pinned to it), and replies sent meanwhile (deleted on leaving)."""

    store: PostgresStore
    chat_key: str
    shared: int | None = None
    conn: Connection | None = None
    active: bool = True
    sent: list[int] = field(default_factory=list)

    @property
    def locked(self) -> bool:
        return self.shared is not None or self.conn is not None


#: The chat the current task holds (tasks started inside inherit it; ``active`` guards them).
_HELD: ContextVar[_Held | None] = ContextVar("helpbot_held_chat", default=None)


class PostgresStore:
    """Implements :class:`bot.storage.base.Store`. Open with ``await PostgresStore.open(url)``."""

    def __init__(self, url: str, pool: AsyncConnectionPool[Connection], control: Connection,
                 clock: Callable[[], float] = time.time) -> None:
        self.url = url
        self._pool = pool
        #: Kept for the process's life: migrations ran on it, and the timers' lock lives on it.
        self._control = control
        self._leading = False
        self._listener: Connection | None = None
        self._turns = TurnBatches(url, CONNECT_TIMEOUT_SECONDS)
        self.clock = clock  # wall-clock seconds for every timestamp stored
        #: Round trips on the turn path, by kind (for the benchmarks and tests); the shared
        #: trips count themselves.
        self.trips: Counter[str] = self._turns.trips

    @classmethod
    async def open(cls, url: str, *, pool_size: int = DEFAULT_POOL_SIZE,
                   clock: Callable[[], float] = time.time) -> PostgresStore:
        shown = url
        url = _with_durability(url)
        try:
            control = await psycopg.AsyncConnection.connect(
                url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_SECONDS)
        except psycopg.Error as exc:
            raise StorageUnavailable(explain_connect_failure(shown, exc)) from exc
        try:
            await _migrate(control, shown)
            pool: AsyncConnectionPool[Connection] = AsyncConnectionPool(
                url, min_size=pool_size, max_size=pool_size, open=False,
                kwargs={"autocommit": True, "connect_timeout": CONNECT_TIMEOUT_SECONDS},
                name="helpbot")
            await pool.open(wait=True, timeout=CONNECT_TIMEOUT_SECONDS)
        except psycopg.Error as exc:
            await control.close()
            raise StorageUnavailable(explain_connect_failure(shown, exc)) from exc
        except BaseException:
            await control.close()
            raise
        return cls(url, pool, control, clock)

    async def close(self) -> None:
        await self._turns.close()
        if self._listener is not None:
            await self._listener.close()
        await self._pool.close()
        await self._control.close()  # the server releases the timers' lock with it

    # -- queries: on the held chat's connection, or on one from the pool ------------------

    def _held(self) -> _Held | None:
        held = _HELD.get()
        return held if held is not None and held.active and held.store is self else None

    async def _query(self, query: str, params: Any = None) -> tuple[list[tuple[Any, ...]], int]:
        """Run one statement; its rows (if any) and row count."""
        held = self._held()
        if held is not None:
            await self._lock(held)
            if held.conn is not None:
                return await _run(held.conn, query, params)
        async with self._pool.connection() as conn:
            return await _run(conn, query, params)

    async def _rows(self, query: str, params: Any = None) -> list[tuple[Any, ...]]:
        return (await self._query(query, params))[0]

    async def _count(self, query: str, params: Any = None) -> int:
        return max((await self._query(query, params))[1], 0)

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Connection]:
        """Several statements in one transaction (the held chat's lock taken first)."""
        held = self._held()
        if held is not None:
            await self._lock(held)
            if held.conn is not None:
                async with held.conn.transaction():
                    yield held.conn
                return
        async with self._pool.connection() as conn, conn.transaction():
            yield conn

    # -- several processes ------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def hold_chat(self, chat_key: str) -> AsyncIterator[None]:
        """Serve the chat alone among every process on this database until left.

        The advisory lock is taken with the turn's load (or before the first other query),
        in a trip shared with other chats' loads (bot/storage/postgres_turns.py), and held
        across the turn's commits and sends; leaving releases it, with the deletion of the
        replies sent meanwhile, in a trip shared with other chats leaving. A chat busy in
        another process is waited for on a pooled connection pinned to it, which then
        carries its queries and its release (``release_chat``).
        """
        held = _Held(self, chat_key)
        token = _HELD.set(held)
        try:
            yield
        finally:
            held.active = False
            _HELD.reset(token)
            await self._release(held)

    async def _lock(self, held: _Held, update_id: str | None = None,
                    ) -> tuple[Any, ...] | None:
        """Take the held chat's lock if not taken yet; the chat's load_turns row then."""
        if held.locked:
            return None
        row, generation = await self._turns.load(held.chat_key, update_id, True)
        if row is not None:
            held.shared = generation
            return row
        # Busy in another process: wait for it on a connection of its own, not in the batch.
        conn = await self._pool.getconn()
        try:
            rows, _ = await _run(conn, "SELECT NULL, false, * FROM load_turn(%s, %s, true)",
                                 (held.chat_key, update_id))
        except BaseException:
            await conn.close()  # the server drops a lock it may have granted meanwhile
            await self._pool.putconn(conn)
            raise
        held.conn = conn
        return rows[0]

    async def _release(self, held: _Held) -> None:
        if held.conn is not None:
            conn = held.conn
            try:
                await conn.execute("SELECT release_chat(%s)", (held.sent,))
            except BaseException:
                # Closing the connection releases the lock on the server; the replies stay in
                # the outbox and are sent again (a duplicate, never a loss).
                await conn.close()
                raise
            finally:
                await self._pool.putconn(conn)
        elif held.shared is not None or held.sent:
            await self._turns.release(held.chat_key if held.shared is not None else None,
                                      held.sent, held.shared or 0)

    async def lead_timers(self) -> bool:
        """True while this process is the one that runs the shared timers (delayed offers,
        silence timeouts, the retention purge); asked again before each round, so another
        process takes over when the leader stops or dies."""
        try:
            if self._control.closed or self._control.broken:
                self._leading = False
                self._control = await psycopg.AsyncConnection.connect(
                    self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_SECONDS)
            if self._leading:
                await self._control.execute("SELECT 1")  # the lock lives as long as this does
                return True
            cursor = await self._control.execute("SELECT pg_try_advisory_lock(%s, 0)",
                                                 (LOCK_TIMERS,))
            row = await cursor.fetchone()
            self._leading = bool(row and row[0])
        except psycopg.Error:
            log.warning("lost the connection that holds the timers' lock; another process may "
                        "run them until it is back")
            self._leading = False
        return self._leading

    async def outbox_news(self, wait: float) -> set[str]:
        """Chats that replies were queued for by a turn of another chat (in any process):
        waits up to ``wait`` seconds for the first, then takes what came with it."""
        try:
            if self._listener is None or self._listener.closed:
                self._listener = await psycopg.AsyncConnection.connect(
                    self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_SECONDS)
                await self._listener.execute(sql.SQL("LISTEN {}").format(sql.Identifier(OUTBOX_CHANNEL)))
            chats = {n.payload async for n in self._listener.notifies(timeout=wait, stop_after=1)}
            if chats:
                chats |= {n.payload async for n in self._listener.notifies(timeout=0)}
            return chats
        except psycopg.Error:
            # A hint lost: the flush loop's polling still sends it. Reconnect next time.
            if self._listener is not None:
                await self._listener.close()
            self._listener = None
            await asyncio.sleep(wait)
            return set()

    # -- turns ---------------------------------------------------------------------------

    async def load_session(self, chat_key: str) -> Session | None:
        rows = await self._rows("SELECT data FROM sessions WHERE chat_key = %s", (chat_key,))
        return Session.from_json(rows[0][0]) if rows else None

    async def load_turn_state(self, chat_key: str, update_id: str | None) -> TurnState:
        """Session, duplicate flag, the sender as a volunteer and their place in the queue:
        one statement (with the chat's lock, one round trip)."""
        held = self._held()
        row: tuple[Any, ...] | None = None
        if held is not None and held.chat_key == chat_key:
            row = await self._lock(held, update_id)
            if row is None and held.conn is not None:
                row = (await _run(held.conn, "SELECT NULL, false, * FROM load_turn(%s, %s, false)",
                                  (chat_key, update_id)))[0][0]
        if row is None:
            row, _ = await self._turns.load(chat_key, update_id, False)
        assert row is not None  # only a lock asked for can be busy
        return TurnState(
            session=Session.from_json(row[2]) if row[2] is not None else None,
            duplicate=bool(row[3]),
            volunteer=_volunteer(row[4:9]) if row[4] is not None else None,
            entry=_entry(row[9:]) if row[9] is not None else None)

    async def commit_turn(self, turn: TurnRecord) -> list[PendingMessage]:
        """Session, update ids, replies and handovers together or not at all: one call of the
        ``commit_turn`` function. Returns the replies with their outbox ids."""
        held = self._held()
        if held is not None:
            await self._lock(held)
        handovers = [{"flow": h.flow, "step": h.step, "queue": h.queue,
                      "priority": h.priority.value, "summary": h.summary} for h in turn.handovers]
        seen = turn.seen or (None, None)
        arguments = [turn.chat_key, turn.session.to_json() if turn.session else None,
                     turn.update_id, [outbox_row(m) for m in turn.outbound], handovers,
                     turn.session.language if turn.session else None, self.clock(), *seen,
                     list(turn.also_read)]
        if held is not None and held.conn is not None:  # on the connection holding its lock
            return _pending((await commit_turns(held.conn, [arguments]))[0], turn.outbound)
        ids = await self._turns.commit(arguments, held.shared if held is not None else None)
        return _pending(ids, turn.outbound)

    async def mark_sent(self, message_ids: Sequence[int]) -> None:
        """The platform took these replies: they leave the outbox when the chat is left (in
        the same trip as its lock), or now outside a held chat."""
        if not message_ids:
            return
        held = self._held()
        if held is not None:
            held.sent.extend(message_ids)
            return
        await self._query("DELETE FROM outbox WHERE id = ANY (%s)", (list(message_ids),))

    async def pending(self, chat_key: str | None = None) -> list[PendingMessage]:
        if chat_key is None:
            rows = await self._rows("SELECT id, payload, about FROM outbox ORDER BY id")
        else:
            rows = await self._rows(
                "SELECT id, payload, about FROM outbox WHERE chat_key = %s ORDER BY id", (chat_key,))
        held = self._held()
        sent = set(held.sent) if held is not None else set()
        return [PendingMessage(int(r[0]), decode(r[1], r[2])) for r in rows if int(r[0]) not in sent]

    async def enqueue(self, messages: Sequence[Outbound]) -> list[PendingMessage]:
        """Queue messages outside a turn (notices from the queue's clock)."""
        if not messages:
            return []
        rows = await self._rows("SELECT queue_messages(%s, %s, NULL)",
                                (_outbound_json(messages), self.clock()))
        return _pending(rows[0][0], messages)

    # -- durable intake --------------------------------------------------------------------

    async def receive(self, inbounds: Sequence[Inbound]) -> list[Inbound]:
        """Save arriving messages; returns those that are new (not waiting already, nor
        handled before), in one statement, committed to disk before it returns (see the
        module's notes on durability)."""
        rows = []
        for inbound in inbounds:
            if inbound.update_id is None:
                raise StorageError("a message needs an update id to be received")
            rows.append([inbound.update_id, inbound.chat_key, inbound.to_json()])
        if not rows:
            return []
        self.trips["receive"] += 1
        saved = await self._rows(_RECEIVE, {"rows": json.dumps(rows, ensure_ascii=False),
                                             "at": self.clock()})
        new = {str(row[0]) for row in saved}
        fresh: list[Inbound] = []
        for inbound in inbounds:  # the same update twice: the first one is the new one
            if inbound.update_id in new:
                fresh.append(inbound)
                new.discard(inbound.update_id)
        return fresh

    async def inbox(self) -> list[tuple[Inbound, float]]:
        rows = await self._rows("SELECT payload, received_at FROM inbox ORDER BY seq")
        return [(Inbound.from_json(row[0]), float(row[1])) for row in rows]

    async def discard(self, update_ids: Sequence[str]) -> None:
        await self._query("DELETE FROM inbox WHERE update_id = ANY (%s)", (list(update_ids),))

    # -- privacy on disk: forget, the retention purge ----------------------------------------

    async def forget(self, chat_key: str) -> None:
        """Delete everything about the chat in one transaction, then rewrite the tables it
        was in so no deleted row stays in their files (see the module's notes)."""
        held = self._held()
        sent = held.sent if held is not None else []
        async with self._transaction() as conn:
            for query in _FORGET:
                await conn.execute(query, {"chat": chat_key})
            if sent:  # a relay to a volunteer may carry the person's words
                await conn.execute("DELETE FROM outbox WHERE id = ANY (%s)", (sent,))
                sent.clear()
        # Every table: earlier versions of the chat's rows (a session before each turn, sent
        # replies, handled messages in the inbox) are dead tuples in them already.
        await self._rewrite(_KEYED_TABLES)

    async def purge(self, older_than: timedelta) -> Purged:
        """Delete what is older than the retention period; see :meth:`Store.purge`."""
        now = self.clock()
        cutoff = now - older_than.total_seconds()
        keep = max(older_than.total_seconds(), PROCESSED_KEEP_SECONDS)
        async with self._transaction() as conn:
            sessions = (await conn.execute("DELETE FROM sessions WHERE updated_at < %s",
                                           (cutoff,))).rowcount
            cursor = await conn.execute(_OLD_CLOSED_HANDOVERS, (cutoff,))
            old = [int(row[0]) for row in await cursor.fetchall()]
            offers = (await conn.execute("DELETE FROM offers WHERE handover_id = ANY (%s)",
                                         (old,))).rowcount
            handovers = (await conn.execute(
                "DELETE FROM handovers WHERE id = ANY (%s) AND status = 'closed'", (old,))).rowcount
            # Still in the outbox this old: never delivered (sent rows leave it at once).
            undelivered = (await conn.execute("DELETE FROM outbox WHERE created_at < %s",
                                              (cutoff,))).rowcount
            updates = (await conn.execute("DELETE FROM processed_updates WHERE at < %s",
                                          (now - keep,))).rowcount
        if undelivered:
            log.warning("retention purge: dropped %d message(s) that could not be delivered in "
                        "%.0f days", undelivered, older_than.total_seconds() / 86400)
        # Always, even when nothing was due: rows deleted since the last rewrite (sent replies,
        # handled messages, old session versions) leave their dead tuples too.
        cleared = await self._rewrite(_KEYED_TABLES)
        return Purged(sessions, handovers, offers, undelivered, updates, wal_cleared=cleared)

    async def _rewrite(self, tables: Sequence[str]) -> bool:
        """VACUUM FULL each table (outside any transaction: on an autocommit connection).
        False when one was left for the next clean-up: its exclusive lock was not granted
        within REWRITE_LOCK_WAIT (another client reads the table meanwhile), and waiting longer
        would hold up every turn queued behind the request."""
        held = self._held()
        if held is not None and held.conn is not None:
            return await _rewrite_on(held.conn, tables)
        async with self._pool.connection() as conn:
            return await _rewrite_on(conn, tables)

    async def handovers(self, chat_key: str) -> list[dict[str, str | None]]:
        """Handovers recorded for a chat."""
        names = ("flow", "step", "queue", "priority", "summary", "status", "language")
        rows = await self._rows(f"SELECT {', '.join(names)} FROM handovers WHERE chat_key = %s "
                                "ORDER BY id", (chat_key,))
        return [dict(zip(names, row, strict=True)) for row in rows]

    # -- the volunteer queue (bot.handover) ------------------------------------------------

    async def add_volunteer(self, volunteer: Volunteer) -> None:
        await self._query(
            "INSERT INTO volunteers (chat_key, name, languages, queues, available, added_at) "
            "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (chat_key) DO UPDATE SET "
            "name = excluded.name, languages = excluded.languages, queues = excluded.queues",
            (volunteer.chat_key, volunteer.name, ",".join(volunteer.languages),
             ",".join(volunteer.queues), volunteer.available, self.clock()))

    async def remove_volunteer(self, chat_key: str) -> bool:
        """Unregister a volunteer, withdrawing their offers and deleting what the outbox
        holds for them, in one transaction. False if not one."""
        async with self._transaction() as conn:
            cursor = await conn.execute("DELETE FROM volunteers WHERE chat_key = %s", (chat_key,))
            if cursor.rowcount == 0:
                return False
            await conn.execute("DELETE FROM offers WHERE volunteer = %s", (chat_key,))
            await conn.execute("DELETE FROM outbox WHERE chat_key = %s", (chat_key,))
        return True

    async def volunteers(self) -> list[Volunteer]:
        rows = await self._rows(f"SELECT {VOLUNTEER_COLUMNS} FROM volunteers ORDER BY name, chat_key")
        return [_volunteer(row) for row in rows]

    async def volunteer(self, chat_key: str) -> Volunteer | None:
        rows = await self._rows(f"SELECT {VOLUNTEER_COLUMNS} FROM volunteers WHERE chat_key = %s",
                                (chat_key,))
        return next((_volunteer(row) for row in rows), None)

    async def set_available(self, chat_key: str, available: bool) -> None:
        await self._query("UPDATE volunteers SET available = %s WHERE chat_key = %s",
                          (available, chat_key))

    async def queue_entry(self, handover_id: int) -> QueueEntry | None:
        rows = await self._rows(f"SELECT {ENTRY_COLUMNS} FROM handovers WHERE id = %s",
                                (handover_id,))
        return next((_entry(row) for row in rows), None)

    async def open_entry(self, chat_key: str) -> QueueEntry | None:
        """The chat's place in the queue, waiting or with a volunteer, if any."""
        rows = await self._rows(
            f"SELECT {ENTRY_COLUMNS} FROM handovers WHERE chat_key = %s AND status != 'closed' "
            "ORDER BY id DESC LIMIT 1", (chat_key,))
        return next((_entry(row) for row in rows), None)

    async def held_by(self, volunteer: str) -> QueueEntry | None:
        rows = await self._rows(
            f"SELECT {ENTRY_COLUMNS} FROM handovers WHERE volunteer = %s AND status = 'assigned' "
            "ORDER BY id DESC LIMIT 1", (volunteer,))
        return next((_entry(row) for row in rows), None)

    async def entries(self, status: HandoverStatus) -> list[QueueEntry]:
        """Entries in queue order: crisis, then deadline, then the rest; oldest first."""
        rows = await self._rows(
            f"SELECT {ENTRY_COLUMNS} FROM handovers WHERE status = %s ORDER BY {_QUEUE_ORDER}",
            (status.value,))
        return [_entry(row) for row in rows]

    async def queue_position(self, handover_id: int) -> int | None:
        """A waiting chat's place in the whole queue (1: next to be taken); None if it is
        not waiting. One count over the queue-order index."""
        rows = await self._rows(_QUEUE_POSITION, (handover_id,))
        return next((int(row[0]) for row in rows), None)

    async def waiting_for(self, volunteer: str, *, limit: int, offset: int = 0) -> list[QueueEntry]:
        rows = await self._rows(
            f"SELECT {ENTRY_COLUMNS} FROM handovers h WHERE status = 'waiting' AND "
            f"{_OFFERED_TO} ORDER BY {_QUEUE_ORDER} LIMIT %s OFFSET %s", (volunteer, limit, offset))
        return [_entry(row) for row in rows]

    async def waiting_counts(self, volunteer: str) -> dict[tuple[Priority, str | None], int]:
        rows = await self._rows(
            f"SELECT priority, language, count(*) FROM handovers h WHERE status = 'waiting' "
            f"AND {_OFFERED_TO} GROUP BY priority, language", (volunteer,))
        return {(Priority(row[0]), row[1]): int(row[2]) for row in rows}

    async def offered_entry(self, volunteer: str, handover_id: int) -> QueueEntry | None:
        rows = await self._rows(
            f"SELECT {ENTRY_COLUMNS} FROM handovers h WHERE id = %s AND status = 'waiting' "
            f"AND {_OFFERED_TO}", (handover_id, volunteer))
        return next((_entry(row) for row in rows), None)

    async def offered_to(self, volunteer: str) -> set[int]:
        rows = await self._rows("SELECT handover_id FROM offers WHERE volunteer = %s", (volunteer,))
        return {int(row[0]) for row in rows}

    async def offers_of(self, handover_id: int) -> set[str]:
        rows = await self._rows("SELECT volunteer FROM offers WHERE handover_id = %s",
                                (handover_id,))
        return {str(row[0]) for row in rows}

    async def offers_owed(self, query: OfferQuery) -> OffersOwed:
        """The offers a round owes, and the chats due for offering, in one query."""
        if not query.volunteers:
            return OffersOwed((), ())
        rows = await self._rows(_OFFERS_OWED, {
            "volunteers": offer_volunteers(query), "now": query.now,
            "cutoff": query.speakers_only_after, "all_served": query.served is None,
            "served": sorted(query.served or ())})
        return offers_owed(rows)

    async def record_offers(self, offers: Sequence[tuple[int, str]],
                            messages: Sequence[Outbound],
                            settle: Sequence[tuple[int, float | None]] = (),
                            due_by: float = 0.0) -> list[PendingMessage]:
        """One round in one statement: who was shown which chat, the messages telling them,
        and when each chat read as due by ``due_by`` is next due."""
        if not (offers or messages or settle):
            return []
        rows = await self._rows(
            "SELECT record_offers(%s, %s, %s, %s, %s)",
            (json.dumps([list(o) for o in offers], ensure_ascii=False), _outbound_json(messages),
             json.dumps([list(d) for d in settle]), due_by, self.clock()))
        return _pending(rows[0][0], messages)

    async def record_offer(self, handover_id: int, volunteer: str,
                           messages: Sequence[Outbound]) -> list[PendingMessage]:
        return await self.record_offers([(handover_id, volunteer)], messages)

    async def take(self, handover_id: int, volunteer: str) -> bool:
        """Assign a waiting chat. Exactly one of two volunteers racing for it gets True, in
        whichever processes: the row is claimed FOR UPDATE SKIP LOCKED (a claim in progress
        elsewhere makes this one lose at once), and the volunteer's one open chat is kept by
        a unique index."""
        now = self.clock()
        try:
            return await self._count(_TAKE, {"id": handover_id, "volunteer": volunteer,
                                              "now": now}) == 1
        except psycopg.errors.UniqueViolation:  # the volunteer took another chat meanwhile
            return False

    async def requeue(self, handover_id: int, queue: str | None = None) -> bool:
        """Back to waiting (released, transferred, or the volunteer went silent)."""
        async with self._transaction() as conn:
            cursor = await conn.execute(
                "UPDATE handovers SET status = 'waiting', volunteer = NULL, assigned_at = NULL, "
                "queue = COALESCE(%s, queue), offers_due_at = %s "
                "WHERE id = %s AND status = 'assigned'", (queue, self.clock(), handover_id))
            if queue is not None:  # a new queue is offered afresh
                await conn.execute("DELETE FROM offers WHERE handover_id = %s", (handover_id,))
        return cursor.rowcount == 1

    async def close_entry(self, handover_id: int, reason: str) -> bool:
        return await self._count(
            "UPDATE handovers SET status = 'closed', closed_reason = %s "
            "WHERE id = %s AND status != 'closed'", (reason, handover_id)) == 1

    async def set_summary(self, handover_id: int, summary: str) -> bool:
        return await self._count(
            "UPDATE handovers SET summary = %s WHERE id = %s AND status = 'waiting'",
            (summary, handover_id)) == 1


async def _rewrite_on(conn: Connection, tables: Sequence[str]) -> bool:
    done = True
    await conn.execute(sql.SQL("SET lock_timeout = {}").format(sql.Literal(REWRITE_LOCK_WAIT)))
    try:
        for table in tables:
            try:
                await conn.execute(sql.SQL("VACUUM (FULL) {}").format(sql.Identifier(table)))
            except psycopg.errors.LockNotAvailable:
                done = False
    finally:
        await conn.execute("RESET lock_timeout")
    if not done:
        log.warning("could not rewrite every table after deleting: another connection kept "
                    "reading one; deleted rows stay in its files until the next clean-up")
    return done


async def _run(conn: Connection, query: Any, params: Any) -> tuple[list[tuple[Any, ...]], int]:
    cursor = await conn.execute(query, params)
    return await _result(cursor)


async def _result(cursor: psycopg.AsyncCursor[tuple[Any, ...]]) -> tuple[list[tuple[Any, ...]], int]:
    # The result's status, not cursor.description: that builds a column object per column.
    result = cursor.pgresult
    returned = result is not None and result.status == psycopg.pq.ExecStatus.TUPLES_OK
    return (await cursor.fetchall() if returned else []), cursor.rowcount


async def _migrate(conn: Connection, url: str) -> None:
    """Numbered migrations, each once, under a transaction advisory lock: processes starting
    together wait for the first to finish, then find nothing left to do."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s, 0)", (LOCK_MIGRATIONS,))
        await conn.execute("CREATE TABLE IF NOT EXISTS helpbot_schema (version integer NOT NULL)")
        cursor = await conn.execute("SELECT max(version) FROM helpbot_schema")
        row = await cursor.fetchone()
        version = int(row[0]) if row and row[0] is not None else 0
        if version > SCHEMA_VERSION:
            raise StorageUnavailable(
                f"the database {describe(url)} has schema version {version}, newer than this "
                f"bot ({SCHEMA_VERSION}); upgrade the bot or set BOT_DATABASE_URL to another "
                "database")
        for number in range(version, SCHEMA_VERSION):
            await conn.execute(MIGRATIONS[number].encode())  # several statements: no parameters
            await conn.execute("INSERT INTO helpbot_schema (version) VALUES (%s)", (number + 1,))


def _with_durability(url: str) -> str:
    """The bot's sessions commit without waiting for the WAL flush (synchronous_commit=off)
    unless the URL says otherwise, e.g. ``?options=-c%20synchronous_commit%3Don``."""
    options = str(conninfo_to_dict(url).get("options") or "")
    if "synchronous_commit" in options:
        return url
    return make_conninfo(url, options=f"{options} -c synchronous_commit=off".strip())


def _outbound_json(messages: Sequence[Outbound]) -> str:
    return json.dumps([outbox_row(m) for m in messages], ensure_ascii=False)


def _pending(ids: Sequence[int] | None, messages: Sequence[Outbound]) -> list[PendingMessage]:
    return [PendingMessage(int(i), m) for i, m in zip(ids or (), messages, strict=True)]


# synchronous_commit on for this statement's own transaction (set_config(..., true): local
# to it), whatever the session's setting: the platform is told "saved" once this returns.
_RECEIVE = """
    INSERT INTO inbox (update_id, chat_key, payload, received_at)
    SELECT r->>0, r->>1, r->>2, %(at)s::double precision
    FROM (SELECT set_config('synchronous_commit', 'on', true)) AS durable,
         jsonb_array_elements(%(rows)s::jsonb) WITH ORDINALITY AS t (r, n)
    WHERE NOT EXISTS (SELECT 1 FROM processed_updates WHERE update_id = r->>0)
    ORDER BY n
    ON CONFLICT (update_id) DO NOTHING
    RETURNING update_id
"""

_FORGET = (
    "DELETE FROM offers WHERE handover_id IN (SELECT id FROM handovers WHERE chat_key = %(chat)s)",
    "DELETE FROM sessions WHERE chat_key = %(chat)s",
    # Also what waits for others about the chat (migration 3): jsonb's @> on the about array.
    "DELETE FROM outbox WHERE chat_key = %(chat)s OR about @> jsonb_build_array(%(chat)s::text)",
    "DELETE FROM processed_updates WHERE chat_key = %(chat)s",
    "DELETE FROM handovers WHERE chat_key = %(chat)s",
)

_OLD_CLOSED_HANDOVERS = """
    SELECT id FROM handovers WHERE status = 'closed'
      AND greatest(created_at, coalesce(assigned_at, 0), coalesce(user_seen_at, 0),
                   coalesce(volunteer_seen_at, 0)) < %s
"""

_QUEUE_ORDER = "priority_rank, created_at, id"
_OFFERED_TO = "EXISTS (SELECT 1 FROM offers WHERE handover_id = h.id AND volunteer = %s)"

_QUEUE_POSITION = """
    SELECT 1 + (SELECT count(*) FROM handovers AS ahead
                WHERE ahead.status = 'waiting'
                  AND (ahead.priority_rank, ahead.created_at, ahead.id)
                    < (me.priority_rank, me.created_at, me.id))
    FROM handovers AS me WHERE me.id = %s AND me.status = 'waiting'
"""

_TAKE = """
    UPDATE handovers SET status = 'assigned', volunteer = %(volunteer)s, assigned_at = %(now)s,
                         volunteer_seen_at = %(now)s, user_seen_at = %(now)s
    WHERE id = (SELECT id FROM handovers WHERE id = %(id)s AND status = 'waiting'
                FOR UPDATE SKIP LOCKED)
      AND NOT EXISTS (SELECT 1 FROM handovers
                      WHERE volunteer = %(volunteer)s AND status = 'assigned')
"""

_OFFERS_OWED = f"""
    WITH vol AS (
        SELECT v->>0 AS key, v->>1 AS langs, v->>2 AS queues, (v->>3)::boolean AS every,
               (v->>4)::boolean AS fresh
        FROM jsonb_array_elements(%(volunteers)s::jsonb) AS v),
    due AS MATERIALIZED (
        SELECT id FROM handovers WHERE status = 'waiting' AND offers_due_at <= %(now)s),
    pairs (id, key) AS (
        SELECT due.id, vol.key FROM due CROSS JOIN vol
        UNION
        SELECT h.id, vol.key FROM vol JOIN handovers AS h ON vol.fresh AND h.status = 'waiting')
    SELECT pairs.key, {", ".join("h." + c for c in ENTRY_COLUMN_NAMES)}
    FROM pairs JOIN handovers AS h ON h.id = pairs.id JOIN vol ON vol.key = pairs.key
    WHERE (vol.every OR strpos(vol.queues, ',' || h.queue || ',') > 0
           OR NOT (%(all_served)s OR h.queue = ANY (%(served)s::text[])))
      AND (strpos(vol.langs, ',' || coalesce(nullif(h.language, ''), 'en') || ',') > 0
           OR h.created_at <= %(cutoff)s)
      AND NOT EXISTS (SELECT 1 FROM offers WHERE handover_id = h.id AND volunteer = pairs.key)
    UNION ALL
    SELECT NULL, {", ".join("h." + c for c in ENTRY_COLUMN_NAMES)}
    FROM due JOIN handovers AS h ON h.id = due.id
"""
