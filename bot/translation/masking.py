"""Text a model must not touch (placeholders, links, e-mail addresses, phone numbers),
masked as ``[N]`` before translating and restored after."""

from __future__ import annotations

import re

from bot.errors import TranslationError

__all__ = ["mask_protected", "unmask_protected"]


_TRAILING_PUNCTUATION = ".,;:!?)]}'\"»”’"
_PROTECTED = re.compile(
    r"""
      (?P<placeholder>\{[^{}\s]*\})
    | (?P<email>[\w.+-]+@[\w-]+(?:\.[\w-]+)+)
    | (?P<url>(?:https?://|www\.)[^\s<>"]+)
    | (?P<domain>\b(?:[a-z0-9-]+\.)+(?:uk|org|com|net|gov|info|io|eu)\b(?:/[^\s<>"]*)?)
    | (?P<mask>\[\s*\d+\s*\])
    | (?P<phone>(?<![\w+])\+?\d(?:[\d ()\-]*\d)?(?!\w))
    """,
    re.VERBOSE | re.IGNORECASE,
)
_MASK = re.compile(r"\[\s*(\d+)\s*\]")  # \d also matches ۱ ١ १: models may localise digits
_MIN_PHONE_DIGITS = 3  # "3 days" and "14 days" are left to the model; "999" is protected


def mask_protected(text: str) -> tuple[str, list[str]]:
    """Replace placeholders, URLs, e-mail addresses and phone numbers by ``[0]``, ``[1]``...

    Returns the masked text and the protected spans in mask order. Anything in the text
    that already looks like a mask is protected too, so it cannot be confused with one.
    """
    spans: list[str] = []
    out: list[str] = []
    pos = 0
    for match in _PROTECTED.finditer(text):
        start, end = match.span()
        if match.lastgroup in ("url", "domain"):
            while end > start and text[end - 1] in _TRAILING_PUNCTUATION:
                end -= 1
        elif match.lastgroup == "phone":
            if sum(ch.isdigit() for ch in match.group()) < _MIN_PHONE_DIGITS:
                continue
            stripped = match.group().rstrip(" (-")
            end = start + len(stripped)
        if start < pos or end <= start:
            continue
        out.append(text[pos:start])
        out.append(f"[{len(spans)}]")
        spans.append(text[start:end])
        pos = end
    out.append(text[pos:])
    return "".join(out), spans


def unmask_protected(text: str, spans: list[str]) -> str:
    """Put the protected spans back; TranslationError if the model lost or invented a mask."""
    if not spans:
        return text
    seen: set[int] = set()

    def restore(match: re.Match[str]) -> str:
        index = int(match.group(1))
        if index >= len(spans):
            raise TranslationError(f"the model produced an unknown mask {match.group()!r}")
        seen.add(index)
        return spans[index]

    restored = _MASK.sub(restore, text)
    missing = [i for i in range(len(spans)) if i not in seen]
    if missing:
        # Not quoted: it may be a person's phone number, and this message goes to the log.
        raise TranslationError(
            f"the model dropped {len(missing)} protected part(s) (a number, link or "
            "placeholder); not sending a message without them"
        )
    return restored
