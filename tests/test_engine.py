"""The pure engine: same inputs, same outputs, no I/O."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.engine.events import Handover, LanguageSet, Say
from bot.engine.runtime import Turn, reprompt, resume, takes_while_queued
from bot.engine.session import Session
from bot.flowspec.library import FlowLibrary, load_library
from bot.messages import Inbound, InboundKind

FIXTURES = Path(__file__).parent / "fixtures" / "flows"
CHAT = "test:1"


@pytest.fixture(scope="module")
def lib() -> FlowLibrary:
    return load_library([FIXTURES])


def say_keys(turn: Turn) -> list[str]:
    return [e.key for e in turn.events if isinstance(e, Say)]


def text(session: Session, lib: FlowLibrary, typed: str) -> Turn:
    return resume(lib, session, Inbound.from_text(CHAT, typed))


def tap(session: Session, lib: FlowLibrary, turn: Turn, index: int) -> Turn:
    question = [e for e in turn.events if isinstance(e, Say) and e.choices][-1]
    callback = question.choices[index].callback
    return resume(lib, session, Inbound(CHAT, InboundKind.BUTTON, button=callback))


def in_menu(lib: FlowLibrary) -> Session:
    return Session(language="en", started=True)


def test_first_contact_offers_languages_whatever_is_sent(lib: FlowLibrary) -> None:
    turn = resume(lib, Session(), Inbound(CHAT, InboundKind.MEDIA, media="sticker"))
    assert say_keys(turn) == ["choose_language.pick"]
    question = turn.events[0]
    assert isinstance(question, Say)
    assert [c.label for c in question.choices] == ["English", "پښتو", "دری", "فارسی", "اردو", "हिन्दी"]
    assert turn.session.step == "pick" and turn.session.started


def test_choosing_a_language_sets_it_and_goes_to_menu(lib: FlowLibrary) -> None:
    first = resume(lib, Session(), Inbound.from_text(CHAT, "hi"))
    turn = tap(first.session, lib, first, 3)
    assert LanguageSet("fa") in turn.events
    assert turn.session.language == "fa"
    assert say_keys(turn) == ["choose_language.privacy", "main_menu.choose"]
    typed = text(first.session, lib, "پښتو")
    assert typed.session.language == "ps"
    assert text(first.session, lib, "Hindi").session.language == "hi"
    # A greeting is not a language, even where it spells a language's code.
    for greeting in ("hi", "Hi", "ur"):
        again = text(first.session, lib, greeting)
        assert again.session.language is None and say_keys(again)[-1] == "choose_language.pick"


def test_typed_answer_matches_number_label_and_persian_digits(lib: FlowLibrary) -> None:
    menu = text(in_menu(lib), lib, "hello")
    assert say_keys(menu) == ["main_menu.choose"]
    for typed in ("1", "۱", "١", "claim REFUSED", " Claim refused! "):
        turn = text(menu.session, lib, typed)
        assert say_keys(turn) == ["refused.intro", "refused.when"], typed


def test_branch_free_text_handover_and_placeholders(lib: FlowLibrary) -> None:
    menu = text(in_menu(lib), lib, "hello")
    asked = text(menu.session, lib, "1")
    detail = tap(asked.session, lib, asked, 0)
    assert say_keys(detail) == ["refused.detail"]
    assert detail.session.answers == {"when": "week"}
    done = text(detail.session, lib, "My letter came on Monday")
    handover = next(e for e in done.events if isinstance(e, Handover))
    assert handover.queue == "legal" and handover.priority.value == "deadline"
    assert handover.summary == "Letter sent This week. Said: My letter came on Monday"
    queued = next(e for e in done.events if isinstance(e, Say))
    assert queued.params["detail"].text == "My letter came on Monday"
    # The flow ended: answers are forgotten.
    assert done.session.flow is None and done.session.answers == {}


def test_other_branch_goes_to_menu(lib: FlowLibrary) -> None:
    asked = text(text(in_menu(lib), lib, "x").session, lib, "1")
    turn = tap(asked.session, lib, asked, 1)
    assert say_keys(turn) == ["refused.general", "main_menu.choose"]


def test_unrecognised_answer_repeats_question(lib: FlowLibrary) -> None:
    asked = text(text(in_menu(lib), lib, "x").session, lib, "1")
    turn = text(asked.session, lib, "banana")
    assert say_keys(turn) == ["system.not_understood", "refused.when"]
    assert turn.session == asked.session


def test_stale_button_is_refused_politely(lib: FlowLibrary) -> None:
    menu = text(in_menu(lib), lib, "x")
    asked = tap(menu.session, lib, menu, 0)
    # Tapping the old menu message again: that question has passed.
    old = tap(asked.session, lib, menu, 1)
    assert say_keys(old) == ["system.stale_button", "refused.when"]
    assert old.session == asked.session
    forged = resume(lib, asked.session, Inbound(CHAT, InboundKind.BUTTON, button="x.99"))
    assert say_keys(forged) == ["system.stale_button", "refused.when"]


def test_interrupt_keyword_and_command_work_from_any_step(lib: FlowLibrary) -> None:
    asked = text(text(in_menu(lib), lib, "x").session, lib, "1")
    for turn in (text(asked.session, lib, "Person"), text(asked.session, lib, "/human")):
        assert any(isinstance(e, Handover) and e.queue == "general" for e in turn.events)
        assert say_keys(turn) == ["human.told"]
    # A free-text answer that merely contains the keyword is not hijacked.
    detail = tap(asked.session, lib, asked, 0)
    answer = text(detail.session, lib, "the person at the office said no")
    assert any(isinstance(e, Handover) and e.queue == "legal" for e in answer.events)


def test_keywords_start_flows_when_idle_or_at_menu(lib: FlowLibrary) -> None:
    idle = in_menu(lib)
    turn = text(idle, lib, "my claim was refused yesterday")
    assert say_keys(turn) == ["refused.intro", "refused.when"]
    menu = text(idle, lib, "hello")
    assert say_keys(text(menu.session, lib, "I want to appeal")) == ["refused.intro", "refused.when"]


def test_media_long_text_and_unknown_command(lib: FlowLibrary) -> None:
    asked = text(text(in_menu(lib), lib, "x").session, lib, "1")
    media = resume(lib, asked.session, Inbound(CHAT, InboundKind.MEDIA, media="voice"))
    assert say_keys(media) == ["system.media", "refused.when"]
    long = text(asked.session, lib, "x" * 10_000)
    assert say_keys(long) == ["system.too_long", "refused.when"]
    unknown = text(asked.session, lib, "/frobnicate")
    assert say_keys(unknown) == ["system.unknown_command", "refused.when"]
    for turn in (media, long, unknown):
        assert turn.session == asked.session


def test_long_free_text_answer_is_not_stored(lib: FlowLibrary) -> None:
    asked = text(text(in_menu(lib), lib, "x").session, lib, "1")
    detail = tap(asked.session, lib, asked, 0)
    turn = text(detail.session, lib, "y" * 1500)
    assert say_keys(turn) == ["system.too_long", "refused.detail"]
    assert "detail" not in turn.session.answers


def test_session_pointing_at_removed_step_recovers(lib: FlowLibrary) -> None:
    gone = Session(language="en", started=True, flow="refused", step="deleted_step", token=4)
    turn = text(gone, lib, "hi")
    assert say_keys(turn) == ["system.flow_changed", "main_menu.choose"]


def test_reprompt_repeats_current_question(lib: FlowLibrary) -> None:
    asked = text(text(in_menu(lib), lib, "x").session, lib, "1")
    again = reprompt(lib, asked.session)
    assert say_keys(again) == ["refused.when"]
    assert again.session == asked.session


def test_session_round_trips_through_json(lib: FlowLibrary) -> None:
    asked = text(text(in_menu(lib), lib, "x").session, lib, "1")
    detail = tap(asked.session, lib, asked, 0)
    assert Session.from_json(detail.session.to_json()) == detail.session


def test_engine_is_deterministic(lib: FlowLibrary) -> None:
    session = text(in_menu(lib), lib, "x").session
    assert text(session, lib, "1") == text(session, lib, "1")


def test_safeguarding_phrase_inside_a_free_text_answer_goes_to_safety(lib: FlowLibrary) -> None:
    menu = text(in_menu(lib), lib, "hello")
    asked = text(menu.session, lib, "1")
    detail = tap(asked.session, lib, asked, 0)
    assert say_keys(detail) == ["refused.detail"]
    turn = text(detail.session, lib, "They refused me. Honestly I want to die.")
    assert say_keys(turn) == ["safety_check.heard", "safety_check.offer"]
    assert turn.session.flow == "safety_check"
    assert "detail" not in turn.session.answers  # not kept as an answer to the form
    assert not any(isinstance(e, Handover) for e in turn.events)  # the person is asked first
    crisis = tap(turn.session, lib, turn, 0)
    handover = next(e for e in crisis.events if isinstance(e, Handover))
    assert (handover.queue, handover.priority.value) == ("safeguarding", "crisis")


def test_safeguarding_phrases_match_whole_words_in_any_language(lib: FlowLibrary) -> None:
    extra = {"خود کو مار": "safety_check", "मरना चाहता": "safety_check"}
    session = in_menu(lib)
    for typed in ("I will KILL MYSELF!", "میں خود کو مار دوں گا", "मैं मरना चाहता हूँ"):
        turn = resume(lib, session, Inbound.from_text(CHAT, typed), safeguarding_aliases=extra)
        assert say_keys(turn) == ["safety_check.heard", "safety_check.offer"], typed
    for typed in ("skill myself up in English", "I want to dieting", "kill my self-doubt"):
        turn = resume(lib, session, Inbound.from_text(CHAT, typed), safeguarding_aliases=extra)
        assert turn.session.flow != "safety_check", typed


def test_safeguarding_at_first_contact_comes_before_the_language_question(lib: FlowLibrary) -> None:
    turn = text(Session(), lib, "I want to die")
    assert say_keys(turn) == ["safety_check.heard", "safety_check.offer"]
    assert turn.session.started and turn.session.language == "en"  # Latin letters
    persian = resume(lib, Session(), Inbound.from_text(CHAT, "میخوام بمیرم"),
                     safeguarding_aliases={"میخوام بمیرم": "safety_check"})
    assert say_keys(persian) == ["safety_check.heard", "safety_check.offer"]
    assert persian.session.language == "fa"  # guessed from the letters, no question first


def test_buttons_and_media_never_trigger_safeguarding(lib: FlowLibrary) -> None:
    menu = text(in_menu(lib), lib, "hello")
    media = resume(lib, menu.session, Inbound(CHAT, InboundKind.MEDIA, media="photo",
                                              text="want to die"))
    assert say_keys(media) == ["system.media", "main_menu.choose"]


# -- first words, topics named in a first message, waiting in the queue (issue 10) --------

def test_distress_words_lead_somewhere_at_the_menu_but_never_hijack_a_question(
        library: FlowLibrary) -> None:
    menu = text(in_menu(library), library, "hello")
    for typed in ("help", "Help me!", "please help me", "i am scared", "Police", "I'm so afraid"):
        assert say_keys(text(menu.session, library, typed)) == ["get_help.here", "get_help.need"], typed
    assert say_keys(text(in_menu(library), library, "i am scared")) == ["get_help.here",
                                                                       "get_help.need"]  # idle
    asked = text(menu.session, library, "refused")
    assert asked.session.step == "appeal_right"
    turn = text(asked.session, library, "I am scared of the police")
    assert say_keys(turn) == ["system.not_understood", "claim_refused.appeal_right"]


def test_a_topic_named_in_the_first_message_opens_once_the_language_is_chosen(
        library: FlowLibrary) -> None:
    first = text(Session(), library, "Hello, my asylum claim was refused")
    assert say_keys(first) == ["choose_language.pick"]
    assert first.session.pending == "claim_refused"
    assert Session.from_json(first.session.to_json()) == first.session  # stored, and small
    assert '"pending":"claim_refused"' in first.session.to_json()
    chosen = tap(first.session, library, first, 0)
    assert say_keys(chosen)[:2] == ["choose_language.privacy", "claim_refused.intro"]
    assert chosen.session.pending is None and '"pending"' not in chosen.session.to_json()
    again = resume(library, chosen.session, Inbound(CHAT, InboundKind.COMMAND, command="menu"))
    assert say_keys(again) == ["main_menu.choose"]  # used once, then forgotten
    plain = text(Session(), library, "hello")
    assert plain.session.pending is None
    assert say_keys(tap(plain.session, library, plain, 0)) == ["choose_language.privacy",
                                                               "main_menu.choose"]


def test_takes_while_queued_keeps_flows_for_taps_commands_crises_and_flows_in_progress(
        library: FlowLibrary) -> None:
    idle = in_menu(library)
    mid_flow = text(idle, library, "refused").session

    def takes(session: Session, typed: str) -> bool:
        return takes_while_queued(library, session, Inbound.from_text(CHAT, typed))

    assert not takes(idle, "my letter says I must leave on Friday")
    assert not takes(idle, "person")  # already waiting for one: not a second place in the queue
    assert takes(idle, "I want to kill myself")
    assert takes(idle, "they are taking me to the airport")
    assert takes(idle, "menu") and takes(idle, "stop") and takes(idle, "/menu")
    assert takes(mid_flow, "1")
    assert takes_while_queued(library, idle, Inbound(CHAT, InboundKind.BUTTON, button="3.0"))
    assert not takes_while_queued(library, idle, Inbound(CHAT, InboundKind.MEDIA, media="photo"))
