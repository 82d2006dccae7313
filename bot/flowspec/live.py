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
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import tempfile
from collections.abc import Sequence
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
            if snapshot_dir is None or not any(snapshot_dir.glob("*.yaml")):
                raise
            self.current = self._load([snapshot_dir])
            self.last_problems = exc.problems
            for problem in exc.problems:
                log.error("%s refused, serving the last good copy from %s: %s", self.what,
                          snapshot_dir, problem)
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
        # A folder of this process's own: two bots started at once on one database
        # (a person and a volunteer chatting locally) snapshot at the same moment.
        fresh = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".new", dir=target.parent))
        try:
            for source, name in self._snapshot_files():
                shutil.copyfile(source, fresh / name)
            _swap_in(fresh, target)
        finally:
            shutil.rmtree(fresh, ignore_errors=True)

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
    """Put the complete folder ``fresh`` at ``target`` with one rename, so nobody ever sees
    a half snapshot. An older snapshot is first moved aside under a name of this process's
    own. When another process swaps its snapshot in at the same moment, either may win:
    both hold flows that passed validation."""
    try:
        fresh.rename(target)  # the first snapshot (a rename onto a non-empty folder fails)
        return
    except OSError:
        pass
    aside = fresh.with_suffix(".old")  # unique, as ``fresh`` is
    with contextlib.suppress(FileNotFoundError):  # another process moved it aside just now
        target.rename(aside)
    try:
        fresh.rename(target)
    except OSError:
        pass  # another process put its snapshot there first; keep theirs
    finally:
        shutil.rmtree(aside, ignore_errors=True)
