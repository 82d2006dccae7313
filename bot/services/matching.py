"""Which services fit a need and a place, and which entries are due a check. Pure: no I/O.

A service fits a person when it has one of the tags they need and serves their place or a
place their place is in (a service for Scotland fits a person in Glasgow). Local ones come
first: one serving the person's town before one serving their region, their nation, then
the whole UK; among equals, one that speaks the person's language or has interpreters,
then the order of the files.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import date

from bot.services.model import UK, Directory, Place, Service
from bot.text.normalize import normalize

__all__ = ["MATCHES_MAX", "STALE_MONTHS", "find_place", "matching_services", "months_before",
           "stale_services"]

#: At most this many services are shown to a person at once (a phone screen's worth).
MATCHES_MAX = 3
#: An entry not checked for longer than this is reported by validate and `services check`.
STALE_MONTHS = 6


def find_place(directory: Directory, typed: str) -> Place | None:
    """The place a person typed: its id, its name or one of the spellings staff added."""
    key = normalize(typed)
    if not key:
        return None
    for place in directory.places.values():
        if key == place.id.replace("_", " ") or key in (normalize(n) for n in
                                                         (place.name, *place.spellings)):
            return place
    return None


def matching_services(directory: Directory, tags: Collection[str], place_id: str | None,
                      language: str | None = None, limit: int = MATCHES_MAX) -> list[Service]:
    """Services with one of ``tags`` that serve ``place_id`` (None: the whole UK only),
    most local first; at most ``limit``."""
    chain = directory.chain(place_id or UK)
    # The person's own place ranks highest, the UK lowest.
    locality = {place: len(chain) - depth for depth, place in enumerate(chain)}
    ranked: list[tuple[int, int, int, Service]] = []
    for order, service in enumerate(directory.services):
        if not set(service.tags) & set(tags):
            continue
        served = [locality[p] for p in service.serves if p in locality]
        if not served:
            continue
        reachable = service.speaks(language) or bool(service.interpreters)
        ranked.append((-max(served), 0 if reachable else 1, order, service))
    ranked.sort(key=lambda item: item[:3])
    return [item[3] for item in ranked[:limit]]


def months_before(day: date, months: int) -> date:
    """The same day ``months`` earlier (the last day of the month when it has fewer days)."""
    year, month = divmod(day.year * 12 + day.month - 1 - months, 12)
    month += 1
    for last in (31, 30, 29, 28):
        try:
            return date(year, month, min(day.day, last))
        except ValueError:
            continue
    raise AssertionError("unreachable: every month has a 28th")


def stale_services(directory: Directory, today: date,
                   months: int = STALE_MONTHS) -> list[tuple[Service, int]]:
    """Entries with a fact not checked for more than ``months``, with its age in days,
    oldest first."""
    cutoff = months_before(today, months)
    old = [(s, (today - s.checked).days) for s in directory.services if s.checked < cutoff]
    return sorted(old, key=lambda item: (-item[1], item[0].id))
