"""Checks of the directory for staff: flows that ask for a place the directory lacks, and
entries due a check. Pure: the caller reads the files and prints the lines.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

from bot.errors import Problem
from bot.flowspec.model import AskStep, Flow, ServicesStep
from bot.services.matching import STALE_MONTHS, months_before, stale_services
from bot.services.model import Directory, Service

__all__ = ["age_lines", "flow_place_problems", "stale_warnings"]


def flow_place_problems(flows: Mapping[str, Flow], directory: Directory) -> list[Problem]:
    """Place buttons of a flow (buttons of a question whose answer a services step reads as
    a place, that do not lead elsewhere) that are not places of the directory: a person who
    taps one is shown services for the wider place they chose before (validate warns)."""
    problems: list[Problem] = []
    for flow in flows.values():
        for step in flow.steps:
            if not isinstance(step, ServicesStep):
                continue
            questions = [s for s in flow.steps
                         if isinstance(s, AskStep) and s.save is not None and s.save in step.place]
            for question in questions:
                for button in question.buttons:
                    if button.next is None and button.id not in directory.places:
                        problems.append(Problem(
                            flow.path, button.line,
                            f"button '{button.id}' of step '{question.id}' is read as a place by "
                            f"step '{step.id}', and services/places.yaml has no place '{button.id}'",
                            "use a place id from services/places.yaml as the button id, add the "
                            "place there, or give the button its own 'next'"))
    return problems


def _where(service: Service) -> str:
    return f"{service.path}:{service.line}"


def stale_warnings(directory: Directory, today: date) -> list[str]:
    """One ``warning:`` line per entry not checked for more than six months."""
    return [f"warning: {_where(s)}: '{s.id}' was last checked {s.checked.isoformat()} ({days} days "
            f"ago, more than {STALE_MONTHS} months); check it at its source and update 'checked:'"
            for s, days in stale_services(directory, today)]


def age_lines(directory: Directory, today: date) -> list[str]:
    """Every entry, least recently checked first, for the staff member who keeps them."""
    cutoff = months_before(today, STALE_MONTHS)
    entries = sorted(directory.services, key=lambda s: (s.checked, s.id))
    lines = []
    for service in entries:
        days = (today - service.checked).days
        mark = "STALE" if service.checked < cutoff else "ok"
        lines.append(f"{mark:<5} {days:>5} days  {service.checked.isoformat()}  {service.id}  "
                     f"({service.name})  {_where(service)}")
    return lines
