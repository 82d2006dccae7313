"""Turn engine Say events into Outbound messages in the person's language.

A whole message (text and every button) comes out in ONE language, chosen in this order:

1. the catalogs (a person's translation, reviewed or not, else a stored machine draft),
2. live offline machine translation of the parts the catalogs lack: a short part (a button
   label) that a person translated under another key first (the phrase book), the rest
   as ONE batch under one deadline for the whole message,
3. English, with a short note in the person's language saying it is not translated yet.

Never Pashto text with English buttons: if any part cannot be had in the language, the
whole message moves down the list together. Machine-made text carries a short note so
nobody mistakes it for a checked translation. In right-to-left languages, phone numbers
and links are wrapped in Unicode isolates so they display in the right order.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Protocol

from bot import limits
from bot.engine.events import Say, ServiceCard
from bot.engine.system_text import SYSTEM_TEXT
from bot.errors import TranslationError
from bot.flowspec.model import PLACEHOLDER
from bot.i18n.catalog import Entry, Status
from bot.messages import Outbound, OutButton
from bot.text.bidi import isolate_ltr_spans
from bot.text.languages import DEFAULT_LANGUAGE, language
from bot.translation.base import MachineTranslator

__all__ = ["MACHINE_NOTE", "SERVICE_CARD_KEY", "UNTRANSLATED_NOTE", "Catalog", "EmptyCatalog", "Localizer"]

log = logging.getLogger(__name__)

UNTRANSLATED_NOTE = "system.untranslated"
MACHINE_NOTE = "system.machine_translated"
#: The label of the button that opens a list of choices (WhatsApp shows more than
#: limits.WHATSAPP_REPLY_BUTTONS_MAX choices as a list): in Outbound.meta["choose"].
CHOOSE_KEY = "system.choose"
#: Outbound key of a service of the directory shown to a person (meta "service": its id).
SERVICE_CARD_KEY = "services.card"


class Catalog(Protocol):
    """Translations of localisation keys (see bot.i18n.catalog.CatalogSet)."""

    def lookup_entry(self, key: str, language: str, source: str) -> Entry | None:
        """The entry for the key in the language, unless missing or stale."""
        ...

    def variants(self, key: str) -> Sequence[str]:
        """The key's text in every language it has, normalised (to match typed answers)."""
        ...

    def keywords(self) -> Mapping[str, str]:
        """Normalised keyword in some language -> flow id."""
        ...

    def safeguarding(self) -> Mapping[str, str]:
        """Normalised safeguarding phrase in some language -> flow id."""
        ...

    def distress(self) -> Mapping[str, str]:
        """Normalised distress word in some language -> flow id."""
        ...

    def short_phrase(self, text: str, source: str, target: str) -> str | None:
        """A greeting or short text in ``target``, as a person translated it, or None."""
        ...


class EmptyCatalog:
    """No translations: everything renders in English (or through machine translation)."""

    def lookup_entry(self, key: str, language: str, source: str) -> Entry | None:
        return None

    def variants(self, key: str) -> Sequence[str]:
        return ()

    def keywords(self) -> Mapping[str, str]:
        return {}

    def safeguarding(self) -> Mapping[str, str]:
        return {}

    def distress(self) -> Mapping[str, str]:
        return {}

    def short_phrase(self, text: str, source: str, target: str) -> str | None:
        return None


class _Part:
    """One piece of a message to put into the target language: text, a label or a value."""

    def __init__(self, key: str | None, source: str) -> None:
        self.key = key
        self.source = source
        self.text: str | None = None
        self.machine = False


class Localizer:
    def __init__(self, catalog: Catalog | None = None,
                 translator: MachineTranslator | None = None) -> None:
        self.catalog: Catalog = catalog or EmptyCatalog()
        self.translator = translator

    def aliases(self, key: str) -> Sequence[str]:
        return self.catalog.variants(key)

    def keyword_aliases(self) -> Mapping[str, str]:
        return self.catalog.keywords()

    def safeguarding_aliases(self) -> Mapping[str, str]:
        return self.catalog.safeguarding()

    def distress_aliases(self) -> Mapping[str, str]:
        return self.catalog.distress()

    def short_phrase(self, text: str, source: str, target: str) -> str | None:
        """``text`` in ``target`` from the phrase book (greetings, "yes", button labels), or None."""
        if source == target:
            return text
        return self.catalog.short_phrase(text, source, target)

    def system_text(self, key: str, lang: str) -> str | None:
        """A system text in the language from the catalogs, or None."""
        if lang == DEFAULT_LANGUAGE:
            return SYSTEM_TEXT[key]
        entry = self.catalog.lookup_entry(key, lang, SYSTEM_TEXT[key])
        return entry.text if entry else None

    async def render(self, say: Say, chat_key: str, lang: str | None) -> Outbound:
        wanted = language(say.language or lang).code
        text_part = _Part(say.key, say.text)
        labels = [_Part(c.key or None, c.label) for c in say.choices]
        values = {name: _Part(p.key, p.text) for name, p in say.params.items() if p.key}
        parts = [text_part, *labels, *values.values()]
        opener = None
        if len(say.choices) > limits.WHATSAPP_REPLY_BUTTONS_MAX:  # part of the message: same language
            opener = _Part(CHOOSE_KEY, SYSTEM_TEXT[CHOOSE_KEY])
            parts.append(opener)
        used, note_key = await self._in_language(parts, wanted)
        params = {name: (values[name].text if name in values else p.text) or p.text
                  for name, p in say.params.items()}
        body = self._with_note(_fill(text_part.text or say.text, params), note_key, wanted)
        rtl = language(used).rtl
        if rtl:
            body = isolate_ltr_spans(body)
        buttons = tuple(
            OutButton(c.callback, isolate_ltr_spans(p.text or c.label) if rtl else p.text or c.label,
                      c.key)
            for c, p in zip(say.choices, labels, strict=True))
        meta = {"machine": "1"} if note_key == MACHINE_NOTE else {}
        if opener is not None:
            meta["choose"] = opener.text or opener.source
        return Outbound(chat_key=chat_key, text=body, buttons=buttons, language=used, rtl=rtl,
                        key=say.key, token=say.token, meta=meta)

    async def render_service(self, card: ServiceCard, chat_key: str, lang: str | None) -> Outbound:
        """A service of the directory: its name and contacts as the directory writes them
        (never translated: a name or a number must be what the person will find), under
        labels in the person's language; links and numbers isolated in right-to-left text."""
        wanted = language(card.language or lang).code
        service = card.service
        lines: list[tuple[_Part, dict[str, str]]] = []

        def line(key: str, **params: str) -> None:
            lines.append((_Part(key, SYSTEM_TEXT[key]), params))

        for key, value in (("phone", service.phone), ("web", service.web),
                           ("address", service.address), ("hours", service.hours)):
            if value:
                line(f"services.{key}", **{key: value})
        if wanted != DEFAULT_LANGUAGE and service.speaks(wanted):
            line("services.speaks", language=language(wanted).native_name)
        if service.interpreters:
            line("services.interpreters")
        if service.referral is not None:
            line("services.referral_needed" if service.referral else "services.no_referral")
        if card.areas:
            line("services.serves", places=", ".join(card.areas))
        else:
            line("services.serves_uk")
        used, note_key = await self._in_language([part for part, _ in lines], wanted)
        body = "\n".join([service.name, *(_fill(part.text or part.source, params)
                                          for part, params in lines)])
        body = self._with_note(body, note_key, wanted)
        rtl = language(used).rtl
        if rtl:
            body = isolate_ltr_spans(body)
        meta = {"service": service.id}
        if note_key == MACHINE_NOTE:
            meta["machine"] = "1"
        return Outbound(chat_key=chat_key, text=body, language=used, rtl=rtl, key=SERVICE_CARD_KEY,
                        meta=meta)

    async def _in_language(self, parts: list[_Part], wanted: str) -> tuple[str, str | None]:
        """Fill every part in ``wanted`` (catalogs, then machine translation), or every part
        in English: the language used and the note to add, if any."""
        used = DEFAULT_LANGUAGE
        note_key: str | None = None
        if wanted != DEFAULT_LANGUAGE:
            if self._from_catalog(parts, wanted) or await self._from_machine(parts, wanted):
                used = wanted
                if any(p.machine for p in parts):
                    note_key = MACHINE_NOTE
            else:
                note_key = UNTRANSLATED_NOTE
        if used == DEFAULT_LANGUAGE:
            for part in parts:
                part.text = part.source
        return used, note_key

    def _with_note(self, body: str, note_key: str | None, wanted: str) -> str:
        note = self.system_text(note_key, wanted) if note_key else None
        return f"{body}\n\n{note}" if note else body

    def _from_catalog(self, parts: list[_Part], lang: str) -> bool:
        """Fill every keyed part from the catalogs; True when nothing keyed is missing."""
        complete = True
        for part in parts:
            if part.key is None:
                part.text = part.source  # a language's own name: the same in every language
                continue
            entry = self.catalog.lookup_entry(part.key, lang, part.source)
            if entry is None:
                complete = False
                continue
            part.text = entry.text
            part.machine = entry.status is Status.MACHINE
        return complete

    async def _from_machine(self, parts: list[_Part], lang: str) -> bool:
        """Translate the parts the catalogs lack; False if any of them cannot be.

        All of them go to the translator as one batch: one job, one deadline for the message."""
        if self.translator is None or not self.translator.supports(DEFAULT_LANGUAGE, lang):
            return False
        missing = []
        for part in parts:
            if part.text is None:
                # A short label a person translated under another key beats any model.
                part.text = self.catalog.short_phrase(part.source, DEFAULT_LANGUAGE, lang)
                if part.text is None:
                    missing.append(part)
        if not missing:
            return True
        try:
            done = await self.translator.translate_batch([p.source for p in missing],
                                                         DEFAULT_LANGUAGE, lang, cacheable=True)
        except TranslationError as exc:
            for part in missing:
                part.text = None
            log.warning("live translation to %s failed, sending English: %s", lang, exc)
            return False
        for part, translation in zip(missing, done, strict=True):
            part.text = translation.text
            part.machine = True
        return True


def _fill(text: str, params: Mapping[str, str]) -> str:
    """Put values in {placeholders}; doubled braces {{ }} come out as single ones."""
    filled = PLACEHOLDER.sub(lambda m: params.get(m.group(1), m.group(0)), text)
    return filled.replace("{{", "{").replace("}}", "}")

