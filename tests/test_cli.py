"""The command line as a person uses it: validate, and the local chat with piped input."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot.__main__ import main

FIXTURES = Path(__file__).parent / "fixtures" / "flows"
ROOT = Path(__file__).resolve().parents[1]


def run_bot(*args: str, stdin: str = "", env: dict[str, str] | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bot", *args], input=stdin, text=True,
                          capture_output=True, timeout=timeout, cwd=ROOT,
                          env={**os.environ, **(env or {})}, check=False)


def test_validate_passes_on_shipped_flows(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate"]) == 0
    assert capsys.readouterr().out.startswith("OK: ")


def test_validate_reports_every_problem_with_path_and_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("spec_version: 1\nid: broken\ntitle: B\nsteps:\n  - id: a\n"
                      "    say: hi\n    next: nowhere\n  - id: a\n    say: twice\n", encoding="utf-8")
    bad_yaml = tmp_path / "bad_yaml.yaml"
    bad_yaml.write_text("spec_version: 1\nid: bad_yaml\nsteps:\n\t- id: a\n", encoding="utf-8")
    assert main(["validate", str(broken), str(bad_yaml)]) == 1
    out = capsys.readouterr().out
    assert f"{broken}:7: 'nowhere' is not a step in this flow" in out
    assert f"{broken}:8: duplicate step id 'a' (first on line 5)" in out
    assert f"{bad_yaml}:4: YAML syntax" in out and "tabs" in out
    assert "Traceback" not in out


def test_piped_chat_walks_a_flow_to_its_handover(tmp_path: Path) -> None:
    result = run_bot("chat", "--db", str(tmp_path / "bot.sqlite3"),
                     stdin="hello\n1\nClaim refused\n1\nThe letter came on Monday\n",
                     env={"BOT_FLOWS_DIR": str(FIXTURES)})
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "[1] English" in out and "[6] हिन्दी" in out
    assert "[1] Claim refused" in out
    assert "When was the letter sent?\n[1] This week\n[2] Longer ago" in out
    assert "A volunteer will reply here. You said: The letter came on Monday" in out
    assert "You are in the queue to talk to a volunteer. Your place in the queue: 1." in out
    assert out.rstrip().endswith("[1] Leave the queue")
    assert result.stderr == ""


def test_lang_flag_skips_the_language_question(tmp_path: Path) -> None:
    result = run_bot("chat", "--lang", "en", "--db", str(tmp_path / "bot.sqlite3"),
                     stdin="hi\n", env={"BOT_FLOWS_DIR": str(FIXTURES)})
    assert result.stdout.startswith("What do you need help with?")
    bad = run_bot("chat", "--lang", "xx", "--db", str(tmp_path / "b.sqlite3"), stdin="")
    assert bad.returncode == 1 and "unknown language 'xx'" in bad.stderr


def test_run_without_token_says_what_to_set() -> None:
    result = run_bot("run", env={"TELEGRAM_BOT_TOKEN": ""})
    assert result.returncode == 2
    assert "No platform is set up" in result.stderr and "python -m bot chat" in result.stderr
    assert "TELEGRAM_BOT_TOKEN=123:abc python -m bot run" in result.stderr
    assert "WHATSAPP_ACCESS_TOKEN, WHATSAPP_PHONE_NUMBER_ID" in result.stderr


def test_run_with_whatsapp_half_set_up_names_what_is_missing() -> None:
    result = run_bot("run", env={"TELEGRAM_BOT_TOKEN": "", "WHATSAPP_ACCESS_TOKEN": "x",
                                 "WHATSAPP_PHONE_NUMBER_ID": "123"})
    assert result.returncode == 1
    assert ("WhatsApp is half set up: WHATSAPP_APP_SECRET, WHATSAPP_VERIFY_TOKEN are not set"
            in result.stderr), result.stderr


def test_run_with_the_whatsapp_port_taken_says_so(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_bot("run", env={
            "TELEGRAM_BOT_TOKEN": "", "WHATSAPP_ACCESS_TOKEN": "x", "WHATSAPP_PHONE_NUMBER_ID": "1",
            "WHATSAPP_APP_SECRET": "s", "WHATSAPP_VERIFY_TOKEN": "v",
            "WHATSAPP_WEBHOOK_PORT": str(port), "BOT_DB_PATH": str(tmp_path / "bot.sqlite3"),
            "ARGOS_PACKAGES_DIR": str(tmp_path / "none")})
    assert result.returncode == 1
    assert f"error: could not listen for WhatsApp's webhook on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


def _read_until(proc: subprocess.Popen[str], marker: str, deadline: float) -> str:
    assert proc.stdout is not None
    seen = ""
    while marker not in seen:
        assert time.monotonic() < deadline, f"timed out waiting for {marker!r}; got {seen!r}"
        line = proc.stdout.readline()
        assert line, f"bot exited before {marker!r}; got {seen!r}"
        seen += line
    return seen


def test_killed_mid_conversation_resumes_at_the_same_step(tmp_path: Path) -> None:
    db = tmp_path / "bot.sqlite3"
    env = {**os.environ, "BOT_FLOWS_DIR": str(FIXTURES)}
    deadline = time.monotonic() + 60
    proc = subprocess.Popen([sys.executable, "-m", "bot", "chat", "--db", str(db)], cwd=ROOT,
                            env=env, text=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert proc.stdin is not None
        proc.stdin.write("hi\n1\n1\n")
        proc.stdin.flush()
        _read_until(proc, "[2] Longer ago", deadline)
    finally:
        proc.send_signal(signal.SIGKILL)  # no clean shutdown at all
        proc.wait(timeout=10)
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()

    again = run_bot("chat", "--db", str(db), stdin="2\n", env={"BOT_FLOWS_DIR": str(FIXTURES)})
    assert again.returncode == 0, again.stderr
    # The restarted bot shows the question it was waiting on (resent from the outbox if the
    # kill came before the reply was confirmed, asked again otherwise), once, then takes the answer.
    before, _, after = again.stdout.partition("An adviser can help.")
    assert before.count("When was the letter sent?\n[1] This week\n[2] Longer ago") == 1
    assert after.strip().startswith("What do you need help with?")


def test_piped_chat_walks_claim_refused_to_its_handover_on_shipped_flows(tmp_path: Path) -> None:
    db = tmp_path / "bot.sqlite3"
    result = run_bot("chat", "--db", str(db), stdin="hello\n1\nmy claim was refused\n1\n1\n")
    assert result.returncode == 0, result.stderr
    assert "[2] My claim was refused" in result.stdout
    assert "I am asking a volunteer to join this chat now." in result.stdout
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("SELECT flow, queue, priority, summary FROM handovers").fetchall()
    finally:
        conn.close()
    assert len(rows) == 1
    flow, queue, priority, summary = rows[0]
    assert (flow, queue, priority) == ("claim_refused", "legal", "deadline")
    assert "Letter sent: In the last 7 days" in summary


def test_shipped_folders_are_the_repository_root_folders_in_a_checkout() -> None:
    from bot.config import Settings, default_locales_dir
    from bot.flowspec.library import default_flows_dir

    assert default_flows_dir() == ROOT / "flows"
    assert default_locales_dir() == ROOT / "locales"
    settings = Settings.from_env({})
    assert (settings.flows_dir, settings.locales_dir) == (ROOT / "flows", ROOT / "locales")


@pytest.mark.parametrize("variable", ["BOT_FLOWS_DIR", "BOT_LOCALES_DIR"])
def test_a_missing_folder_is_named_in_one_line(tmp_path: Path, variable: str) -> None:
    missing = tmp_path / "nowhere"
    result = run_bot("chat", "--db", str(tmp_path / "bot.sqlite3"), stdin="hi\n",
                     env={variable: str(missing)})
    assert result.returncode == 2
    assert result.stdout == ""
    line = result.stderr.strip()
    assert "\n" not in line and line.startswith(f"error: {variable}={missing}: no such folder")
    assert not (tmp_path / "bot.sqlite3").exists()
    if variable == "BOT_FLOWS_DIR":
        validate = run_bot("validate", env={variable: str(missing)})
        assert (validate.returncode, validate.stderr.strip()) == (2, line)


def test_validate_one_file_checks_it_with_the_other_flows_of_its_folder(
        capsys: pytest.CaptureFixture[str]) -> None:
    """The README's own example: links to other flows are checked against the folder."""
    assert main(["validate", str(ROOT / "flows" / "claim_refused.yaml")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("OK: ") and "warning" not in out


def test_a_draft_elsewhere_is_checked_in_place_of_its_flow_and_names_stale_translations(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shipped = (ROOT / "flows" / "claim_refused.yaml").read_text(encoding="utf-8")
    draft = tmp_path / "claim_refused.yaml"
    draft.write_text(shipped.replace('"More than 14 days ago"', '"Over 14 days ago"'),
                     encoding="utf-8")
    assert main(["validate", str(draft)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("OK: ")
    [warning] = [line for line in out.splitlines() if line.startswith("warning:")]
    assert warning.startswith("warning: claim_refused.letter_when.older: the English changed")
    assert "stale in ps, prs, fa, ur, hi" in warning
    linking = (ROOT / "flows" / "urgent_help.yaml").read_text(encoding="utf-8")
    assert "flow:talk_to_person" in linking
    broken = tmp_path / "broken" / "urgent_help.yaml"
    broken.parent.mkdir()
    broken.write_text(linking.replace("flow:talk_to_person", "flow:talk_to_persn"), encoding="utf-8")
    assert main(["validate", str(broken)]) == 1
    out = capsys.readouterr().out
    assert "there is no flow called 'talk_to_persn'" in out and "did you mean 'flow:talk_to_person'" in out
    assert "is missing" not in out  # the other flows came from the flows folder


def test_locales_check_lists_each_stale_key_with_its_languages(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    flows = tmp_path / "flows"
    flows.mkdir()
    for file in (ROOT / "flows").glob("*.yaml"):
        text = file.read_text(encoding="utf-8")
        (flows / file.name).write_text(text.replace('"More than 14 days ago"', '"Over 14 days ago"'),
                                       encoding="utf-8")
    monkeypatch.setenv("BOT_FLOWS_DIR", str(flows))
    assert main(["locales", "check"]) == 0  # stale is reported, not fatal
    out = capsys.readouterr().out
    assert "1 key(s) stale (English changed since translation):" in out
    assert "  claim_refused.letter_when.older: ps, prs, fa, ur, hi" in out


SERVICES_FIXTURE = Path(__file__).parent / "fixtures" / "services"


def services_folder(tmp_path: Path, entry: str) -> Path:
    """A directory of services with Wales as its one place and ``entry`` as its one service."""
    services = tmp_path / "services"
    services.mkdir()
    (services / "places.yaml").write_text("places:\n  - {id: wales, name: Wales, kind: nation}\n",
                                          encoding="utf-8")
    (services / "local.yaml").write_text("services:\n" + entry, encoding="utf-8")
    return services


def test_validate_checks_the_directory_and_warns_about_entries_not_checked_for_six_months(
        tmp_path: Path) -> None:
    services = services_folder(
        tmp_path, "  - id: old_line\n    name: Old Line\n    tags: [housing]\n    serves: wales\n"
        "    phone: 01632 960099\n    sources: [{source: a leaflet, checked: 2020-05-04}]\n")
    done = run_bot("validate", env={"BOT_SERVICES_DIR": str(services)})
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("OK: ") and "flows" in lines[0]
    assert "OK: 1 services, 2 places." in lines
    warning = next(line for line in lines if "old_line" in line)
    assert warning.startswith(f"warning: {services / 'local.yaml'}:2: 'old_line' was last checked "
                              "2020-05-04 (")
    assert "more than 6 months" in warning
    # Checking the directory alone, by its folder.
    alone = run_bot("validate", str(services))
    assert alone.returncode == 0 and not alone.stdout.startswith("OK: 18 flows")
    assert "OK: 1 services, 2 places." in alone.stdout


def test_validate_refuses_a_broken_directory_with_file_line_and_hint(tmp_path: Path) -> None:
    services = services_folder(
        tmp_path, "  - id: line\n    name: A Line\n    tags: [housing]\n    serves: [wales]\n"
        "    phone: 01632 960098\n    opening: daily\n"
        "    sources: [{source: a leaflet, checked: 2026-11-05}]\n")
    done = run_bot("validate", env={"BOT_SERVICES_DIR": str(services)})
    assert done.returncode == 1
    assert f"{services / 'local.yaml'}:7: unknown key 'opening' in service 'line'" in done.stdout
    assert "hint: " in done.stdout and "Traceback" not in done.stdout + done.stderr
    # The bot itself does not start on it either, and says why.
    chat = run_bot("chat", "--db", str(tmp_path / "bot.sqlite3"), stdin="hi\n",
                   env={"BOT_SERVICES_DIR": str(services)})
    assert chat.returncode == 1 and "unknown key 'opening'" in chat.stderr


def test_services_check_lists_entries_by_age_for_the_person_who_keeps_them(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOT_SERVICES_DIR", str(SERVICES_FIXTURE))
    assert main(["services", "check", "--today", "2026-12-02"]) == 1  # two are over six months
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("6 services in ") and "as of 2026-12-02" in out[0]
    ids = [line.split()[4] for line in out[1:]]
    assert ids[:2] == ["uk_women", "glasgow_legal_two"] and len(ids) == 6
    assert out[1].startswith("STALE   686 days  2025-01-15  uk_women")
    assert all(line.startswith("ok") for line in out[3:])


def test_the_shipped_directory_is_fresh_and_the_chat_finds_help_with_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["services", "check", "--today", "2026-12-02"]) == 0
    listed = capsys.readouterr().out
    assert "migrant_help" in listed and "STALE " not in listed
    chat = run_bot("chat", "--lang", "en", "--db", str(tmp_path / "bot.sqlite3"),
                   stdin="find help\n1\n2\n1\n")
    assert chat.returncode == 0, chat.stderr
    assert "Which city or area of Scotland?" in chat.stdout
    assert "These services may be able to help." in chat.stdout
    assert "Immigration Advice Authority register of advisers (GOV.UK)" in chat.stdout
