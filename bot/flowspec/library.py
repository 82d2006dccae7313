"""The set of flows the bot serves, loaded all-or-nothing from a folder of YAML files.

A reload that finds any problem is refused as a whole and the previous library keeps
serving, so a half-edited file never reaches a person in the middle of a conversation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bot._shipped import shipped_dir
from bot.errors import FlowLoadError, Problem
from bot.flowspec.model import Flow, HandoverStep
from bot.flowspec.parse import parse_flow
from bot.flowspec.validate import (
    FIRST_CONTACT_FLOW,
    MAIN_MENU_FLOW,
    outranked_by,
    validate_flow,
    validate_library,
)
from bot.text.normalize import normalize

__all__ = ["FlowLibrary", "default_flows_dir", "flow_files", "in_folder_context", "load_library"]


_NO_EXTRA: Mapping[str, str] = {}


def default_flows_dir() -> Path:
    """The shipped flows: flows/ at the repository root in a checkout or an editable install,
    the copy inside the package once installed (see bot/_shipped)."""
    return shipped_dir("flows")


#: The pools of words a flow may own, matched the same way (whole words inside a message).
KEYWORDS, SAFEGUARDING, DISTRESS = "keywords", "safeguarding", "distress"


@dataclass(frozen=True)
class FlowLibrary:
    flows: dict[str, Flow]
    first_contact: str = FIRST_CONTACT_FLOW
    main_menu: str = MAIN_MENU_FLOW
    _commands: dict[str, Flow] = field(default_factory=dict, compare=False, repr=False)
    _keywords: dict[str, Flow] = field(default_factory=dict, compare=False, repr=False)
    _safeguarding: dict[str, Flow] = field(default_factory=dict, compare=False, repr=False)
    _distress: dict[str, Flow] = field(default_factory=dict, compare=False, repr=False)
    #: flow id -> every flow id that outranks it, directly or through a chain.
    _outranked_by: dict[str, frozenset[str]] = field(default_factory=dict, compare=False,
                                                     repr=False)
    _sorted: dict[tuple[int, str], tuple[Mapping[str, str], list[tuple[str, Flow]]]] = field(
        default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        for flow in self.flows.values():
            if flow.command:
                self._commands[flow.command] = flow
            for keyword in flow.keywords:
                self._keywords[normalize(keyword)] = flow
            for phrase in flow.safeguarding:
                self._safeguarding[normalize(phrase)] = flow
            for word in flow.distress:
                self._distress[normalize(word)] = flow
        self._outranked_by.update(outranked_by(self.flows))

    def get(self, flow_id: str) -> Flow | None:
        return self.flows.get(flow_id)

    def menu(self) -> list[Flow]:
        """Flows shown in the main menu, in their 'menu' order."""
        listed = [f for f in self.flows.values() if f.menu_order is not None]
        return sorted(listed, key=lambda f: (f.menu_order or 0, f.id))

    def by_command(self, command: str) -> Flow | None:
        return self._commands.get(command.casefold())

    def flow_named_by(self, text: str, extra: Mapping[str, str] = _NO_EXTRA) -> Flow | None:
        """The flow one of whose keywords is the whole message.

        ``extra`` maps normalised keywords in other languages to flow ids.
        """
        folded = normalize(text)
        flow = self._keywords.get(folded)
        if flow is None and folded in extra:
            flow = self.flows.get(extra[folded])
        return flow

    def interrupt_for(self, text: str, extra: Mapping[str, str] = _NO_EXTRA) -> Flow | None:
        """A flow named by the whole message that may interrupt any step.

        Whole-message matching keeps a free-text answer that merely contains 'help'
        from being hijacked.
        """
        flow = self.flow_named_by(text, extra)
        return flow if flow is not None and flow.interrupt else None

    def flow_for_keywords(self, text: str, extra: Mapping[str, str] = _NO_EXTRA) -> Flow | None:
        """The menu flow with a keyword found as whole words inside the message.

        Only flows listed in the menu match inside a sentence: 'I want to quit my job'
        must not start the stop flow, whose keywords count only as the whole message.
        A flow that ``outranks`` another wins over it ('my asylum claim was refused' is
        about the refusal, not about how asylum works); otherwise the longest keyword
        wins ('no money' beats 'money'), and a tie goes to the flow higher in the menu.
        ``extra`` maps normalised keywords in other languages to flows.
        """
        return self._best(text, KEYWORDS, extra)

    def flow_for_safeguarding(self, text: str, extra: Mapping[str, str] = _NO_EXTRA) -> Flow | None:
        """The flow with a safeguarding phrase found as whole words anywhere in the message.

        Looked for in every message at every step, before anything else: a person who writes
        about ending their life in the middle of a form must see crisis numbers at once.
        Several flows may own phrases (suicide, violence now, a medical emergency, ...); when
        one message holds phrases of several, the order their ``outranks`` lists give decides,
        then the longest phrase. ``extra`` maps normalised phrases in other languages to flow ids.
        """
        if not self._safeguarding and not extra:
            return None
        return self._best(text, SAFEGUARDING, extra)

    def flow_for_distress(self, text: str, extra: Mapping[str, str] = _NO_EXTRA) -> Flow | None:
        """The flow with a distress word ('scared', 'police', 'help') inside the message.

        Asked only for a message nothing else understood at the main menu or when idle, so
        that a frightened person's first words lead somewhere useful rather than to
        "Sorry, I did not understand".
        """
        if not self._distress and not extra:
            return None
        return self._best(text, DISTRESS, extra)

    def _best(self, text: str, pool: str, extra: Mapping[str, str]) -> Flow | None:
        folded = f" {normalize(text)} "
        found: dict[str, Flow] = {}  # in matching order: longest phrase first
        for padded, flow in self._candidates(extra, pool):
            if flow.id not in found and padded in folded:
                found[flow.id] = flow
        for flow_id, flow in found.items():
            if not self._outranked_by.get(flow_id, frozenset()) & found.keys():
                return flow
        return next(iter(found.values()), None)  # only a cycle (refused by validation)

    def _candidates(self, extra: Mapping[str, str], pool: str) -> list[tuple[str, Flow]]:
        """A pool's phrases in matching order, longest first, padded with spaces to match
        whole words; built once per catalog, not per message. Keywords count inside a
        sentence only for flows in the menu."""
        cache_key = (id(extra), pool)
        cached = self._sorted.get(cache_key)
        if cached is not None and cached[0] is extra:
            return cached[1]
        own = {KEYWORDS: self._keywords, SAFEGUARDING: self._safeguarding,
               DISTRESS: self._distress}[pool]
        pairs = list(own.items())
        pairs += [(k, f) for k, fid in extra.items() if (f := self.flows.get(fid)) is not None]
        candidates = [(k, f) for k, f in pairs
                      if k and (pool != KEYWORDS or f.menu_order is not None)]
        candidates.sort(key=lambda p: (-len(p[0]), p[1].menu_order or 0, p[1].id))
        padded = [(f" {k} ", f) for k, f in candidates]
        self._sorted[cache_key] = (extra, padded)
        return padded

    def handover_queues(self) -> set[str]:
        """The volunteer queues the flows hand chats to."""
        return {step.queue for flow in self.flows.values() for step in flow.steps
                if isinstance(step, HandoverStep)}

    def strings(self) -> dict[str, str]:
        """Every localisation key of every flow, with its English source text."""
        out: dict[str, str] = {}
        for flow in self.flows.values():
            out.update(flow.strings())
        return out


def flow_files(paths: Sequence[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.glob("*.yaml") if not p.name.startswith(".")))
            files.extend(sorted(p for p in path.glob("*.yml") if not p.name.startswith(".")))
        else:
            files.append(path)
    return files


def in_folder_context(paths: Sequence[Path], flows_dir: Path) -> list[Path]:
    """What to load to check ``paths`` as the bot would use them.

    A flow links to other flows, so a single file is checked together with the folder it
    belongs to: its own folder when that is a flows folder (it holds the main menu),
    otherwise ``flows_dir``, where the file takes the place of the flow file of the same
    name (a draft checked before it is saved into the live folder). Folders are taken
    as they are; no paths means ``flows_dir``.
    """
    if not paths:
        return [flows_dir]
    named = [p for p in paths if not p.is_dir()]
    chosen: list[Path] = list(paths)
    replaced = {p.stem for p in named}
    seen = {p.resolve() for p in flow_files(chosen)}
    for file in named:
        folder = file.parent
        if not (folder / f"{MAIN_MENU_FLOW}.yaml").is_file():
            folder = flows_dir
        for other in flow_files([folder]):
            if other.stem not in replaced and other.resolve() not in seen:
                seen.add(other.resolve())
                chosen.append(other)
    return chosen


def _display(path: Path) -> str:
    """The path as staff would type it: relative to where they are, when it is below."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def load_library(paths: Sequence[Path]) -> FlowLibrary:
    """Read, parse and validate every flow file. Raises FlowLoadError listing every problem.

    A folder is a whole library and must hold the required flows; loose files are checked
    on their own (``python -m bot validate flows/claim_refused.yaml``).
    """
    problems: list[Problem] = []
    flows: dict[str, Flow] = {}
    files = flow_files(paths)
    if not files:
        where = ", ".join(str(p) for p in paths)
        raise FlowLoadError([Problem(where, 0, "no flow files (*.yaml) found",
                                     "point the bot at the flows/ folder")])
    for file in files:
        shown = _display(file)
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(Problem(shown, 0, f"cannot read the file: {exc}",
                                    "save it as UTF-8 text"))
            continue
        flow, found = parse_flow(text, shown)
        problems.extend(found)
        if flow is None:
            continue
        if flow.id != file.stem and flow.id != "?":
            problems.append(Problem(shown, 1, f"flow id '{flow.id}' does not match the file name",
                                    f"rename the file to {flow.id}.yaml or set id: {file.stem}"))
        if flow.id in flows:
            problems.append(Problem(shown, 1, f"flow id '{flow.id}' is also used by "
                                    f"{flows[flow.id].path}", "flow ids must be unique"))
            continue
        problems.extend(validate_flow(flow))
        flows[flow.id] = flow
    folder = next((_display(p) for p in paths if p.is_dir()), None)
    problems.extend(validate_library(flows, folder))
    if problems:
        raise FlowLoadError(problems)
    return FlowLibrary(flows)
