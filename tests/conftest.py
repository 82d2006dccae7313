"""Shared fixtures: a real store (SQLite on a temp file; in modules marked ``backends``, also
PostgreSQL on a throwaway server), the shipped flows, a wired dispatcher."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.dispatcher import Dispatcher
from bot.flowspec.library import FlowLibrary, default_flows_dir, load_library
from bot.i18n.localizer import Localizer
from bot.storage.sqlite import SqliteStore
from bot.transports.memory import MemoryTransport
from tests.support.postgres import PostgresServer, find_bindir, missing_reason

FLOWS_DIR = default_flows_dir()

# offline_argos / no_network_attempts: a blocked network and a temporary argos home.
pytest_plugins = ["tests.support.offline"]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update", action="store_true", default=False,
                     help="rewrite 'expect' in tests/conversations/*.yaml from what the bot does now")


@pytest.fixture(scope="session")
def library() -> FlowLibrary:
    return load_library([FLOWS_DIR])


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "backends: run the module's store tests on SQLite and "
                            "on PostgreSQL (the backend fixture)")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames and metafunc.definition.get_closest_marker("backends"):
        metafunc.parametrize("backend", ["sqlite", "postgres"], indirect=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One throwaway server for the session; each test gets a database of its own."""
    bindir = find_bindir()
    if bindir is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(missing_reason() + " (CI=true: the PostgreSQL tests must run)")
        pytest.skip(missing_reason())
    server = PostgresServer(bindir)
    try:
        server.start()
        yield server
    finally:
        server.stop()


class Backend:
    """Opens stores on one database of one kind; each open sees what the last one wrote."""

    def __init__(self, kind: str, where: str, server: PostgresServer | None = None) -> None:
        self.kind = kind
        self.where = where  # the SQLite file, or the PostgreSQL URL
        self.server = server

    def files(self) -> list[Path]:
        """The files holding the database's rows, as someone with the disk would read them.
        PostgreSQL: a checkpoint first (pages wait in its buffers till then), then every table
        and index file of the database (its write-ahead log is out of scope: see
        bot/storage/postgres.py)."""
        if self.server is None:
            return [Path(f"{self.where}{suffix}") for suffix in ("", "-wal", "-shm")]
        import psycopg

        with psycopg.connect(self.where, autocommit=True) as conn:
            conn.execute("CHECKPOINT")
        return sorted(p for p in self.server.database_files(self.where).rglob("*") if p.is_file())

    def settings(self, **values: Any) -> Any:
        """Settings that select this database (for run_bot and the CLI)."""
        from bot.config import Settings

        if self.server is None:
            return Settings(db_path=Path(self.where), **values)
        return Settings(database_url=self.where, **values)

    async def open(self, clock: Callable[[], float] | None = None) -> Any:
        extra: dict[str, Any] = {} if clock is None else {"clock": clock}
        if self.kind == "postgres":
            from bot.storage.postgres import PostgresStore

            return await PostgresStore.open(self.where, **extra)
        return await SqliteStore.open(self.where, **extra)


@pytest.fixture
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    kind = getattr(request, "param", "sqlite")
    if kind == "postgres":
        server: PostgresServer = request.getfixturevalue("postgres_server")
        return Backend(kind, server.new_database(), server)
    return Backend(kind, str(tmp_path / "bot.sqlite3"))


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[Any]:
    store = await backend.open()
    yield store
    await store.close()


@pytest.fixture
def transport() -> MemoryTransport:
    return MemoryTransport()


@pytest.fixture
def dispatcher(store: SqliteStore, library: FlowLibrary, transport: MemoryTransport) -> Dispatcher:
    return Dispatcher(store, lambda: library, Localizer(), transport)
