"""A message the platform was told is saved survives a crash of the PostgreSQL server, although
the bot's sessions commit turns without waiting for the disk (synchronous_commit=off)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bot.messages import Inbound, InboundKind
from bot.storage.postgres import PostgresStore
from tests.support.postgres import PostgresServer, find_bindir, missing_reason

ROUNDS = 5


@pytest.fixture
def durable_server() -> Iterator[PostgresServer]:
    """A server of its own (it is crashed), at the server's durable defaults (fsync on)."""
    bindir = find_bindir()
    if bindir is None:  # as the shared fixture: a failure under CI (conftest.postgres_server)
        import os

        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(missing_reason() + " (CI=true: the PostgreSQL tests must run)")
        pytest.skip(missing_reason())
    server = PostgresServer(bindir)
    try:
        server.start(fast=False)
        yield server
    finally:
        server.stop()


async def test_a_received_message_survives_a_server_crash_at_once(
        durable_server: PostgresServer) -> None:
    url = durable_server.new_database()
    for round_number in range(ROUNDS):  # each round: receive, crash the server right away
        store = await PostgresStore.open(url)
        inbound = Inbound(chat_key="tg:1", kind=InboundKind.TEXT, text=f"help {round_number}",
                          update_id=f"u{round_number}")
        try:
            assert await store.receive([inbound]) == [inbound]
            durable_server.crash_and_restart()
        finally:
            await store.close()
        store = await PostgresStore.open(url)
        try:
            texts = [message.text for message, _ in await store.inbox()]
        finally:
            await store.close()
        assert texts == [f"help {n}" for n in range(round_number + 1)]
