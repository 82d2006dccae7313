"""The PostgreSQL store's turn path in shared trips: the loads, commits and releases of many
chats, each kind in one statement, on one connection per process that holds their locks.

A turn alone is three round trips and three transactions (lock and read, commit, delete the
sent replies and unlock); with forty chats answered at once that is 120 statements, and the
round trips and per-statement work cost the bot and the server more than the turns' SQL. So
requests arriving while a trip is out go together in the next one
(:class:`bot.storage.batching.Batcher`):

- ``load_turns``: try-locks the chats that ask (``pg_try_advisory_lock``: never waits, so
  one chat busy in another process holds up no other chat of the batch), then reads each
  locked chat's turn state with a snapshot taken after the locks. A busy chat comes back as
  such; the store then waits for it on a connection of its own.
- ``commit_turns``: many turns in one transaction, each as the one-turn ``commit_turn``
  function writes it. If the batch fails, each turn is retried alone, so only the turn at
  fault gets the error.
- ``release_chats``: the sent replies' deletion and the unlocks, for many chats at once.

Advisory locks belong to the connection that took them, so the unlocks go on the same
connection. If it breaks, the server has dropped its locks: the connection is replaced, its
generation counts up, and a commit for a chat locked under an older generation is refused
(another process may have served the chat meanwhile), as a commit on a broken pinned
connection would fail.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Sequence
from typing import Any

import psycopg

from bot.errors import StorageUnavailable
from bot.storage.batching import Batcher

__all__ = ["COMMIT_TURNS_ABOUT", "TURN_FUNCTIONS", "TurnBatches", "commit_turns"]

Connection = psycopg.AsyncConnection[tuple[Any, ...]]
Row = tuple[Any, ...]

#: A migration (see bot/storage/postgres.py MIGRATIONS): the batch functions.
TURN_FUNCTIONS = """
    -- Many chats' turn state; the chats asking for it are try-locked first. Row n is chat n
    -- (1-based); busy: its lock is held elsewhere (nothing else read). The reads run after
    -- the locks, with a snapshot of their own (a statement of a VOLATILE function).
    CREATE FUNCTION load_turns(chats text[], upds text[], locks boolean[])
        RETURNS TABLE (n integer, busy boolean, session_data text, duplicate boolean,
                       v_key text, v_name text, v_languages text, v_queues text,
                       v_available boolean, h_id bigint, h_chat text, h_flow text,
                       h_queue text, h_priority text, h_summary text, h_language text,
                       h_created double precision, h_status text, h_volunteer text,
                       h_assigned double precision, h_user_seen double precision,
                       h_volunteer_seen double precision)
        LANGUAGE plpgsql VOLATILE AS $$
    DECLARE
        got boolean[];
    BEGIN
        SELECT array_agg(NOT l OR pg_try_advisory_lock(7160001, hashtext(c)) ORDER BY i)
            INTO got FROM unnest(chats, locks) WITH ORDINALITY AS t (c, l, i);
        RETURN QUERY
            SELECT t.i::integer, NOT got[t.i], s.data,
                   EXISTS (SELECT 1 FROM processed_updates p WHERE p.update_id = t.u),
                   v.chat_key, v.name, v.languages, v.queues, v.available,
                   h.id, h.chat_key, h.flow, h.queue, h.priority, h.summary, h.language,
                   h.created_at, h.status, h.volunteer, h.assigned_at, h.user_seen_at,
                   h.volunteer_seen_at
            FROM unnest(chats, upds) WITH ORDINALITY AS t (c, u, i)
            LEFT JOIN sessions AS s ON got[t.i] AND s.chat_key = t.c
            LEFT JOIN volunteers AS v ON got[t.i] AND v.chat_key = t.c
            LEFT JOIN LATERAL (SELECT * FROM handovers AS o
                               WHERE got[t.i] AND o.chat_key = t.c AND o.status != 'closed'
                               ORDER BY o.id DESC LIMIT 1) AS h ON true
            ORDER BY t.i;
    END $$;

    -- Many turns of distinct chats in one transaction, set-wise (each statement for every
    -- turn at once). Each element is a turn as a JSON array: chat, session data, update id,
    -- replies ([[chat, payload], ...]), new handovers, language, time, seen handover id,
    -- seen side, earlier update ids read with it. Returns the replies' outbox ids, turn
    -- after turn, each turn's in order.
    CREATE FUNCTION commit_turns(turns jsonb) RETURNS bigint[] LANGUAGE plpgsql AS $$
    DECLARE
        ids bigint[];
    BEGIN
        INSERT INTO sessions (chat_key, data, updated_at)
            SELECT t->>0, t->>1, (t->>6)::double precision
            FROM jsonb_array_elements(turns) AS t WHERE t->>1 IS NOT NULL
            ON CONFLICT (chat_key) DO UPDATE SET data = excluded.data,
                                                 updated_at = excluded.updated_at;
        -- A person and their volunteer may both be heard from in one batch: one row each.
        UPDATE handovers SET user_seen_at = coalesce(seen.by_user, user_seen_at),
                             volunteer_seen_at = coalesce(seen.by_volunteer, volunteer_seen_at)
            FROM (SELECT (t->>7)::bigint AS id,
                         max((t->>6)::double precision) FILTER (WHERE t->>8 = 'user') AS by_user,
                         max((t->>6)::double precision) FILTER (WHERE t->>8 = 'volunteer')
                             AS by_volunteer
                  FROM jsonb_array_elements(turns) AS t WHERE t->>7 IS NOT NULL
                  GROUP BY 1) AS seen
            WHERE handovers.id = seen.id;
        WITH read AS (
            SELECT r.value AS update_id, t->>0 AS chat, (t->>6)::double precision AS at
            FROM jsonb_array_elements(turns) AS t,
                 jsonb_array_elements_text(t->9 || coalesce(t->2, 'null'::jsonb)) AS r
            WHERE r.value IS NOT NULL),
        gone AS (DELETE FROM inbox WHERE update_id IN (SELECT update_id FROM read))
        INSERT INTO processed_updates (update_id, chat_key, at)
            SELECT update_id, chat, at FROM read ON CONFLICT DO NOTHING;
        -- Identity values are drawn in the insert's order, so sorted they follow it.
        WITH added AS (
            INSERT INTO outbox (chat_key, payload, created_at)
                SELECT m->>0, m->>1, (t->>6)::double precision
                FROM jsonb_array_elements(turns) WITH ORDINALITY AS a (t, i),
                     jsonb_array_elements(t->3) WITH ORDINALITY AS b (m, j)
                ORDER BY i, j
                RETURNING id)
        SELECT coalesce(array_agg(id ORDER BY id), '{}') INTO ids FROM added;
        PERFORM pg_notify('helpbot_outbox', chat)
            FROM (SELECT DISTINCT m->>0 AS chat
                  FROM jsonb_array_elements(turns) AS t, jsonb_array_elements(t->3) AS m
                  WHERE m->>0 IS DISTINCT FROM t->>0) AS others;
        UPDATE handovers SET status = 'closed', closed_reason = 'replaced'
            WHERE status = 'waiting' AND chat_key IN (
                SELECT t->>0 FROM jsonb_array_elements(turns) AS t
                WHERE jsonb_array_length(t->4) > 0);
        INSERT INTO handovers (chat_key, flow, step, queue, priority, summary, language,
                               created_at, user_seen_at)
            SELECT t->>0, h->>'flow', h->>'step', h->>'queue', h->>'priority', h->>'summary',
                   t->>5, (t->>6)::double precision, (t->>6)::double precision
            FROM jsonb_array_elements(turns) WITH ORDINALITY AS a (t, i),
                 jsonb_array_elements(t->4) WITH ORDINALITY AS b (h, n)
            ORDER BY i, n;
        RETURN ids;
    END $$;

    -- Leaving many chats: their sent replies leave the outbox (not waited on to disk: lost
    -- to a server crash, they are sent again), their locks are released.
    CREATE FUNCTION release_chats(sent bigint[], chats text[]) RETURNS void
        LANGUAGE plpgsql AS $$
    BEGIN
        IF cardinality(sent) > 0 THEN
            PERFORM set_config('synchronous_commit', 'off', true);
            DELETE FROM outbox WHERE id = ANY (sent);
        END IF;
        PERFORM pg_advisory_unlock(7160001, hashtext(c)) FROM unnest(chats) AS c;
    END $$;
"""

#: A migration (see bot/storage/postgres.py MIGRATIONS): commit_turns as in TURN_FUNCTIONS,
#: each reply now [chat, payload] or [chat, payload, [chats it is about]] (the outbox's
#: about column; absent, it reads NULL).
COMMIT_TURNS_ABOUT = """
    CREATE OR REPLACE FUNCTION commit_turns(turns jsonb) RETURNS bigint[] LANGUAGE plpgsql AS $$
    DECLARE
        ids bigint[];
    BEGIN
        INSERT INTO sessions (chat_key, data, updated_at)
            SELECT t->>0, t->>1, (t->>6)::double precision
            FROM jsonb_array_elements(turns) AS t WHERE t->>1 IS NOT NULL
            ON CONFLICT (chat_key) DO UPDATE SET data = excluded.data,
                                                 updated_at = excluded.updated_at;
        -- A person and their volunteer may both be heard from in one batch: one row each.
        UPDATE handovers SET user_seen_at = coalesce(seen.by_user, user_seen_at),
                             volunteer_seen_at = coalesce(seen.by_volunteer, volunteer_seen_at)
            FROM (SELECT (t->>7)::bigint AS id,
                         max((t->>6)::double precision) FILTER (WHERE t->>8 = 'user') AS by_user,
                         max((t->>6)::double precision) FILTER (WHERE t->>8 = 'volunteer')
                             AS by_volunteer
                  FROM jsonb_array_elements(turns) AS t WHERE t->>7 IS NOT NULL
                  GROUP BY 1) AS seen
            WHERE handovers.id = seen.id;
        WITH read AS (
            SELECT r.value AS update_id, t->>0 AS chat, (t->>6)::double precision AS at
            FROM jsonb_array_elements(turns) AS t,
                 jsonb_array_elements_text(t->9 || coalesce(t->2, 'null'::jsonb)) AS r
            WHERE r.value IS NOT NULL),
        gone AS (DELETE FROM inbox WHERE update_id IN (SELECT update_id FROM read))
        INSERT INTO processed_updates (update_id, chat_key, at)
            SELECT update_id, chat, at FROM read ON CONFLICT DO NOTHING;
        -- Identity values are drawn in the insert's order, so sorted they follow it.
        WITH added AS (
            INSERT INTO outbox (chat_key, payload, created_at, about)
                SELECT m->>0, m->>1, (t->>6)::double precision, m->2
                FROM jsonb_array_elements(turns) WITH ORDINALITY AS a (t, i),
                     jsonb_array_elements(t->3) WITH ORDINALITY AS b (m, j)
                ORDER BY i, j
                RETURNING id)
        SELECT coalesce(array_agg(id ORDER BY id), '{}') INTO ids FROM added;
        PERFORM pg_notify('helpbot_outbox', chat)
            FROM (SELECT DISTINCT m->>0 AS chat
                  FROM jsonb_array_elements(turns) AS t, jsonb_array_elements(t->3) AS m
                  WHERE m->>0 IS DISTINCT FROM t->>0) AS others;
        UPDATE handovers SET status = 'closed', closed_reason = 'replaced'
            WHERE status = 'waiting' AND chat_key IN (
                SELECT t->>0 FROM jsonb_array_elements(turns) AS t
                WHERE jsonb_array_length(t->4) > 0);
        INSERT INTO handovers (chat_key, flow, step, queue, priority, summary, language,
                               created_at, user_seen_at)
            SELECT t->>0, h->>'flow', h->>'step', h->>'queue', h->>'priority', h->>'summary',
                   t->>5, (t->>6)::double precision, (t->>6)::double precision
            FROM jsonb_array_elements(turns) WITH ORDINALITY AS a (t, i),
                 jsonb_array_elements(t->4) WITH ORDINALITY AS b (h, n)
            ORDER BY i, n;
        RETURN ids;
    END $$;
"""

#: (chat key, update id or None, take the chat's lock)
LoadRequest = tuple[str, str | None, bool]
#: (commit_turn's arguments, the generation the chat was locked under, or None: not locked)
CommitRequest = tuple[list[Any], int | None]
#: (the chat to unlock or None, sent reply ids, the generation it was locked under)
ReleaseRequest = tuple[str | None, list[int], int]


class TurnBatches:
    """The turn path's shared trips on one connection (see the module's notes)."""

    def __init__(self, url: str, connect_timeout: int) -> None:
        self._url = url
        self._connect_timeout = connect_timeout
        self._conn: Connection | None = None
        #: Counts up each time the connection (and with it every lock it held) is replaced.
        self.generation = 0
        self._background: set[asyncio.Future[None]] = set()  # unlocks nobody waits for
        #: Trips by kind ("load", "commit", "release").
        self.trips: Counter[str] = Counter()
        self._loads: Batcher[LoadRequest, tuple[Row | None, int]] = Batcher(self._load_batch)
        self._commits: Batcher[CommitRequest, list[int]] = Batcher(self._commit_batch)
        self._releases: Batcher[ReleaseRequest, None] = Batcher(self._release_batch)

    async def close(self) -> None:
        await self._loads.idle()
        await asyncio.gather(*self._background, return_exceptions=True)  # after the loads
        for batcher in (self._commits, self._releases):
            await batcher.idle()
        if self._conn is not None:
            await self._conn.close()  # the server releases any lock still on it

    async def _connection(self) -> Connection:
        if self._conn is None or self._conn.closed or self._conn.broken:
            if self._conn is not None:
                await self._conn.close()
                self.generation += 1
            self._conn = await psycopg.AsyncConnection.connect(
                self._url, autocommit=True, connect_timeout=self._connect_timeout)
        return self._conn

    # -- the callers' side -------------------------------------------------------------

    async def load(self, chat_key: str, update_id: str | None, lock: bool) -> tuple[Row | None, int]:
        """The chat's load_turns row (None: busy, locked in another process), and the
        generation of the connection its lock is on."""
        if not lock:
            return await self._loads.submit((chat_key, update_id, lock))
        trip = asyncio.ensure_future(self._loads.submit((chat_key, update_id, lock)))
        try:
            return await asyncio.shield(trip)
        except asyncio.CancelledError:
            # The trip goes on and may take the lock for nobody: give it back then.
            trip.add_done_callback(lambda done: self._give_back(chat_key, done))
            raise

    def _give_back(self, chat_key: str, trip: asyncio.Future[tuple[Row | None, int]]) -> None:
        if trip.cancelled() or trip.exception() is not None or trip.result()[0] is None:
            return
        task = asyncio.ensure_future(self.release(chat_key, [], trip.result()[1]))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def commit(self, arguments: list[Any], generation: int | None) -> list[int]:
        """``commit_turn``'s arguments; the outbox ids of the turn's replies."""
        return await self._commits.submit((arguments, generation))

    async def release(self, chat_key: str | None, sent: list[int], generation: int) -> None:
        await self._releases.submit((chat_key, sent, generation))

    # -- the trips -------------------------------------------------------------------------

    async def _load_batch(self, requests: list[LoadRequest]
                          ) -> Sequence[tuple[Row | None, int] | BaseException]:
        conn = await self._connection()
        chats = [r[0] for r in requests]
        locks = [r[2] for r in requests]
        self.trips["load"] += 1
        try:
            cursor = await conn.execute("SELECT * FROM load_turns(%s, %s, %s)",
                                        (chats, [r[1] for r in requests], locks))
            rows = await cursor.fetchall()
        except psycopg.Error:
            # Session locks outlive a failed statement: give back any this one took.
            if not conn.broken:
                wanted = [c for c, lock in zip(chats, locks, strict=True) if lock]
                await conn.execute("SELECT release_chats('{}', %s)", (wanted,))
            raise
        return [(None if row[1] else row, self.generation) for row in rows]

    async def _commit_batch(self, requests: list[CommitRequest]
                            ) -> Sequence[list[int] | BaseException]:
        conn = await self._connection()  # first: it may be a new one, of a new generation
        outcomes: list[list[int] | BaseException] = []
        live: list[int] = []
        for index, (_, generation) in enumerate(requests):
            if generation is not None and generation != self.generation:
                outcomes.append(StorageUnavailable(
                    "lost the connection holding the chat's lock before its turn was saved; "
                    "the turn was not saved and its message stays in the inbox"))
            else:
                outcomes.append([])
                live.append(index)
        if not live:
            return outcomes
        self.trips["commit"] += 1
        turns = [requests[i][0] for i in live]
        if len({turn[0] for turn in turns}) == len(turns):  # set-wise needs distinct chats
            try:
                for index, ids in zip(live, await commit_turns(conn, turns), strict=True):
                    outcomes[index] = ids
                return outcomes
            except psycopg.Error as exc:
                if conn.broken or len(live) == 1:
                    for index in live:
                        outcomes[index] = exc
                    return outcomes
        for index in live:  # alone, in order: only the turn at fault gets the error
            try:
                outcomes[index] = (await commit_turns(conn, [requests[index][0]]))[0]
            except psycopg.Error as alone:
                outcomes[index] = alone
        return outcomes

    async def _release_batch(self, requests: list[ReleaseRequest]) -> Sequence[None]:
        conn = await self._connection()
        sent = [i for _, ids, _ in requests for i in ids]
        # Locks taken on a replaced connection went with it.
        chats = [c for c, _, g in requests if c is not None and g == self.generation]
        self.trips["release"] += 1
        await conn.execute("SELECT release_chats(%s, %s)", (sent, chats))
        return [None] * len(requests)


async def commit_turns(conn: Connection, turns: list[list[Any]]) -> list[list[int]]:
    """Commit turns of distinct chats in one statement (commit_turns); their outbox ids."""
    cursor = await conn.execute("SELECT commit_turns(%s)", (json.dumps(turns, ensure_ascii=False),))
    row = await cursor.fetchone()
    ids = list(row[0] if row and row[0] else ())
    split, start = [], 0
    for turn in turns:
        split.append(ids[start:start + len(turn[3])])
        start += len(turn[3])
    return split
