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
    "system.slow_down": "I am still here. Please wait a moment for my reply before sending more.",
    "system.unknown_command": "I do not know that command. You can use /menu, /language, "
    "/human or /stop.",
    "system.flow_changed": "This conversation was updated while you were away. "
    "Let us start again from the menu.",
    "system.loop": "Sorry, something went wrong on our side. Let us start again from the menu.",
    "system.untranslated": "(This message is not yet available in your language.)",
    "system.machine_translated": "(Translated by a computer. It may have mistakes.)",
    "system.language_guess": "It looks like you write in {languages}. Please tap your language "
    "to confirm.",
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
