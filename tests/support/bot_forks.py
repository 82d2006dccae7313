"""``python -m tests.support.bot_forks``: starts bot processes for tests, several at the same
moment. It imports the bot once, then for each request (a JSON line on stdin: a folder, a
file to read as input, and the commands) forks one child per command; each child waits at a
barrier, then runs ``python -m bot COMMAND``'s main in that folder with its output in
``bot{N}.out`` / ``bot{N}.err``. Once all have exited it writes their exit codes as a JSON
line. The children are real processes on the real database; forking after the imports
means they reach it within a millisecond of each other, and saves the half of a start that
is Python importing the bot (see :class:`tests.support.bot_process.BotForks`)."""

from __future__ import annotations

import json
import os
import sys

import bot.__main__ as cli
import bot.app  # the imports `chat` and `run` make, done once, before any fork
import bot.transports.console  # noqa: F401


def _child(folder: str, typed: str, n: int, command: list[str], go: int) -> None:
    code = 1
    try:
        os.chdir(folder)
        for fd, path, flags in ((0, typed, os.O_RDONLY),
                                (1, f"bot{n}.out", os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
                                (2, f"bot{n}.err", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)):
            opened = os.open(path, flags, 0o600)
            os.dup2(opened, fd)
            os.close(opened)
        sys.stdin = open(0, encoding="utf-8", closefd=False)  # noqa: SIM115  (none of the starter's buffer)
        os.read(go, 1)  # returns when the starter closes the other end: all at once
        os.close(go)
        code = cli.main(command)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def main() -> None:
    while line := sys.stdin.readline():
        request = json.loads(line)
        go_in, go_out = os.pipe()
        children = []
        for n, command in enumerate(request["commands"]):
            pid = os.fork()
            if pid == 0:
                os.close(go_out)
                _child(request["folder"], request["stdin"], n, command, go_in)
            children.append(pid)
        os.close(go_in)
        os.close(go_out)  # the barrier opens
        codes = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in children]  # -N: signal N
        sys.stdout.write(json.dumps({"codes": codes}) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
