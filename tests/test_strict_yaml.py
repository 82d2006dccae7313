"""libyaml and the pure-Python reader give the same answer, on every text.

The strictness rules themselves are tested over both readers in tests/test_flowspec.py;
here the two are compared with each other: on every shipped file, on the texts where the
two parsers are known to disagree, and on a few hundred seeded mutations of shipped files.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from bot.flowspec import strict_yaml, yaml_readers
from bot.flowspec.strict_yaml import YamlSyntaxError, load_yaml

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted((ROOT / "flows").glob("*.yaml")) + sorted((ROOT / "locales").glob("*/*.yaml"))


def shape(value: Any) -> Any:
    """The value with every line number it carries, for comparing two readings."""
    if isinstance(value, strict_yaml.YamlMap):
        return ("map", value.line, value.key_lines, {k: shape(v) for k, v in value.items()})
    if isinstance(value, strict_yaml.YamlList):
        return ("list", value.line, value.item_lines, [shape(v) for v in value])
    return (type(value).__name__, value)


def read(text: str, *, libyaml: bool, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(strict_yaml, "USE_LIBYAML", libyaml)
    try:
        return ("ok", shape(load_yaml(text)))
    except YamlSyntaxError as exc:
        return ("error", exc.line, exc.message, exc.hint)


def both(text: str, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any]:
    return (read(text, libyaml=True, monkeypatch=monkeypatch),
            read(text, libyaml=False, monkeypatch=monkeypatch))


def test_libyaml_reads_the_shipped_files_exactly_as_the_pure_reader(
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert strict_yaml.libyaml_available()
    assert len(SHIPPED) > 50
    for path in SHIPPED:
        fast, pure = both(path.read_text(encoding="utf-8"), monkeypatch)
        assert fast[0] == "ok", (path, fast)
        assert fast == pure, path


# Texts libyaml reads (with the same rules) where PyYAML refuses them.
KNOWN_DIFFERENCES = [
    "a: b\t# a comment after a tab\n",
    "a: [what? no]\n",
    "keywords: [one,\n  two? three]\n",
    "a: {k: v?}\n",
    "a: |-#\n  text\n",
    "a: 1\n\ufeff\nb: 2\n",
]


def unguarded_libyaml(text: str) -> Any:
    """libyaml with the strict rules but without load_yaml's guards and fallback."""
    assert yaml_readers.FAST is not None
    try:
        return ("ok", shape(yaml_readers.load_with(text, yaml_readers.FAST)))
    except (YamlSyntaxError, yaml_readers._PureDecides) as exc:
        return ("error", type(exc).__name__)


@pytest.mark.parametrize("text", KNOWN_DIFFERENCES)
def test_where_the_parsers_differ_the_pure_reader_decides(
        text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    fast, pure = both(text, monkeypatch)
    assert pure[0] == "error"
    assert fast == pure
    # The difference guarded against: libyaml alone reads the text (or flags it as one of
    # these) where the pure reader refuses it.
    assert unguarded_libyaml(text)[0] == "ok" or \
        unguarded_libyaml(text) == ("error", "_PureDecides")


@pytest.mark.parametrize("text", [
    "a: 1\r\nb: 2\r\n", "a: 1\rb: 2\r", "\ufeffa: 1\nb: 2\n", "a: 'it''s'\nb: \"\\u00e9\"\n",
    "a: &x [1]\nb: *x\n", "a:\n  - b: |\n      line one\n      line two\n", "a: {b: [c, {d: e}]}\n",
    "a: 1\na: 2\n", "a: 1\n---\nb: 2\n", "a: [1, 2\n", "a: b: c\n", "", "# only a comment\n",
    "a: 1\x85b: 2\u2028c: [x,\u2029 y]\n", "a: [x, y:z, 'q?']\n", "a: \"what? no\"\n",
])
def test_the_parsers_agree_on_edge_cases(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    fast, pure = both(text, monkeypatch)
    assert fast == pure


def test_the_parsers_agree_on_mutated_shipped_files(monkeypatch: pytest.MonkeyPatch) -> None:
    """Seeded mutations (inserted indicators, tabs, breaks; cut characters; doubled lines)
    of the start of shipped files: whatever each mutation makes, valid or not, both
    readers give the same value, lines, or error."""
    rng = random.Random(11)
    inserts = ["\t", " ", ":", ": ", "#", " #", "\n", "\r\n", "-", "- ", '"', "'", "{", "}", "[",
               "]", ",", "&a ", "*a", "!x ", "!!int ", "|", ">", "|-", "? ", "?", "<<: ", "no",
               "010", "1:30", "...", "---", "\ufeff", "\x00", "\u00a0"]
    texts = [path.read_text(encoding="utf-8")[:1500] for path in SHIPPED]
    outcomes = set()
    for _ in range(300):
        text = rng.choice(texts)
        for _ in range(rng.randint(1, 3)):
            at = rng.randrange(len(text))
            roll = rng.random()
            if roll < 0.7:
                text = text[:at] + rng.choice(inserts) + text[at:]
            elif roll < 0.85:
                text = text[:at] + text[at + rng.randint(1, 5):]
            else:
                lines = text.split("\n")
                row = rng.randrange(len(lines))
                text = "\n".join([*lines[:row], lines[row], *lines[row:]])
        fast, pure = both(text, monkeypatch)
        assert fast == pure, text
        outcomes.add(fast[0])
    assert outcomes == {"ok", "error"}  # the mutations made both kinds of text
