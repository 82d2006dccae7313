"""The flows the bot cannot run without, and the check that a library still has them.

Staff may edit or delete any flow file; deleting one of these (or taking out the part
that makes it work) would silently break something a person relies on, so a library
without them is refused as a whole, with the file to restore.

The engine reaches each one in its own way: ``choose_language`` and ``main_menu`` by id
(FlowLibrary.first_contact / main_menu), forget and talk to a person by their command
(``/forget``, ``/human``), safety by its safeguarding phrases. The check finds them the
same ways, so a flow it accepts is the flow the engine runs; the safety flow is named by
its file, which must keep its phrases.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from bot.errors import Problem
from bot.flowspec.model import ChooseLanguageStep, Flow, ForgetStep, HandoverStep, MenuStep, Step
from bot.text.normalize import normalize

__all__ = ["FIRST_CONTACT_FLOW", "MAIN_MENU_FLOW", "REQUIRED_FLOWS", "RequiredFlow",
           "required_flow_problems"]

#: The flow every new chat starts with.
FIRST_CONTACT_FLOW = "choose_language"
#: The flow MENU, /start and input nobody understood lead to.
MAIN_MENU_FLOW = "main_menu"

#: Where a good copy of every flow is kept (LiveLibrary's snapshot, beside the default database).
_LAST_GOOD = "data/flows-last-good/"

#: The YAML key of each step kind a required flow may need, as staff write it.
_STEP_KEYS: dict[type[Step], str] = {
    ChooseLanguageStep: "choose_language", MenuStep: "menu", ForgetStep: "forget",
    HandoverStep: "handover",
}


@dataclass(frozen=True)
class RequiredFlow:
    id: str
    #: What staff call it, in messages: "the safety flow".
    name: str
    #: What people lose without it, in messages.
    without: str
    #: Found by this command (as the engine does) rather than by id; the id names the file.
    command: str | None = None
    #: A step of this kind must be in the flow (reachability is checked per file).
    step: type[Step] | None = None
    #: The flow must list safeguarding phrases.
    safeguarding: bool = False


REQUIRED_FLOWS = (
    # Suicide and self-harm phrases in any message show crisis numbers and offer a volunteer.
    RequiredFlow("safety_check", "safety", "a message about suicide or self-harm gets no "
                 "crisis numbers and no volunteer",
                 step=HandoverStep, safeguarding=True),
    # Every new chat starts by choosing its language.
    RequiredFlow(FIRST_CONTACT_FLOW, "language choice", "a new chat cannot start",
                 step=ChooseLanguageStep),
    # MENU, /start and anything not understood lead to the main menu.
    RequiredFlow(MAIN_MENU_FLOW, "main menu", "'Main menu', /start and anything not "
                 "understood lead nowhere", step=MenuStep),
    # Deleting everything stored about a person is their right, not an optional flow.
    RequiredFlow("forget", "forget", "/forget cannot delete a person's data",
                 command="forget", step=ForgetStep),
    # /human (and every "Talk to a person" button) must reach a volunteer.
    RequiredFlow("talk_to_person", "talk to a person", "/human cannot hand the chat to a "
                 "volunteer", command="human", step=HandoverStep),
)


def required_flow_problems(flows: Mapping[str, Flow], folder: str) -> list[Problem]:
    """What is missing or broken among the required flows of the library read from ``folder``."""
    problems: list[Problem] = []
    for required in REQUIRED_FLOWS:
        problems.extend(_check(required, flows, folder))
    return problems


def _restore(path: str) -> str:
    return f"restore {path} from the last good copy in {_LAST_GOOD} or from git (git checkout -- {path})"


def _check(required: RequiredFlow, flows: Mapping[str, Flow], folder: str) -> Iterator[Problem]:
    flow = flows.get(required.id)
    if required.command is not None:
        flow = next((f for f in flows.values() if f.command == required.command), flow)
    if flow is None:
        # A file that is there but does not parse has its own problems listed too.
        shipped = str(Path(folder) / f"{required.id}.yaml")
        yield Problem(shipped, 0, f"the {required.name} flow '{required.id}' is missing or cannot "
                      f"be read: without it, {required.without}", _restore(shipped))
        return
    found = flow

    def broken(what: str, put_back: str) -> Problem:
        return Problem(found.path, 1, f"the {required.name} flow '{found.id}' {what}: without it, "
                       f"{required.without}", f"put back {put_back}, or {_restore(found.path)}")

    if required.command is not None and flow.command != required.command:
        yield broken(f"has no 'command: {required.command}'", f"'command: {required.command}'")
    if required.safeguarding and not any(normalize(p) for p in flow.safeguarding):
        yield broken("has no safeguarding phrases left",
                     "its list, such as 'safeguarding: [kill myself, want to die]'")
    if required.step is not None and not any(isinstance(s, required.step) for s in flow.steps):
        key = _STEP_KEYS[required.step]
        yield broken(f"has no '{key}:' step", f"its '{key}:' step")
