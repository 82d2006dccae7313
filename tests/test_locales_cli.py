"""Staff tools: python -m bot locales check|export|import|draft and models install|list."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bot.__main__ import main
from bot.i18n.catalog import Status, load_catalogs
from tests.support.offline import NetworkGuard
from tests.support.tiny_argos import build_tiny_model

FIXTURES = Path(__file__).parent / "fixtures" / "flows"


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    flows = tmp_path / "flows"
    shutil.copytree(FIXTURES, flows)
    monkeypatch.setenv("BOT_FLOWS_DIR", str(flows))
    monkeypatch.setenv("BOT_LOCALES_DIR", str(tmp_path / "locales"))
    monkeypatch.setenv("BOT_MODELS_DIR", str(tmp_path / "installed-models"))
    return tmp_path


def test_check_fails_on_missing_then_export_import_makes_it_pass(
        workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["locales", "check"]) == 1
    out = capsys.readouterr().out
    assert "ps: " in out and "missing" in out

    for code in ("ps", "prs", "fa", "ur", "hi"):
        assert main(["locales", "export", "--lang", code]) == 0
        exported = capsys.readouterr().out
        assert "refused.intro: |-\n    Sorry to hear that." in exported
        # A "translator" who only marks each text: keeps the placeholders intact.
        translated = exported.replace("|-\n    ", f"|-\n    {code}:")
        path = workspace / f"{code}.yaml"
        path.write_text(translated, encoding="utf-8")
        assert main(["locales", "import", "--lang", code, str(path)]) == 0
        assert "imported" in capsys.readouterr().out

    assert main(["locales", "check"]) == 0
    grid = capsys.readouterr().out
    refused_row = next(line for line in grid.splitlines() if line.startswith("refused"))
    assert refused_row.split()[1:] == ["0/9/0/0/0"] * 5  # 9 keys, all needing review
    catalogs, problems = load_catalogs(workspace / "locales")
    assert problems == []
    intro = catalogs.entry("refused.intro", "ps")
    assert intro is not None and intro.text == "ps:Sorry to hear that."
    assert intro.status is Status.NEEDS_REVIEW and intro.source == "Sorry to hear that."

    # The English changes: the entry is stale, reported, and a fresh export asks for it again.
    flow = workspace / "flows" / "refused.yaml"
    flow.write_text(flow.read_text(encoding="utf-8").replace("Sorry to hear that.", "I am sorry."),
                    encoding="utf-8")
    assert main(["locales", "check"]) == 0  # stale is reported, not fatal (the bot falls back)
    assert "stale" in capsys.readouterr().out
    assert main(["locales", "export", "--lang", "ps"]) == 0
    assert "refused.intro: |-\n    I am sorry." in capsys.readouterr().out


def test_import_refuses_broken_placeholders_and_unknown_keys(
        workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = workspace / "bad.yaml"
    bad.write_text("refused.queued: 'یو رضاکار به دلته ځواب درکړي: {detial}'\nno.such.key: x\n",
                   encoding="utf-8")
    assert main(["locales", "import", "--lang", "ps", str(bad)]) == 1
    err = capsys.readouterr().err
    assert f"{bad}:1: 'refused.queued': placeholders differ from the English" in err
    assert "keep exactly: detail" in err
    assert f"{bad}:2: 'no.such.key' is not a key of any flow" in err
    assert not (workspace / "locales").exists()


def test_check_reports_label_too_long(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = workspace / "locales" / "fa"
    folder.mkdir(parents=True)
    (folder / "refused.yaml").write_text(
        "refused.when.week:\n  status: needs_review\n  source: This week\n"
        "  text: در همین هفته‌ای که گذشت و تمام شد\n", encoding="utf-8")
    assert main(["locales", "check"]) == 1
    assert "button label is 33 characters; the limit is 20" in capsys.readouterr().out


def test_check_holds_the_whatsapp_list_opener_to_20_characters(
        workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = workspace / "locales" / "ps"
    folder.mkdir(parents=True)
    (folder / "system.yaml").write_text(
        "system.choose:\n  status: needs_review\n  source: Choose\n"
        "  text: له دې لېست څخه یو شی وټاکئ\n", encoding="utf-8")
    assert main(["locales", "check"]) == 1
    assert "'system.choose': button label is 26 characters; the limit is 20" in \
        capsys.readouterr().out


def test_models_install_list_and_draft_with_progress(
        workspace: Path, capsys: pytest.CaptureFixture[str], no_network_attempts: NetworkGuard) -> None:
    assert main(["models", "list"]) == 0
    assert "no models installed" in capsys.readouterr().out
    model = build_tiny_model(workspace / "models", "en", "fa", {"Sorry": "متاسفم"})
    assert main(["models", "install", str(model)]) == 0
    assert "installed en->fa" in capsys.readouterr().out
    assert main(["models", "list"]) == 0
    assert "en->fa" in capsys.readouterr().out

    assert main(["locales", "draft", "--lang", "fa"]) == 0
    captured = capsys.readouterr()
    assert "machine drafts written" in captured.out
    assert "]" in captured.err and "/" in captured.err  # the progress bar
    catalogs, _ = load_catalogs(workspace / "locales")
    intro = catalogs.entry("refused.intro", "fa")
    assert intro is not None and intro.status is Status.MACHINE
    assert intro.text.startswith("متاسفم")

    assert main(["locales", "draft", "--lang", "ps"]) == 1  # Pashto has no model
    assert "no offline model translates English to ps" in capsys.readouterr().err


def test_shipped_catalogs_are_complete(capsys: pytest.CaptureFixture[str]) -> None:
    """Every text of every shipped flow exists, fresh, in all five other languages."""
    assert main(["locales", "check"]) == 0, capsys.readouterr().out
    grid = capsys.readouterr().out
    assert grid.startswith("each cell: reviewed / needs review")
    assert "missing:" not in grid and "stale (" not in grid


def test_writing_an_entry_keeps_the_file_s_others_whatever_the_folder_spelling(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.i18n.locales_tools import write_entries

    (tmp_path / "locales" / "fa").mkdir(parents=True)
    (tmp_path / "locales" / "fa" / "system.yaml").write_text(
        "system.a:\n  status: needs_review\n  source: A\n  text: الف\n", encoding="utf-8")
    catalogs, problems = load_catalogs(tmp_path / "locales")  # read by its absolute path
    assert not problems and catalogs.entry("system.a", "fa") is not None
    monkeypatch.chdir(tmp_path)
    write_entries(Path("locales"), "fa", {"system.b": ("ب", "B", Status.NEEDS_REVIEW)},
                  ["system.a", "system.b"], catalogs)  # written through a relative one
    again, _ = load_catalogs(tmp_path / "locales")
    assert [(e.key, e.text) for e in sorted(again.entries.values(), key=lambda e: e.key)] == [
        ("system.a", "الف"), ("system.b", "ب")]
