"""The flows currently served, replaced only by a reload that passes validation.

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

from bot.errors import FlowLoadError, Problem
from bot.flowspec.library import FlowLibrary, flow_files, load_library

__all__ = ["LiveLibrary"]

log = logging.getLogger(__name__)

_Fingerprint = tuple[tuple[str, int, int], ...]


class LiveLibrary:
    def __init__(self, paths: Sequence[Path], snapshot_dir: Path | None = None) -> None:
        self.paths = list(paths)
        self.snapshot_dir = snapshot_dir
        self.last_problems: list[Problem] = []
        #: The files as they were when last loaded (or refused), and at the last poll.
        self._stamp = self._fingerprint()
        self._seen = self._stamp
        try:
            self.current: FlowLibrary = load_library(self.paths)
        except FlowLoadError as exc:
            if snapshot_dir is None or not any(snapshot_dir.glob("*.yaml")):
                raise
            self.current = load_library([snapshot_dir])
            self.last_problems = exc.problems
            for problem in exc.problems:
                log.error("flow refused, serving the last good flows from %s: %s",
                          snapshot_dir, problem)
            return
        self._snapshot()

    def _fingerprint(self) -> _Fingerprint:
        stamps = []
        for file in flow_files(self.paths):
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
            for flow in self.current.flows.values():
                shutil.copyfile(flow.path, fresh / f"{flow.id}.yaml")
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

    def _read(self) -> FlowLibrary | list[Problem]:
        try:
            return load_library(self.paths)
        except FlowLoadError as exc:
            return exc.problems

    def _take(self, stamp: _Fingerprint, read: FlowLibrary | list[Problem]) -> list[Problem]:
        """Serve what was read from the files as they were at ``stamp``, if it is good."""
        self._stamp = self._seen = stamp
        if isinstance(read, list):
            self.last_problems = read
            for problem in read:
                log.error("flow refused, still serving the last good flows: %s", problem)
            return read
        self.current = read
        self.last_problems = []
        self._snapshot()
        log.info("flows reloaded: %d flows", len(read.flows))
        return []

    async def watch(self, interval: float = 2.0) -> None:
        """Poll every ``interval`` seconds until cancelled."""
        while True:
            await asyncio.sleep(interval)
            self.poll()


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
