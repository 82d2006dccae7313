"""A throwaway PostgreSQL server for the tests: initdb into a temporary folder, pg_ctl start
listening only on a Unix socket in another (listen_addresses=''), stopped and removed after.

Run as root, the server runs as the unprivileged ``postgres`` user (runuser), which owns both
folders. No server binaries: the tests that need one skip, except under CI (CI=true), where
that is a failure (``.ci/run`` installs PostgreSQL).
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

__all__ = ["PostgresServer", "find_bindir", "missing_reason"]

_STARTUP_SECONDS = 60


def find_bindir() -> Path | None:
    """Where initdb, pg_ctl and postgres are: pg_config --bindir, then Debian's folders."""
    candidates: list[str] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True,
                                 timeout=10, check=True).stdout.strip()
            candidates.append(out)
        except (OSError, subprocess.SubprocessError):
            pass
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for folder in candidates:
        if folder and all((Path(folder) / name).exists() for name in ("initdb", "pg_ctl", "postgres")):
            return Path(folder)
    return None


def missing_reason() -> str:
    return ("no PostgreSQL server binaries (initdb, pg_ctl) found via pg_config --bindir or in "
            "/usr/lib/postgresql/*/bin; install them (apt-get install postgresql) to run the "
            "PostgreSQL tests")


class PostgresServer:
    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="helpbot-pg-"))
        # A short path: a Unix socket's path is limited to about 100 bytes.
        self.socket_dir = Path(tempfile.mkdtemp(prefix="pgs-", dir="/tmp"))
        self.data = self.root / "data"
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            for folder in (self.root, self.socket_dir):
                os.chown(folder, user.pw_uid, user.pw_gid)
            self._as_user = ["runuser", "-u", "postgres", "--"]
        self._names = itertools.count(1)

    def _run(self, *args: str) -> None:
        subprocess.run([*self._as_user, *args], check=True, capture_output=True, text=True,
                       timeout=_STARTUP_SECONDS, cwd=self.root)

    def start(self, *, fast: bool = True) -> None:
        """``fast``: no fsync and no waiting for the WAL on commit (tests); False keeps the
        server's durable defaults (the benchmark's baseline)."""
        self._run(str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres",
                  "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8" if _has_c_utf8() else "--locale=C",
                  "--no-sync")
        options = (f"-c listen_addresses='' -c unix_socket_directories={self.socket_dir} "
                   "-c max_connections=200")
        if fast:
            options += (" -c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                        "-c shared_buffers=32MB")
        self._options = options
        self._start_server()

    def _start_server(self) -> None:
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "log"),
                  "-o", self._options, "-w", "-t", str(_STARTUP_SECONDS), "start")

    def crash_and_restart(self) -> None:
        """Stop at once as a crash would (``-m immediate``: no checkpoint, nothing more written
        from the server's buffers), then start again on the same files (crash recovery)."""
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
        self._start_server()

    def stop(self) -> None:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
        shutil.rmtree(self.root, ignore_errors=True)
        shutil.rmtree(self.socket_dir, ignore_errors=True)

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@/{dbname}?host={self.socket_dir}"

    def new_database(self) -> str:
        """A fresh, empty database; its URL."""
        import psycopg

        name = f"t{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def database_files(self, url: str) -> Path:
        """The folder holding a database's table and index files."""
        import psycopg

        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT oid FROM pg_database WHERE datname = current_database()"
                               ).fetchone()
        assert row is not None
        return self.data / "base" / str(row[0])


def _has_c_utf8() -> bool:
    try:
        out = subprocess.run(["locale", "-a"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return any(line.lower() in ("c.utf8", "c.utf-8") for line in out.splitlines())
