"""The machine translation contract the localizer and the desk use, whatever the model family."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = ["CacheStats", "MachineTranslator", "Quality", "Translation"]


class Quality(enum.StrEnum):
    MACHINE = "machine"
    """Translated by a model for exactly this language pair (or the text's own language)."""
    DRAFT = "draft"
    """Translated with a related language's model (Dari via Persian): needs human review."""


@dataclass(frozen=True)
class Translation:
    text: str
    source: str
    target: str
    via_model: str | None
    """Argos model code used in place of a bot language without its own model ('fa' for prs)."""
    cached: bool = False

    @property
    def quality(self) -> Quality:
        return Quality.DRAFT if self.via_model else Quality.MACHINE

    @property
    def is_draft(self) -> bool:
        return self.via_model is not None


@dataclass(frozen=True)
class CacheStats:
    hits: int
    misses: int
    size: int
    maxsize: int


@runtime_checkable
class MachineTranslator(Protocol):
    """Offline machine translation between bot language codes."""

    async def translate(self, text: str, source: str, target: str) -> str:
        """``text`` in ``target``; raises TranslationError if that cannot be done now."""
        ...

    def available_pairs(self) -> set[tuple[str, str]]:
        """(source, target) bot-code pairs, source != target, that can be translated."""
        ...

    def supports(self, source: str, target: str) -> bool: ...
