"""Transport-neutral messages: what a platform hands the dispatcher, and what it sends back."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from enum import StrEnum

__all__ = ["Inbound", "InboundKind", "OutButton", "Outbound"]


class InboundKind(StrEnum):
    TEXT = "text"
    BUTTON = "button"  # a tap on a button we sent; ``button`` holds its callback data
    COMMAND = "command"  # /start, /help ...; ``command`` holds the name without the slash
    MEDIA = "media"  # sticker, photo, voice note ...; ``media`` names which


@dataclass(frozen=True)
class Inbound:
    chat_key: str  # "<transport>:<platform chat id>", e.g. "telegram:12345"
    kind: InboundKind
    text: str = ""
    command: str = ""
    button: str = ""
    media: str = ""
    #: Platform-unique id of the update, so a duplicate delivery is handled once.
    update_id: str | None = None
    #: The platform's guess at the user's language (Telegram's language_code), if any.
    language_hint: str | None = None

    def __post_init__(self) -> None:
        # A lone UTF-16 surrogate (JSON allows "\ud800") cannot be stored as UTF-8: it
        # would fail the whole turn, so the person would get no answer at all.
        if _SURROGATE.search(self.text) is not None:
            object.__setattr__(self, "text", without_lone_surrogates(self.text))

    def to_json(self) -> str:
        """The message as saved in the inbox until it is handled."""
        return json.dumps({"chat_key": self.chat_key, "kind": self.kind.value, "text": self.text,
                           "command": self.command, "button": self.button, "media": self.media,
                           "update_id": self.update_id, "language_hint": self.language_hint},
                          ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, payload: str) -> Inbound:
        data = json.loads(payload)
        data["kind"] = InboundKind(data["kind"])
        return cls(**data)

    @classmethod
    def from_text(cls, chat_key: str, text: str, update_id: str | None = None) -> Inbound:
        """Text as typed, with '/name args' recognised as a command."""
        stripped = text.strip()
        if stripped.startswith("/") and len(stripped) > 1:
            name, _, rest = stripped[1:].partition(" ")
            name = name.split("@", 1)[0]  # Telegram group form: /help@SomeBot
            if name.isascii() and name.replace("_", "").isalnum():
                return cls(chat_key, InboundKind.COMMAND, text=rest.strip(),
                           command=name.lower(), update_id=update_id)
        return cls(chat_key, InboundKind.TEXT, text=text, update_id=update_id)


_SURROGATE = re.compile("[\ud800-\udfff]")


def without_lone_surrogates(text: str) -> str:
    """Pairs of surrogates joined into their character; a lone one becomes U+FFFD."""
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


@dataclass(frozen=True)
class OutButton:
    callback: str  # short ASCII token tying the tap to the question: "<token>.<index>"
    label: str
    key: str = ""  # localisation key of the label (for tests and logs; never shown)


@dataclass(frozen=True)
class Outbound:
    chat_key: str
    text: str
    buttons: tuple[OutButton, ...] = ()
    language: str = "en"
    rtl: bool = False
    #: Key of the message in the catalogs (for tests and logs; never shown).
    key: str = ""
    #: The question token when this message asks something (transports use it to
    #: remove the keyboard of an earlier question once it is answered).
    token: int | None = None
    meta: dict[str, str] = field(default_factory=dict)
