"""Shared fixtures: a real SQLite store on a temp file, the shipped flows, a wired dispatcher."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.dispatcher import Dispatcher
from bot.flowspec.library import FlowLibrary, default_flows_dir, load_library
from bot.i18n.localizer import Localizer
from bot.storage.sqlite import SqliteStore
from bot.transports.memory import MemoryTransport

FLOWS_DIR = default_flows_dir()

# offline_argos / no_network_attempts: a blocked network and a temporary argos home.
pytest_plugins = ["tests.support.offline"]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update", action="store_true", default=False,
                     help="rewrite 'expect' in tests/conversations/*.yaml from what the bot does now")


@pytest.fixture(scope="session")
def library() -> FlowLibrary:
    return load_library([FLOWS_DIR])


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    store = await SqliteStore.open(tmp_path / "bot.sqlite3")
    yield store
    await store.close()


@pytest.fixture
def transport() -> MemoryTransport:
    return MemoryTransport()


@pytest.fixture
def dispatcher(store: SqliteStore, library: FlowLibrary, transport: MemoryTransport) -> Dispatcher:
    return Dispatcher(store, lambda: library, Localizer(), transport)
