"""The languages the bot offers, named in their own scripts."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_LANGUAGE", "LANGUAGES", "Language", "hinted_language", "language"]


@dataclass(frozen=True)
class Language:
    code: str
    english_name: str
    native_name: str
    rtl: bool


LANGUAGES: dict[str, Language] = {
    lang.code: lang
    for lang in (
        Language("en", "English", "English", rtl=False),
        Language("ps", "Pashto", "پښتو", rtl=True),
        Language("prs", "Dari", "دری", rtl=True),
        Language("fa", "Persian", "فارسی", rtl=True),
        Language("ur", "Urdu", "اردو", rtl=True),
        Language("hi", "Hindi", "हिन्दी", rtl=False),
    )
}

DEFAULT_LANGUAGE = "en"


def language(code: str | None) -> Language:
    """The language for a code, falling back to English for None or an unknown code."""
    return LANGUAGES.get(code or DEFAULT_LANGUAGE, LANGUAGES[DEFAULT_LANGUAGE])


def hinted_language(hint: str | None) -> str | None:
    """Our code for a platform's language hint ("fa", "fa-IR", "ur-PK"), if we offer it."""
    code = (hint or "").split("-")[0].lower()
    return code if code in LANGUAGES else None
