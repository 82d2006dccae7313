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

# Dispatcher guards: a burst of messages from one chat.
#: Messages one chat may send within RATE_WINDOW_SECONDS before being asked to slow down.
RATE_MESSAGES_MAX = 8
RATE_WINDOW_SECONDS = 10.0
