"""The machine translation contract the localizer and the desk use, whatever the model family."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = ["CacheStats", "MachineTranslator", "Quality", "Translation"]


class Quality(enum.StrEnum):
    MACHINE = "machine"
    """Translated by a model for exactly this language pair (or the text's own language)."""
    DRAFT = "draft"
    """Translated with a related language's model (Dari via Persian, when no installed
    model has Dari): needs human review."""


@dataclass(frozen=True)
class Translation:
    text: str
    source: str
    target: str
    via_model: str | None
    """The language whose model stood in for one no installed model has ('fa' for prs)."""
    cached: bool = False
    model: str | None = None
    """Which installed model(s) made it, for people trying models (``python -m bot translate``)."""

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

    async def translate(self, text: str, source: str, target: str, *, cacheable: bool = False) -> str:
        """``text`` in ``target``; raises TranslationError if that cannot be done now.

        ``cacheable``: the bot's own text, the same for everyone (flows, catalogs). What a
        person typed is never cached."""
        ...

    async def translate_batch(self, texts: Sequence[str], source: str, target: str, *,
                              cacheable: bool = False) -> list[Translation]:
        """The parts of ONE message, translated as one job under one deadline."""
        ...

    def available_pairs(self) -> set[tuple[str, str]]:
        """(source, target) bot-code pairs, source != target, that can be translated."""
        ...

    def supports(self, source: str, target: str) -> bool: ...
