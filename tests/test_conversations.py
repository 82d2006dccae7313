"""Every golden conversation in tests/conversations/, and proof they cover every path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot.flowspec.library import FlowLibrary
from tests.conversation_runner import Coverage, load_cases, run_case, write_expectations

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
