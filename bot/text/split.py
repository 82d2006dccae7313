"""Splitting a long message into parts a platform takes, by meaning: paragraphs first, then
lines, then words, and only then anywhere.

Lengths are counted in UTF-16 code units, Telegram's measure (an emoji outside the BMP
counts twice); WhatsApp counts characters, so a part that fits Telegram fits WhatsApp too.
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.limits import TELEGRAM_TEXT_MAX

__all__ = ["split_text", "utf16_len"]


def split_text(text: str, limit: int = TELEGRAM_TEXT_MAX) -> list[str]:
    """Split ``text`` into parts of at most ``limit`` UTF-16 code units (Telegram's measure:
    an emoji outside the BMP counts twice), at paragraph breaks, else line breaks, else
    spaces, else anywhere. Parts are stripped; blank parts are dropped."""
    if utf16_len(text) <= limit:
        return [text] if text.strip() else []
    parts = _pack(text, ("\n\n", "\n", " "), limit)
    return [p.strip() for p in parts if p.strip()]


def _pack(text: str, separators: Sequence[str], limit: int) -> list[str]:
    if utf16_len(text) <= limit:
        return [text]
    if not separators:
        return _hard_cut(text, limit)
    sep, finer = separators[0], separators[1:]
    out: list[str] = []
    current: str | None = None
    for piece in text.split(sep):
        if current is not None and utf16_len(current) + utf16_len(sep) + utf16_len(piece) <= limit:
            current = current + sep + piece
            continue
        if current is not None:
            out.append(current)
        if utf16_len(piece) <= limit:
            current = piece
        else:
            *full, current = _pack(piece, finer, limit)
            out.extend(full)
    if current is not None:
        out.append(current)
    return out


def _hard_cut(text: str, limit: int) -> list[str]:
    parts: list[str] = []
    chars: list[str] = []
    used = 0
    for ch in text:
        width = 2 if ord(ch) > 0xFFFF else 1
        if used + width > limit:
            parts.append("".join(chars))
            chars, used = [], 0
        chars.append(ch)
        used += width
    if chars:
        parts.append("".join(chars))
    return parts


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units."""
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)
