"""The directory of services: strict reading, matching, the find_help flow showing it (in
English and Pashto, through the real dispatcher and SQLite), privacy of a typed place, and
/services at the volunteer desk."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest

from bot.dispatcher import Dispatcher
from bot.engine.events import ServiceCard
from bot.engine.runtime import resume
from bot.engine.session import Session
from bot.errors import DirectoryLoadError
from bot.flowspec.library import FlowLibrary
from bot.flowspec.parse import parse_flow
from bot.flowspec.validate import validate_flow
from bot.handover.desk import SEND_SERVICE_CALLBACK_PREFIX, DeskSettings, HandoverDesk
from bot.handover.model import Volunteer
from bot.i18n.localizer import SERVICE_CARD_KEY
from bot.messages import Inbound, InboundKind, Outbound
from bot.services.check import age_lines, flow_place_problems, stale_warnings
from bot.services.live import LiveDirectory
from bot.services.load import default_services_dir, load_directory, parse_directory
from bot.services.matching import find_place, matching_services, months_before, stale_services
from bot.services.model import Directory
from bot.storage.sqlite import SqliteStore
from bot.text.bidi import FSI, PDI
from bot.transports.memory import MemoryTransport
from tests.conversation_runner import shipped_localizer

FIXTURE_DIR = Path(__file__).parent / "fixtures" / "services"
TODAY = date(2026, 12, 2)
PLACES = ("places.yaml", "places:\n  - {id: scotland, name: Scotland, kind: nation}\n"
          "  - {id: glasgow, name: Glasgow, kind: town, in: scotland}\n")


@pytest.fixture(scope="module")
def fixture_directory() -> Directory:
    return load_directory(FIXTURE_DIR, TODAY)


def problems_of(text: str, places: tuple[str, str] = PLACES) -> list[str]:
    _, problems = parse_directory([places, ("services/local.yaml", text)], TODAY)
    return [str(p) for p in problems]


GOOD_ENTRY = """services:
  - id: drop_in
    name: Example Drop-in
    tags: [housing]
    serves: [glasgow]
    phone: 01632 960010
    sources: [{source: a leaflet, checked: 2026-11-01}]
"""


# -- reading ----------------------------------------------------------------------------------

def test_the_shipped_directory_loads_and_every_entry_is_sourced_and_dated() -> None:
    directory = load_directory(default_services_dir(), TODAY)
    assert len(directory.services) >= 10
    for service in directory.services:
        assert service.sources and all(s.source.strip() for s in service.sources)
        # Only national or nation-wide entries are shipped: no invented local service.
        assert all(directory.places[p].kind.value in ("uk", "nation") for p in service.serves), \
            service.id
    assert stale_services(directory, TODAY) == []
    names = {s.name for s in directory.services}
    assert {"Migrant Help", "Samaritans", "Refugee Council", "Refugee Action"} <= names


def test_a_good_entry_reads_into_the_model() -> None:
    directory, problems = parse_directory([PLACES, ("services/local.yaml", GOOD_ENTRY)], TODAY)
    assert problems == []
    (service,) = directory.services
    assert (service.id, service.tags, service.serves, service.phone) == (
        "drop_in", ("housing",), ("glasgow",), "01632 960010")
    assert service.checked == date(2026, 11, 1)
    assert "010" not in str(service.interpreters)  # no YAML 1.1 surprises: 'phone' stayed text


def test_unknown_keys_tags_and_places_are_refused_with_the_line_and_a_hint() -> None:
    text = GOOD_ENTRY.replace("    phone:", "    phnoe:").replace(
        "tags: [housing]", "tags: [housng, legal advice]").replace("[glasgow]", "[glasgw]")
    found = problems_of(text)
    assert any(p.startswith("services/local.yaml:6: unknown key 'phnoe'") and
               "did you mean 'phone'?" in p for p in found), found
    assert any(p.startswith("services/local.yaml:4: unknown tag 'housng'") and
               "did you mean 'housing'?" in p for p in found), found
    assert any("unknown tag 'legal advice'" in p and "write it as 'legal_advice'" in p
               for p in found), found
    assert any(p.startswith("services/local.yaml:5: service 'drop_in' serves 'glasgw', which is "
                            "not a place") and "did you mean 'glasgow'?" in p for p in found), found


def test_every_fact_needs_a_source_and_a_real_date() -> None:
    two_sources = GOOD_ENTRY.replace(
        "    sources: [{source: a leaflet, checked: 2026-11-01}]\n",
        "    hours: every day\n    sources:\n"
        "      - {source: a leaflet, checked: 2026-11-01, facts: [name, tags, serves]}\n"
        "      - {source: a phone call, checked: 2026-02-30, facts: [phone, hour]}\n")
    found = problems_of(two_sources)
    assert any("services/local.yaml:2: service 'drop_in': no source for phone, hours" in p
               for p in found), found
    assert any("'2026-02-30' is not a day of the calendar" in p for p in found), found
    assert any("unknown fact 'hour'" in p and "did you mean 'hours'?" in p for p in found), found
    assert any("is in the future" in p for p in problems_of(
        GOOD_ENTRY.replace("2026-11-01", "2027-01-01"))), "a typing slip in the year"
    missing = problems_of(GOOD_ENTRY.replace(
        "    sources: [{source: a leaflet, checked: 2026-11-01}]\n", ""))
    assert any("services/local.yaml:2: service 'drop_in' needs 'sources:'" in p for p in missing)
    undated = problems_of(GOOD_ENTRY.replace(", checked: 2026-11-01", ""))
    assert any("a source needs 'checked:'" in p for p in undated), undated


def test_yes_no_links_duplicates_and_yaml_errors_are_explained() -> None:
    text = GOOD_ENTRY.replace("    phone: 01632 960010\n", "    web: example.org\n"
                              "    interpreters: yes\n") + GOOD_ENTRY.removeprefix("services:\n")
    found = problems_of(text)
    assert any("'web' of service 'drop_in' must be a full link" in p and "https://example.org" in p
               for p in found), found
    assert any("'interpreters' must be true or false" in p and "not yes/no" in p for p in found)
    assert any("service id 'drop_in' is also used by services/local.yaml:2" in p for p in found)
    broken = problems_of("services:\n  - id: a\n\tname: x\n")
    assert broken and broken[0].startswith("services/local.yaml:3: YAML syntax"), broken


def test_places_must_nest_and_a_typed_name_must_lead_to_one_place() -> None:
    places = ("places.yaml", "places:\n  - {id: scotland, name: Scotland, kind: nation}\n"
              "  - {id: glasgow, name: Glasgow, kind: town, in: scotlnd}\n"
              "  - {id: leith, name: Leith, kind: twon, in: scotland, spellings: [Scotland]}\n"
              "  - {id: lothian, name: Lothian, kind: region, in: leith}\n")
    _, problems = parse_directory([places], TODAY)
    found = [str(p) for p in problems]
    assert any(p.startswith("places.yaml:3: place 'glasgow' is in 'scotlnd', which is not a place")
               and "did you mean 'scotland'?" in p for p in found), found
    assert any("places.yaml:4: unknown kind of place 'twon'" in p and "did you mean 'town'?" in p
               for p in found), found
    assert any("'Scotland' names both 'scotland' and 'leith'" in p for p in found), found
    assert any("a region cannot be in a town" in p for p in found), found


def test_load_directory_refuses_the_whole_folder_on_any_problem(tmp_path: Path) -> None:
    (tmp_path / "places.yaml").write_text(PLACES[1], encoding="utf-8")
    (tmp_path / "local.yaml").write_text(GOOD_ENTRY.replace("tags:", "tagz:"), encoding="utf-8")
    with pytest.raises(DirectoryLoadError) as caught:
        load_directory(tmp_path, TODAY)
    assert any(p.line == 4 and "did you mean 'tags'?" in p.hint for p in caught.value.problems)


# -- matching ---------------------------------------------------------------------------------

def test_local_services_come_first_and_at_most_three(fixture_directory: Directory) -> None:
    found = matching_services(fixture_directory, ["legal_advice"], "glasgow")
    # Both Glasgow services, the one with interpreters first, then Scotland's; not the UK one.
    assert [s.id for s in found] == ["glasgow_legal_two", "glasgow_legal", "scotland_legal"]
    # A person who speaks Pashto: the Glasgow service that speaks it first, still local first.
    assert [s.id for s in matching_services(fixture_directory, ["legal_advice"], "glasgow", "ps")
            ][:2] == ["glasgow_legal", "glasgow_legal_two"]
    # Someone in England sees neither the Scottish nor the Glasgow services.
    assert [s.id for s in matching_services(fixture_directory, ["legal_advice"], "manchester")] == [
        "uk_legal"]
    # Housing in Manchester: the town's own service, not Glasgow's.
    assert [s.id for s in matching_services(fixture_directory, ["housing"], "manchester")] == [
        "manchester_housing"]
    assert [s.id for s in matching_services(fixture_directory, ["legal_advice"], None)] == [
        "uk_legal"]
    assert matching_services(fixture_directory, ["detention"], "glasgow") == []


def test_interpreters_or_the_person_s_language_rank_first_among_equals(
        fixture_directory: Directory) -> None:
    # Both Glasgow services are local: one has interpreters, one speaks ps and fa.
    found = matching_services(fixture_directory, ["legal_advice", "housing"], "glasgow", "ur")
    assert [s.id for s in found][:2] == ["glasgow_legal_two", "glasgow_legal"]


def test_a_typed_place_is_found_by_any_spelling_staff_added(fixture_directory: Directory) -> None:
    for typed in ("Glasgow", "  glasgow ", "ګلاسګو", "GLASGAE"):
        place = find_place(fixture_directory, typed)
        assert place is not None and place.id == "glasgow", typed
    assert find_place(fixture_directory, "north west") is not None  # by its id's words
    assert find_place(fixture_directory, "Atlantis") is None
    assert find_place(fixture_directory, "") is None


def test_stale_entries_are_those_with_a_fact_older_than_six_months(
        fixture_directory: Directory) -> None:
    assert months_before(date(2026, 8, 31), 6) == date(2026, 2, 28)
    assert months_before(date(2026, 3, 15), 6) == date(2025, 9, 15)
    stale = [(s.id, days) for s, days in stale_services(fixture_directory, TODAY)]
    assert stale == [("uk_women", 686), ("glasgow_legal_two", 276)]
    warnings = stale_warnings(fixture_directory, TODAY)
    assert len(warnings) == 2 and warnings[0].startswith("warning: ") and "local.yaml:" in warnings[0]
    assert "'uk_women' was last checked 2025-01-15 (686 days ago" in warnings[0]
    lines = age_lines(fixture_directory, TODAY)
    assert lines[0].startswith("STALE") and "uk_women" in lines[0]
    assert lines[-1].startswith("ok") and len(lines) == len(fixture_directory.services)


# -- the services step in a flow ----------------------------------------------------------------

FLOW = """spec_version: 1
id: local
title: Local
steps:
  - id: need
    ask: What do you need?
    save: need
    buttons:
      - {id: legal, label: Legal}
  - id: town
    ask: Which town?
    save: town
  - id: results
    services:
      say: These may help.
      none: Nothing yet.
      unknown_place: I do not know that place.
      need: need
      tags: {legal: [legal_advice], food: [fod]}
      place: [town, region]
"""


def test_a_services_step_is_checked_like_any_step() -> None:
    flow, problems = parse_flow(FLOW, "flows/local.yaml")
    assert [str(p) for p in problems] == [
        "flows/local.yaml:19: unknown tag 'fod'\n    hint: did you mean 'food_and_essentials'?"]
    assert flow is not None
    found = [str(p) for p in validate_flow(flow)]
    assert any("flows/local.yaml:13: step 'results': no step saves an answer called 'region'" in p
               for p in found), found
    assert any("'food' in 'tags' is not a button of step 'need'" in p for p in found), found
    assert flow.strings()["local.results.none"] == "Nothing yet."
    _, unknown = parse_flow(FLOW.replace("      need: need\n", "      need: need\n      nede: x\n"),
                            "flows/local.yaml")
    assert any("unknown key 'nede' in the services step" in str(p) and "'need'" in p.hint
               for p in unknown)


def test_the_engine_shows_cards_and_forgets_the_typed_town_with_the_flow(
        fixture_directory: Directory) -> None:
    flow, _ = parse_flow(FLOW.replace(", food: [fod]", "").replace("[town, region]", "[town]"),
                         "flows/local.yaml")
    assert flow is not None
    library = FlowLibrary({"local": flow}, first_contact="local", main_menu="local")
    session = Session(language="en", flow="local", step="town", token=2, started=True,
                      answers={"need": "legal"})
    turn = resume(library, session, Inbound.from_text("c", "Glasgae"), directory=fixture_directory)
    cards = [e for e in turn.events if isinstance(e, ServiceCard)]
    assert [c.service.id for c in cards] == ["glasgow_legal_two", "glasgow_legal", "scotland_legal"]
    assert cards[0].areas == ("Glasgow",)
    assert turn.session.flow is None and turn.session.answers == {}  # the flow ended
    unknown = resume(library, session, Inbound.from_text("c", "Atlantis"), directory=fixture_directory)
    keys = [getattr(e, "key", "card") for e in unknown.events]
    assert keys[:2] == ["local.results.unknown_place", "local.results"]


# -- the find_help flow through the dispatcher -------------------------------------------------

@dataclass
class Bot:
    store: SqliteStore
    dispatcher: Dispatcher
    transport: MemoryTransport
    db: Path

    async def send(self, chat: str, text: str) -> list[Outbound]:
        await self.dispatcher.handle(Inbound.from_text(chat, text))
        return self.transport.take()

    async def tap(self, chat: str, callback: str) -> list[Outbound]:
        await self.dispatcher.handle(Inbound(chat, InboundKind.BUTTON, button=callback))
        return self.transport.take()


async def make_bot(tmp_path: Path, library: FlowLibrary, directory: Directory,
                   language: str | None) -> Bot:
    store = await SqliteStore.open(tmp_path / "bot.sqlite3")
    localizer = shipped_localizer(library)
    transport = MemoryTransport()
    desk = HandoverDesk(store, localizer, None, DeskSettings(hours="00:00-00:00"),
                        directory=lambda: directory)
    dispatcher = Dispatcher(store, lambda: library, localizer, transport, default_language=language,
                            desk=desk, directory=lambda: directory)
    return Bot(store, dispatcher, transport, tmp_path / "bot.sqlite3")


@pytest.fixture(params=["en", "ps"])
async def bot(request: pytest.FixtureRequest, tmp_path: Path, library: FlowLibrary,
              fixture_directory: Directory) -> AsyncIterator[Bot]:
    made = await make_bot(tmp_path, library, fixture_directory, request.param)
    yield made
    await made.store.close()


def button(replies: list[Outbound], index: int) -> str:
    question = [m for m in replies if m.buttons][-1]
    return question.buttons[index - 1].callback


async def walk_to_the_town_question(bot: Bot, chat: str) -> list[Outbound]:
    replies = await bot.send(chat, "find help")
    replies = await bot.tap(chat, button(replies, 1))  # legal advice
    replies = await bot.tap(chat, button(replies, 2))  # Scotland
    return await bot.tap(chat, button(replies, 5))  # somewhere else: type the town


async def test_find_help_shows_local_services_in_the_person_s_language(bot: Bot) -> None:
    chat = "test:person"
    asked = await walk_to_the_town_question(bot, chat)
    assert [m.key for m in asked] == ["find_help.town"]
    replies = await bot.send(chat, "ګلاسګو")  # Glasgow in Pashto, in English or Pashto alike
    cards = {m.meta["service"]: m for m in replies if m.key == SERVICE_CARD_KEY}
    lang = bot.dispatcher.default_language
    # Local first; among the two Glasgow ones, the one that speaks the person's language (ps)
    # or, for English, the one with interpreters.
    assert list(cards) == (["glasgow_legal", "glasgow_legal_two", "scotland_legal"] if lang == "ps"
                           else ["glasgow_legal_two", "glasgow_legal", "scotland_legal"])
    assert {m.language for m in replies} == {lang}  # every message wholly in one language
    drop_in, centre = cards["glasgow_legal"].text, cards["glasgow_legal_two"].text
    if lang == "ps":
        assert all(m.rtl for m in cards.values())
        # The service's own name and contacts stay as written, isolated in right-to-left text.
        assert drop_in.startswith(f"{FSI}Example Glasgow Law Drop-in{PDI}\n")
        assert f"{FSI}01632 960002{PDI}" in centre
        assert "په پښتو خبرې کوي" in drop_in  # speaks Pashto (the entry lists ps)
        assert "ژباړونکي لري" in centre  # has interpreters
        assert "Speaks" not in drop_in and "Phone" not in centre
    else:
        assert drop_in.splitlines()[0] == "Example Glasgow Law Drop-in"
        assert "Address: 1 Example Street, Glasgow" in drop_in
        assert "Open: Mon-Fri 10:00-16:00" in drop_in and "No referral needed" in drop_in
        assert "Speaks" not in drop_in  # the person's language (English) is not one it lists
        assert "Phone: 01632 960002" in centre and "Has interpreters" in centre
        assert "Needs a referral from another service first" in centre
        assert "Serves: Glasgow" in centre


def _dump(db: Path) -> str:
    with sqlite3.connect(db) as conn:
        return "\n".join(conn.iterdump())


async def test_a_typed_place_is_not_kept_after_the_flow(bot: Bot) -> None:
    chat = "test:private"
    for typed in ("Glasgae", "Quetzalborough"):  # a place the directory knows, and one it does not
        await walk_to_the_town_question(bot, chat)
        await bot.dispatcher.handle(Inbound.from_text(chat, typed))
        # While the flow is still going (the "another kind of help?" question), it may be there...
        session = await bot.store.load_session(chat)
        assert session is not None and session.answers.get("town") == typed
        more = bot.transport.take()
        assert any(m.key == "find_help.more" for m in more)
        # ...and once the flow ends, it is nowhere in the database.
        await bot.tap(chat, button(more, 2))  # main menu
        session = await bot.store.load_session(chat)
        assert session is not None and session.flow == "main_menu" and "town" not in session.answers
        assert typed not in _dump(bot.db)


# -- /services at the volunteer desk ---------------------------------------------------------------

VOLUNTEER = Volunteer("test:vol", "Vee", ("en", "ps"), ("*",))


async def test_a_volunteer_lists_services_and_sends_one_to_the_person(
        tmp_path: Path, library: FlowLibrary, fixture_directory: Directory) -> None:
    bot = await make_bot(tmp_path, library, fixture_directory, "ps")
    try:
        await bot.store.add_volunteer(VOLUNTEER)
        me, person = VOLUNTEER.chat_key, "test:person"
        await bot.send(me, "/available")
        tags = await bot.send(me, "/services")
        assert "legal_advice - legal advice" in tags[0].text and "lgbtq - LGBTQ+" in tags[0].text
        unknown = await bot.send(me, "/services lawyers")
        assert unknown[0].text.startswith("No tag called 'lawyers'.") and "housing" in unknown[0].text
        # Not holding a chat: the list, but nothing to send it to.
        listing = await bot.send(me, "/services legal Glasgow")
        assert listing[0].buttons == () and "Take a chat" in listing[0].text
        # The person asks for a volunteer; the volunteer takes the chat.
        replies = await bot.send(person, "/human")
        await bot.tap(person, button(replies, 4))  # something else
        took = await bot.send(me, "/take")
        assert any(m.key == "handover.joined" for m in took)
        listing = await bot.send(me, "/services legal advice ګلاسګو")
        text = listing[0].text

        assert text.startswith("Legal advice for Glasgow, most local first:")
        lines = [line for line in text.splitlines() if line[:2] in ("1.", "2.", "3.", "4.")]
        assert [line.split(" · ")[0] for line in lines] == [
            "1. Example Glasgow Law Drop-in", "2. Example Glasgow Advice Centre",
            "3. Example Scotland Legal", "4. Example UK Legal Line"]
        assert "speaks ps, fa" in lines[0] and "checked 2026-03-01" in lines[1]
        assert [b.label for b in listing[0].buttons] == ["Send 1", "Send 2", "Send 3", "Send 4"]
        sent = await bot.tap(me, listing[0].buttons[0].callback)
        card = next(m for m in sent if m.chat_key == person)
        assert card.key == SERVICE_CARD_KEY and card.language == "ps" and card.rtl
        assert "په پښتو خبرې کوي" in card.text and "Example Glasgow Law Drop" in card.text
        assert card.meta["from"] == me and card.meta["handover"]  # a failed delivery is reported
        assert any(m.chat_key == me and "sent Example Glasgow Law Drop-in" in m.text for m in sent)
        nowhere = await bot.send(me, "/services housing Atlantis")
        assert nowhere[0].text.startswith("No place called 'Atlantis'")
        chat_id = listing[0].buttons[0].callback.split(".")[1]
        gone = await bot.tap(me, f"{SEND_SERVICE_CALLBACK_PREFIX}{chat_id}.no_such_service")
        assert "no longer in the directory" in gone[0].text
        # A button from a list made for another chat sends nothing to this one.
        other = await bot.tap(me, f"{SEND_SERVICE_CALLBACK_PREFIX}999.glasgow_legal")
        assert [m.chat_key for m in other] == [me] and "Nothing was sent" in other[0].text
        assert "/services TAG [PLACE]" in (await bot.send(me, "/help"))[0].text
    finally:
        await bot.store.close()


def test_validate_checks_the_flows_place_buttons_against_the_directory(
        library: FlowLibrary, fixture_directory: Directory) -> None:
    shipped = load_directory(default_services_dir(), TODAY)
    assert flow_place_problems(library.flows, shipped) == []
    found = [str(p) for p in flow_place_problems(library.flows, fixture_directory)]
    assert any("button 'london' of step 'region_england' is read as a place by step 'results'" in p
               for p in found), found
    assert not any("type_town" in p or "'skip'" in p for p in found)  # they lead elsewhere


def test_a_place_typed_at_a_place_question_is_saved_as_its_id_not_as_typed(
        library: FlowLibrary, fixture_directory: Directory) -> None:
    session = Session(language="en", flow="find_help", step="region_england", token=5,
                      started=True, answers={"need": "legal", "nation": "england"})
    turn = resume(library, session, Inbound.from_text("c", "Glasgae"), directory=fixture_directory)
    assert turn.session.step == "more" and turn.session.answers["region"] == "glasgow"
    assert "Glasgae" not in turn.session.to_json()
    assert next(e.service.id for e in turn.events if isinstance(e, ServiceCard)) == "glasgow_legal_two"
    # Not a place: not understood, and nothing saved.
    again = resume(library, session, Inbound.from_text("c", "Atlantis"), directory=fixture_directory)
    assert again.session.answers == session.answers
    assert next(getattr(e, "key", "") for e in again.events) == "system.not_understood"


def test_an_edit_is_taken_once_settled_and_a_broken_one_leaves_the_last_good_directory(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = tmp_path / "services"
    folder.mkdir()
    for file in FIXTURE_DIR.iterdir():
        (folder / file.name).write_text(file.read_text(encoding="utf-8"), encoding="utf-8")
    snapshot = tmp_path / "data" / "services-last-good"
    live = LiveDirectory([folder], snapshot_dir=snapshot)
    assert len(live.current.services) == 6
    assert sorted(p.name for p in snapshot.iterdir()) == ["local.yaml", "places.yaml"]
    local = folder / "local.yaml"
    local.write_text(local.read_text(encoding="utf-8") + GOOD_ENTRY.removeprefix("services:\n")
                     .replace("[glasgow]", "[manchester]"), encoding="utf-8")
    assert live.poll() is None  # seen once: it may still be being written
    assert live.poll() == []
    assert live.current.service("drop_in") is not None
    # A broken edit: refused with its line, and the last good directory keeps serving.
    local.write_text(local.read_text(encoding="utf-8").replace("    phone: 01632 960010\n",
                                                               "    phnoe: 01632 960010\n"),
                     encoding="utf-8")
    with caplog.at_level("ERROR"):
        live.poll()
        problems = live.poll()
    assert problems and any(p.line == 55 and "unknown key 'phnoe'" in p.message for p in problems)
    assert "directory of services refused, still serving the last good copy" in caplog.text
    assert live.current.service("drop_in") is not None
    # A restart on the broken file starts on the last good copy, and says why.
    restarted = LiveDirectory([folder], snapshot_dir=snapshot)
    assert restarted.current.service("drop_in") is not None and restarted.last_problems
    with pytest.raises(DirectoryLoadError):
        LiveDirectory([folder], snapshot_dir=tmp_path / "no-copy-yet")
