"""A YAML reader that refuses the surprises PyYAML gives staff by default.

PyYAML implements YAML 1.1: ``no`` becomes False, ``1:30`` becomes 90, ``010`` becomes 8,
dates become datetime objects and a duplicated key silently wins. Flow files are written
by people who are not programmers, so here only YAML 1.2 core booleans (true/false) are
booleans, only plain decimal numbers are numbers, everything else is a string, and a
duplicated key is an error. Every mapping and list remembers the line of each entry so
that validation can say ``path:line``.
"""

from __future__ import annotations

import re
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

__all__ = ["YamlList", "YamlMap", "YamlSyntaxError", "load_yaml"]


class YamlSyntaxError(Exception):
    """The text is not YAML we accept; ``line`` is 1-based."""

    def __init__(self, line: int, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.line = line
        self.message = message
        self.hint = hint


class YamlMap(dict[str, Any]):
    """A mapping that knows its own line and the line of each key."""

    line: int
    key_lines: dict[str, int]

    def line_of(self, key: str) -> int:
        return self.key_lines.get(key, self.line)


class YamlList(list[Any]):
    """A list that knows its own line and the line of each item."""

    line: int
    item_lines: list[int]

    def line_of(self, index: int) -> int:
        return self.item_lines[index] if 0 <= index < len(self.item_lines) else self.line


class _StrictLoader(yaml.SafeLoader):
    pass


# Start from no implicit typing at all, then allow only YAML 1.2 core forms.
_StrictLoader.yaml_implicit_resolvers = {}
_StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_StrictLoader.add_implicit_resolver(
    # No leading zeros: "010" stays the string "010" (a phone prefix, not the number 8).
    "tag:yaml.org,2002:int", re.compile(r"^[-+]?(?:0|[1-9][0-9]*)$"), list("-+0123456789")
)
_StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:null", re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""]
)


def _line(node: Node) -> int:
    return int(node.start_mark.line) + 1


def _construct_mapping(loader: _StrictLoader, node: MappingNode) -> YamlMap:
    result = YamlMap()
    result.line = _line(node)
    result.key_lines = {}
    for key_node, value_node in node.value:
        if not isinstance(key_node, ScalarNode):
            raise YamlSyntaxError(_line(key_node), "a key must be plain text")
        key = str(loader.construct_scalar(key_node))
        if key in result:
            raise YamlSyntaxError(
                _line(key_node),
                f"duplicate key '{key}' (first on line {result.key_lines[key]})",
                "each key may appear once in a block; remove or rename one of them",
            )
        if key == "<<":
            raise YamlSyntaxError(_line(key_node), "merge keys ('<<') are not supported")
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = _line(key_node)
    return result


def _construct_sequence(loader: _StrictLoader, node: SequenceNode) -> YamlList:
    result = YamlList(loader.construct_object(child, deep=True) for child in node.value)
    result.line = _line(node)
    result.item_lines = [_line(child) for child in node.value]
    return result


def _refuse_tag(loader: _StrictLoader, tag_suffix: str, node: Node) -> Any:
    raise YamlSyntaxError(_line(node), f"YAML tags such as '!{tag_suffix}' are not allowed")


_StrictLoader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)
_StrictLoader.add_constructor("tag:yaml.org,2002:seq", _construct_sequence)
_StrictLoader.add_multi_constructor("!", _refuse_tag)


def load_yaml(text: str) -> Any:
    """Parse one YAML document strictly. Raises YamlSyntaxError with a 1-based line."""
    try:
        documents = list(yaml.load_all(text, Loader=_StrictLoader))  # a SafeLoader subclass
    except YamlSyntaxError:
        raise
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = int(mark.line) + 1 if mark is not None else 1
        problem = exc.problem or exc.context or "the file is not valid YAML"
        if "'\\t'" in problem:
            problem = "a tab character is used for indentation"
        raise YamlSyntaxError(line, f"YAML syntax: {problem}", _syntax_hint(problem)) from None
    except ConstructorError as exc:  # pragma: no cover - MarkedYAMLError covers the marked cases
        raise YamlSyntaxError(1, f"YAML: {exc}") from None
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(1, f"YAML: {exc}") from None
    if len(documents) > 1:
        raise YamlSyntaxError(1, "a flow file holds one document; remove the extra '---'")
    return documents[0] if documents else None


def _syntax_hint(problem: str) -> str:
    if "\t" in problem or "tab" in problem:
        return "indent with spaces, never tabs"
    if "mapping values are not allowed" in problem:
        return "text containing ': ' must be in quotes, e.g. say: \"Note: bring your letter\""
    if "could not find expected ':'" in problem or "expected <block end>" in problem:
        return "check the indentation of this line and the one above; put text with : or # in quotes"
    return "check indentation and quoting on this line and the one before it"
