"""Languages: normalising typed text, guessing the script, catalogs, and rendering a whole
message in one language (catalog, then real offline machine translation, then English)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.engine.events import Choice, Param, Say
from bot.flowspec.model import PLACEHOLDER
from bot.i18n.catalog import CatalogSet, Entry, Status, load_catalogs
from bot.i18n.localizer import Localizer
from bot.text.bidi import FSI, PDI, isolate_ltr_spans
from bot.text.detect import guess_languages
from bot.text.normalize import normalize, parse_number
from bot.translation.argos_models import install_models
from bot.translation.translator import OfflineTranslator
from tests.support.offline import NetworkGuard
from tests.support.tiny_argos import build_tiny_model

CHAT = "test:1"


@pytest.mark.parametrize(("typed", "folded"), [
    ("كيف", "کیف"),  # Arabic kaf/yeh typed on an Arabic keyboard
    ("می\u200cخواهم", "می خواهم"),  # ZWNJ
    ("  Hello,   WORLD! ", "hello world"),
    ("هـــلو", "هلو"),  # tatweel
    ("हिन्दी में", "हिन्दी में"),  # Devanagari combining marks are kept
])
def test_normalize(typed: str, folded: str) -> None:
    assert normalize(typed) == folded


@pytest.mark.parametrize(("typed", "number"), [("2", 2), ("۲", 2), ("٢", 2), ("२", 2), (" 3. ", 3),
                                               ("two", None), ("1234", None)])
def test_parse_number(typed: str, number: int | None) -> None:
    assert parse_number(typed) == number


@pytest.mark.parametrize(("text", "guess"), [
    ("नमस्ते, मुझे मदद चाहिए", ["hi"]),
    ("زه مرسته غواړم", ["ps"]),
    ("مجھے مدد چاہیے", ["ur"]),
    ("میری پناہ کی درخواست مسترد ہو گئی", ["ur"]),  # ہ (heh goal) is Urdu's everyday h
    ("کیس مسترد ہوا", ["ur"]),
    ("رپورٹ", ["ur"]),  # ٹ
    ("ډېر ښه", ["ps"]),
    ("زما ټیلیفون", ["ps"]),  # Pashto ټ, not Urdu ٹ
    ("درخواست پناهندگی من رد شد", ["fa", "prs", "ps", "ur"]),
    ("سلام", ["fa", "prs", "ps", "ur"]),
    ("hello", ["en"]),
    ("1234 !!", []),
])
def test_guess_languages(text: str, guess: list[str]) -> None:
    assert guess_languages(text) == guess


def test_ltr_spans_are_isolated_in_rtl_text() -> None:
    text = "زنګ ووهئ 0808 8010 503 یا https://www.gov.uk/check-legal-aid. وګورئ /forget"
    out = isolate_ltr_spans(text)
    assert f"{FSI}0808 8010 503{PDI}" in out
    assert f"{FSI}https://www.gov.uk/check-legal-aid{PDI}." in out
    assert f"{FSI}/forget{PDI}" in out
    assert isolate_ltr_spans(out) == out
    hours = isolate_ltr_spans("داوطلبان در ساعت‌های 09:00-21:00 اینجا هستند")
    assert f"{FSI}09:00-21:00{PDI}" in hours


def entry(key: str, lang: str, text: str, source: str, status: Status = Status.NEEDS_REVIEW) -> Entry:
    return Entry(key, lang, text, source, status, f"locales/{lang}/x.yaml", 1)


QUESTION = Say("f.q", "Do you need help?", {},
               (Choice("f.q.yes", "Yes", "1.0"), Choice("f.q.no", "No", "1.1")), token=1)


async def test_whole_message_in_one_language_from_the_catalog() -> None:
    catalog = CatalogSet([entry("f.q", "fa", "آیا کمک لازم دارید؟", "Do you need help?"),
                          entry("f.q.yes", "fa", "بله", "Yes"),
                          entry("f.q.no", "fa", "نه", "No")])
    out = await Localizer(catalog).render(QUESTION, CHAT, "fa")
    assert (out.text, [b.label for b in out.buttons], out.language, out.rtl) == (
        "آیا کمک لازم دارید؟", ["بله", "نه"], "fa", True)
    assert [b.callback for b in out.buttons] == ["1.0", "1.1"]


async def test_one_missing_label_sends_the_whole_message_in_english_with_a_note() -> None:
    catalog = CatalogSet([entry("f.q", "ps", "ایا مرسته غواړئ؟", "Do you need help?"),
                          entry("f.q.yes", "ps", "هو", "Yes"),
                          entry("system.untranslated", "ps", "(دا پیغام لا ژباړل شوی نه دی.)",
                                "(This message is not yet available in your language.)")])
    out = await Localizer(catalog).render(QUESTION, CHAT, "ps")
    assert out.language == "en" and not out.rtl
    assert [b.label for b in out.buttons] == ["Yes", "No"]  # never Pashto text with English buttons
    assert out.text == "Do you need help?\n\n(دا پیغام لا ژباړل شوی نه دی.)"


async def test_stale_translation_is_not_used() -> None:
    catalog = CatalogSet([entry("f.q", "fa", "قدیمی", "Did you need help?"),
                          entry("f.q.yes", "fa", "بله", "Yes"), entry("f.q.no", "fa", "نه", "No")])
    out = await Localizer(catalog).render(QUESTION, CHAT, "fa")
    assert out.language == "en"


async def test_placeholders_are_filled_with_translated_labels() -> None:
    say = Say("f.s", "You chose {pick}.", {"pick": Param("Yes", "f.q.yes")})
    catalog = CatalogSet([entry("f.s", "ur", "آپ نے {pick} چنا۔", "You chose {pick}."),
                          entry("f.q.yes", "ur", "ہاں", "Yes")])
    out = await Localizer(catalog).render(say, CHAT, "ur")
    assert out.text == "آپ نے ہاں چنا۔"


def test_catalog_files_load_with_problems_reported(tmp_path: Path) -> None:
    folder = tmp_path / "locales" / "fa"
    folder.mkdir(parents=True)
    (folder / "f.yaml").write_text(
        "f.q:\n  status: needs_review\n  source: Do you need help?\n  text: آیا کمک لازم دارید؟\n"
        "f.q.yes:\n  status: maybe\n  source: 'Yes'\n  text: بله\n"
        "f.q.no:\n  status: machine\n  text: نه\n", encoding="utf-8")
    catalogs, problems = load_catalogs(tmp_path / "locales", {"f.q": "Do you need help?"})
    assert catalogs.lookup("f.q", "fa", "Do you need help?") == "آیا کمک لازم دارید؟"
    assert [(p.line, p.message) for p in problems] == [
        (6, "unknown status 'maybe'"), (9, "entry 'f.q.no' has no English source")]
    assert catalogs.variants("f.q") == [normalize("آیا کمک لازم دارید؟")]  # ready to compare


@pytest.fixture
def fa_translator(tmp_path: Path, no_network_attempts: NetworkGuard) -> Iterator[OfflineTranslator]:
    model = build_tiny_model(tmp_path / "models", "en", "fa",
                             {"Do": "آیا", "you": "شما", "need": "نیاز", "help": "کمک", "Yes": "بله",
                              "No": "نه", "Call": "تماس", "now": "اکنون"})
    packages = tmp_path / "packages"
    install_models([model], packages)
    translator = OfflineTranslator(packages, timeout=10)
    yield translator
    translator.close()


async def test_live_machine_translation_fills_what_the_catalog_lacks(
        fa_translator: OfflineTranslator) -> None:
    catalog = CatalogSet([entry("f.q.yes", "fa", "آری", "Yes"),
                          entry("system.machine_translated", "fa", "(ترجمه ماشینی)",
                                "(Translated by a computer. It may have mistakes.)")])
    out = await Localizer(catalog, fa_translator).render(QUESTION, CHAT, "fa")
    assert out.language == "fa" and out.meta == {"machine": "1"}
    assert [b.label for b in out.buttons] == ["آری", "نه"]  # catalog first, machine for the rest
    assert out.text.startswith("آیا شما نیاز کمک")
    assert out.text.endswith("(ترجمه ماشینی)")


async def test_machine_translation_keeps_numbers_links_and_isolates_them(
        fa_translator: OfflineTranslator) -> None:
    say = Say("f.call", "Call 0808 8010 503 now: https://www.nhs.uk/111")
    out = await Localizer(CatalogSet(), fa_translator).render(say, CHAT, "fa")
    assert out.text.startswith(f"تماس {FSI}0808 8010 503{PDI} اکنون")
    assert f"{FSI}https://www.nhs.uk/111{PDI}" in out.text


async def test_dari_drafts_through_the_persian_model_and_pashto_falls_back(
        fa_translator: OfflineTranslator) -> None:
    localizer = Localizer(CatalogSet(), fa_translator)
    dari = await localizer.render(QUESTION, CHAT, "prs")
    assert dari.language == "prs" and dari.meta == {"machine": "1"}
    assert [b.label for b in dari.buttons] == ["بله", "نه"]
    pashto = await localizer.render(QUESTION, CHAT, "ps")  # no model, no catalog: English
    assert pashto.language == "en" and pashto.text == "Do you need help?"


def test_each_catalog_is_guessed_as_its_own_language_or_left_open() -> None:
    """The letters of every shipped translation point to its language, never another one
    (short texts without telling letters are left to the person to confirm)."""
    catalogs, _ = load_catalogs(Path(__file__).resolve().parents[1] / "locales")
    open_guess = ["fa", "prs", "ps", "ur"]
    family = {"ps": ["ps"], "prs": ["fa"], "fa": ["fa"], "ur": ["ur"], "hi": ["hi"]}
    for entry in catalogs.entries.values():
        if entry.key.endswith((".keywords", ".safeguarding", ".distress")):
            continue  # word lists mix romanised words in
        # {placeholder} names are the code's, not words of the language.
        guess = guess_languages(PLACEHOLDER.sub("", entry.text))
        assert guess == open_guess or guess[:1] == family[entry.language][:1], (entry.key, guess)


def test_a_stale_word_list_still_works_but_a_stale_message_does_not() -> None:
    sources = {"safety.safeguarding": "kill myself, want to die", "safety.heard": "Call 999."}
    entries = [Entry("safety.safeguarding", "fa", "خودم را بکشم", "kill myself", Status.NEEDS_REVIEW,
                     "fa.yaml", 1),
               Entry("safety.heard", "fa", "با 999 تماس بگیرید.", "Call 999 now.", Status.NEEDS_REVIEW,
                     "fa.yaml", 5)]
    catalogs = CatalogSet(entries, sources)
    assert catalogs.safeguarding() == {"خودم را بکشم": "safety"}
    assert catalogs.lookup("safety.heard", "fa", "Call 999.") is None
