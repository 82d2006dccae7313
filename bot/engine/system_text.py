"""English sources of the messages the engine and dispatcher say outside any flow.

They are localised like flow text, under keys starting with ``system.``.
"""

from __future__ import annotations

SYSTEM_TEXT: dict[str, str] = {
    "system.not_understood": "Sorry, I did not understand. Please tap one of the buttons, "
    "or type its number.",
    "system.stale_button": "That question has passed. Here is where we are now:",
    "system.media": "Thank you. I can only read text messages. Please type your answer, "
    "or write 'person' to talk to a volunteer.",
    "system.too_long": "That message is too long for me. Please send a shorter message "
    "(a few sentences).",
    "system.burst_read": "I have read all {count} of your messages. Here is my answer to the "
    "last one:",
    "system.unknown_command": "I do not know that command. You can use /menu, /language, "
    "/human or /stop.",
    "system.flow_changed": "This conversation was updated while you were away. "
    "Let us start again from the menu.",
    "system.loop": "Sorry, something went wrong on our side. Let us start again from the menu.",
    "system.error": "Sorry, something went wrong on our side and your message was not saved. "
    "Please send it again in a minute.",
    "system.untranslated": "(This message is not yet available in your language.)",
    "system.machine_translated": "(Translated by a computer. It may have mistakes.)",
    "handover.queued": "You are in the queue to talk to a volunteer. Your place in the queue: "
    "{position}. {wait}",
    "handover.wait_estimate": "A volunteer usually replies in about {minutes} minutes. "
    "This is only an estimate.",
    "handover.no_one_online": "No volunteer is online right now. Your place is kept, and someone "
    "will reply here as soon as they can.",
    "handover.out_of_hours": "Volunteers are here {hours} (UK time). Your place is kept, and "
    "someone will reply here then. If you are in danger, call 999. Say the name of your language "
    "in English, for example \"Pashto\", and wait for an interpreter.",
    "handover.still_waiting": "You are still in the queue to talk to a volunteer. Your place in "
    "the queue: {position}. {wait} When a volunteer joins, they will see what you wrote here.",
    "handover.leave_button": "Leave the queue",
    "handover.left": "You have left the queue. Send any message to see the menu again.",
    "handover.joined": "A volunteer has joined this chat. Write your message here. "
    "They give general help, not legal advice.",
    "handover.with_volunteer": "You are talking with a volunteer. Please type your message. "
    "Send /leave to end the chat.",
    "handover.text_only": "The volunteer can only read text here. Please type your message.",
    "handover.closed": "The volunteer has ended this chat. Thank you. Send any message to see "
    "the menu again.",
    "handover.released": "The volunteer had to step away. You are back in the queue, and your "
    "place is kept.",
    "handover.user_timeout": "We closed this chat because we did not hear from you for a while. "
    "Send any message to start again.",
    "system.language_guess": "It looks like you write in {languages}. Please tap your language "
    "to confirm.",
    # The button that opens a list of choices (WhatsApp shows more than 3 choices as a list).
    "system.choose": "Choose",
    "handover.invite": "A volunteer would like to continue your conversation. Please reply to "
    "this message to talk with them.",
}

#: Descriptions of the bot's commands, shown by chat apps (Telegram's command menu).
COMMAND_TEXT: dict[str, str] = {
    "command.start": "Start again",
    "command.menu": "Main menu",
    "command.language": "Change language",
    "command.human": "Talk to a person",
    "command.help": "What this bot can do",
    "command.stop": "Stop this conversation",
    "command.forget": "Delete everything about me",
}
SYSTEM_TEXT.update(COMMAND_TEXT)

#: The phrase book: greetings and short replies people and volunteers send each other. A
#: relayed message that is one of these (in the sender's language or in English) is given
#: in the other's language from the catalogs, not sent to a translation model, which does
#: worst on one to three words (bot/i18n/catalog.py, short_phrase).
PHRASE_TEXT: dict[str, str] = {
    "phrase.hello": "Hello",
    "phrase.good_morning": "Good morning",
    "phrase.how_are_you": "How are you?",
    "phrase.thank_you": "Thank you",
    "phrase.yes": "Yes",
    "phrase.no": "No",
    "phrase.ok": "OK",
    "phrase.sorry": "Sorry",
    "phrase.please_wait": "Please wait",
    "phrase.goodbye": "Goodbye",
}
SYSTEM_TEXT.update(PHRASE_TEXT)

#: The labels of a service from the directory (bot/services), shown to a person: the
#: service's own name and contacts stay as written, these go into the person's language.
SERVICE_TEXT: dict[str, str] = {
    "services.phone": "Phone: {phone}",
    "services.web": "Web: {web}",
    "services.address": "Address: {address}",
    "services.hours": "Open: {hours}",
    "services.speaks": "Speaks {language}",
    "services.interpreters": "Has interpreters",
    "services.referral_needed": "Needs a referral from another service first",
    "services.no_referral": "No referral needed",
    "services.serves": "Serves: {places}",
    "services.serves_uk": "Serves the whole UK",
}
SYSTEM_TEXT.update(SERVICE_TEXT)
