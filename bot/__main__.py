"""Command line: python -m bot {chat,run,validate} ...

The only place that prints errors for people and chooses exit codes.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from bot.config import Settings, check_language
from bot.errors import BotError, FlowLoadError
from bot.flowspec.library import load_library

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bot", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    chat = sub.add_parser("chat", help="talk to the bot in this terminal (or from piped input)")
    chat.add_argument("--lang", help="start in this language instead of asking (en, ps, prs, fa, ur, hi)")
    chat.add_argument("--db", type=Path, help="SQLite file (default: BOT_DB_PATH or data/bot.sqlite3)")
    chat.add_argument("--user", default="local", help="who is chatting (separate conversations)")

    sub.add_parser("run", help="serve Telegram (needs TELEGRAM_BOT_TOKEN)")

    validate = sub.add_parser("validate", help="check flow files; exit 1 listing every problem")
    validate.add_argument("paths", nargs="*", type=Path, help="files or folders (default: flows/)")
    return parser


def _validate(paths: Sequence[Path], settings: Settings) -> int:
    targets = list(paths) or [settings.flows_dir]
    try:
        library = load_library(targets)
    except FlowLoadError as exc:
        for problem in exc.problems:
            print(problem)
        print(f"\n{len(exc.problems)} problem(s) found; nothing was changed.", file=sys.stderr)
        return 1
    steps = sum(len(f.steps) for f in library.flows.values())
    print(f"OK: {len(library.flows)} flows, {steps} steps, {len(library.strings())} texts.")
    return 0


def _chat(args: argparse.Namespace, settings: Settings) -> int:
    from bot.app import run_bot
    from bot.transports.console import ConsoleTransport

    language = check_language(args.lang)
    transport = ConsoleTransport(user=args.user)
    if sys.stdin.isatty():
        print("Type a message to start; Ctrl-D to leave.", file=sys.stderr)
    asyncio.run(run_bot(settings, transport, db_path=args.db, language=language,
                        reopen=transport.chat_key, rate_limit=False))
    return 0


def _run(settings: Settings) -> int:
    if not settings.telegram_token:
        print("TELEGRAM_BOT_TOKEN is not set.\n"
              "  Get a token from @BotFather and run: TELEGRAM_BOT_TOKEN=123:abc python -m bot run\n"
              "  To try the bot without Telegram, use the local chat: python -m bot chat",
              file=sys.stderr)
        return 2
    print("The Telegram transport is not wired in yet; use: python -m bot chat", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = Settings.from_env()
        # The local chat prints to the same terminal: only warnings, unless asked.
        level = "WARNING" if args.command == "chat" and "BOT_LOG_LEVEL" not in os.environ \
            else settings.log_level
        logging.basicConfig(level=level, stream=sys.stderr,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        if args.command == "validate":
            return _validate(args.paths, settings)
        if args.command == "chat":
            return _chat(args, settings)
        return _run(settings)
    except FlowLoadError as exc:
        print("The flows could not be loaded:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    except BotError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
