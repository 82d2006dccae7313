"""Turn engine Say events into Outbound messages in the person's language.

A whole message (text and every button) comes out in ONE language: if any part is
missing in the person's language, the whole message falls back together, never Pashto
text with English buttons.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from bot.engine.events import Param, Say
from bot.engine.system_text import SYSTEM_TEXT
from bot.flowspec.model import PLACEHOLDER
from bot.i18n.languages import DEFAULT_LANGUAGE, language
from bot.messages import Outbound, OutButton

__all__ = ["Catalog", "EmptyCatalog", "Localizer"]


class Catalog(Protocol):
    """Translations of localisation keys. Returns None for a key it has no text for."""

    def lookup(self, key: str, language: str, source: str) -> str | None: ...

    def variants(self, key: str) -> Sequence[str]:
        """The key's text in every language it has (to match typed answers)."""
        ...

    def keywords(self) -> Sequence[tuple[str, str]]:
        """(keyword in some language, flow id) pairs."""
        ...


class EmptyCatalog:
    """No translations: everything renders in English."""

    def lookup(self, key: str, language: str, source: str) -> str | None:
        return None

    def variants(self, key: str) -> Sequence[str]:
        return ()

    def keywords(self) -> Sequence[tuple[str, str]]:
        return ()


class Localizer:
    def __init__(self, catalog: Catalog | None = None) -> None:
        self.catalog: Catalog = catalog or EmptyCatalog()

    def aliases(self, key: str) -> Sequence[str]:
        return self.catalog.variants(key)

    def keyword_aliases(self) -> Sequence[tuple[str, str]]:
        return self.catalog.keywords()

    def _text(self, key: str, source: str, lang: str) -> str | None:
        if lang == DEFAULT_LANGUAGE:
            return source
        return self.catalog.lookup(key, lang, source)

    def _resolve(self, say: Say, lang: str) -> tuple[str, list[str], dict[str, str]] | None:
        text = self._text(say.key, say.text, lang)
        if text is None:
            return None
        labels: list[str] = []
        for choice in say.choices:
            label = self._text(choice.key, choice.label, lang) if choice.key else choice.label
            if label is None:
                return None
            labels.append(label)
        params = {name: self._param(p, lang) for name, p in say.params.items()}
        return text, labels, params

    def _param(self, param: Param, lang: str) -> str:
        if param.key is None:
            return param.text
        return self._text(param.key, param.text, lang) or param.text

    def render(self, say: Say, chat_key: str, lang: str | None) -> Outbound:
        wanted = language(lang).code
        resolved = self._resolve(say, wanted)
        used = wanted
        note = ""
        if resolved is None:
            used = DEFAULT_LANGUAGE
            resolved = self._resolve(say, DEFAULT_LANGUAGE)
            assert resolved is not None  # English always resolves: it is the source
            note = self._text("system.untranslated", SYSTEM_TEXT["system.untranslated"], wanted) or ""
        text, labels, params = resolved
        body = _fill(text, params)
        if note:
            body = f"{note}\n\n{body}"
        buttons = tuple(OutButton(c.callback, label, c.key)
                        for c, label in zip(say.choices, labels, strict=True))
        return Outbound(chat_key=chat_key, text=body, buttons=buttons, language=used,
                        rtl=language(used).rtl, key=say.key, token=say.token)


def _fill(text: str, params: Mapping[str, str]) -> str:
    """Put values in {placeholders}; doubled braces {{ }} come out as single ones."""
    filled = PLACEHOLDER.sub(lambda m: params.get(m.group(1), m.group(0)), text)
    return filled.replace("{{", "{").replace("}}", "}")
