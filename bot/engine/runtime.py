"""The conversation engine: a pure function from (session, inbound) to (session, events).

It reads the flow library and the session, and returns what should be said and done.
It performs no I/O and keeps no state between calls, so it is tested without mocks and
every turn can be replayed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from bot import limits
from bot.engine.events import Choice, Event, Forget, Handover, LanguageSet, Param, Say, ServiceCard
from bot.engine.session import Session
from bot.engine.system_text import SYSTEM_TEXT
from bot.flowspec.conditions import evaluate
from bot.flowspec.library import FlowLibrary
from bot.flowspec.model import (
    PLACEHOLDER,
    AskStep,
    ChooseLanguageStep,
    EndStep,
    Flow,
    ForgetStep,
    GotoStep,
    HandoverStep,
    MenuStep,
    Next,
    SayStep,
    ServicesStep,
    Step,
    Target,
)
from bot.messages import Inbound, InboundKind
from bot.services.matching import find_place, matching_services
from bot.services.model import Directory, Place
from bot.text.detect import guess_languages
from bot.text.languages import DEFAULT_LANGUAGE, LANGUAGES, hinted_language
from bot.text.normalize import normalize, normalize_label, parse_number

__all__ = ["Aliases", "Turn", "reprompt", "resume", "takes_while_queued"]

#: For a localisation key, the same text in every other language (to match typed answers).
Aliases = Callable[[str], Sequence[str]]
#: Normalised keyword in another language -> flow id, for routing typed messages to flows.
KeywordAliases = Mapping[str, str]

_START_COMMANDS = ("start",)
_NO_DIRECTORY = Directory()


def _no_aliases(_key: str) -> Sequence[str]:
    return ()


@dataclass(frozen=True)
class Turn:
    session: Session
    events: tuple[Event, ...]


class _Run:
    """Mutable scratch state for one turn; discarded when the turn returns."""

    def __init__(self, library: FlowLibrary, session: Session,
                 directory: Directory = _NO_DIRECTORY) -> None:
        self.library = library
        self.directory = directory
        self.session = session
        self.events: list[Event] = []
        self.steps_run = 0
        #: Language guessed from a first message, used until the person chooses one.
        self.guess: str | None = None

    # -- output -------------------------------------------------------------------------
    def say(self, key: str, text: str, params: dict[str, Param] | None = None,
            choices: tuple[Choice, ...] = (), token: int | None = None) -> Say:
        shown_in = self.guess if self.session.language is None else None
        return Say(key, text, params or {}, choices, token, shown_in)

    def system(self, key: str, params: dict[str, Param] | None = None) -> None:
        self.events.append(self.say(key, SYSTEM_TEXT[key], params))

    def params_for(self, flow: Flow, text: str) -> dict[str, Param]:
        params: dict[str, Param] = {}
        for name in PLACEHOLDER.findall(text):
            params[name] = _answer_param(flow, name, self.session.answers.get(name, ""))
        return params

    # -- control ------------------------------------------------------------------------
    def start_flow(self, flow: Flow | None) -> None:
        pending = self.session.pending
        if pending is not None and (flow is None or flow.id != self.library.first_contact):
            # The topic the first message named, now that the language is chosen: instead
            # of the main menu the language question leads to. Used once, then forgotten.
            self.session = self.session.evolve(pending=None)
            if flow is not None and flow.id == self.library.main_menu:
                flow = self.library.get(pending) or flow
        if flow is None or not flow.steps:
            self.end()
            return
        self.session = self.session.evolve(flow=flow.id, step=None, answers={})
        self.run(flow, flow.steps[0])

    def main_menu(self) -> None:
        self.start_flow(self.library.get(self.library.main_menu))

    def end(self) -> None:
        self.session = self.session.evolve(flow=None, step=None, answers={})

    def go(self, flow: Flow, here: Step, nxt: Next | None) -> None:
        """Follow ``nxt`` from step ``here`` (None: fall through to the following step)."""
        target = self.pick(nxt)
        if target is None:
            following = flow.step_after(here.id)
            if following is None:
                self.end()
            else:
                self.run(flow, following)
        elif target.end:
            self.end()
        elif target.menu:
            self.main_menu()
        elif target.flow is not None:
            self.start_flow(self.library.get(target.flow))
        else:
            step = flow.step(target.step or "")
            if step is None:  # validation prevents this; a hot reload could not
                self.recover()
            else:
                self.run(flow, step)

    def pick(self, nxt: Next | None) -> Target | None:
        if nxt is None or isinstance(nxt, Target):
            return nxt
        for branch in nxt:
            cond = branch.condition
            if cond is None or evaluate(cond.name, cond.variable, cond.values,
                                        self.session.answers, self.session.language):
                return branch.target
        return None

    def run(self, flow: Flow, step: Step) -> None:
        """Run steps from ``step`` until one waits for the person or the flow ends."""
        while True:
            self.steps_run += 1
            if self.steps_run > limits.STEPS_PER_TURN_MAX:
                self.end()
                self.system("system.loop")
                return
            if isinstance(step, SayStep):
                self.events.append(self.say(step.key, step.text, self.params_for(flow, step.text)))
            elif isinstance(step, ServicesStep):
                self.show_services(flow, step)
            elif isinstance(step, HandoverStep):
                summary = _fill(step.summary, self.params_for(flow, step.summary))
                self.events.append(Handover(flow.id, step.id, step.queue, step.priority, summary))
            elif isinstance(step, AskStep | MenuStep | ChooseLanguageStep):
                self.ask(flow, step)
                return
            elif isinstance(step, EndStep):
                self.end()
                return
            elif isinstance(step, ForgetStep):
                self.events.append(Say(step.key, step.text))
                self.events.append(Forget())
                # Keep the language only so the goodbye above renders; storage drops it all.
                self.session = Session(language=self.session.language)
                return
            # Say, Services, Handover and Goto move on; ``go`` recurses only across flows or jumps.
            if isinstance(step, GotoStep) or step.next is not None:
                self.go(flow, step, step.next)
                return
            following = flow.step_after(step.id)
            if following is None:
                self.end()
                return
            step = following

    def show_services(self, flow: Flow, step: ServicesStep) -> None:
        """The services that fit the saved answers; what was typed is only read, never kept
        beyond the answers of this flow (cleared when it ends)."""
        tags = step.tags_for(self.session.answers.get(step.need, ""))
        place, typed_unknown = self.place_of(flow, step)
        found = matching_services(self.directory, tags, place.id if place else None,
                                  self.session.language)
        if typed_unknown and step.unknown_place_text is not None:
            self.events.append(self.say(step.unknown_place_key, step.unknown_place_text,
                                        self.params_for(flow, step.unknown_place_text)))
        if not found:
            self.events.append(self.say(step.none_key, step.none_text,
                                        self.params_for(flow, step.none_text)))
            return
        self.events.append(self.say(step.key, step.text, self.params_for(flow, step.text)))
        shown_in = self.guess if self.session.language is None else None
        self.events.extend(ServiceCard.of(self.directory, service, shown_in) for service in found)

    def place_of(self, flow: Flow, step: ServicesStep) -> tuple[Place | None, bool]:
        """The first of the step's place answers that names a place, and whether a typed
        place before it was not found. A button that names no place ("type my town")
        is passed over quietly."""
        typed_unknown = False
        for name in step.place:
            value = self.session.answers.get(name, "")
            if not value:
                continue
            known = self.directory.places.get(value)
            if known is not None:
                return known, typed_unknown
            if _is_button_answer(flow, name, value):
                continue
            typed = find_place(self.directory, value)
            if typed is not None:
                return typed, typed_unknown
            typed_unknown = True
        return None, typed_unknown

    def take_typed_place(self, flow: Flow, step: AskStep, text: str) -> bool:
        """A place question (its answer is a place a services step reads) also takes a place
        typed instead of tapped ("Leicester" at the regions): the place's id is saved, as
        a tap would, never the words typed."""
        reads_place = any(isinstance(s, ServicesStep) and step.save in s.place for s in flow.steps)
        place = find_place(self.directory, text) if reads_place and step.save else None
        if place is None or step.save is None:
            return False
        self.save(step.save, place.id)
        self.go(flow, step, step.next)
        return True

    def ask(self, flow: Flow, step: AskStep | MenuStep | ChooseLanguageStep) -> None:
        token = self.session.token + 1
        self.session = self.session.evolve(flow=flow.id, step=step.id, token=token)
        self.events.append(self.question(flow, step))

    def question(self, flow: Flow, step: AskStep | MenuStep | ChooseLanguageStep) -> Say:
        token = self.session.token
        choices = tuple(
            Choice(key, label, f"{token}.{i}") for i, (key, label) in enumerate(self.options(step))
        )
        return self.say(step.key, step.text, self.params_for(flow, step.text), choices, token)

    def options(self, step: Step) -> list[tuple[str, str]]:
        """(label key, English label) of each button of a question, in order."""
        if isinstance(step, AskStep):
            return [(b.key, b.label) for b in step.buttons]
        if isinstance(step, MenuStep):
            return [(f.title_key, f.title) for f in self.library.menu()]
        if isinstance(step, ChooseLanguageStep):
            # Each language in its own script: no key, the name is the same in every language.
            return [("", lang.native_name) for lang in LANGUAGES.values()]
        return []

    def current(self) -> tuple[Flow, Step] | None:
        flow = self.library.get(self.session.flow or "")
        step = flow.step(self.session.step or "") if flow else None
        if flow is None or step is None:
            return None
        return flow, step

    def reprompt(self) -> None:
        where = self.current()
        if where is None:
            self.main_menu()
            return
        flow, step = where
        if isinstance(step, AskStep | MenuStep | ChooseLanguageStep):
            self.events.append(self.question(flow, step))
        else:  # pragma: no cover - a session only ever waits on a question
            self.recover()

    def recover(self) -> None:
        """The session points at a step that no longer exists (flows were edited)."""
        self.end()
        self.system("system.flow_changed")
        self.main_menu()

    # -- answers ------------------------------------------------------------------------
    def choose(self, flow: Flow, step: Step, index: int) -> None:
        if isinstance(step, MenuStep):
            self.start_flow(self.library.menu()[index])
        elif isinstance(step, ChooseLanguageStep):
            code = list(LANGUAGES)[index]
            self.session = self.session.evolve(language=code)
            self.events.append(LanguageSet(code))
            self.go(flow, step, step.next)
        elif isinstance(step, AskStep):
            button = step.buttons[index]
            if step.save:
                self.save(step.save, button.id)
            self.go(flow, step, button.next or step.next)

    def save(self, name: str, value: str) -> None:
        self.session = self.session.evolve(answers={**self.session.answers, name: value})


def _answer_param(flow: Flow, name: str, value: str) -> Param:
    """A saved answer as shown in text: a button's label (translatable), or the typed text."""
    for step in flow.steps:
        if isinstance(step, AskStep) and step.save == name:
            for button in step.buttons:
                if button.id == value:
                    return Param(button.label, button.key)
    return Param(value)


def _is_button_answer(flow: Flow, name: str, value: str) -> bool:
    return any(isinstance(step, AskStep) and step.save == name and
               any(b.id == value for b in step.buttons) for step in flow.steps)


def _fill(text: str, params: dict[str, Param]) -> str:
    filled = PLACEHOLDER.sub(lambda m: params[m.group(1)].text if m.group(1) in params
                             else m.group(0), text)
    return filled.replace("{{", "{").replace("}}", "}")


def _match_choice(text: str, options: list[tuple[str, str]], aliases: Aliases) -> int | None:
    """Index of the option a typed answer means: by number, or by label in any language."""
    number = parse_number(text)
    if number is not None:
        return number - 1 if 1 <= number <= len(options) else None
    typed = normalize(text)
    if not typed:
        return None
    for index, (key, label) in enumerate(options):
        # Other languages' labels come normalised already (see Localizer.aliases).
        if normalize_label(label) == typed or (key and typed in aliases(key)):
            return index
    return None


def _match_language(text: str) -> int | None:
    # Names only, never codes: "hi" is a greeting (and Hindi's code), "ur" is "your".
    typed = normalize(text)
    for index, lang in enumerate(LANGUAGES.values()):
        if typed in (normalize_label(lang.native_name), normalize_label(lang.english_name)):
            return index
    return None


def resume(library: FlowLibrary, session: Session, inbound: Inbound,
           aliases: Aliases = _no_aliases, keyword_aliases: KeywordAliases | None = None,
           safeguarding_aliases: KeywordAliases | None = None,
           distress_aliases: KeywordAliases | None = None,
           directory: Directory = _NO_DIRECTORY) -> Turn:
    """Advance one chat by one message. Pure: same inputs, same outputs.

    The alias maps hold the words of every language (from the catalogs), normalised, each
    leading to a flow id: ``keyword_aliases`` for keywords, ``safeguarding_aliases`` for
    safeguarding phrases, ``distress_aliases`` for distress words. ``directory`` holds the
    services a ``services`` step may show."""
    run = _Run(library, session, directory)
    words = _Words(keyword_aliases if keyword_aliases is not None else {},
                   safeguarding_aliases if safeguarding_aliases is not None else {},
                   distress_aliases if distress_aliases is not None else {})
    _dispatch(run, inbound, aliases, words)
    return Turn(run.session, tuple(run.events))


@dataclass(frozen=True)
class _Words:
    keywords: KeywordAliases
    safeguarding: KeywordAliases
    distress: KeywordAliases


def _topic_named(library: FlowLibrary, text: str, words: _Words) -> Flow | None:
    """The flow a message asks for by its words: a keyword as the whole message, a menu
    topic's keyword inside it, else a distress word ('help', 'scared', 'police') inside it.
    The main menu and the language question are not topics."""
    found = (library.flow_named_by(text, words.keywords)
             or library.flow_for_keywords(text, words.keywords)
             or library.flow_for_distress(text, words.distress))
    if found is None or found.id in (library.main_menu, library.first_contact):
        return None
    return found


def takes_while_queued(library: FlowLibrary, session: Session, inbound: Inbound,
                       keyword_aliases: KeywordAliases | None = None,
                       safeguarding_aliases: KeywordAliases | None = None) -> bool:
    """Whether the flows answer this message from a person waiting for a volunteer.

    Taps, commands, a message in the middle of a flow (the person went on using the bot),
    safeguarding phrases (crisis numbers come first, always) and whole-message interrupts
    that do not hand over ('menu', 'stop', 'language') go to the flows. Anything else
    typed or sent while idle is for the volunteer: the desk keeps it and says the person
    is still in the queue, instead of showing the main menu again.
    """
    if inbound.kind not in (InboundKind.TEXT, InboundKind.MEDIA) or session.flow is not None:
        return True
    text = inbound.text if inbound.kind is InboundKind.TEXT else ""
    if not text:
        return False
    if library.flow_for_safeguarding(text, safeguarding_aliases or {}) is not None:
        return True
    interrupt = library.interrupt_for(text, keyword_aliases or {})
    return interrupt is not None and not any(isinstance(s, HandoverStep) for s in interrupt.steps)


def reprompt(library: FlowLibrary, session: Session) -> Turn:
    """Ask the current question again (after a restart, say); the main menu when idle."""
    run = _Run(library, session)
    if session.flow is None and not session.started:
        run.session = session.evolve(started=True)
        run.start_flow(library.get(library.first_contact))
    else:
        run.reprompt()
    return Turn(run.session, tuple(run.events))


def _dispatch(run: _Run, inbound: Inbound, aliases: Aliases, words: _Words) -> None:
    library = run.library
    keyword_aliases = words.keywords
    typed = inbound.text if inbound.kind is InboundKind.TEXT else ""
    safety = library.flow_for_safeguarding(typed, words.safeguarding) if typed else None
    if safety is not None:
        # Before anything else, even the first-contact language question: crisis numbers
        # first (again, if said again inside the safety flow: better repeated than "I did
        # not understand"). At first contact a language guessed from the letters is taken
        # as it is, to be corrected later with /language: no time for a question now.
        if not run.session.started:
            guessed = next(iter(guess_languages(typed)), None) or hinted_language(inbound.language_hint)
            run.session = run.session.evolve(started=True, language=guessed)
        run.start_flow(safety)
        return
    if not run.session.started:
        # First contact, whatever was sent: offer the languages first. If the letters typed
        # (or the platform) suggest a language, ask in it and name it, to be confirmed by a tap:
        # Dari and Persian share a script, so a guess is never taken as the answer.
        # A topic the message names ("my claim was refused", "help me") is kept, to be
        # opened once the language is chosen.
        topic = _topic_named(library, typed, words) if typed else None
        run.session = run.session.evolve(started=True, pending=topic.id if topic else None)
        hint = hinted_language(inbound.language_hint)
        guesses = (guess_languages(typed) if typed else []) or ([hint] if hint else [])
        if guesses and guesses[0] != DEFAULT_LANGUAGE:
            run.guess = guesses[0]
            names = " / ".join(LANGUAGES[code].native_name for code in guesses)
            run.system("system.language_guess", {"languages": Param(names)})
        run.start_flow(library.get(library.first_contact))
        return

    if inbound.kind is InboundKind.COMMAND:
        flow = library.by_command(inbound.command)
        if flow is not None:
            run.start_flow(flow)
        elif inbound.command in _START_COMMANDS:
            run.main_menu()
        else:
            run.system("system.unknown_command")
            run.reprompt()
        return

    if inbound.kind is InboundKind.MEDIA:
        run.system("system.media")
        run.reprompt()
        return

    where = run.current()
    if run.session.flow is not None and where is None:
        run.recover()
        return

    if inbound.kind is InboundKind.BUTTON:
        token, _, index_text = inbound.button.partition(".")
        step = where[1] if where else None
        options = run.options(step) if step else []
        if (where is None or token != str(run.session.token) or not index_text.isdigit()
                or int(index_text) >= len(options)):
            run.system("system.stale_button")
            run.reprompt()
            return
        run.choose(where[0], where[1], int(index_text))
        return

    text = inbound.text
    if len(text) > limits.INBOUND_CHARS_MAX:
        run.system("system.too_long")
        run.reprompt()
        return
    interrupt = library.interrupt_for(text, keyword_aliases)
    if interrupt is not None:
        run.start_flow(interrupt)
        return
    if where is None:
        # Idle: a keyword (or a distress word) starts its flow, anything else shows the menu.
        found = _topic_named(library, text, words)
        run.start_flow(found) if found is not None else run.main_menu()
        return

    flow, step = where
    if isinstance(step, AskStep) and step.free_text:
        if len(text) > limits.ANSWER_CHARS_MAX:
            run.system("system.too_long")
            run.reprompt()
            return
        if step.save and text.strip():
            run.save(step.save, text.strip())
        run.go(flow, step, step.next)
        return
    options = run.options(step)
    index = _match_choice(text, options, aliases)
    if index is None and isinstance(step, ChooseLanguageStep):
        index = _match_language(text)
    if index is not None:
        run.choose(flow, step, index)
        return
    if isinstance(step, AskStep) and run.take_typed_place(flow, step, text):
        return
    if isinstance(step, MenuStep):
        # Keywords first; then, for words nothing else understood, distress words: "help
        # me", "I am scared", "police" lead somewhere useful, never to "not understood".
        found = _topic_named(library, text, words)
        if found is not None:
            run.start_flow(found)
            return
    if isinstance(step, ChooseLanguageStep) and run.session.language is None:
        # Still at the first question: a topic named now is opened after it too.
        topic = _topic_named(library, text, words)
        if topic is not None:
            run.session = run.session.evolve(pending=topic.id)
    run.system("system.not_understood")
    run.reprompt()
