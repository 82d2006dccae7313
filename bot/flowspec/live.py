"""The flows currently served, replaced only by a reload that passes validation.

Staff edit files in place; a half-saved or broken file must never reach people. The
watcher polls modification times (cheap, works on every filesystem and in containers)
and swaps in a new library only when every file validates; otherwise it logs each
problem as path:line and keeps serving the last good flows.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from pathlib import Path

from bot.errors import FlowLoadError, Problem
from bot.flowspec.library import FlowLibrary, flow_files, load_library

__all__ = ["LiveLibrary"]

log = logging.getLogger(__name__)


class LiveLibrary:
    def __init__(self, paths: Sequence[Path]) -> None:
        self.paths = list(paths)
        self.current: FlowLibrary = load_library(self.paths)  # the first load must succeed
        self._stamp = self._fingerprint()
        self.last_problems: list[Problem] = []

    def _fingerprint(self) -> tuple[tuple[str, int, int], ...]:
        stamps = []
        for file in flow_files(self.paths):
            try:
                stat = file.stat()
            except OSError:
                continue
            stamps.append((str(file), stat.st_mtime_ns, stat.st_size))
        return tuple(stamps)

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
