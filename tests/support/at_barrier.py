"""``python -m tests.support.at_barrier READY_FD GO_FD ARGS...``: ``python -m bot ARGS``, its
imports done first, then waiting at a barrier, so that several processes reach the database
within a millisecond or so of each other (Python's own start varies by more than a start
of the bot takes). Used by :func:`tests.support.bot_process.start_together`."""

from __future__ import annotations

import os
import sys

import bot.__main__ as cli
import bot.app  # the imports `chat` and `run` make, done before the barrier
import bot.transports.console  # noqa: F401

if __name__ == "__main__":
    ready, go = int(sys.argv[1]), int(sys.argv[2])
    os.write(ready, b".")
    os.close(ready)
    os.read(go, 1)  # returns when the test closes the other end: everyone at once
    os.close(go)
    sys.exit(cli.main(sys.argv[3:]))
