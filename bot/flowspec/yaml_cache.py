"""Parsed YAML kept between starts: a flow or catalog file whose text has not changed is not
parsed again.

After Python's own start, reading the ~90 flow and catalog files is the largest part of the
bot's start-up, even with libyaml (bench/bench_startup.py). Inside ``with YamlCache(path):``
each :func:`bot.flowspec.strict_yaml.load_yaml` first looks its text up by SHA-256: a hit
gives a fresh copy of what load_yaml returned for that same text before (values and line
numbers), a miss is parsed and kept. On leaving, the file is rewritten if anything changed,
with only the texts read this time, so it holds no more than the files in use.

It cannot go stale: the key is the whole text, and the file is tied to the reading rules
(the source of strict_yaml and its readers, and PyYAML's); anything else (missing, damaged, other rules,
unreadable or unwritable) only means parsing as without it. Only successful reads are kept,
so a file with a problem is always parsed and its message is current. Reading the file back
accepts plain data and the two parsed-YAML classes only: a tampered file cannot run code.
It holds flow and catalog texts only, nothing about the people using the bot.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import logging
import os
import pickle
import sys
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any

from bot.flowspec import strict_yaml

__all__ = ["CACHE_FILE_NAME", "YamlCache"]

log = logging.getLogger(__name__)

#: The cache's file name, beside the database.
CACHE_FILE_NAME = "parsed-yaml.cache"
_PROTOCOL = 5
_READERS = str(Path(strict_yaml.__file__).with_name("yaml_readers.py"))
_ALLOWED = {("bot.flowspec.strict_yaml", "YamlMap"): strict_yaml.YamlMap,
            ("bot.flowspec.strict_yaml", "YamlList"): strict_yaml.YamlList}


def _rules() -> bytes:
    """What a parse depends on besides the text: the rules' source and PyYAML's (found,
    not imported: with every file in the cache, start-up never imports PyYAML)."""
    digest = hashlib.sha256(f"{sys.version_info[:2]} {_PROTOCOL}".encode())
    pyyaml = importlib.util.find_spec("yaml")
    for source in (strict_yaml.__file__, _READERS, pyyaml.origin if pyyaml else None):
        digest.update(Path(source).read_bytes() if source else b"no PyYAML")
    return digest.digest()


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        found = _ALLOWED.get((module, name))
        if found is None:
            raise pickle.UnpicklingError(f"{module}.{name} is not parsed YAML")
        return found


def _loads(blob: bytes) -> Any:
    return _Unpickler(io.BytesIO(blob)).load()


class YamlCache:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.hits = 0
        self.misses = 0
        self._stored: dict[bytes, bytes] = {}
        self._used: dict[bytes, bytes] = {}
        self._rules = b""
        self._token: Any = None

    def __enter__(self) -> YamlCache:
        try:
            self._rules = _rules()
            data = _loads(self.path.read_bytes())
            if isinstance(data, dict) and data.get("rules") == self._rules and \
                    isinstance(data.get("entries"), dict):
                self._stored = data["entries"]
        except FileNotFoundError:
            pass
        except Exception as exc:  # damaged, foreign or unreadable: parse as without it
            log.debug("not using the parsed-YAML cache %s: %s", self.path, exc)
        self._token = strict_yaml.ACTIVE_CACHE.set(self)
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        strict_yaml.ACTIVE_CACHE.reset(self._token)
        if kind is None and self._rules and self._used != self._stored:
            self._save()

    def get(self, text: str) -> tuple[bool, Any]:
        """(True, a fresh copy of the parsed text) or (False, None)."""
        key = hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()
        blob = self._used.get(key) or self._stored.get(key)
        if blob is not None:
            try:
                value = _loads(blob)
            except Exception:  # a damaged entry: parse it again
                blob = None
            else:
                self._used[key] = blob
                self.hits += 1
                return True, value
        self.misses += 1
        return False, None

    def put(self, text: str, value: Any) -> None:
        key = hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()
        self._used[key] = pickle.dumps(value, protocol=_PROTOCOL)

    def _save(self) -> None:
        blob = pickle.dumps({"rules": self._rules, "entries": self._used}, protocol=_PROTOCOL)
        try:
            handle, name = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
            try:
                with os.fdopen(handle, "wb") as file:
                    file.write(blob)
                os.replace(name, self.path)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(name)
        except OSError as exc:  # a read-only folder: start-up just stays a little slower
            log.debug("could not write the parsed-YAML cache %s: %s", self.path, exc)
