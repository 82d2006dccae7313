"""The flows currently served, replaced only by a reload that passes validation.

Staff edit files in place; a half-saved or broken file must never reach people. The
watcher polls modification times (cheap, works on every filesystem and in containers)
and swaps in a new library only when every file validates; otherwise it logs each
problem as path:line and keeps serving the last good flows.

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


class LiveLibrary:
    def __init__(self, paths: Sequence[Path], snapshot_dir: Path | None = None) -> None:
        self.paths = list(paths)
        self.snapshot_dir = snapshot_dir
        self.last_problems: list[Problem] = []
        self._stamp = self._fingerprint()
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

    def _fingerprint(self) -> tuple[tuple[str, int, int], ...]:
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
        self._stamp = self._fingerprint()
        try:
            library = load_library(self.paths)
        except FlowLoadError as exc:
            self.last_problems = exc.problems
            for problem in exc.problems:
                log.error("flow refused, still serving the last good flows: %s", problem)
            return exc.problems
        self.current = library
        self.last_problems = []
        self._snapshot()
        log.info("flows reloaded: %d flows", len(library.flows))
        return []

    def changed(self) -> bool:
        return self._fingerprint() != self._stamp

    async def watch(self, interval: float = 2.0) -> None:
        """Reload whenever a file changes, until cancelled."""
        while True:
            await asyncio.sleep(interval)
            if self.changed():
                self.reload()


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
