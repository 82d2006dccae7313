"""A broken flow file is refused with path:line and the last good flows keep serving."""

from __future__ import annotations

import logging
import shutil
import threading
from pathlib import Path

import pytest

from bot.errors import FlowLoadError
from bot.flowspec.library import default_flows_dir, load_library
from bot.flowspec.live import LiveLibrary

FIXTURES = Path(__file__).parent / "fixtures" / "flows"


@pytest.fixture
def flows(tmp_path: Path) -> Path:
    folder = tmp_path / "flows"
    shutil.copytree(FIXTURES, folder)
    return folder


def break_file(path: Path) -> None:
    path.write_text(path.read_text(encoding="utf-8").replace("next: END", "next: nowhere"),
                    encoding="utf-8")


def test_broken_edit_is_refused_and_last_good_flows_serve(
        flows: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    live = LiveLibrary([flows], snapshot_dir=tmp_path / "snapshot")
    good = live.current
    break_file(flows / "refused.yaml")
    assert live.changed()
    with caplog.at_level(logging.ERROR):
        problems = live.reload()
    assert [p.message for p in problems] == ["'nowhere' is not a step in this flow"]
    assert problems[0].path.endswith("refused.yaml") and problems[0].line == 27
    assert "refused.yaml:27: 'nowhere' is not a step" in caplog.text
    assert live.current is good
    # Fixing the file swaps the new flows in.
    (flows / "refused.yaml").write_text((FIXTURES / "refused.yaml").read_text(encoding="utf-8")
                                        .replace("Sorry to hear that.", "Sorry."), encoding="utf-8")
    assert live.reload() == []
    assert live.current.strings()["refused.intro"] == "Sorry."


def test_restart_with_a_broken_file_serves_the_snapshot(flows: Path, tmp_path: Path) -> None:
    snapshot = tmp_path / "snapshot"
    LiveLibrary([flows], snapshot_dir=snapshot)
    break_file(flows / "refused.yaml")
    restarted = LiveLibrary([flows], snapshot_dir=snapshot)
    assert restarted.last_problems and restarted.last_problems[0].line == 27
    assert "refused" in restarted.current.flows


def test_broken_file_without_snapshot_refuses_to_start(flows: Path) -> None:
    break_file(flows / "refused.yaml")
    with pytest.raises(FlowLoadError, match=r"refused.yaml:27: 'nowhere' is not a step"):
        LiveLibrary([flows])


def half_that_parses(flows: Path, path: Path, full: str, *, before: str) -> str:
    """The longest start of ``full``, cut at a line before ``before``, that still loads."""
    cuts = [i + 1 for i, ch in enumerate(full[:full.index(before)]) if ch == "\n"]
    for cut in reversed(cuts[len(cuts) // 3:]):
        path.write_text(full[:cut], encoding="utf-8")
        try:
            load_library([flows])
        except FlowLoadError:
            continue
        return full[:cut]
    raise AssertionError(f"no start of {path.name} before {before!r} loads")


def test_a_half_saved_file_goes_live_only_once_it_stops_changing(tmp_path: Path) -> None:
    flows = tmp_path / "flows"
    shutil.copytree(default_flows_dir(), flows)
    live = LiveLibrary([flows], snapshot_dir=tmp_path / "flows-last-good")
    good = live.current
    path = flows / "claim_refused.yaml"
    full = path.read_text(encoding="utf-8")
    # An editor still writing: the file cut at a line before its handover step happens to
    # be a valid flow (without the handover), so a reload taken now would serve it.
    path.write_text(half_that_parses(flows, path, full, before="  - id: urgent_handover"),
                    encoding="utf-8")
    assert load_library([flows]).flows["claim_refused"].step("urgent_handover") is None
    assert live.poll() is None
    assert live.current is good
    # The rest arrives (with an edit, to tell the versions apart); it has changed since
    # the last poll, so it waits one more.
    path.write_text(full.replace("This is very hard news.", "This is hard news."), encoding="utf-8")
    assert live.poll() is None
    assert live.current is good
    assert live.poll() == []
    assert live.current.strings()["claim_refused.intro"].startswith(
        "I am sorry your claim was refused. This is hard news.")
    assert live.current.flows["claim_refused"].step("urgent_handover") is not None
    assert live.poll() is None  # nothing changed since


def test_bots_started_at_once_on_one_database_share_the_snapshot(flows: Path, tmp_path: Path) -> None:
    snapshot = tmp_path / "data" / "flows-last-good"
    starting = threading.Barrier(4)
    errors: list[BaseException] = []

    def start_a_bot() -> None:
        try:
            starting.wait()
            live = LiveLibrary([flows], snapshot_dir=snapshot)
            for _ in range(5):
                assert live.reload() == []
        except BaseException as exc:  # reported below, from the test's own thread
            errors.append(exc)

    threads = [threading.Thread(target=start_a_bot) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(p.name for p in snapshot.iterdir()) == sorted(p.name for p in flows.iterdir())
    # No temporary folders left: the snapshot and its lock file only.
    assert sorted(p.name for p in snapshot.parent.iterdir()) == [".flows-last-good.lock",
                                                                 "flows-last-good"]


def test_a_bot_reading_the_snapshot_while_another_swaps_it_sees_it_whole(
        flows: Path, tmp_path: Path) -> None:
    """One bot reloads good flows over and over (a new snapshot each time) while others
    start on broken files and read the snapshot: each reader gets every flow."""
    snapshot = tmp_path / "data" / "flows-last-good"
    broken = tmp_path / "broken"
    shutil.copytree(flows, broken)
    break_file(broken / "refused.yaml")
    writer = LiveLibrary([flows], snapshot_dir=snapshot)
    wanted = set(writer.current.flows)
    starting = threading.Barrier(4)
    errors: list[BaseException] = []
    served: list[set[str]] = []

    def swap_again_and_again() -> None:
        try:
            starting.wait()
            for _ in range(40):
                assert writer.reload() == []
        except BaseException as exc:
            errors.append(exc)

    def start_on_broken_files() -> None:
        try:
            starting.wait()
            for _ in range(15):
                reader = LiveLibrary([broken], snapshot_dir=snapshot)
                assert reader.last_problems
                served.append(set(reader.current.flows))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=swap_again_and_again)]
    threads += [threading.Thread(target=start_on_broken_files) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(served) == 45 and all(flows_served == wanted for flows_served in served)


def test_a_kill_mid_swap_leaves_a_whole_snapshot_that_is_used_then_cleared(
        flows: Path, tmp_path: Path) -> None:
    snapshot = tmp_path / "flows-last-good"
    LiveLibrary([flows], snapshot_dir=snapshot)
    # As a process killed between its two renames leaves it: the old snapshot moved aside,
    # and another killed while copying leaves a part-filled folder of its own.
    snapshot.rename(tmp_path / ".flows-last-good.abc123.old")
    partial = tmp_path / ".flows-last-good.def456.new"
    partial.mkdir()
    shutil.copyfile(flows / "refused.yaml", partial / "refused.yaml")
    broken = tmp_path / "broken"
    shutil.copytree(flows, broken)
    break_file(broken / "refused.yaml")
    restarted = LiveLibrary([broken], snapshot_dir=snapshot)
    assert restarted.last_problems and set(restarted.current.flows) == \
        set(load_library([flows]).flows)
    LiveLibrary([flows], snapshot_dir=snapshot)  # the next good load clears what was left
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".flows-last-good.lock", "broken", "flows", "flows-last-good"]
