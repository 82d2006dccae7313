"""A bot process on a shared PostgreSQL database, for the multi-process tests.

    python -m tests.support.pg_worker turns URL CHAT COUNT TAG   # COUNT turns of one chat
    python -m tests.support.pg_worker take URL TAG ID...         # claim each chat, say who won
    python -m tests.support.pg_worker hold URL CHAT              # hold a chat mid-turn, forever
    python -m tests.support.pg_worker serve URL PREFIX           # a dispatcher for chats PREFIX*

``serve`` runs the real dispatcher and desk: it reads messages as JSON lines on stdin
({"chat": ..., "text": ..., "update": ...}), and writes every message it sends as a JSON line
on stdout ({"chat": ..., "key": ..., "text": ...}); it delivers only chats starting with PREFIX,
so messages owed to other chats are left for the process that serves them.
"""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import replace
from pathlib import Path

from bot.dispatcher import Dispatcher
from bot.engine.session import Session
from bot.flowspec.library import load_library
from bot.handover.desk import DeskSettings, HandoverDesk
from bot.i18n.catalog import CatalogSet
from bot.i18n.localizer import Localizer
from bot.messages import Inbound, Outbound
from bot.storage.base import TurnRecord
from bot.storage.postgres import PostgresStore
from bot.transports.memory import MemoryTransport

FIXTURE_FLOWS = Path(__file__).resolve().parents[1] / "fixtures" / "flows"


def say(line: object) -> None:
    print(json.dumps(line, ensure_ascii=False), flush=True)


async def turns(url: str, chat: str, count: int, tag: str) -> None:
    """Each turn appends its name to the session's list: a turn that started from a stale
    session (two processes inside one chat at once) would drop the other's name."""
    store = await PostgresStore.open(url)
    try:
        say({"ready": True})
        sys.stdin.readline()  # the go signal: both processes race from here
        for n in range(count):
            async with store.hold_chat(chat):
                state = await store.load_turn_state(chat, f"{tag}-{n}")
                session = state.session or Session(language="en", started=True)
                seen = json.loads(session.answers.get("turns", "[]"))
                seen.append(f"{tag}-{n}")
                session = replace(session, answers={**session.answers, "turns": json.dumps(seen)})
                await store.commit_turn(TurnRecord(chat, session, [Outbound(chat, f"{tag}-{n}")],
                                                   update_id=f"{tag}-{n}"))
    finally:
        await store.close()


async def take(url: str, tag: str, ids: list[int]) -> None:
    store = await PostgresStore.open(url)
    try:
        say({"ready": True})
        sys.stdin.readline()  # the go signal: both processes race from here
        won = [i for i in ids if await store.take(i, f"test:{tag}-{i}")]
        say({"won": won})
    finally:
        await store.close()


async def hold(url: str, chat: str) -> None:
    store = await PostgresStore.open(url)
    async with store.hold_chat(chat):
        await store.load_turn_state(chat, None)
        say({"holding": chat})
        await asyncio.sleep(3600)  # killed here, mid-turn


class PrefixTransport(MemoryTransport):
    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def owns(self, chat_key: str) -> bool:
        return chat_key.startswith(self.prefix)

    async def send(self, message: Outbound) -> None:
        await super().send(message)
        say({"chat": message.chat_key, "key": message.key, "text": message.text})


async def serve(url: str, prefix: str) -> None:
    store = await PostgresStore.open(url)
    library = load_library([FIXTURE_FLOWS])
    localizer = Localizer(CatalogSet())
    desk = HandoverDesk(store, localizer, None, DeskSettings(hours="00:00-00:00"))
    transport = PrefixTransport(prefix)
    dispatcher = Dispatcher(store, lambda: library, localizer, transport, desk=desk)
    follow = asyncio.create_task(dispatcher.follow_outbox(wait=0.5))
    loop = asyncio.get_running_loop()
    try:
        say({"ready": True})
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            message = json.loads(line)
            await dispatcher.handle(Inbound.from_text(message["chat"], message["text"],
                                                      message["update"]))
            say({"handled": message["update"]})
    finally:
        follow.cancel()
        await asyncio.gather(follow, return_exceptions=True)
        await store.close()


def main(argv: list[str]) -> None:
    command, url, *rest = argv
    if command == "turns":
        asyncio.run(turns(url, rest[0], int(rest[1]), rest[2]))
    elif command == "take":
        asyncio.run(take(url, rest[0], [int(i) for i in rest[1:]]))
    elif command == "hold":
        asyncio.run(hold(url, rest[0]))
    elif command == "serve":
        asyncio.run(serve(url, rest[0]))
    else:
        raise SystemExit(f"unknown command {command!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
