"""A database that cannot be used stops the command line with one clear line, exit 2.

Each fault is real and works as root too (permission bits do not stop root, so a read-only
folder is a folder of sysfs there, where no one may create files); each command runs as a
subprocess, as a person would start it.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Fault:
    db: Path
    says: str  # what the one line must explain
    limit_file_size: bool = False


def parent_is_a_file(tmp: Path) -> Fault:
    (tmp / "data").write_text("not a folder")
    return Fault(tmp / "data" / "bot.sqlite3", "is a file, not a folder")


def path_is_a_folder(tmp: Path) -> Fault:
    (tmp / "bot.sqlite3").mkdir()
    return Fault(tmp / "bot.sqlite3", "is a folder, not a file")


def corrupt_file(tmp: Path) -> Fault:
    (tmp / "bot.sqlite3").write_bytes(b"\x8f\x01garbage, not SQLite\x00" * 400)
    return Fault(tmp / "bot.sqlite3", "not a SQLite database, or it is damaged")


def read_only_folder(tmp: Path) -> Fault:
    if os.geteuid() == 0:  # root writes through permission bits; sysfs refuses everyone
        return Fault(Path("/sys") / f"helpbot-test-{os.getpid()}.sqlite3", "is read-only")
    folder = tmp / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    return Fault(folder / "bot.sqlite3", "is read-only")


def full_disk(tmp: Path) -> Fault:
    # No tmpfs to fill here: a file size limit of 0 fails every write like a full disk does.
    return Fault(tmp / "bot.sqlite3", "the disk is full", limit_file_size=True)


def _no_file_growth() -> None:  # pragma: no cover - runs in the child before exec
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a kill
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))


@pytest.fixture
def tmp(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
    for folder in tmp_path.iterdir():
        if folder.is_dir():
            folder.chmod(0o755)  # so pytest can remove it


def run(args: list[str], fault: Fault, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args], input="hello\n", text=True, capture_output=True,
        timeout=60, cwd=ROOT, check=False,
        preexec_fn=_no_file_growth if fault.limit_file_size else None,
        env={**os.environ, "BOT_DB_PATH": str(fault.db), "PYTHONDONTWRITEBYTECODE": "1", **env})


def assert_one_clear_line(result: subprocess.CompletedProcess[str], fault: Fault) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: cannot ") and str(fault.db) in lines[0], lines[0]
    assert fault.says in lines[0], lines[0]
    assert "BOT_DB_PATH" in lines[0] or "backup" in lines[0], lines[0]  # says what to do
    assert result.stdout == ""


FAULTS: list[Callable[[Path], Fault]] = [parent_is_a_file, path_is_a_folder, corrupt_file,
                                         read_only_folder, full_disk]


@pytest.mark.parametrize("make", FAULTS, ids=lambda f: f.__name__)
def test_local_chat_on_an_unusable_database(tmp: Path, make: Callable[[Path], Fault]) -> None:
    fault = make(tmp)
    assert_one_clear_line(run(["chat"], fault), fault)


COMMANDS = {
    "volunteers-list": ["volunteers", "list"],
    "volunteers-add": ["volunteers", "add", "123", "--name", "A", "--languages", "en"],
    "purge": ["purge"],
    # With a token and no reachable Bot API server: the database fails first.
    "run": ["run"],
}


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("make", [corrupt_file, parent_is_a_file], ids=lambda f: f.__name__)
def test_other_commands_on_an_unusable_database(tmp: Path, make: Callable[[Path], Fault],
                                                command: str) -> None:
    fault = make(tmp)
    result = run(COMMANDS[command], fault, TELEGRAM_BOT_TOKEN="123:abc",
                 TELEGRAM_API_BASE_URL="http://127.0.0.1:9/bot")
    assert_one_clear_line(result, fault)


def test_db_flag_is_named_the_same_way(tmp: Path) -> None:
    fault = corrupt_file(tmp)
    result = run(["chat", "--db", str(fault.db)], fault, BOT_DB_PATH=str(tmp / "other.sqlite3"))
    assert_one_clear_line(result, fault)
