"""The advice guard in `python -m bot validate`: warnings for case talk and for steps about
appeals, refusals, detention or removal that lead to no adviser or volunteer."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from bot.__main__ import main
from bot.flowspec.advice import advice_warnings, case_talk
from bot.flowspec.library import FlowLibrary, in_folder_context, load_library
from tests.conftest import FLOWS_DIR

CASE_TALK = [
    "You will be removed from the UK.",
    "You'll be deported if the appeal fails.",
    "You will not be granted asylum.",
    "You are going to win your appeal.",
    "You will get refugee status.",
    "Your appeal will succeed.",
    "Your claim looks strong.",
    "Your case is hopeless.",
    "You should appeal now.",
    "You should not sign anything.",
    "You must leave the country.",
    "You are out of time.",
    "You're too late to appeal.",
    "It's too late to appeal.",
    "You qualify for asylum.",
    "You do not qualify for legal aid.",
    "You have a strong case.",
    "You have no chance.",
    "You have missed the deadline.",
    "You only have 3 days.",
    "You have no right of appeal.",
    "You can appeal against this decision.",
    "You can't stay in the UK.",
    "I would advise you to withdraw your claim.",
    "My advice is to wait.",
    "If I were you, I would appeal.",
    "The best thing for you is to go back.",
]

GENERAL = [
    "You can ask an adviser for help.",
    "A volunteer will reply as soon as they can.",
    "You will get a reply from a volunteer.",
    "Contact the local council at once if you will need a place to live.",
    "You will need your letter when you speak to an adviser.",
    "You may be able to appeal.",
    "Some people can appeal late, with good reasons.",
    "People whose claim is refused can usually appeal.",
    "An adviser can tell you if you qualify for legal aid.",
    "Ask an adviser whether you can appeal.",
    "Does your refusal letter say that you have a right of appeal?",
    "Do you qualify for legal aid? An adviser can tell you.",
    "In general, an appeal must reach the Tribunal within 14 days.",
    "You can ask for an interpreter.",
    "You do not need ID to register with a GP.",
    "If you are in danger now, call 999.",
    "If you are out of time, a late appeal may still be possible.",
    'Look for words like "you are out of time" in the letter.',
    "You are not alone.",
    "You should keep every paper you were given.",
    "It is best to get help quickly.",
    "Only a regulated adviser can say what applies to you.",
]


@pytest.mark.parametrize("text", CASE_TALK)
def test_case_talk_is_found(text: str) -> None:
    assert list(case_talk(text)), text


@pytest.mark.parametrize("text", GENERAL)
def test_general_information_is_not_case_talk(text: str) -> None:
    assert list(case_talk(text)) == [], text


def _draft(folder: Path, steps: str, name: str = "advice_sample") -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(f"spec_version: 1\nid: {name}\ntitle: Sample\nsteps:\n"
                    + textwrap.indent(textwrap.dedent(steps), "  "), encoding="utf-8")
    return path


def _warnings(path: Path) -> list[str]:
    library: FlowLibrary = load_library(in_folder_context([path], FLOWS_DIR))
    return [str(p) for p in advice_warnings(library.flows) if p.path == str(path)]


def test_validate_warns_with_file_line_step_and_hint_and_still_passes(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    draft = _draft(tmp_path, """\
        - id: hello
          say: Hello. This is general information.
        - id: outcome
          say: |
            Thank you.
            You will be removed soon.
        - id: choice
          ask: What next?
          buttons:
            - {id: a, label: "You must appeal", next: "flow:talk_to_person"}
            - {id: b, label: "Main menu", next: MENU}
        """)
    assert main(["validate", str(draft)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("OK: ")
    assert (f"warning: {draft}:7: step 'outcome' predicts the outcome of the person's own "
            "case: \"you will be removed\"\n    hint: say what happens in general") in out
    assert (f"warning: {draft}:14: step 'choice' tells the person what to do in their own "
            "case: \"you must\"\n    hint: ") in out
    assert out.count(f"warning: {draft}:") == 2


def test_an_appeal_step_that_ends_without_an_adviser_is_warned_about(tmp_path: Path) -> None:
    draft = _draft(tmp_path, """\
        - id: appeal
          say: In general, an appeal goes to a judge.
          next: END
        """)
    assert _warnings(draft) == [
        f"{draft}:5: step 'appeal' is about appeals but leads to no regulated adviser or "
        "volunteer\n    hint: add a button to a volunteer (next: \"flow:talk_to_person\"), a "
        "handover step, or the adviser finder (https://find-legal-advice.justice.gov.uk) "
        "after it; MENU does not count"]


@pytest.mark.parametrize("then", [
    # MENU leaves the person to find the way on their own.
    """\
    - id: more
      ask: Anything else?
      buttons:
        - {id: menu, label: "Main menu", next: MENU}
        - {id: stop, label: "Stop", next: "flow:stop"}
    """,
    # A flow that itself leads nowhere near an adviser.
    """\
    - id: more
      goto: flow:help
    """,
])
def test_menu_and_flows_without_advisers_do_not_count(tmp_path: Path, then: str) -> None:
    draft = _draft(tmp_path, "- id: detained\n  say: Some people are detained.\n"
                   + textwrap.dedent(then))
    assert [w.split("\n")[0] for w in _warnings(draft)] == [
        f"{draft}:5: step 'detained' is about detention but leads to no regulated adviser "
        "or volunteer"]


@pytest.mark.parametrize("then", [
    # A button to the flow that hands the chat to a volunteer.
    """\
    - id: more
      ask: Anything else?
      buttons:
        - {id: menu, label: "Main menu", next: MENU}
        - {id: person, label: "Talk to a person", next: "flow:talk_to_person"}
    """,
    # A handover in this flow.
    """\
    - id: handover
      handover: {queue: legal, priority: deadline, summary: "Asked about removal."}
    """,
    # A step that shows the legal aid adviser finder, two steps on.
    """\
    - id: more
      say: More general information.
    - id: finder
      say: "Find a free legal aid adviser: https://find-legal-advice.justice.gov.uk"
    """,
])
def test_a_way_to_an_adviser_or_volunteer_satisfies_the_guard(tmp_path: Path, then: str) -> None:
    draft = _draft(tmp_path, "- id: removal\n  say: Removal is decided by the Home Office.\n"
                   + textwrap.dedent(then))
    assert _warnings(draft) == []


def test_after_a_handover_the_volunteer_is_already_coming(tmp_path: Path) -> None:
    draft = _draft(tmp_path, """\
        - id: handover
          handover: {queue: legal, priority: deadline, summary: "Refused."}
        - id: while_waiting
          say: Support after a refusal usually continues for a while.
          next: END
        """)
    assert _warnings(draft) == []


def test_quoted_words_are_not_the_topic(tmp_path: Path) -> None:
    draft = _draft(tmp_path, """\
        - id: about
          say: Type a few words, like "refused" or "family".
          next: MENU
        """)
    assert _warnings(draft) == []


def test_every_shipped_flow_passes_the_guard(library: FlowLibrary,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert advice_warnings(library.flows) == []
    assert main(["validate"]) == 0
    out = capsys.readouterr().out
    assert "talks about\n" not in out and "leads to no regulated adviser" not in out
    assert not any(line.startswith("warning: flows/") for line in out.splitlines())
