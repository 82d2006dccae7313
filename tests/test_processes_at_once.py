"""Several bot processes on one database: started at the same moment on a new file, and
sharing the timers (one runs them; another takes over when it dies)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from bot.flowspec.library import default_flows_dir, flow_files, load_library
from bot.flowspec.yaml_cache import CACHE_FILE_NAME, YamlCache
from bot.storage.sqlite import MIGRATIONS, SCHEMA_VERSION
from tests.support.bot_process import start_together

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
    for round_ in range(ROUNDS):
        folder = tmp_path / f"round-{round_}"
        folder.mkdir()
        db = folder / "data" / "bot.sqlite3"
        ended = start_together(
            [["chat", "--user", f"person{n}", "--db", str(db)] for n in range(BOTS)],
            folder, stdin="hi\n")
        for n, bot in enumerate(ended):
            # Nothing on stderr: the chat logs only warnings and errors there.
            assert (bot.returncode, bot.stderr) == (0, ""), f"round {round_}, bot {n}"
            assert "[1] English" in bot.stdout, bot.stdout  # it answered: the language question
        assert _schema(db) == wanted_schema
        conn = sqlite3.connect(db)
        sessions = conn.execute("SELECT chat_key FROM sessions ORDER BY chat_key").fetchall()
        conn.close()
        assert sessions == [(f"console:person{n}",) for n in range(BOTS)]
        snapshot = db.parent / "flows-last-good"
        assert sorted(p.name for p in snapshot.iterdir()) == shipped_flows
        with YamlCache(db.parent / CACHE_FILE_NAME) as cache:  # whole: every flow is in it
            load_library([default_flows_dir()])
        assert (cache.hits, cache.misses) == (len(shipped_flows), 0)
        left = sorted(p.name for p in db.parent.iterdir() if not p.name.endswith(("-wal", "-shm")))
        assert left == [".flows-last-good.lock", "bot.sqlite3", "flows-last-good", CACHE_FILE_NAME]
