"""Transport-neutral messages: what a platform hands the dispatcher, and what it sends back."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from enum import StrEnum

__all__ = ["RELAYED_MEDIA", "REOPEN_TEMPLATE", "Attachment", "Inbound", "InboundKind", "OutButton",
           "Outbound"]


class InboundKind(StrEnum):
    TEXT = "text"
    BUTTON = "button"  # a tap on a button we sent; ``button`` holds its callback data
    COMMAND = "command"  # /start, /help ...; ``command`` holds the name without the slash
    MEDIA = "media"  # sticker, photo, voice note ...; ``media`` names which
    #: Not from the person: the platform reports, after accepting it, that a message of ours
    #: could not be delivered (WhatsApp's failed status). ``text`` holds the reason in plain
    #: words; ``meta`` what the transport still knows of the message ("key", "from",
    #: "handover", "preview", "code").
    UNDELIVERED = "undelivered"


#: Media kinds passed between a person and a volunteer as the file itself.
RELAYED_MEDIA = frozenset({"voice", "audio", "photo", "document"})
#: Outbound.meta["template"] of a message a transport may replace by the approved invitation
#: to write again when it may not send free text (WhatsApp's 24-hour window): a volunteer's
#: /invite, the notice that a volunteer joined.
REOPEN_TEMPLATE = "reopen"


@dataclass(frozen=True)
class Attachment:
    """A file one platform holds for us: a voice note, photo or document someone sent.

    ``ref`` is "<transport>:<the platform's id>" (Telegram's file_id, WhatsApp's media id):
    only the transport named may fetch it. The bytes never enter the database: they are
    fetched from the platform that holds them while the message is being delivered.
    """

    kind: str  # "voice", "audio", "photo", "document" ... as in Inbound.media
    ref: str
    mime_type: str = ""
    file_name: str = ""
    size: int | None = None  # bytes, when the platform said

    @property
    def source(self) -> str:
        """The transport that holds the file ("telegram", "whatsapp")."""
        return self.ref.partition(":")[0]

    @property
    def platform_id(self) -> str:
        return self.ref.partition(":")[2]

    def to_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "ref": self.ref, "mime_type": self.mime_type,
                "file_name": self.file_name, "size": self.size}

    @classmethod
    def from_dict(cls, data: dict[str, object] | None) -> Attachment | None:
        if not data:
            return None
        size = data.get("size")
        return cls(str(data["kind"]), str(data["ref"]), str(data.get("mime_type") or ""),
                   str(data.get("file_name") or ""), int(size) if isinstance(size, int) else None)


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
    #: The file of a voice note, photo or document, for passing it on to a volunteer.
    attachment: Attachment | None = None
    #: Another chat key of the same sender: WhatsApp keys a person on their user id and
    #: also gives their phone number unless they hide it; a volunteer may be registered
    #: by either.
    alias: str | None = None
    #: Details of an UNDELIVERED report (see InboundKind).
    meta: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # A lone UTF-16 surrogate (JSON allows "\ud800") cannot be stored as UTF-8: it
        # would fail the whole turn, so the person would get no answer at all.
        if _SURROGATE.search(self.text) is not None:
            object.__setattr__(self, "text", without_lone_surrogates(self.text))

    def to_json(self) -> str:
        """The message as saved in the inbox until it is handled."""
        data: dict[str, object] = {
            "chat_key": self.chat_key, "kind": self.kind.value, "text": self.text,
            "command": self.command, "button": self.button, "media": self.media,
            "update_id": self.update_id, "language_hint": self.language_hint}
        # Only when set: most messages are plain text, and rows saved before these fields
        # existed read back the same.
        if self.attachment is not None:
            data["attachment"] = self.attachment.to_dict()
        if self.alias is not None:
            data["alias"] = self.alias
        if self.meta:
            data["meta"] = self.meta
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, payload: str) -> Inbound:
        data = json.loads(payload)
        data["kind"] = InboundKind(data["kind"])
        data["attachment"] = Attachment.from_dict(data.get("attachment"))
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
    #: "machine": machine-translated; "choose": the label opening a list of the buttons;
    #: "from" / "handover": the volunteer a relayed message is from, and the chat;
    #: "template": see REOPEN_TEMPLATE.
    meta: dict[str, str] = field(default_factory=dict)
    #: A file to deliver with ``text`` as its caption (a relayed voice note, photo ...).
    attachment: Attachment | None = None
    #: Other chats this message quotes, summarises or names (a person's words relayed to
    #: their volunteer, an offer of their chat): a /forget of one of them deletes it
    #: undelivered, as it deletes what waits for that chat itself.
    about: tuple[str, ...] = ()
