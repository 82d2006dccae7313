"""Several bot processes on one database: started at the same moment on a new file, and
sharing the timers (one runs them; another takes over when it dies)."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.config import Settings
from bot.engine.events import Handover
from bot.engine.session import Session
from bot.errors import ConfigError
from bot.flowspec.library import default_flows_dir, flow_files, load_library
from bot.flowspec.model import Priority
from bot.flowspec.yaml_cache import CACHE_FILE_NAME, YamlCache
from bot.handover.model import Volunteer
from bot.services.load import default_services_dir, directory_files
from bot.storage.base import TurnRecord
from bot.storage.sqlite import MIGRATIONS, SCHEMA_VERSION, TIMERS_LOCK_SUFFIX, SqliteStore
from tests.support.bot_process import BotForks, bot_env

ROUNDS = 20
BOTS = 4


def _schema(db: Path) -> tuple[int, list[tuple[str, str, str]]]:
    conn = sqlite3.connect(db)
    try:
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        rows = conn.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall()
    finally:
        conn.close()
    return version, [(str(t), str(n), str(s)) for t, n, s in rows]


def test_four_bots_started_at_once_on_a_new_database_all_start_and_share_it(
        tmp_path: Path) -> None:
    """The README's two terminals on one new database, four at once, twenty times: every
    bot starts, answers and exits 0; the schema is migrated once and whole; the flows
    snapshot and the parsed-YAML cache beside it are whole and nothing temporary is left."""
    reference = tmp_path / "reference.sqlite3"
    conn = sqlite3.connect(reference, isolation_level=None)
    for number, migration in enumerate(MIGRATIONS, start=1):
        conn.executescript(f"BEGIN; {migration}; PRAGMA user_version={number}; COMMIT;")
    conn.close()
    wanted_schema = _schema(reference)
    assert wanted_schema[0] == SCHEMA_VERSION
    shipped_flows = sorted(f.name for f in flow_files([default_flows_dir()]))
    with BotForks(tmp_path) as forks:
        for round_ in range(ROUNDS):
            _start_four_on_a_new_database(forks, tmp_path / f"round-{round_}", round_,
                                          wanted_schema, shipped_flows)


def _start_four_on_a_new_database(forks: BotForks, folder: Path, round_: int,
                                  wanted_schema: tuple[int, list[tuple[str, str, str]]],
                                  shipped_flows: list[str]) -> None:
    folder.mkdir()
    db = folder / "data" / "bot.sqlite3"
    ended = forks.start_together(
        [["chat", "--user", f"person{n}", "--db", str(db)] for n in range(BOTS)],
        folder, stdin="hi\n")
    for n, bot in enumerate(ended):
        # Nothing on stderr: the chat logs only warnings and errors there.
        assert (bot.returncode, bot.stderr) == (0, ""), f"round {round_}, bot {n}: {bot.stderr}"
        assert "[1] English" in bot.stdout, bot.stdout  # it answered: the language question
    assert _schema(db) == wanted_schema
    conn = sqlite3.connect(db)
    sessions = conn.execute("SELECT chat_key FROM sessions ORDER BY chat_key").fetchall()
    conn.close()
    assert sessions == [(f"console:person{n}",) for n in range(BOTS)]
    snapshot = db.parent / "flows-last-good"
    assert sorted(p.name for p in snapshot.iterdir()) == shipped_flows
    services = sorted(p.name for p in (db.parent / "services-last-good").iterdir())
    assert services == sorted(p.name for p in directory_files(default_services_dir()))
    with YamlCache(db.parent / CACHE_FILE_NAME) as cache:  # whole: every flow is in it
        load_library([default_flows_dir()])
    assert (cache.hits, cache.misses) == (len(shipped_flows), 0)
    left = sorted(p.name for p in db.parent.iterdir() if not p.name.endswith(("-wal", "-shm")))
    assert left == [".flows-last-good.lock", ".services-last-good.lock", "bot.sqlite3",
                    "bot.sqlite3" + TIMERS_LOCK_SUFFIX, "flows-last-good", CACHE_FILE_NAME,
                    "services-last-good"]


#: What a process logs when it takes over the shared timers.
LEADS = "this process runs the shared timers now"
#: Seconds until what the test plants is due: a session past retention, a chat past the
#: delay before it is offered to a volunteer who does not speak its language.
DUE = 2.0


class _Chat:
    """``python -m bot chat --user USER`` on the test's database, its input kept open."""

    def __init__(self, folder: Path, user: str, env: dict[str, str]) -> None:
        self.user, self.folder, self.env = user, folder, env
        self.out = folder / f"{user}.out"
        self.log = folder / f"{user}.log"
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        with self.out.open("w") as out, self.log.open("w") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot", "chat", "--user", self.user, cwd=self.folder,
                env=bot_env(self.folder, **self.env), stdin=asyncio.subprocess.PIPE,
                stdout=out, stderr=log)

    def say(self, text: str) -> None:
        assert self.process is not None and self.process.stdin is not None
        self.process.stdin.write(f"{text}\n".encode())

    def logged(self) -> str:
        return self.log.read_text()

    def printed(self) -> str:
        return self.out.read_text()

    def signal(self, sig: int) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.kill()
            await self.process.wait()


async def _until(check: Callable[[], object], what: str, within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not within {within} s: {what}")


async def _plant(store: SqliteStore, n: int) -> int:
    """A session that will be past retention, and a chat in English waiting for the
    volunteer (who reads Persian only), both due in DUE seconds; returns the chat's id."""
    await store.commit_turn(TurnRecord(f"console:idle{n}", Session(language="en")))
    await store.commit_turn(TurnRecord(
        f"console:person{n}", Session(language="en"),
        handovers=[Handover("f", "s", "general", Priority.NORMAL, "needs help")]))
    entry = await store.open_entry(f"console:person{n}")
    assert entry is not None
    return entry.id


async def test_one_process_runs_the_timers_and_another_takes_over_when_it_is_killed(
        tmp_path: Path) -> None:
    """Two processes on one database (the README's two terminals): only the one holding
    the timers lock offers and purges (stopped with SIGSTOP, nothing happens while the
    other one keeps running), the other still shows what is owed to its own chat, and once
    the leader is killed -9 the other takes the timers over within a round."""
    db = tmp_path / "bot.sqlite3"
    store = await SqliteStore.open(db)
    env = {"BOT_DB_PATH": str(db), "BOT_LOG_LEVEL": "INFO", "BOT_DESK_CLOCK_SECONDS": "0.2",
           "BOT_PURGE_EVERY_HOURS": str(0.3 / 3600), "BOT_OFFER_DELAY_SECONDS": str(DUE),
           "BOT_RETENTION_DAYS": str(DUE / 86400)}
    person, volunteer = _Chat(tmp_path, "alice", env), _Chat(tmp_path, "vol", env)
    try:
        await store.add_volunteer(Volunteer("console:vol", "Vol", ("fa",), ("*",), True))
        await person.start()  # first, so it is the one that leads
        await _until(lambda: LEADS in person.logged(), "the first process to lead the timers")
        await volunteer.start()
        volunteer.say("/queue")
        await _until(volunteer.printed, "the second process to answer")

        first = await _plant(store, 1)
        person.signal(signal.SIGSTOP)  # alive and holding the lock, doing nothing
        await asyncio.sleep(DUE + 2.0)  # well past due: four rounds of the other's clock
        assert await store.offers_of(first) == set()
        assert await store.load_session("console:idle1") is not None
        assert LEADS not in volunteer.logged()

        person.signal(signal.SIGCONT)
        await _until(lambda: f"New chat waiting: #{first}" in volunteer.printed(),
                     "the leader's offer, shown by the volunteer's own process")
        assert await store.offers_of(first) == {"console:vol"}
        assert await store.load_session("console:idle1") is None
        assert LEADS not in volunteer.logged()

        person.signal(signal.SIGKILL)
        assert person.process is not None
        await person.process.wait()
        second = await _plant(store, 2)
        await _until(lambda: LEADS in volunteer.logged(), "the other process to take over")
        await _until(lambda: f"New chat waiting: #{second}" in volunteer.printed(),
                     "an offer by the process that took over")
        assert await store.offers_of(second) == {"console:vol"}
        await _until(lambda: _session_gone(db, "console:idle2"), "its retention purge")

        volunteer.signal(signal.SIGTERM)
        assert volunteer.process is not None
        assert await asyncio.wait_for(volunteer.process.wait(), 30) == 0
        assert "Traceback" not in volunteer.logged()
        assert volunteer.logged().count(LEADS) == 1
    finally:
        await person.stop()
        await volunteer.stop()
        await store.close()


def _session_gone(db: Path, chat_key: str) -> bool:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT 1 FROM sessions WHERE chat_key = ?",
                            (chat_key,)).fetchone() is None
    finally:
        conn.close()


def test_the_timers_intervals_are_read_from_the_environment() -> None:
    settings = Settings.from_env({"BOT_PURGE_EVERY_HOURS": "0.5", "BOT_DESK_CLOCK_SECONDS": "3"})
    assert (settings.purge_every_seconds, settings.desk_clock_seconds) == (1800.0, 3.0)
    assert Settings.from_env({}).purge_every_seconds == 6 * 3600
    with pytest.raises(ConfigError, match="BOT_DESK_CLOCK_SECONDS must be a positive number"):
        Settings.from_env({"BOT_DESK_CLOCK_SECONDS": "0"})
