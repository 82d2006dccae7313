"""The strict YAML readers behind :func:`bot.flowspec.strict_yaml.load_yaml`.

Two readers apply the same rules: libyaml's C parser (``yaml.CSafeLoader``, about ten
times faster: it decides the bot's start-up time) when PyYAML was built with it, and
PyYAML's pure-Python one. Both compose the same nodes, and typing, the checks and the
line numbers all happen above them, in this module. Where the two parsers are known to
disagree (libyaml accepts a few texts PyYAML refuses: tabs between tokens, ``?`` inside a
plain scalar in ``[...]``, ``|-#``, a byte-order mark mid-file) and whenever libyaml finds
any problem, the pure reader decides, so results and error messages are the same either way
(tests/test_flowspec.py runs the strictness tests over both, tests/test_strict_yaml.py
compares them).
"""

from __future__ import annotations

import re
from typing import Any, NoReturn

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.resolver import BaseResolver

from bot.flowspec.strict_yaml import YamlList, YamlMap, YamlSyntaxError

__all__ = ["FAST", "PURE", "load_with", "parse"]


_YAML_TAG = "tag:yaml.org,2002:"
_STR = f"{_YAML_TAG}str"
_CORE_BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
# No leading zeros: "010" stays the string "010" (a phone prefix, not the number 8).
_CORE_INT = re.compile(r"^[-+]?(?:0|[1-9][0-9]*)$")
_CORE_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")


def _line(node: Node) -> int:
    return int(node.start_mark.line) + 1


def _construct_mapping(loader: SafeConstructor, node: MappingNode) -> YamlMap:
    if not isinstance(node, MappingNode):  # "!!map [a]"
        _refuse_tag(loader, node)
    _check_flow(loader, node)
    result = YamlMap()
    result.line = _line(node)
    result.key_lines = {}
    for key_node, value_node in node.value:
        if not isinstance(key_node, ScalarNode):
            raise YamlSyntaxError(_line(key_node), "a key must be plain text")
        _check_tag(loader, key_node)
        key = str(loader.construct_scalar(key_node))  # the text as written: "1", "true"
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


def _construct_sequence(loader: SafeConstructor, node: SequenceNode) -> YamlList:
    if not isinstance(node, SequenceNode):  # "!!seq {a: b}"
        _refuse_tag(loader, node)
    _check_flow(loader, node)
    result = YamlList(loader.construct_object(child, deep=True) for child in node.value)
    result.line = _line(node)
    result.item_lines = [_line(child) for child in node.value]
    return result


def _scalar(construct: Any) -> Any:
    """A core scalar constructor that refuses an explicit tag (``!!int 010``, ``!!bool yes``):
    a tag would bring YAML 1.1 typing back in. A scalar's tag is accepted only when it is
    what the value's plain or quoted form resolves to anyway."""

    def constructor(loader: BaseResolver, node: ScalarNode) -> Any:
        _check_tag(loader, node)
        return construct(loader, node)

    return constructor


def _check_tag(loader: Any, node: Node) -> None:
    if not isinstance(node, ScalarNode):  # e.g. "!!str {a: b}"
        _refuse_tag(loader, node)
    if node.style:  # quoted or a block: text, unless tagged
        if node.tag != _STR:
            _refuse_tag(loader, node)
    # Plain (style None from PyYAML's composer, "" from libyaml's): what it resolves to.
    elif node.tag != loader.resolve(ScalarNode, node.value, (True, False)):
        _refuse_tag(loader, node)


def _refuse_tag(loader: object, node: Node) -> NoReturn:
    tag = str(node.tag)
    shown = ("!!" + tag.removeprefix(_YAML_TAG)) if tag.startswith(_YAML_TAG) else \
        tag if tag.startswith("!") else f"!<{tag}>"
    raise YamlSyntaxError(_line(node), f"YAML tags such as '{shown}' are not allowed",
                          "remove the tag; put the value in quotes if it must stay text")


def _check_flow(loader: object, node: MappingNode | SequenceNode) -> None:
    """On libyaml's side only: in ``[...]`` and ``{...}`` PyYAML ends a plain scalar at
    ``?`` (and then refuses the text), libyaml does not. Let the pure reader decide."""
    if not (node.flow_style and getattr(loader, "libyaml", False)):
        return
    children = node.value if isinstance(node, SequenceNode) else \
        [part for pair in node.value for part in pair]
    if any(isinstance(c, ScalarNode) and not c.style and "?" in c.value for c in children):
        raise _PureDecides


class _PureDecides(Exception):
    """Raised on libyaml's side for a text where the two parsers are known to differ."""


def _make_strict(loader: type[Any]) -> type[Any]:
    """Start from no implicit typing and no constructors at all, then allow only YAML 1.2
    core forms, lined mappings and lists, and nothing tagged."""
    loader.yaml_implicit_resolvers = {}
    loader.add_implicit_resolver(f"{_YAML_TAG}bool", _CORE_BOOL, list("tTfF"))
    loader.add_implicit_resolver(f"{_YAML_TAG}int", _CORE_INT, list("-+0123456789"))
    loader.add_implicit_resolver(f"{_YAML_TAG}null", _CORE_NULL, ["~", "n", "N", ""])
    loader.yaml_constructors = {}
    loader.yaml_multi_constructors = {}
    loader.add_constructor(f"{_YAML_TAG}map", _construct_mapping)
    loader.add_constructor(f"{_YAML_TAG}seq", _construct_sequence)
    loader.add_constructor(f"{_YAML_TAG}str", _scalar(SafeConstructor.construct_yaml_str))
    loader.add_constructor(f"{_YAML_TAG}int", _scalar(SafeConstructor.construct_yaml_int))
    loader.add_constructor(f"{_YAML_TAG}bool", _scalar(SafeConstructor.construct_yaml_bool))
    loader.add_constructor(f"{_YAML_TAG}null", _scalar(SafeConstructor.construct_yaml_null))
    loader.add_constructor(None, _refuse_tag)  # every other tag, local or global
    return loader


class _PureLoader(yaml.SafeLoader):
    libyaml = False


#: PyYAML's pure-Python reader, with the strict rules.
PURE: type[Any] = _make_strict(_PureLoader)

#: libyaml's, with the same rules; None when PyYAML was built without it.
FAST: type[Any] | None = None
if yaml.__with_libyaml__:
    class _CLoader(yaml.CSafeLoader):
        libyaml = True

    FAST = _make_strict(_CLoader)

# Texts libyaml reads where PyYAML refuses them: tabs between tokens, a byte-order mark
# after the start, a block scalar header followed by '#' with no space (tests/
# test_strict_yaml.py). Line breaks other than \n and \r go to the pure reader too: rare,
# and line numbers depend on them.
_HEADER_THEN_HASH = re.compile(r"[|>][-+0-9]*#")


def _pure_only(text: str) -> bool:
    return ("\t" in text or "\x85" in text or "\u2028" in text or "\u2029" in text
            or text.find("\ufeff", 1) >= 0 or _HEADER_THEN_HASH.search(text) is not None)


def parse(text: str, *, libyaml: bool = True) -> Any:
    """One YAML document, strictly; raises YamlSyntaxError with a 1-based line."""
    if libyaml and FAST is not None and not _pure_only(text):
        try:
            return load_with(text, FAST)
        except Exception:  # the pure reader gives the error (or, if it differs, the result)
            pass
    return load_with(text, PURE)


def load_with(text: str, loader: type[Any]) -> Any:
    try:
        documents = list(yaml.load_all(text, Loader=loader))  # (C)SafeLoader subclasses
    except (YamlSyntaxError, _PureDecides):
        raise
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = int(mark.line) + 1 if mark is not None else 1
        problem = exc.problem or exc.context or "the file is not valid YAML"
        if "'\\t'" in problem:
            problem = "a tab character is used for indentation"
        raise YamlSyntaxError(line, f"YAML syntax: {problem}", _syntax_hint(problem)) from None
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
