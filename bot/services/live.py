"""The directory of services currently served, reloaded like the flows (bot/flowspec/live.py):
a change is taken once it has settled and only if the whole directory passes its checks;
otherwise the problems are logged and the last good directory keeps serving. A copy of the
last good files is kept beside the database, so a restart on a broken file still starts.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from pathlib import Path

from bot.flowspec.live import LiveFolder
from bot.services.load import directory_files, load_directory
from bot.services.model import Directory

__all__ = ["LiveDirectory"]


class LiveDirectory(LiveFolder[Directory]):
    what = "directory of services"

    def _load(self, paths: Sequence[Path]) -> Directory:
        return load_directory(paths[0], date.today())

    def _files(self) -> list[Path]:
        return directory_files(self.paths[0])

    def _snapshot_files(self) -> list[tuple[Path, str]]:
        files = {p.path for p in self.current.places.values() if p.path}
        files |= {s.path for s in self.current.services}
        return [(Path(f), Path(f).name) for f in sorted(files)]

    def _describe(self, loaded: Directory) -> str:
        return f"{len(loaded.services)} services, {len(loaded.places)} places"
