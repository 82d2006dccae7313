"""Guess a language from the letters someone typed.

Only the script is reliable on a few words: Devanagari means Hindi; letters only Pashto
uses mean Pashto; letters only Urdu uses mean Urdu; other Arabic-script text is Persian or
Dari, which share one script, so the person is always asked to confirm.
"""

from __future__ import annotations

__all__ = ["guess_languages"]

_PASHTO_ONLY = set("ټډړږښګڼځڅۍې")
_URDU_ONLY = set("ٹڈڑںےۓھ")
_PERSIAN_SCRIPT = set("پچژگکیآ")


def guess_languages(text: str) -> list[str]:
    """Likely languages, best first; empty when nothing can be told."""
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return []
    if sum("\u0900" <= c <= "\u097f" for c in letters) * 2 >= len(letters):
        return ["hi"]
    arabic = [c for c in letters if "\u0600" <= c <= "\u06ff" or "\u0750" <= c <= "\u077f"]
    if len(arabic) * 2 >= len(letters):
        chars = set(arabic)
        if chars & _PASHTO_ONLY:
            return ["ps"]
        if chars & _URDU_ONLY:
            return ["ur"]
        return ["fa", "prs", "ps", "ur"]
    if all(c.isascii() for c in letters):
        return ["en"]
    return []
