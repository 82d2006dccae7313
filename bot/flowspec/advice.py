"""The advice guard: warnings for flow text that drifts from general information into advice.

In the UK, advice on a person's own immigration case is regulated; the flows give general
information and point to regulated advisers. Two checks, on the English sources (what a
person sees: step texts and button labels, not handover summaries, which are for volunteers):

* **Case talk.** A sentence that tells the person what will happen in their own case
  ("you will be removed", "your appeal will fail"), what their status is ("you are out of
  time", "you qualify"), or what to do in it ("you should appeal", "you must ..."). The
  phrases are narrow on purpose: general information addressed to "you" stays quiet
  ("you can ask an adviser", "they will reply", "you will need a place to live", "you may
  be able to appeal"), as does a phrase inside a condition or a report ("if you qualify",
  "ask whether you can appeal", "the letter says that you have a right of appeal"), and
  words in quotes (a button's name, a word to type, a letter's wording).
* **No way to an adviser.** A step about appeals, refusals, detention or removal from which
  no path in the flows (its own buttons, branches and next steps, and the flows they start;
  not MENU, which leaves it to the person to find the way) reaches a handover to a
  volunteer or a step that shows a regulated adviser finder (ADVISER_SIGNPOSTS). A step
  that every path from the flow's start reaches through a handover is already covered.

Warnings never refuse a flow: `python -m bot validate` prints them and still says OK.
docs/flow-format.md ("What flows may say") tells staff the rules and how to rephrase.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from bot.errors import Problem
from bot.flowspec.model import AskStep, Flow, HandoverStep, Step
from bot.flowspec.validate import step_reached, successors
from bot.text.normalize import normalize

__all__ = ["ADVISER_SIGNPOSTS", "advice_warnings", "case_talk"]


@dataclass(frozen=True)
class _Rule:
    pattern: re.Pattern[str]
    says: str  # what the matched words do, in the warning
    hint: str


def _rule(pattern: str, says: str, hint: str) -> _Rule:
    return _Rule(re.compile(rf"\b(?:{pattern})\b"), says, hint)


_GENERAL = ("say what happens in general, for most people ('people whose claim is refused "
            "can usually appeal'), with 'usually' or 'may', and add that a regulated adviser "
            "can say what applies to them")

#: Matched against the English text after normalize() (lower case, no punctuation) and
#: _CONTRACTIONS, so "You'll" reads "you will" and "can't" reads "cannot".
_RULES = (
    _rule(r"you (?:will|are going to)(?: not| never)?(?: definitely| probably| certainly| surely)? "
          r"(?:be (?:removed|deported|detained|arrested|sent back|sent home|returned|granted|"
          r"refused|rejected|accepted|released|allowed to (?:stay|remain)|able to stay|safe|fine|"
          r"ok|okay|given (?:asylum|status|refugee status|protection|leave))|win|lose|"
          r"get (?:asylum|refugee status|status|leave|protection|humanitarian protection|a visa|"
          r"to stay)|have to leave|need to leave)",
          "predicts the outcome of the person's own case", _GENERAL),
    _rule(r"your (?:asylum |fresh |immigration |support )?(?:claim|case|appeal|application|"
          r"chances?) (?:will|would|is going to|looks|seems|sounds|is (?:strong|weak|good|bad|"
          r"hopeless|likely|unlikely|late|out of time|too late|valid|invalid|certain))",
          "says how the person's own claim or appeal will go", _GENERAL),
    _rule(r"you (?:are|were)(?: not)? (?:out of time|too late|late|eligible|ineligible|"
          r"entitled to (?:asylum|stay|remain|protection)|a refugee|appeal rights exhausted|"
          r"liable to removal|safe to return|not at risk)|it is too late (?:for you|to appeal)|"
          r"you (?:have|had) (?:missed the deadline|run out of time|no right (?:of|to) appeal|"
          r"a right (?:of|to) (?:appeal|stay|remain))|you (?:only )?have \d+ days|"
          r"you (?:do not )?qualify|you (?:can|cannot) (?:appeal|stay|remain|claim asylum)",
          "tells the person their own status or rights in their case",
          "describe the rule in general ('an appeal must reach the Tribunal within 14 days'; "
          "'some people can appeal late'), and say that a regulated adviser can tell them "
          "what applies to them"),
    _rule(r"you have (?:a |an )?(?:strong|good|weak|winning|hopeless|solid|clear|no|little|"
          r"high|low) (?:case|claim|chance)",
          "judges the person's own case", _GENERAL),
    _rule(r"you (?:should|ought to|need to|have to|had better)(?: not)? (?:appeal|claim|apply|"
          r"withdraw|sign|leave|go back|return|accept|refuse|lodge|submit|make a fresh claim|"
          r"tell the home office|lie|hide|move)|you must",
          "tells the person what to do in their own case",
          "give the general rule or the choices people have, and who can help decide "
          "('a regulated adviser can tell you if an appeal may help'); for safety, say "
          "'call 999' rather than 'you must'"),
    _rule(r"(?:i|we) (?:would )?(?:advise|recommend|suggest) (?:you|that you)|"
          r"(?:my|our) advice|if i were you|the best (?:thing|option) for you",
          "gives advice in the bot's own voice",
          "the bot gives information, not advice: say what people can do in general and "
          "where a regulated adviser can be found"),
)

#: Words just before a match that make it a condition, a question or a report, not a claim.
_NOT_A_CLAIM = re.compile(r"(?:\b(?:if|whether|unless|when|once|do|says? that|said that))\s$")

_CONTRACTIONS = ((r"\byou ll\b", "you will"), (r"\byou re\b", "you are"),
                 (r"\byou ve\b", "you have"), (r"\bwon t\b", "will not"),
                 (r"\bcan t\b", "cannot"), (r"\bcan not\b", "cannot"),
                 (r"\bdon t\b", "do not"), (r"\bit s\b", "it is"), (r"\bi d\b", "i would"))

#: Steps about these need a way on to a regulated adviser or a volunteer.
_TOPIC = re.compile(r"\b(?:appeal\w*|refus(?:al|als|e|ed|es)|reject(?:ed|ion)?|"
                    r"negative decision|detain\w*|detention|remov(?:al|ed)|deport\w*)\b")
_TOPIC_NAMES = (("appeal", "appeals"), ("refus", "refusals"), ("reject", "refusals"),
                ("negative", "refusals"), ("detain", "detention"), ("detention", "detention"),
                ("remov", "removal"), ("deport", "removal"))

#: Text that signposts a regulated adviser: the legal aid and adviser finders the flows
#: show, the Civil Legal Advice line and ASAP (free advice on asylum support appeals).
#: A step with one of them counts as a way to an adviser; add a new finder here.
ADVISER_SIGNPOSTS = (
    "find-legal-advice.justice.gov.uk",
    "gov.uk/find-an-immigration-adviser",
    "gov.uk/legal-aid/how-to-claim",
    "asaproject.org",
    "0345 345 4 345",
)


def _texts(step: Step) -> Iterator[tuple[str, int]]:
    """What a person reads at this step, with the line it is on; any kind with ``text``."""
    text = getattr(step, "text", None)
    if isinstance(text, str):
        yield text, step.line
    if isinstance(step, AskStep):
        yield from ((button.label, button.line) for button in step.buttons)


#: Words in quotes are a name or an example (a button, a word to type, a letter's wording),
#: not what the bot itself says.
_QUOTED = re.compile(r'"[^"\n]*"|“[^”\n]*”')


def _folded(text: str) -> str:
    folded = normalize(_QUOTED.sub(" ", text))
    for pattern, replacement in _CONTRACTIONS:
        folded = re.sub(pattern, replacement, folded)
    return folded


def case_talk(text: str) -> Iterator[tuple[str, _Rule]]:
    """(the words, the rule) for every phrase of ``text`` that talks about the person's case."""
    folded = _folded(text)
    for rule in _RULES:
        for match in rule.pattern.finditer(folded):
            if not _NOT_A_CLAIM.search(folded[:match.start()]):
                yield match.group(0), rule


def _signposts_adviser(step: Step) -> bool:
    if isinstance(step, HandoverStep):
        return True
    return any(sign in text for text, _ in _texts(step) for sign in ADVISER_SIGNPOSTS)


def _reaches_adviser(flows: Mapping[str, Flow], flow: Flow, step: Step) -> bool:
    """A path from ``step`` (itself included) to a handover or an adviser signpost, through
    the flows that steps start; MENU and END are where a path stops."""
    seen: set[tuple[str, str]] = set()
    todo = [(flow, step)]
    while todo:
        here_flow, here = todo.pop()
        if (here_flow.id, here.id) in seen:
            continue
        seen.add((here_flow.id, here.id))
        if _signposts_adviser(here):
            return True
        for target in successors(here_flow, here):
            if target is not None and target.flow is not None:
                other = flows.get(target.flow)
                if other is not None and other.steps:
                    todo.append((other, other.steps[0]))
                continue
            found = step_reached(here_flow, here, target)
            nxt = here_flow.step(found) if found else None
            if nxt is not None:
                todo.append((here_flow, nxt))
    return False


def _after_a_handover(flow: Flow) -> set[str]:
    """Steps every path from the start reaches through a handover: a volunteer is already
    on the way there (e.g. the information shown while the person waits)."""
    if not flow.steps:
        return set()
    before: set[str] = set()
    todo = [flow.steps[0]]
    while todo:
        here = todo.pop()
        if here.id in before:
            continue
        before.add(here.id)
        if isinstance(here, HandoverStep):
            continue
        for target in successors(flow, here):
            found = step_reached(flow, here, target)
            nxt = flow.step(found) if found else None
            if nxt is not None:
                todo.append(nxt)
    return {step.id for step in flow.steps} - before


def _topic(step: Step) -> str | None:
    for text, _ in _texts(step):
        match = _TOPIC.search(_folded(text))
        if match:
            word = match.group(0)
            return next(name for prefix, name in _TOPIC_NAMES if word.startswith(prefix))
    return None


def advice_warnings(flows: Mapping[str, Flow]) -> list[Problem]:
    warnings: list[Problem] = []
    for flow in sorted(flows.values(), key=lambda f: f.path):
        volunteer_called = _after_a_handover(flow)
        for step in flow.steps:
            for text, line in _texts(step):
                for words, rule in case_talk(text):
                    warnings.append(Problem(
                        flow.path, line, f"step '{step.id}' {rule.says}: \"{words}\"",
                        rule.hint))
            topic = _topic(step)
            if (topic is not None and step.id not in volunteer_called
                    and not _reaches_adviser(flows, flow, step)):
                warnings.append(Problem(
                    flow.path, step.line,
                    f"step '{step.id}' is about {topic} but leads to no regulated adviser "
                    "or volunteer",
                    "add a button to a volunteer (next: \"flow:talk_to_person\"), a handover "
                    "step, or the adviser finder (https://find-legal-advice.justice.gov.uk) "
                    "after it; MENU does not count"))
    return warnings
