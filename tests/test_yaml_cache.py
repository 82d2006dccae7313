"""Parsed flow and catalog files kept between starts: exactly what a parse gives, never stale,
never trusted blindly."""

from __future__ import annotations

import hashlib
import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bot.flowspec import strict_yaml, yaml_cache
from bot.flowspec.library import load_library
from bot.flowspec.strict_yaml import YamlSyntaxError, load_yaml
from bot.flowspec.yaml_cache import CACHE_FILE_NAME, YamlCache
from bot.i18n.catalog import load_catalogs
from tests.test_strict_yaml import SHIPPED, shape

ROOT = Path(__file__).resolve().parents[1]
A = "a: 1\nlist:\n  - x\n  - {k: '010'}\n"
B = "b: no\n"


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every text actually parsed (not served from a cache)."""
    seen: list[str] = []
    parse = strict_yaml._parse

    def counted(text: str) -> Any:
        seen.append(text)
        return parse(text)

    monkeypatch.setattr(strict_yaml, "_parse", counted)
    return seen


def test_a_second_start_parses_nothing_and_reads_the_same(
        tmp_path: Path, parses: list[str]) -> None:
    path = tmp_path / CACHE_FILE_NAME
    texts = [p.read_text(encoding="utf-8") for p in SHIPPED]
    uncached = [shape(load_yaml(t)) for t in texts]
    parses.clear()
    with YamlCache(path) as first:
        load_library([ROOT / "flows"])
        load_catalogs(ROOT / "locales")
    assert first.misses == len(SHIPPED) and first.hits == 0 and path.exists()
    parses.clear()
    with YamlCache(path) as second:
        load_library([ROOT / "flows"])
        load_catalogs(ROOT / "locales")
        cached = [shape(load_yaml(t)) for t in texts]
    assert parses == []
    assert second.hits == 2 * len(SHIPPED) and second.misses == 0
    assert cached == uncached  # values, types and every line number


def test_an_edited_text_is_parsed_again_and_the_file_keeps_only_texts_in_use(
        tmp_path: Path, parses: list[str]) -> None:
    path = tmp_path / CACHE_FILE_NAME
    with YamlCache(path):
        load_yaml(A)
        load_yaml(B)
    parses.clear()
    edited = B.replace("no", "yes")
    with YamlCache(path):
        assert load_yaml(A)["list"][1] == {"k": "010"}
        assert load_yaml(edited) == {"b": "yes"}
    assert parses == [edited]
    written = path.stat().st_mtime_ns
    parses.clear()
    with YamlCache(path) as again:
        load_yaml(A)
        load_yaml(edited)
    assert parses == [] and again.hits == 2
    assert path.stat().st_mtime_ns == written  # nothing changed: not rewritten
    with YamlCache(path):
        load_yaml(B)
    assert parses == [B]  # dropped when it was not in use


def test_each_read_is_a_fresh_copy(tmp_path: Path) -> None:
    with YamlCache(tmp_path / CACHE_FILE_NAME):
        first = load_yaml(A)
        first["list"].append("changed by a caller")
        assert load_yaml(A)["list"] == ["x", {"k": "010"}]


def test_problems_are_never_kept(tmp_path: Path, parses: list[str]) -> None:
    broken = "a: 1\na: 2\n"
    for _ in range(2):
        with YamlCache(tmp_path / CACHE_FILE_NAME), \
                pytest.raises(YamlSyntaxError, match="duplicate key 'a'"):
            load_yaml(broken)
    assert parses == [broken, broken]


def test_other_rules_or_a_damaged_file_mean_parsing_again(
        tmp_path: Path, parses: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / CACHE_FILE_NAME
    with YamlCache(path):
        load_yaml(A)
    monkeypatch.setattr(yaml_cache, "_rules", lambda: b"the rules changed")
    parses.clear()
    with YamlCache(path) as other:
        assert load_yaml(A)["a"] == 1
    assert parses == [A] and other.hits == 0
    path.write_bytes(b"not a pickle at all")
    with YamlCache(path) as damaged:
        assert load_yaml(A)["a"] == 1
    assert damaged.misses == 1
    with YamlCache(path) as rewritten:
        load_yaml(A)
    assert rewritten.hits == 1


class _Payload:
    """What a tampered cache file could hold: a call made while it is read."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.mkdir, (str(self.marker),))


def test_a_tampered_file_cannot_run_code(tmp_path: Path) -> None:
    path = tmp_path / CACHE_FILE_NAME
    marker = tmp_path / "ran"
    key = hashlib.sha256(A.encode()).digest()  # the entry for A
    path.write_bytes(pickle.dumps({"rules": yaml_cache._rules(),
                                   "entries": {key: pickle.dumps(_Payload(marker))}}))
    with YamlCache(path) as cache:
        assert load_yaml(A)["a"] == 1  # parsed: the entry was refused
    assert cache.misses == 1
    path.write_bytes(pickle.dumps(_Payload(marker)))
    with YamlCache(path):
        assert load_yaml(A)["a"] == 1
    assert not marker.exists()


def test_the_chat_keeps_its_cache_beside_the_database(tmp_path: Path) -> None:
    db = tmp_path / "chat" / "bot.sqlite3"
    for _ in range(2):
        done = subprocess.run([sys.executable, "-m", "bot", "chat", "--db", str(db)],
                              input="hi\n", text=True, capture_output=True, timeout=60,
                              cwd=ROOT, check=False)
        assert done.returncode == 0, done.stderr
        assert "Please choose your language" in done.stdout
    cache = db.parent / CACHE_FILE_NAME
    assert cache.exists() and oct(cache.stat().st_mode & 0o777) == "0o600"
