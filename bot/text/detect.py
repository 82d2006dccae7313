"""Guess a language from the letters someone typed.

Only the script is reliable on a few words: Devanagari means Hindi; letters only Pashto
uses mean Pashto; letters only Urdu uses mean Urdu; other Arabic-script text is Persian or
Dari, which share one script, so the person is always asked to confirm.

Letters told apart (all in the Arabic block; each checked against the five catalogs):

* Pashto only: ټ ډ ړ ږ ښ ګ ڼ ځ څ ۍ ې (Pashto writes its retroflex sounds with a ring or
  dots where Urdu uses a small tah: ټ/ٹ, ډ/ڈ, ړ/ڑ, and ڼ where Urdu has ں).
* Urdu only: ٹ ڈ ڑ ں ھ ہ ۂ ۃ ے ۓ (ہ "heh goal" is Urdu's everyday h, where Persian, Dari and
  Pashto write ه; ے "bari ye" ends many Urdu words).
* Shared by Persian, Dari, Urdu and often Pashto: پ چ ژ گ ک ی آ, so they decide nothing.
"""

from __future__ import annotations

import re

__all__ = ["guess_languages"]

_PASHTO_ONLY = frozenset("ټډړږښګڼځڅۍې")
_URDU_ONLY = frozenset("ٹڈڑںھہۂۃےۓ")


#: Links say nothing about the language around them (and are long runs of Latin letters).
_LINK = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)


def guess_languages(text: str) -> list[str]:
    """Likely languages, best first; empty when nothing can be told."""
    letters = [c for c in _LINK.sub(" ", text) if c.isalpha()]
    if not letters:
        return []
    if sum("\u0900" <= c <= "\u097f" for c in letters) * 2 >= len(letters):
        return ["hi"]
    arabic = [c for c in letters if "\u0600" <= c <= "\u06ff" or "\u0750" <= c <= "\u077f"]
    if len(arabic) * 2 >= len(letters):
        pashto = sum(c in _PASHTO_ONLY for c in arabic)
        urdu = sum(c in _URDU_ONLY for c in arabic)
        if pashto or urdu:
            # A Pashto word typed on an Urdu keyboard (or the reverse) can carry one letter
            # of the other: the language with more of its own letters wins.
            return ["ps"] if pashto >= urdu else ["ur"]
        return ["fa", "prs", "ps", "ur"]
    if all(c.isascii() for c in letters):
        return ["en"]
    return []
