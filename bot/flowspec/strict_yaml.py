"""A YAML reader that refuses the surprises PyYAML gives staff by default.

PyYAML implements YAML 1.1: ``no`` becomes False, ``1:30`` becomes 90, ``010`` becomes 8,
dates become datetime objects and a duplicated key silently wins. Flow files are written
by people who are not programmers, so here only YAML 1.2 core booleans (true/false) are
booleans, only plain decimal numbers are numbers, everything else is a string, and a
duplicated key, a merge key (``<<``) or a tag (``!x``, ``!!int 010``, ``!!set``; only one that
changes nothing, such as ``!!str 010``, passes) is an error. Every mapping and list
remembers the line of each entry so that validation can say ``path:line``.

The readers themselves are in :mod:`bot.flowspec.yaml_readers`, imported on the first
parse: when every file comes from the cache of parsed files (bot.flowspec.yaml_cache),
start-up does not import PyYAML at all.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any, Protocol

__all__ = ["ACTIVE_CACHE", "USE_LIBYAML", "YamlList", "YamlMap", "YamlSyntaxError", "libyaml_available",
           "load_yaml"]


class YamlSyntaxError(Exception):
    """The text is not YAML we accept; ``line`` is 1-based."""

    def __init__(self, line: int, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.line = line
        self.message = message
        self.hint = hint


class YamlMap(dict[str, Any]):
    """A mapping that knows its own line and the line of each key."""

    line: int
    key_lines: dict[str, int]

    def line_of(self, key: str) -> int:
        return self.key_lines.get(key, self.line)


class YamlList(list[Any]):
    """A list that knows its own line and the line of each item."""

    line: int
    item_lines: list[int]

    def line_of(self, index: int) -> int:
        return self.item_lines[index] if 0 <= index < len(self.item_lines) else self.line


#: Read with libyaml when PyYAML has it (tests switch this off to run the pure reader).
USE_LIBYAML = True


def libyaml_available() -> bool:
    from bot.flowspec import yaml_readers

    return yaml_readers.FAST is not None


class ParsedCache(Protocol):
    def get(self, text: str) -> tuple[bool, Any]: ...
    def put(self, text: str, value: Any) -> None: ...


#: Parsed texts kept between starts, while one is in use (bot.flowspec.yaml_cache).
ACTIVE_CACHE: ContextVar[ParsedCache | None] = ContextVar("ACTIVE_CACHE", default=None)


def load_yaml(text: str) -> Any:
    """Parse one YAML document strictly. Raises YamlSyntaxError with a 1-based line."""
    cache = ACTIVE_CACHE.get()
    if cache is not None:
        found, value = cache.get(text)
        if found:
            return value
    value = _parse(text)
    if cache is not None:
        cache.put(text, value)
    return value


def _parse(text: str) -> Any:
    from bot.flowspec import yaml_readers  # PyYAML, only when something is to be parsed

    return yaml_readers.parse(text, libyaml=USE_LIBYAML)
