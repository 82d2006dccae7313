"""One exception tree for the whole bot.

    BotError
     +-- ConfigError          bad or missing setting (env var, CLI flag)
     |    +-- MissingFolderError  a folder the bot reads (flows, catalogs) is not there
     +-- FlowError            a flow file cannot be used
     |    +-- FlowLoadError   one or more problems, each with path:line and a hint
     +-- DirectoryError       the directory of services (services/) cannot be used
     |    +-- DirectoryLoadError  one or more problems, each with path:line and a hint
     +-- StorageError         the SQLite store failed or holds data from a newer version
     |    +-- StorageUnavailable  the database cannot be opened, prepared or written at start-up
     +-- TransportError       a chat platform refused or could not be reached
     |    +-- DeliveryRefused refused for good (blocked, empty text, bad chat): never retried
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
    "DirectoryError",
    "DirectoryLoadError",
    "FlowError",
    "FlowLoadError",
    "MissingFolderError",
    "Problem",
    "StorageError",
    "StorageUnavailable",
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


class StorageUnavailable(StorageError):
    """The database cannot be used at all (opening it failed): one line naming the path,
    what is wrong and what to do. The CLI exits 2 on it, as for other start-up faults."""


class TransportError(BotError):
    """A chat platform could not deliver or receive a message.

    ``reason`` says what went wrong in plain words, for a volunteer whose message it was
    (the message itself is for the log); ``retry_after`` is how long the platform asked us
    to wait before trying again, when it said.
    """

    def __init__(self, message: str, *, reason: str | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.reason = reason or message
        self.retry_after = retry_after


class DeliveryRefused(TransportError):
    """The platform refused this message for good (the person blocked the bot, the message
    is empty or malformed, the chat key is not one of the platform's): sending it again can
    never work, so it is dropped, not retried."""


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


class DirectoryError(BotError):
    """The directory of services cannot be used."""


class DirectoryLoadError(DirectoryError):
    """The directory was refused; ``problems`` lists every reason, each with file and line."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems)
        super().__init__("\n".join(str(p) for p in self.problems))
