"""The flows the bot cannot run without: validate and the hot reload refuse to lose them."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.__main__ import main
from bot.engine.runtime import resume
from bot.engine.session import Session
from bot.errors import FlowLoadError
from bot.flowspec.library import default_flows_dir
from bot.flowspec.live import LiveLibrary
from bot.flowspec.required import REQUIRED_FLOWS
from bot.messages import Inbound

SHIPPED = default_flows_dir()
LAST_GOOD_HINT = "from the last good copy in data/flows-last-good/ or from git"


@pytest.fixture
def flows(tmp_path: Path) -> Path:
    folder = tmp_path / "flows"
    shutil.copytree(SHIPPED, folder)
    return folder


def edit(path: Path, change: Callable[[str], str]) -> None:
    before = path.read_text(encoding="utf-8")
    after = change(before)
    assert after != before, "the edit must change the file"
    path.write_text(after, encoding="utf-8")


def test_every_required_flow_ships_under_its_own_file_name() -> None:
    # The messages tell staff to restore flows/<id>.yaml: that file must be the shipped one.
    for required in REQUIRED_FLOWS:
        assert (SHIPPED / f"{required.id}.yaml").is_file(), required.id


def test_deleting_the_safety_flow_is_refused_by_validate(
        flows: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (flows / "safety_check.yaml").unlink()
    assert main(["validate", str(flows)]) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"{flows / 'safety_check.yaml'}:0: the safety flow 'safety_check' is "
                          "missing or cannot be read: without it, a message about suicide or "
                          "self-harm gets no crisis numbers and no volunteer")
    assert f"hint: restore {flows / 'safety_check.yaml'} {LAST_GOOD_HINT}" in out
    assert out.count("\n    hint:") == 1  # nothing else is wrong


@pytest.mark.parametrize(("file", "change", "message"), [
    ("safety_check.yaml", lambda t: re.sub(r"\nsafeguarding: \[.*\]", "\nsafeguarding: []", t),
     "the safety flow 'safety_check' has no safeguarding phrases left"),
    ("forget.yaml", lambda t: t.replace("    forget: |", "    say: |"),
     "the forget flow 'forget' has no 'forget:' step: without it, /forget cannot delete a "
     "person's data"),
    ("forget.yaml", lambda t: t.replace("command: forget\n", ""),
     "the forget flow 'forget' has no 'command: forget'"),
    ("talk_to_person.yaml",
     lambda t: re.sub(r"handover:\n(      \w+: .*\n){3}", "say: A volunteer will reply.\n", t),
     "the talk to a person flow 'talk_to_person' has no 'handover:' step: without it, /human "
     "cannot hand the chat to a volunteer"),
    ("main_menu.yaml", lambda t: t.replace("    menu: ", "    say: "),
     "the main menu flow 'main_menu' has no 'menu:' step"),
    ("choose_language.yaml", lambda t: t.replace("    choose_language: ", "    say: "),
     "the language choice flow 'choose_language' has no 'choose_language:' step"),
])
def test_a_required_flow_that_no_longer_works_is_refused(
        flows: Path, capsys: pytest.CaptureFixture[str], file: str,
        change: Callable[[str], str], message: str) -> None:
    edit(flows / file, change)
    assert main(["validate", str(flows)]) == 1
    [problem, hint] = capsys.readouterr().out.strip().splitlines()
    assert problem.startswith(f"{flows / file}:1: {message}")
    assert hint.startswith("    hint: put back ")
    assert hint.endswith(f"or restore {flows / file} {LAST_GOOD_HINT} (git checkout -- {flows / file})")


def test_the_flow_with_the_command_counts_whatever_its_file_is_called(
        flows: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # /human finds the flow by its command, so the check does too (tests/fixtures names it human).
    (flows / "talk_to_person.yaml").rename(flows / "person.yaml")
    edit(flows / "person.yaml", lambda t: t.replace("id: talk_to_person", "id: person"))
    for path in flows.glob("*.yaml"):
        path.write_text(path.read_text("utf-8").replace("flow:talk_to_person", "flow:person"), "utf-8")
    assert main(["validate", str(flows)]) == 0, capsys.readouterr().out


def test_single_files_are_checked_with_their_folder(capsys: pytest.CaptureFixture[str]) -> None:
    # A file is checked in the library of its folder, so the required flows are all there.
    assert main(["validate", str(SHIPPED / "safety_check.yaml"), str(SHIPPED / "main_menu.yaml")]) == 0
    flows = len(list(SHIPPED.glob("*.yaml")))
    assert capsys.readouterr().out.startswith(f"OK: {flows} flows")


def test_hot_reload_refuses_to_drop_the_safety_flow_and_keeps_serving_it(
        flows: Path, tmp_path: Path) -> None:
    live = LiveLibrary([flows], snapshot_dir=tmp_path / "flows-last-good")
    (flows / "safety_check.yaml").unlink()
    assert live.poll() is None  # seen once: the deletion may be half of a move
    problems = live.poll()
    assert problems is not None
    assert [(p.path, p.line) for p in problems] == [(str(flows / "safety_check.yaml"), 0)]
    assert "the safety flow 'safety_check' is missing" in problems[0].message
    crisis = resume(live.current, Session(language="en", started=True),
                    Inbound.from_text("test:1", "I want to kill myself"))
    assert crisis.session.flow == "safety_check"

    # A restart while it is still missing serves the last good flows, safety included.
    restarted = LiveLibrary([flows], snapshot_dir=tmp_path / "flows-last-good")
    assert "safety_check" in restarted.current.flows
    assert restarted.last_problems == problems
    with pytest.raises(FlowLoadError, match=r"safety_check.yaml:0: the safety flow"):
        LiveLibrary([flows])
