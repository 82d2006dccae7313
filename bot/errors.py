"""One exception tree for the whole bot.

    BotError
     +-- ConfigError          bad or missing setting (env var, CLI flag)
     |    +-- MissingFolderError  a folder the bot reads (flows, catalogs) is not there
     +-- FlowError            a flow file cannot be used
     |    +-- FlowLoadError   one or more problems, each with path:line and a hint
     +-- StorageError         the SQLite store failed or holds data from a newer version
     +-- TransportError       a chat platform refused or could not be reached
     |    +-- DeliveryRefused refused for good (blocked by the person): never retried
     +-- TranslationError     offline machine translation is unavailable for a pair

Third-party exceptions are wrapped at the adapter that calls the library, so the
rest of the house only ever catches these.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "BotError",
    "ConfigError",
    "DeliveryRefused",
    "FlowError",
    "FlowLoadError",
    "MissingFolderError",
    "Problem",
    "StorageError",
    "TranslationError",
    "TransportError",
]


class BotError(Exception):
    """Base of every error the bot raises on purpose."""


class ConfigError(BotError):
    """A setting is missing or malformed; the message says which and how to fix it."""


class MissingFolderError(ConfigError):
    """A folder the bot must read is not there; the message names the variable and the path."""


class StorageError(BotError):
    """The database could not be used."""


class TransportError(BotError):
    """A chat platform could not deliver or receive a message."""


class DeliveryRefused(TransportError):
    """The platform refused this message for good (the person blocked the bot, or the
    message is malformed): sending it again can never work, so it is dropped, not retried."""


class TranslationError(BotError):
    """Machine translation cannot serve this request (no model for the pair, timeout...)."""


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong in a flow file, in the form staff see it: ``path:line: message``."""

    path: str
    line: int
    message: str
    hint: str = ""

    def __str__(self) -> str:
        text = f"{self.path}:{self.line}: {self.message}"
        return f"{text}\n    hint: {self.hint}" if self.hint else text


class FlowError(BotError):
    """A flow file cannot be used."""


class FlowLoadError(FlowError):
    """Flows were refused; ``problems`` lists every reason, each with file and line."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems)
        super().__init__("\n".join(str(p) for p in self.problems))
