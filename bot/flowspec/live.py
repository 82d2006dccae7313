"""The flows currently served (and, through LiveFolder, the directory of services),
replaced only by a reload that passes validation.

Staff edit files in place; a half-saved or broken file must never reach people. The
watcher polls modification times (cheap, works on every filesystem and in containers)
and takes a change only once the files have looked the same on two polls in a row: an
editor still writing a file (or a copy still arriving) changes it between polls, and a
file cut half-way can still parse. A settled change is swapped in only when every file
validates; otherwise each problem is logged as path:line and the last good flows keep
serving.

Every good load is also copied to a snapshot folder (beside the database), so that a bot
restarted while a file is broken still starts, on the last good flows, and says why.

Several bots may share that folder (processes on one database, started at once): each
copies into a folder of its own and swaps it in with renames, under an exclusive flock,
and a bot reading the snapshot holds a shared one, so it never sees a half-written or
half-swapped folder. The kernel drops a dead process's flock. POSIX only (Linux, macOS):
Windows is not a target.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Generic, TypeVar

from bot.errors import DirectoryLoadError, FlowLoadError, Problem
from bot.flowspec.library import FlowLibrary, flow_files, load_library

__all__ = ["LiveFolder", "LiveLibrary"]

log = logging.getLogger(__name__)

_Fingerprint = tuple[tuple[str, int, int], ...]
T = TypeVar("T")


class LiveFolder(Generic[T]):
    """What a folder of YAML files holds (``current``), replaced only by a reload that
    passes every check; a subclass says how to read the files and what to snapshot."""

    #: For the log: "flows", "directory of services".
    what = "files"

    def __init__(self, paths: Sequence[Path], snapshot_dir: Path | None = None) -> None:
        self.paths = list(paths)
        self.snapshot_dir = snapshot_dir
        self.last_problems: list[Problem] = []
        #: The files as they were when last loaded (or refused), and at the last poll.
        self._stamp = self._fingerprint()
        self._seen = self._stamp
        try:
            self.current: T = self._load(self.paths)
        except (FlowLoadError, DirectoryLoadError) as exc:
            last_good = self._read_snapshot(snapshot_dir) if snapshot_dir is not None else None
            if last_good is None:
                raise
            self.current, folder = last_good
            self.last_problems = exc.problems
            for problem in exc.problems:
                log.error("%s refused, serving the last good copy from %s: %s", self.what,
                          folder, problem)
            return
        self._snapshot()

    def _load(self, paths: Sequence[Path]) -> T:
        """Read and check the files; raises FlowLoadError or DirectoryLoadError."""
        raise NotImplementedError

    def _files(self) -> list[Path]:
        """The files whose changes are watched."""
        raise NotImplementedError

    def _snapshot_files(self) -> list[tuple[Path, str]]:
        """(file, name in the snapshot) of what was just loaded."""
        raise NotImplementedError

    def _describe(self, loaded: T) -> str:
        return self.what

    def _fingerprint(self) -> _Fingerprint:
        stamps = []
        for file in self._files():
            try:
                stat = file.stat()
            except OSError:
                continue
            stamps.append((str(file), stat.st_mtime_ns, stat.st_size))
        return tuple(stamps)

    def _snapshot(self) -> None:
        if self.snapshot_dir is None:
            return
        target = self.snapshot_dir
        target.parent.mkdir(parents=True, exist_ok=True)
        with _locked(target, fcntl.LOCK_EX):
            # A folder of this process's own, then renames: nobody sees a half snapshot.
            fresh = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".new",
                                          dir=target.parent))
            try:
                for source, name in self._snapshot_files():
                    shutil.copyfile(source, fresh / name)
                _swap_in(fresh, target)
            finally:
                shutil.rmtree(fresh, ignore_errors=True)
            # Under the lock every other .new/.old folder is left by a process killed mid-swap.
            for left in _leftovers(target):
                shutil.rmtree(left, ignore_errors=True)

    def _read_snapshot(self, target: Path) -> tuple[T, Path] | None:
        """The last good copy and the folder it came from; None when there is none."""
        if not target.parent.is_dir():
            return None
        with _locked(target, fcntl.LOCK_SH):
            # An .old folder is a whole former snapshot: only a kill mid-swap leaves one alone.
            for folder in (target, *_leftovers(target, (".old",))):
                if any(folder.glob("*.yaml")):
                    return self._load([folder]), folder
        return None

    def reload(self) -> list[Problem]:
        """Try the files as they are now. Returns the problems; empty means swapped in."""
        stamp = self._fingerprint()
        return self._take(stamp, self._read())

    def changed(self) -> bool:
        """The files differ from the last load (or refusal)."""
        return self._fingerprint() != self._stamp

    def poll(self) -> list[Problem] | None:
        """One check of the folder: reload a change once it looked the same on two polls in
        a row. None when nothing was tried; otherwise what :meth:`reload` returns."""
        now = self._fingerprint()
        settled, self._seen = now == self._seen, now
        if now == self._stamp or not settled:
            return None
        read = self._read()
        after = self._fingerprint()
        if after != now:  # written to while being read: wait for it to settle again
            self._seen = after
            return None
        return self._take(now, read)

    def _read(self) -> T | list[Problem]:
        try:
            return self._load(self.paths)
        except (FlowLoadError, DirectoryLoadError) as exc:
            return exc.problems

    def _take(self, stamp: _Fingerprint, read: T | list[Problem]) -> list[Problem]:
        """Serve what was read from the files as they were at ``stamp``, if it is good."""
        self._stamp = self._seen = stamp
        if isinstance(read, list):
            self.last_problems = read
            for problem in read:
                log.error("%s refused, still serving the last good copy: %s", self.what, problem)
            return read
        self.current = read
        self.last_problems = []
        self._snapshot()
        log.info("%s reloaded: %s", self.what, self._describe(read))
        return []

    async def watch(self, interval: float = 2.0) -> None:
        """Poll every ``interval`` seconds until cancelled."""
        while True:
            await asyncio.sleep(interval)
            self.poll()


class LiveLibrary(LiveFolder[FlowLibrary]):
    """The flows currently served."""

    what = "flows"

    def _load(self, paths: Sequence[Path]) -> FlowLibrary:
        return load_library(paths)

    def _files(self) -> list[Path]:
        return flow_files(self.paths)

    def _snapshot_files(self) -> list[tuple[Path, str]]:
        return [(Path(flow.path), f"{flow.id}.yaml") for flow in self.current.flows.values()]

    def _describe(self, loaded: FlowLibrary) -> str:
        return f"{len(loaded.flows)} flows"


def _swap_in(fresh: Path, target: Path) -> None:
    """Put the complete folder ``fresh`` at ``target`` (under the exclusive lock). A kill
    between the two renames leaves the old snapshot whole as ``.old``, which readers use."""
    aside = fresh.with_suffix(".old")  # unique, as ``fresh`` is
    if target.exists():
        target.rename(aside)
    try:
        fresh.rename(target)
    except OSError:
        if aside.exists():
            aside.rename(target)  # keep the one there was
        raise
    shutil.rmtree(aside, ignore_errors=True)


def _leftovers(target: Path, suffixes: tuple[str, ...] = (".new", ".old")) -> list[Path]:
    return sorted(p for p in target.parent.glob(f".{target.name}.*")
                  if p.suffix in suffixes and p.is_dir())


@contextlib.contextmanager
def _locked(target: Path, mode: int) -> Iterator[None]:
    """flock on a file beside the snapshot; closing the file (or the process dying)
    releases it."""
    with open(target.parent / f".{target.name}.lock", "ab") as handle:
        fcntl.flock(handle, mode)
        yield
