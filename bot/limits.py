"""Named limits, one place for every number that bounds input or output.

Platform numbers come from the platforms' own documentation; the design keeps every
flow renderable on the strictest one we plan to support (WhatsApp).
"""

from __future__ import annotations

# Telegram: a text message holds at most 4096 characters; callback_data 1-64 bytes.
TELEGRAM_TEXT_MAX = 4096
TELEGRAM_CALLBACK_DATA_MAX_BYTES = 64

# WhatsApp interactive messages: up to 3 reply buttons of 20 characters, or a list of up to
# 10 rows whose titles hold 24 characters; the body of an interactive message holds 1024.
WHATSAPP_REPLY_BUTTONS_MAX = 3
WHATSAPP_REPLY_BUTTON_CHARS = 20
WHATSAPP_LIST_ROWS_MAX = 10
WHATSAPP_LIST_ROW_CHARS = 24
WHATSAPP_INTERACTIVE_BODY_CHARS = 1024
#: A text message; the label of the button that opens a list; a list row's description.
WHATSAPP_TEXT_MAX = 4096
WHATSAPP_LIST_BUTTON_CHARS = 20
WHATSAPP_LIST_DESCRIPTION_CHARS = 72
#: Media captions (Telegram's limit is the same).
CAPTION_CHARS_MAX = 1024
#: WhatsApp's customer-service window: free text only this long after the person's last
#: message; outside it, only templates Meta approved.
WHATSAPP_WINDOW_SECONDS = 24 * 3600
#: Largest files each platform takes, in bytes, by media kind (Telegram bots download at
#: most 20 MB and upload at most 50 MB).
WHATSAPP_MEDIA_MAX_BYTES = {"voice": 16 << 20, "audio": 16 << 20, "photo": 5 << 20,
                            "document": 100 << 20}
TELEGRAM_DOWNLOAD_MAX_BYTES = 20 << 20
TELEGRAM_UPLOAD_MAX_BYTES = 50 << 20

#: A question may offer at most this many buttons (the WhatsApp list limit).
BUTTONS_MAX = WHATSAPP_LIST_ROWS_MAX
#: The text of a question with buttons must fit WhatsApp's interactive body.
QUESTION_TEXT_MAX = WHATSAPP_INTERACTIVE_BODY_CHARS
#: Plain messages longer than this are split by the transport; flows stay below it.
SAY_TEXT_MAX = TELEGRAM_TEXT_MAX
#: What a phone shows without much scrolling. Every English flow text stays below it
#: (tests/test_content.py), and a transport that joins a turn's messages into one stops
#: joining there, so texts split by meaning arrive as separate, readable messages.
PHONE_MESSAGE_CHARS = 600


def button_label_max(button_count: int) -> int:
    """Longest label allowed when a question has ``button_count`` buttons."""
    if button_count <= WHATSAPP_REPLY_BUTTONS_MAX:
        return WHATSAPP_REPLY_BUTTON_CHARS
    return WHATSAPP_LIST_ROW_CHARS


# Engine guards.
#: Steps one turn may run before the engine assumes a loop and stops with an error message.
STEPS_PER_TURN_MAX = 50
#: Free-text answers longer than this are refused politely (and never stored).
ANSWER_CHARS_MAX = 1000
#: Inbound text longer than this is not matched at all (a 10,000-character paste, say).
INBOUND_CHARS_MAX = 4096

# Intake guards: a burst of messages from one chat (bot.intake).
#: Messages one chat may send within RATE_WINDOW_SECONDS and still be answered one by one;
#: past that, the rest are read and answered together once the person pauses.
RATE_MESSAGES_MAX = 8
RATE_WINDOW_SECONDS = 10.0
#: A burst ends when the person has sent nothing for this long ...
BURST_QUIET_SECONDS = 2.0
#: ... or when it has been waited for this long, whichever comes first.
BURST_WAIT_MAX_SECONDS = 10.0

# Stopping (SIGTERM, SIGINT): the whole stop stays within STOP_SECONDS_MAX, well inside
# docker stop's 10 s grace period.
#: Turns in flight get this long to finish; messages not started wait in the inbox.
STOP_TURNS_SECONDS = 5.0
#: Then replies still in the outbox get this long to go out.
STOP_SEND_SECONDS = 2.0
STOP_SECONDS_MAX = 10.0

# Dispatcher guards: a message the platform could not take for now (network, 5xx, a long
# flood wait). It is tried again after SEND_RETRY_FIRST_SECONDS, doubling up to
# SEND_RETRY_MAX_SECONDS between tries, and dropped (its sender told, if a volunteer) once
# SEND_GIVE_UP_SECONDS have passed since its first failure.
SEND_RETRY_FIRST_SECONDS = 5.0
SEND_RETRY_MAX_SECONDS = 120.0
SEND_GIVE_UP_SECONDS = 15 * 60.0

# The volunteer desk: what one volunteer is sent at once, however long the queue.
#: A round of offers sends a volunteer this many offers in full, the most urgent, then one
#: message for the rest ("and N more: /queue") that lists every crisis chat among them, a
#: line and a Take button each (BUTTONS_MAX a message).
DESK_OFFERS_PER_ROUND = 3
#: /queue lists this many chats a page, most urgent first ...
DESK_QUEUE_PAGE = 5
#: ... except that the first page lists every crisis chat, up to this many (a line each
#: keeps even these inside one Telegram message).
DESK_QUEUE_FIRST_PAGE_MAX = 20
#: Characters of a chat's summary shown on its line in /queue.
DESK_QUEUE_SUMMARY_CHARS = 80
