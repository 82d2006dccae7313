"""Rows to objects and back, the same for every backend: a reply as stored in the outbox,
a volunteer row, a queue entry row (columns in ``ENTRY_COLUMN_NAMES`` order)."""

from __future__ import annotations

import json
from typing import Any

from bot.flowspec.model import Priority
from bot.handover.model import ALL_QUEUES, DueEntry, OfferQuery, OffersOwed, QueueEntry, Volunteer
from bot.handover.model import Status as HandoverStatus
from bot.messages import Attachment, Outbound, OutButton

__all__ = ["ENTRY_COLUMNS", "ENTRY_COLUMN_NAMES", "VOLUNTEER_COLUMNS", "decode", "encode", "entry",
           "offer_volunteers", "offers_owed", "outbox_row", "volunteer"]

VOLUNTEER_COLUMNS = "chat_key, name, languages, queues, available"
ENTRY_COLUMN_NAMES = ("id", "chat_key", "flow", "queue", "priority", "summary", "language",
                      "created_at", "status", "volunteer", "assigned_at", "user_seen_at",
                      "volunteer_seen_at")
ENTRY_COLUMNS = ", ".join(ENTRY_COLUMN_NAMES)


def encode(message: Outbound) -> str:
    # By hand rather than dataclasses.asdict, whose deep copy showed up on every turn.
    data = {
        "chat_key": message.chat_key, "text": message.text, "language": message.language,
        "rtl": message.rtl, "key": message.key, "token": message.token, "meta": message.meta,
        "buttons": [{"callback": b.callback, "label": b.label, "key": b.key} for b in message.buttons],
    }
    if message.attachment is not None:  # a reference to the platform's copy, never the bytes
        data["attachment"] = message.attachment.to_dict()
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def decode(payload: str, about: Any = None) -> Outbound:
    """``about``: the row's about column (a JSON array, as text or already read), or None."""
    data = json.loads(payload)
    data["buttons"] = tuple(OutButton(**b) for b in data.get("buttons", ()))
    data["attachment"] = Attachment.from_dict(data.get("attachment"))
    if about is not None:
        data["about"] = tuple(json.loads(about) if isinstance(about, str) else about)
    return Outbound(**data)


def outbox_row(message: Outbound) -> list[Any]:
    """A message as the stores' insert statements read it: [chat key, payload], then the
    chats it is about (the outbox's about column) only when there are some, so a reply to
    the chat itself costs nothing more. Not in the payload: the column is the one copy."""
    if message.about:
        return [message.chat_key, encode(message), list(message.about)]
    return [message.chat_key, encode(message)]


def _split(text: str) -> tuple[str, ...]:
    return tuple(part for part in text.split(",") if part)


def volunteer(row: Any) -> Volunteer:
    return Volunteer(str(row[0]), str(row[1]), _split(row[2]), _split(row[3]), bool(row[4]))


def entry(row: Any) -> QueueEntry:
    return QueueEntry(int(row[0]), str(row[1]), str(row[2]), str(row[3]), Priority(row[4]),
                      str(row[5]), row[6], float(row[7]), HandoverStatus(row[8]), row[9], row[10],
                      row[11], row[12])


def offer_volunteers(query: OfferQuery) -> str:
    """The volunteers of a round of offers as the JSON rows the offers-owed query reads:
    [chat key, ",fa,en,", ",legal,", serves every queue, fresh]. Languages and queues as
    ",fa,en,": a substring test on them is cheaper, row by row, than unpacking a list (names
    hold no commas: the volunteers table keeps them comma-separated)."""
    return json.dumps([[v.chat_key, f",{','.join(v.languages)},", f",{','.join(v.queues)},",
                        ALL_QUEUES in v.queues, v.chat_key in query.fresh]
                       for v in query.volunteers], ensure_ascii=False)


def offers_owed(rows: Any) -> OffersOwed:
    """The offers-owed query's rows: (volunteer, entry columns...) for an offer owed, and
    (NULL, entry columns..., next due time) for a chat due for offering."""
    owed = [(str(row[0]), entry(row[1:])) for row in rows if row[0] is not None]
    owed.sort(key=lambda pair: (*pair[1].order, pair[1].id))  # cheaper here than in SQL
    due = tuple(DueEntry(int(row[1]), float(row[8])) for row in rows if row[0] is None)
    return OffersOwed(tuple(owed), due)
