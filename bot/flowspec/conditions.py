"""The small, named set of conditions a flow may branch on. No free expressions.

Each condition reads only the answers saved earlier in the flow and the chat language,
so it is pure and easy to check at load time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["CONDITIONS", "ConditionSpec", "evaluate"]

Answers = Mapping[str, str]


@dataclass(frozen=True)
class ConditionSpec:
    example: str
    #: True when the argument names a saved answer (checked by validation).
    reads_answer: bool
    test: Callable[[str | None, tuple[str, ...]], bool]


CONDITIONS: dict[str, ConditionSpec] = {
    "answer_is": ConditionSpec(
        "answer_is: {letter_when: this_week}", True, lambda got, want: got == want[0]
    ),
    "answer_in": ConditionSpec(
        "answer_in: {letter_when: [this_week, two_weeks]}", True, lambda got, want: got in want
    ),
    "answered": ConditionSpec("answered: letter_when", True, lambda got, _: got is not None),
    "language_is": ConditionSpec(
        "language_is: [ps, prs]", False, lambda got, want: got in want
    ),
}


def parse_arguments(name: str, raw: Any) -> tuple[str, tuple[str, ...]] | str:
    """Return (variable, values) for a condition's argument, or an error message."""
    example = CONDITIONS[name].example
    if name == "answered":
        if isinstance(raw, str) and raw:
            return raw, ()
        return f"'answered' takes the name of a saved answer, e.g. {example}"
    if name == "language_is":
        values = [raw] if isinstance(raw, str) else raw
        if isinstance(values, list) and values and all(isinstance(v, str) for v in values):
            return "language", tuple(values)
        return f"'language_is' takes a language code or a list of them, e.g. {example}"
    if isinstance(raw, dict) and len(raw) == 1:
        variable, value = next(iter(raw.items()))
        if name == "answer_is" and isinstance(value, str):
            return str(variable), (value,)
        if (name == "answer_in" and isinstance(value, list) and value
                and all(isinstance(v, str) for v in value)):
            return str(variable), tuple(value)
    return f"'{name}' takes one saved answer and its value, e.g. {example}"


def evaluate(name: str, variable: str, values: tuple[str, ...], answers: Answers,
             language: str | None) -> bool:
    got = language if name == "language_is" else answers.get(variable)
    return CONDITIONS[name].test(got, values)
