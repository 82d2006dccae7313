"""Strict reading and validation of flow files: the traps staff fall into, with path:line.

Every test here runs twice: with libyaml's C parser and with PyYAML's pure-Python one
(the ``yaml_reader`` fixture); the two must give the same results and the same errors.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from bot.errors import FlowLoadError
from bot.flowspec import strict_yaml
from bot.flowspec.library import FlowLibrary, load_library
from bot.flowspec.model import AskStep, GotoStep, Priority
from bot.flowspec.parse import parse_flow
from bot.flowspec.strict_yaml import YamlSyntaxError, load_yaml
from bot.flowspec.validate import validate_flow


@pytest.fixture(autouse=True, params=["libyaml", "pure"])
def yaml_reader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Read YAML with libyaml, then with the pure reader. libyaml must be there: the
    bot's start-up time depends on it (PyYAML's wheels include it)."""
    if request.param == "libyaml":
        assert strict_yaml.libyaml_available(), "PyYAML was installed without libyaml"
    monkeypatch.setattr(strict_yaml, "USE_LIBYAML", request.param == "libyaml")
    return str(request.param)

GOOD = """\
spec_version: 1
id: sample
title: Sample
steps:
  - id: hello
    say: Hello
  - id: q
    ask: Pick one
    save: pick
    buttons:
      - {id: a, label: "A"}
      - {id: b, label: "B", next: bye}
  - id: route
    goto:
      - if: {answer_is: {pick: a}}
        then: bye
      - else: END
  - id: bye
    say: "You chose {pick}"
"""


def problems_of(text: str) -> list[str]:
    """Parse and per-file validation problems, as ``python -m bot validate`` prints them."""
    flow, problems = parse_flow(textwrap.dedent(text), "flows/sample.yaml")
    if flow is not None:
        problems += validate_flow(flow)
    return [str(p) for p in sorted(problems)]


def test_good_flow_parses_with_keys() -> None:
    flow, problems = parse_flow(GOOD, "flows/sample.yaml")
    assert problems == []
    assert flow is not None
    ask = flow.step("q")
    assert isinstance(ask, AskStep)
    assert [b.key for b in ask.buttons] == ["sample.q.a", "sample.q.b"]
    assert isinstance(flow.step("route"), GotoStep)
    assert flow.strings()["sample.bye"] == "You chose {pick}"


@pytest.mark.parametrize(("scalar", "expected"), [
    ("no", "no"), ("yes", "yes"), ("off", "off"), ("1:30", "1:30"), ("010", "010"),
    ("2024-01-01", "2024-01-01"), ("true", True), ("false", False), ("12", 12), ("~", None),
])
def test_yaml_12_core_scalars_only(scalar: str, expected: object) -> None:
    assert load_yaml(f"value: {scalar}\n")["value"] == expected


def test_duplicate_key_is_an_error_with_both_lines() -> None:
    with pytest.raises(YamlSyntaxError) as info:
        load_yaml("a: 1\nb: 2\na: 3\n")
    assert info.value.line == 3
    assert "first on line 1" in info.value.message


@pytest.mark.parametrize("text", [
    "value: !!int 010\n", "value: !!bool yes\n", "value: !!float 1\n", "value: !!str 12\n",
    "value: !!timestamp 2024-01-01\n", "value: !!set {a}\n", "value: !!binary aGk=\n",
    "value: !!python/object:os.system x\n", "value: !secret x\n", "!x key: v\n",
    "value: !!str {a: b}\n", "value: !!seq {a: b}\n",
])
def test_tags_are_refused(text: str) -> None:
    """A tag would bring YAML 1.1 typing (or Python objects) back in."""
    with pytest.raises(YamlSyntaxError, match=r"YAML tags such as '!.*' are not allowed"):
        load_yaml(text)


def test_merge_keys_and_tabs_are_refused_with_their_line() -> None:
    with pytest.raises(YamlSyntaxError, match=r"merge keys") as merge:
        load_yaml("base: &b {a: 1}\nother:\n  <<: *b\n")
    assert merge.value.line == 3
    with pytest.raises(YamlSyntaxError, match=r"a tab character is used for indentation") as tab:
        load_yaml("a: 1\nb:\n\t- x\n")
    assert tab.value.line == 3 and "never tabs" in tab.value.hint


def test_every_node_knows_its_line() -> None:
    data = load_yaml("a: 1\nlist:\n  - x\n  - {k: v,\n     j: w}\nb: [p,\n  q]\n")
    assert (data.line, data.key_lines) == (1, {"a": 1, "list": 2, "b": 6})
    assert (data["list"].line, data["list"].item_lines) == (3, [3, 4])
    assert data["list"][1].key_lines == {"k": 4, "j": 5}
    assert data["b"].item_lines == [6, 7]


def test_comma_in_flow_mapping_gets_a_quoting_hint() -> None:
    found = problems_of("""\
        spec_version: 1
        id: sample
        title: Sample
        steps:
          - id: q
            ask: Sure?
            buttons:
              - {id: a, label: Not sure, honestly}
        """)
    assert any("flows/sample.yaml:8: unknown key 'honestly'" in p and "quotes" in p for p in found)


def test_missing_spec_version_and_unknown_key_hint() -> None:
    found = problems_of("""\
        id: sample
        title: Sample
        stesp: []
        """)
    assert any(p.startswith("flows/sample.yaml:1: missing 'spec_version'") for p in found)
    assert any("unknown key 'stesp'" in p and "did you mean 'steps'" in p for p in found)


def test_newer_spec_version_is_refused() -> None:
    found = problems_of("spec_version: 99\nid: sample\ntitle: S\nsteps: [{id: a, say: x}]\n")
    assert found == ["flows/sample.yaml:1: spec_version 99 is newer than this bot understands (1)"
                     "\n    hint: upgrade the bot, or write the flow in the older format"]


def test_malformed_yaml_is_a_problem_not_a_traceback() -> None:
    found = problems_of("spec_version: 1\nid: sample\nsteps:\n  - id: a\n    say: Note: bring it\n")
    assert found[0].startswith("flows/sample.yaml:5: YAML syntax")
    assert "quotes" in found[0]


def test_unknown_step_in_next_unreachable_and_duplicate_ids() -> None:
    found = problems_of("""\
        spec_version: 1
        id: sample
        title: Sample
        steps:
          - id: a
            say: Hi
            next: bye
          - id: orphan
            say: Nobody comes here
          - id: a
            say: Again
          - id: by
            say: Bye
        """)
    text = "\n".join(found)
    assert "flows/sample.yaml:7: 'bye' is not a step in this flow" in text
    assert "did you mean 'by'?" in text
    assert "flows/sample.yaml:8: step 'orphan' can never be reached" in text
    assert "flows/sample.yaml:10: duplicate step id 'a' (first on line 5)" in text


def test_button_over_platform_limits() -> None:
    found = problems_of("""\
        spec_version: 1
        id: sample
        title: Sample
        steps:
          - id: q
            ask: Pick
            buttons:
              - {id: a, label: "This label is far too long for WhatsApp"}
              - {id: b, label: "B"}
        """)
    assert any(p.startswith("flows/sample.yaml:8: button label") and "limit is 20" in p
               for p in found)


def test_branch_conditions_are_checked_against_saved_answers() -> None:
    found = problems_of("""\
        spec_version: 1
        id: sample
        title: Sample
        steps:
          - id: q
            ask: Pick
            save: pick
            buttons: [{id: a, label: A}, {id: b, label: B}]
          - id: route
            goto:
              - if: {answer_is: {pick: c}}
                then: q
              - if: {answer_is: {other: a}}
                then: q
              - if: {anser_is: {pick: a}}
                then: q
              - else: END
          - id: text
            say: "{nothing}"
        """)
    text = "\n".join(found)
    assert "'c' is not a button of step 'q'" in text
    assert "no step saves an answer called 'other'" in text
    assert "unknown condition 'anser_is'" in text and "did you mean 'answer_is'" in text
    assert "placeholder '{nothing}' names no saved answer" in text


def test_loop_without_a_question_is_refused() -> None:
    found = problems_of("""\
        spec_version: 1
        id: sample
        title: Sample
        steps:
          - id: a
            say: one
          - id: b
            say: two
            next: a
        """)
    assert any("loop back to 'a' without asking" in p for p in found)


def test_priority_and_handover_fields() -> None:
    _flow, problems = parse_flow(textwrap.dedent("""\
        spec_version: 1
        id: sample
        title: Sample
        steps:
          - id: h
            handover: {queue: legal, priority: urgent, summary: x}
        """), "flows/sample.yaml")
    assert [p.message for p in problems] == ["unknown priority 'urgent'"]
    assert Priority.CRISIS.rank < Priority.DEADLINE.rank < Priority.NORMAL.rank


def test_library_checks_links_and_required_flows(tmp_path: Path) -> None:
    (tmp_path / "sample.yaml").write_text(
        "spec_version: 1\nid: sample\ntitle: S\nsteps:\n  - id: a\n    goto: flow:nowhere\n",
        encoding="utf-8")
    with pytest.raises(FlowLoadError) as info:
        load_library([tmp_path])
    text = str(info.value)
    assert f"{tmp_path / 'sample.yaml'}:6: there is no flow called 'nowhere'" in text
    assert (f"{tmp_path / 'choose_language.yaml'}:0: the language choice flow 'choose_language' "
            "is missing") in text
    assert f"{tmp_path / 'main_menu.yaml'}:0: the main menu flow 'main_menu' is missing" in text


def test_file_name_must_match_id(tmp_path: Path) -> None:
    (tmp_path / "other.yaml").write_text(GOOD, encoding="utf-8")
    with pytest.raises(FlowLoadError, match="does not match the file name"):
        load_library([tmp_path])


def test_shipped_flows_validate(library: object) -> None:
    assert library is not None  # the session fixture raised FlowLoadError otherwise


def test_safeguarding_phrases_are_a_list_and_belong_to_one_flow(tmp_path: Path) -> None:
    [problem] = problems_of(GOOD.replace("title:", "safeguarding: yes\ntitle:", 1))
    assert problem.startswith("flows/sample.yaml:3: 'safeguarding' must be a list of words")
    shipped = Path(__file__).parents[1] / "flows"
    for name in ("choose_language", "main_menu", "forget"):
        (tmp_path / f"{name}.yaml").write_text((shipped / f"{name}.yaml").read_text("utf-8"), "utf-8")
    for name in ("one", "two"):
        (tmp_path / f"{name}.yaml").write_text(
            f"spec_version: 1\nid: {name}\ntitle: T\nsafeguarding: [Kill myself, '!!!']\n"
            "steps:\n  - id: a\n    say: hello\n", encoding="utf-8")
    with pytest.raises(FlowLoadError) as info:
        load_library([tmp_path])
    text = str(info.value)
    assert "safeguarding phrase 'Kill myself' is also in flow 'one'" in text
    assert "safeguarding phrase '!!!' has no words" in text


def _write_flows(folder: Path, flows: dict[str, str]) -> None:
    for name, head in flows.items():
        (folder / f"{name}.yaml").write_text(
            f"spec_version: 1\nid: {name}\ntitle: T\n{head}\nsteps:\n  - id: a\n    say: hi\n",
            encoding="utf-8")


def test_outranks_names_existing_flows_never_itself_and_never_in_a_circle(tmp_path: Path) -> None:
    _write_flows(tmp_path, {"one": "outranks: [two, nope]", "two": "outranks: [three]",
                            "three": "outranks: [one, three]"})
    with pytest.raises(FlowLoadError) as info:
        load_library([tmp_path])
    text = "\n".join(str(p) for p in info.value.problems)
    assert "'outranks' names 'nope', and there is no flow called that" in text
    assert "flow 'three' cannot outrank itself" in text
    assert "'outranks' goes round in a circle back to 'one'" in text
    [bad] = problems_of(GOOD.replace("title:", "outranks: [Not An Id]\ntitle:", 1))
    assert "'outranks' names 'Not An Id', which is not a flow id" in bad


def test_distress_words_are_a_list_and_belong_to_one_flow(tmp_path: Path) -> None:
    [problem] = problems_of(GOOD.replace("title:", "distress: scared\ntitle:", 1))
    assert "'distress' must be a list of words" in problem
    _write_flows(tmp_path, {"one": "distress: [Scared, '!!']", "two": "distress: [scared]"})
    with pytest.raises(FlowLoadError) as info:
        load_library([tmp_path])
    text = "\n".join(str(p) for p in info.value.problems)
    assert "distress word 'scared' is also in flow 'one'" in text
    assert "distress word '!!' has no words" in text


MENU_FLOWS = {
    "asylum": "menu: 30\nkeywords: [asylum claim, asylum]",
    "refused": "menu: 20\nkeywords: [refused]\noutranks: [asylum]",
    "urgent": "menu: 10\nkeywords: [no food]",
    "help_me": "keywords: [help me]\ndistress: [scared, police]",
    "sos_a": "safeguarding: [kill myself]\noutranks: [sos_b]",
    "sos_b": "safeguarding: [hitting me now]\noutranks: [sos_c]",
    "sos_c": "safeguarding: [taking me to the airport]",
}


def _library(flows: dict[str, str]) -> FlowLibrary:
    parsed = {}
    for name, head in flows.items():
        flow, problems = parse_flow(f"spec_version: 1\nid: {name}\ntitle: T\n{head}\nsteps:\n"
                                    "  - id: a\n    say: hi\n", f"{name}.yaml")
        assert flow is not None and problems == []
        parsed[name] = flow
    return FlowLibrary(parsed)


def test_a_flow_that_outranks_another_wins_whatever_the_keyword_lengths() -> None:
    library = _library(MENU_FLOWS)
    found = library.flow_for_keywords("my asylum claim was refused")
    assert found is not None and found.id == "refused"  # 'asylum claim' is longer
    found = library.flow_for_keywords("my asylum claim, I have no food")
    assert found is not None and found.id == "asylum"  # no ranking between them: longest
    urdu = {"پناہ کی درخواست": "asylum", "مسترد": "refused"}
    found = library.flow_for_keywords("میری پناہ کی درخواست مسترد ہو گئی", urdu)
    assert found is not None and found.id == "refused"


def test_safeguarding_precedence_is_transitive_and_distress_is_its_own_pool() -> None:
    library = _library(MENU_FLOWS)

    def sos(text: str) -> str | None:
        found = library.flow_for_safeguarding(text)
        return found.id if found else None
    assert sos("they are taking me to the airport and I will kill myself") == "sos_a"  # a > b > c
    assert sos("they are taking me to the airport, he is hitting me now") == "sos_b"
    assert sos("they are taking me to the airport") == "sos_c"
    assert sos("I am scared of the police") is None
    distress = library.flow_for_distress("I am scared of the POLICE")
    assert distress is not None and distress.id == "help_me"
    assert library.flow_for_keywords("I am scared") is None  # not a keyword: help_me is not in the menu
