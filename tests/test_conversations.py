"""Every golden conversation in tests/conversations/, and proof they cover every path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot.flowspec.library import FlowLibrary
from tests.conversation_runner import (
    Coverage,
    load_cases,
    run_case,
    shipped_localizer,
    write_expectations,
)

CASES = load_cases()


@pytest.mark.parametrize(("name", "case"), CASES, ids=[name for name, _ in CASES])
async def test_conversation(name: str, case: dict[str, Any], library: FlowLibrary,
                            tmp_path: Path, request: pytest.FixtureRequest) -> None:
    actual = await run_case(case, library, tmp_path / "bot.sqlite3")
    if request.config.getoption("--update"):
        write_expectations(Path(case["_file"]), {case["name"]: actual})
        return
    for number, (turn, keys) in enumerate(zip(case["turns"], actual, strict=True), start=1):
        assert keys == turn.get("expect", []), f"{name}, turn {number}: {turn}"


async def test_cases_cover_every_step_and_button(library: FlowLibrary, tmp_path: Path) -> None:
    coverage = Coverage()
    for index, (_, case) in enumerate(CASES):
        await run_case(case, library, tmp_path / f"{index}.sqlite3", coverage)
    missing = coverage.missing(library)
    assert not missing, "not covered by any conversation case:\n" + "\n".join(missing)


@pytest.mark.parametrize("language", ["ps", "prs", "fa", "ur", "hi"])
async def test_every_case_runs_wholly_in_each_language(
        language: str, library: FlowLibrary, tmp_path: Path) -> None:
    """The same conversations in another language: the same steps, and every message,
    text and buttons, in that language from the catalogs (no English fallback)."""
    localizer = shipped_localizer(library)
    cases = [case for _, case in CASES if case.get("lang")]
    assert cases
    for index, case in enumerate(cases):
        seen: set[str] = set()
        actual = await run_case(case | {"lang": language}, library, tmp_path / f"{index}.sqlite3",
                                localizer=localizer, languages=seen)
        assert actual == [turn.get("expect", []) for turn in case["turns"]], case["name"]
        assert seen <= {language}, f"{case['name']}: a message fell back to {seen - {language}}"
