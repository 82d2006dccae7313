"""Why a database file cannot be opened, said in one line a person can act on.

SQLite's own words ("unable to open database file", "disk I/O error") do not say whether
the folder is read-only, the path is a folder, the disk is full or the file is not a
database. When opening fails, this looks at the path and, where SQLite cannot tell, tries
to create a small file beside it: the error that gives is the real reason, also for root
(whom permission bits do not stop) and on read-only or full disks.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

__all__ = ["explain_open_failure"]

_WHERE = "set BOT_DB_PATH (or --db) to"
_NOT_A_DATABASE = ("SQLITE_NOTADB", "SQLITE_CORRUPT")
_FULL = ("SQLITE_FULL",)
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
_NO_PERMISSION = (errno.EACCES, errno.EPERM)
#: Written by the probe: one page, so a full disk or a file size limit shows too.
_PROBE_BYTES = 4096


def explain_open_failure(path: Path, exc: BaseException) -> str:
    """``cannot <verb> the database at <path>: <what is wrong>; <what to do>``."""
    shown = os.path.abspath(path)
    verb, reason, fix = _diagnose(Path(shown), exc)
    return f"cannot {verb} the database at {shown}: {reason}; {fix}"


def _diagnose(path: Path, exc: BaseException) -> tuple[str, str, str]:
    for ancestor in reversed(path.parents):
        if ancestor.exists() and not ancestor.is_dir():
            return ("create", f"{ancestor} is a file, not a folder",
                    f"{_WHERE} a file in a folder, or move that file away")
    if path.is_dir():
        return ("open", "that path is a folder, not a file",
                f"{_WHERE} a file, e.g. {path / 'bot.sqlite3'}")
    name = getattr(exc, "sqlite_errorname", "")
    if name in _NOT_A_DATABASE:
        return ("read", "the file is not a SQLite database, or it is damaged",
                "restore it from a backup, or move it away to start with an empty database")
    if name in _FULL or (isinstance(exc, OSError) and exc.errno in _NO_SPACE):
        return ("write", "the disk is full", f"free some space, or {_WHERE} another disk")
    # The nearest folder that exists: the database's own, or the one its folder was to be
    # made in.
    folder = next(p for p in path.parents if p.is_dir())
    probe = _probe(folder)
    if probe is not None:
        return probe
    if name.startswith("SQLITE_READONLY") or (path.exists() and not os.access(path, os.W_OK)):
        return ("write", "the file is read-only",
                f"fix its permissions (the bot must write it), or {_WHERE} a writable place")
    for suffix in ("-wal", "-shm"):
        extra = Path(f"{path}{suffix}")
        if extra.exists() and not os.access(extra, os.W_OK):
            return ("write", f"{extra.name} beside it is read-only",
                    "fix its permissions (the bot must write it)")
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return ("open", detail, f"check the file and its folder, or {_WHERE} another place")


def _probe(folder: Path) -> tuple[str, str, str] | None:
    """Create, write and remove a small file in the folder; the reason if that fails."""
    try:
        handle, name = tempfile.mkstemp(prefix=".helpbot-probe-", dir=folder)
    except OSError as exc:
        return _folder_fault(folder, exc)
    try:
        os.write(handle, b"\0" * _PROBE_BYTES)
        os.fsync(handle)
    except OSError as exc:
        return _folder_fault(folder, exc)
    finally:
        os.close(handle)
        os.unlink(name)
    return None


def _folder_fault(folder: Path, exc: OSError) -> tuple[str, str, str]:
    if exc.errno == errno.EROFS:
        return ("write", f"the folder {folder} is on a read-only disk", f"{_WHERE} a writable place")
    if exc.errno in _NO_PERMISSION:
        return ("write", f"the folder {folder} is read-only for this user",
                f"{_WHERE} a writable place or fix the folder's permissions")
    if exc.errno in _NO_SPACE:
        return ("write", "the disk is full (or files may not grow here)",
                f"free some space, or {_WHERE} another disk")
    return ("write", f"the folder {folder} cannot be written ({os.strerror(exc.errno or 0)})",
            f"{_WHERE} a writable place")

