"""Keep left-to-right spans (phone numbers, links) intact inside right-to-left text.

Telegram picks a message's direction from its first strong letter; inside Persian or Urdu
text a phone number like "0808 8010 503" can be reordered to "503 8010 0808" by the bidi
algorithm. Wrapping each LTR span in FIRST STRONG ISOLATE ... POP DIRECTIONAL ISOLATE
(U+2068 ... U+2069) makes it display as one unit, in its own direction.
"""

from __future__ import annotations

import re

__all__ = ["FSI", "PDI", "isolate_ltr_spans"]

FSI = "\u2068"
PDI = "\u2069"

_LTR_SPAN = re.compile(
    r"https?://\S+[^\s.,;:!?)\]»،؛؟]"  # links, without trailing punctuation
    r"|[\w.+-]+@[\w-]+(?:\.[\w-]+)+"  # e-mail addresses
    r"|\d{1,2}:\d{2}(?:\s*[-–]\s*\d{1,2}:\d{2})?"  # times and ranges: 09:00-21:00 as one unit
    r"|\+?\d(?:[\d ()-]*\d)?"  # numbers: phone numbers with spaces, and "14" in "14 days"
    r"|/[a-z]+"  # commands such as /forget
    r"|[A-Za-z][A-Za-z0-9&'.-]*(?: [A-Za-z][A-Za-z0-9&'.-]*)*"  # Latin words (names of services)
)


def isolate_ltr_spans(text: str) -> str:
    """Wrap every left-to-right span in isolates. Idempotent; call only for RTL languages."""
    if FSI in text:
        return text
    return _LTR_SPAN.sub(lambda m: f"{FSI}{m.group(0)}{PDI}", text)
