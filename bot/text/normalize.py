"""Normalise what people type so that matching works the same in every script.

NFKC alone does not unify Arabic and Persian letter forms (ي/ی, ك/ک), keeps zero-width
joiners that split words invisibly, and leaves Eastern Arabic and Devanagari digits as
they are. People type on whatever keyboard their phone has, so all of these are folded.
"""

from __future__ import annotations

import functools
import re
import unicodedata

__all__ = ["is_blank", "normalize", "normalize_label", "parse_number", "words"]

_FOLD = str.maketrans({
    "ي": "ی", "ى": "ی", "ئ": "ی",  # Arabic yeh / alef maksura -> Persian yeh
    "ك": "ک",  # Arabic kaf -> Persian keheh
    "ة": "ه", "ۀ": "ه", "ە": "ه",  # teh marbuta and heh forms
    "أ": "ا", "إ": "ا", "آ": "ا", "ٱ": "ا",  # alef with hamza/madda
    "ۍ": "ی", "ې": "ی",  # Pashto yeh forms still match a plain yeh typed on a Persian keyboard
    "ہ": "ه", "ھ": "ه",  # Urdu heh forms
    "\u200c": " ", "\u200d": None, "\u200e": None, "\u200f": None,  # ZWNJ/ZWJ, direction marks
    "\u0640": None,  # tatweel (kashida) is decoration
    "\u093c": None,  # Devanagari nukta: ज़ and ज are typed interchangeably
    "\u0901": "\u0902",  # chandrabindu -> anusvara: हूँ / हूं
    "\u2066": None, "\u2067": None, "\u2068": None, "\u2069": None,  # bidi isolates
})
# Arabic-Indic (٠-٩), Extended Arabic-Indic (۰-۹) and Devanagari (०-९) digits -> ASCII.
_DIGITS = {
    **{0x0660 + i: str(i) for i in range(10)},
    **{0x06F0 + i: str(i) for i in range(10)},
    **{0x0966 + i: str(i) for i in range(10)},
}
_HARAKAT = re.compile(r"[\u064B-\u065F\u0670]")  # short-vowel marks rarely typed consistently
# Punctuation and symbols only: combining marks (Devanagari matras, virama) are part of words.
_PUNCT_CATEGORIES = ("P", "S")
_SPACE = re.compile(r"\s+")


def normalize(text: str) -> str:
    """Case-, form- and digit-folded text with punctuation removed and spaces collapsed."""
    text = unicodedata.normalize("NFKC", text).translate(_FOLD).translate(_DIGITS)
    text = _HARAKAT.sub("", text).casefold()
    text = "".join(" " if unicodedata.category(c)[0] in _PUNCT_CATEGORIES else c for c in text)
    return _SPACE.sub(" ", text).strip()


@functools.lru_cache(maxsize=4096)
def normalize_label(text: str) -> str:
    """:func:`normalize` for the bot's own fixed strings (button labels, language names),
    which are compared with every typed answer. Cached; never pass what a person typed,
    or the cache would keep it."""
    return normalize(text)


def words(text: str) -> list[str]:
    return normalize(text).split()


def parse_number(text: str) -> int | None:
    """A typed choice number ('2', '۲', '٢', '२', ' 2. ') or None."""
    folded = normalize(text)
    return int(folded) if folded.isdigit() and len(folded) <= 3 else None


#: Letters that show as nothing, typed to send a message that looks empty: Hangul fillers
#: and the Braille blank.
_INVISIBLE_LETTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")
#: Control (Cc), format (Cf: zero-width space, joiners, direction marks, BOM) and separators.
_BLANK_CATEGORIES = frozenset({"Cc", "Cf", "Zs", "Zl", "Zp"})


def is_blank(text: str) -> bool:
    """True when nothing in ``text`` would show: only whitespace (U+3000 too), control and
    zero-width characters, or invisible fillers. Platforms refuse such text, or show nothing."""
    return all(c.isspace() or c in _INVISIBLE_LETTERS or unicodedata.category(c) in _BLANK_CATEGORIES
               for c in text)
