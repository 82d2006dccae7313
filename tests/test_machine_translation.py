"""Offline machine translation through the REAL CTranslate2 + SentencePiece, on .argosmodel files.

No mocks: every translation runs a tiny hand-weighted model built by
tests/support/tiny_argos.py (a real .argosmodel package) and installed into a temporary
models directory. The network is blocked for the whole module (Python-level sockets and
name resolution; loopback is allowed) and every test asserts that nothing even tried to
reach it; $XDG_*_HOME and BOT_MODELS_DIR point at temporary folders meanwhile. NLLB-200
models are tested in tests/test_nllb.py.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.errors import TranslationError
from bot.translation.argos_models import InstalledModel, install_models, list_models
from bot.translation.argos_package import ArgosPackage
from bot.translation.base import MachineTranslator, Quality
from bot.translation.masking import mask_protected, unmask_protected
from bot.translation.runner import Runner
from bot.translation.sentences import OfflineSentencizer
from bot.translation.translator import INSTALL_HINT, OfflineTranslator
from tests.support.offline import NetworkGuard
from tests.support.tiny_argos import build_tiny_model

REPO = Path(__file__).resolve().parents[1]


# The network guard and temporary argos home live in tests/support/offline.py; every test
# here runs with them and fails if anything tried to reach the network.
@pytest.fixture(autouse=True)
def _offline(no_network_attempts: NetworkGuard) -> NetworkGuard:
    return no_network_attempts


# --------------------------------------------------------------------------- models

FA_EN = {"سلام": "hello", "دوست": "friend"}
EN_UR = {"hello": "ہیلو", "friend": "دوست"}


@pytest.fixture(scope="module")
def archives(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("archives")
    return {
        "en_fa": build_tiny_model(out, "en", "fa"),
        "fa_en": build_tiny_model(out, "fa", "en", FA_EN),
        "en_ur": build_tiny_model(out, "en", "ur", EN_UR),
    }


@pytest.fixture
def packages_dir(tmp_path: Path, archives: dict[str, Path]) -> Path:
    target = tmp_path / "packages"
    install_models([archives["en_fa"]], target)
    return target


@pytest.fixture
def translator(packages_dir: Path) -> Iterator[OfflineTranslator]:
    t = OfflineTranslator(packages_dir, timeout=10)
    yield t
    t.close()


# --------------------------------------------------------------------------- the model


def test_tiny_model_is_a_real_argos_package(tmp_path: Path) -> None:
    start = time.perf_counter()
    archive = build_tiny_model(tmp_path, "en", "fa")
    elapsed = time.perf_counter() - start
    assert elapsed < 2.0, f"building the tiny model took {elapsed:.2f} s"
    with zipfile.ZipFile(archive) as zf:
        names = set(zf.namelist())
        folder = archive.stem
        assert {f"{folder}/metadata.json", f"{folder}/sentencepiece.model",
                f"{folder}/model/model.bin", f"{folder}/model/config.json"} <= names
        assert {n.split("/")[0] for n in names} == {folder}
        metadata = json.loads(zf.read(f"{folder}/metadata.json"))
    assert (metadata["from_code"], metadata["to_code"]) == ("en", "fa")


# --------------------------------------------------------------------------- translating


async def test_translates_through_real_ctranslate2(translator: OfflineTranslator) -> None:
    import ctranslate2

    assert isinstance(translator, MachineTranslator)
    assert await translator.translate("hello friend", "en", "fa") == "سلام دوست"
    assert await translator.translate("I need a lawyer", "en", "fa") == "I need a وکیل"
    # The real stack ran: the package's CTranslate2 Translator and the offline splitter.
    assert translator.loaded() == ["translate-en_fa-1.0"]
    step = translator._runner("translate-en_fa-1.0")
    assert isinstance(step, ArgosPackage) and isinstance(step, Runner)
    assert isinstance(step.translator, ctranslate2.Translator)
    assert isinstance(translator.sentencizer, OfflineSentencizer)


async def test_placeholders_urls_phones_and_emails_survive(translator: OfflineTranslator) -> None:
    text = ("hello {name}, call 0808 800 0630 or +44 20 7946 0958, see "
            "https://www.gov.uk/asylum_support?a=1&b_c=2. e-mail help_desk@refugee-council.org.uk "
            "or ring 999! gov.uk/legal_aid [3]")
    expected = ("سلام {name}, call 0808 800 0630 or +44 20 7946 0958, see "
                "https://www.gov.uk/asylum_support?a=1&b_c=2. e-mail help_desk@refugee-council.org.uk "
                "or ring 999! gov.uk/legal_aid [3]")
    assert await translator.translate(text, "en", "fa") == expected


def test_the_decoder_turns_underscores_into_spaces(packages_dir: Path) -> None:
    """Why masking is needed: the decoder, as argostranslate's, replaces '_' by ' '."""
    pkg = ArgosPackage(list_models(packages_dir)[0].path)
    assert pkg.translate_sentences(["{first_name} hello"]) == ["{first name} سلام"]


async def test_sentences_paragraphs_and_outer_whitespace(translator: OfflineTranslator) -> None:
    text = "  hello friend. help!\n\nlawyer?\n"
    assert await translator.translate(text, "en", "fa") == "  سلام دوست. کمک!\n\nوکیل?\n"
    assert await translator.translate("   ", "en", "fa") == "   "


async def test_long_sentence_is_not_truncated(translator: OfflineTranslator) -> None:
    # 100 words = 400 tokens for the tiny model: CTranslate2 stops at 256 decoding steps,
    # so without the splitter's length cut the end of the message would be lost silently.
    text = " ".join(["word"] * 100)
    assert await translator.translate(text, "en", "fa") == text


async def test_cache_hit_and_counters(translator: OfflineTranslator) -> None:
    first = await translator.translate_detailed("hello friend", "en", "fa", cacheable=True)
    second = await translator.translate_detailed("hello friend", "en", "fa", cacheable=True)
    assert (first.text, first.cached) == ("سلام دوست", False)
    assert (second.text, second.cached) == ("سلام دوست", True)
    stats = translator.cache_stats()
    assert (stats.hits, stats.misses, stats.size) == (1, 1, 1)
    translator.clear_cache()
    assert translator.cache_stats().size == 0


async def test_cache_is_lru(packages_dir: Path) -> None:
    t = OfflineTranslator(packages_dir, cache_size=2)
    try:
        for text in ("hello", "friend", "hello", "help"):  # "friend" is least recently used
            await t.translate(text, "en", "fa", cacheable=True)
        assert (await t.translate_detailed("hello", "en", "fa", cacheable=True)).cached
        assert not (await t.translate_detailed("friend", "en", "fa", cacheable=True)).cached
        assert t.cache_stats().size == 2
    finally:
        t.close()


async def test_missing_pair_names_the_pair_and_how_to_install(
    translator: OfflineTranslator, packages_dir: Path
) -> None:
    assert translator.supports("en", "fa")
    assert not translator.supports("en", "ur")
    with pytest.raises(TranslationError) as info:
        await translator.translate("hello", "en", "ur")
    message = str(info.value)
    assert "en -> ur" in message and "no installed model has Urdu" in message
    assert INSTALL_HINT in message
    assert str(packages_dir) in message
    with pytest.raises(TranslationError, match="unknown language code 'de'"):
        await translator.translate("hello", "en", "de")
    assert not translator.supports("en", "de")


async def test_pashto_is_unsupported_without_a_model_that_has_it(translator: OfflineTranslator) -> None:
    assert not translator.supports("en", "ps")
    assert not translator.supports("ps", "en")
    assert all("ps" not in pair for pair in translator.available_pairs())
    with pytest.raises(TranslationError, match="Pashto"):
        await translator.translate("hello", "en", "ps")


async def test_dari_is_a_draft_via_the_persian_model(
    translator: OfflineTranslator, packages_dir: Path, archives: dict[str, Path]
) -> None:
    result = await translator.translate_detailed("hello friend", "en", "prs")
    assert result.text == "سلام دوست"
    assert result.via_model == "fa"
    assert result.quality is Quality.DRAFT and result.is_draft
    direct = await translator.translate_detailed("hello friend", "en", "fa")
    assert direct.quality is Quality.MACHINE and direct.via_model is None
    # Dari and Persian share one model: there is no machine translation between them.
    assert not translator.supports("prs", "fa")
    with pytest.raises(TranslationError, match="both served by the 'fa' model"):
        await translator.translate("سلام", "prs", "fa")
    assert translator.supports("prs", "prs")
    assert await translator.translate("سلام", "prs", "prs") == "سلام"

    assert not translator.supports("prs", "en")
    install_models([archives["fa_en"]], packages_dir)
    translator.reload()
    back = await translator.translate_detailed("سلام دوست", "prs", "en")
    assert (back.text, back.via_model) == ("hello friend", "fa")


async def test_pivots_through_english(tmp_path: Path, archives: dict[str, Path]) -> None:
    packages = tmp_path / "pivot"
    install_models([archives["fa_en"], archives["en_ur"]], packages)
    t = OfflineTranslator(packages)
    try:
        assert t.available_pairs() == {
            ("fa", "en"), ("prs", "en"), ("en", "ur"), ("fa", "ur"), ("prs", "ur"),
        }
        assert await t.translate("سلام دوست", "fa", "ur") == "ہیلو دوست"
        assert t.describe("fa", "ur") == \
            "translate-fa_en-1.0 (fa->en) then translate-en_ur-1.0 (en->ur)"
        assert t.loaded() == ["translate-en_ur-1.0", "translate-fa_en-1.0"]
    finally:
        t.close()


async def test_each_translator_uses_its_own_directory(
    tmp_path: Path, archives: dict[str, Path]
) -> None:
    """argostranslate's global cache was keyed 'en-fa' only; two directories must not share models."""
    other = build_tiny_model(tmp_path, "en", "fa", {"hello": "درود"})
    first, second = OfflineTranslator(tmp_path / "a"), OfflineTranslator(tmp_path / "b")
    install_models([archives["en_fa"]], tmp_path / "a")
    install_models([other], tmp_path / "b")
    try:
        assert await first.translate("hello", "en", "fa") == "سلام"
        assert await second.translate("hello", "en", "fa") == "درود"
    finally:
        first.close()
        second.close()


async def test_timeout_raises_translation_error_and_worker_recovers(packages_dir: Path) -> None:
    t = OfflineTranslator(packages_dir, timeout=0.2)
    release = threading.Event()
    try:
        # Occupy the single worker thread (white-box: the executor is private).
        t._executor.submit(release.wait, 10)
        with pytest.raises(TranslationError, match=r"longer than 0\.2 s"):
            await t.translate("hello", "en", "fa")
        release.set()
        assert await t.translate("hello", "en", "fa") == "سلام"
    finally:
        release.set()
        t.close()


async def test_translation_finishing_after_timeout_still_fills_cache(
    packages_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    t = OfflineTranslator(packages_dir, timeout=0.2)
    started, release = threading.Event(), threading.Event()
    load = t._runner

    def slow_load(name: str) -> Runner:
        started.set()
        release.wait(10)
        return load(name)

    # White-box: hold the job in the worker before the model loads, so it has STARTED
    # (cannot be cancelled) when the caller gives up.
    monkeypatch.setattr(t, "_runner", slow_load)
    try:
        with pytest.raises(TranslationError, match="longer than"):
            await t.translate("hello friend", "en", "fa", cacheable=True)
        assert started.is_set()
        release.set()
        await asyncio.wrap_future(t._executor.submit(lambda: None))  # let the job finish
        late = await t.translate_detailed("hello friend", "en", "fa", cacheable=True)
        assert (late.text, late.cached) == ("سلام دوست", True)
    finally:
        release.set()
        t.close()


async def test_closed_translator_refuses(packages_dir: Path) -> None:
    t = OfflineTranslator(packages_dir)
    t.close()
    with pytest.raises(TranslationError, match="closed"):
        await t.translate("hello", "en", "fa")


async def test_warm_up_loads_models_in_the_worker(translator: OfflineTranslator) -> None:
    await translator.warm_up()
    assert translator.loaded() == ["translate-en_fa-1.0"]
    assert await translator.translate("help", "en", "fa") == "کمک"


def test_nothing_loads_at_import_or_construction(tmp_path: Path, packages_dir: Path) -> None:
    code = (
        "import asyncio, sys\n"
        "from bot.translation.translator import OfflineTranslator\n"
        f"t = OfflineTranslator({str(packages_dir)!r})\n"
        "assert t.supports('en', 'fa') and not t.supports('en', 'ur')\n"
        "def loaded(*names): return sorted({m.split('.')[0] for m in sys.modules} & set(names))\n"
        "assert not loaded('ctranslate2', 'sentencepiece'), loaded('ctranslate2', 'sentencepiece')\n"
        "assert asyncio.run(t.translate('hello', 'en', 'fa')) == 'سلام'\n"
        "assert loaded('ctranslate2', 'sentencepiece') == ['ctranslate2', 'sentencepiece']\n"
        "# translating needs neither argostranslate nor its network sentence splitter\n"
        "assert not loaded('argostranslate', 'minisbd', 'onnxruntime'), loaded('argostranslate')\n"
        "t.close()\n"
    )
    env = {**os.environ, "HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path),
           "XDG_CONFIG_HOME": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr


def test_default_models_dir_comes_from_env(offline_argos: NetworkGuard,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    t = OfflineTranslator()
    try:
        assert t.models_dir == Path(os.environ["BOT_MODELS_DIR"])
        assert t.available_pairs() == set()
    finally:
        t.close()
    monkeypatch.delenv("BOT_MODELS_DIR")  # the variable's older name is still honoured
    assert OfflineTranslator().models_dir == Path(os.environ["ARGOS_PACKAGES_DIR"])


# --------------------------------------------------------------------------- masking


@pytest.mark.parametrize(
    ("text", "masked", "spans"),
    [
        ("Hi {name}!", "Hi [0]!", ["{name}"]),
        ("See https://x.org/a_b.", "See [0].", ["https://x.org/a_b"]),
        ("Mail a.b@c.org now", "Mail [0] now", ["a.b@c.org"]),
        ("Ring 999 or 0808 800 0630.", "Ring [0] or [1].", ["999", "0808 800 0630"]),
        ("Appeal within 14 days", "Appeal within 14 days", []),
        ("Literal [2] stays", "Literal [0] stays", ["[2]"]),
        ("تماس ۰۸۰۸ ۸۰۰", "تماس [0]", ["۰۸۰۸ ۸۰۰"]),
        ("Visit gov.uk/asylum-support, today", "Visit [0], today", ["gov.uk/asylum-support"]),
    ],
)
def test_mask_protected(text: str, masked: str, spans: list[str]) -> None:
    assert mask_protected(text) == (masked, spans)
    assert unmask_protected(masked, spans) == text


def test_unmask_tolerates_spacing_and_localised_digits() -> None:
    assert unmask_protected("سلام [ ۰ ] و [١]", ["{name}", "999"]) == "سلام {name} و 999"


def test_unmask_refuses_a_lost_or_invented_mask() -> None:
    with pytest.raises(TranslationError, match="dropped"):
        unmask_protected("سلام", ["0808 800 0630"])
    with pytest.raises(TranslationError, match="unknown mask"):
        unmask_protected("[0] [5]", ["x"])


def test_offline_sentencizer() -> None:
    s = OfflineSentencizer(max_chars=20)
    assert s.split_sentences("One. Two? سه؟ چار۔ पाँच। ") == ["One.", "Two?", "سه؟", "چار۔", "पाँच।"]
    assert s.split_sentences("a.b 1.5 e-mail") == ["a.b 1.5 e-mail"]
    assert s.split_sentences("aaaa bbbb cccc dddd eeee ffff") == ["aaaa bbbb cccc dddd", "eeee ffff"]
    assert s.split_sentences("") == []


# --------------------------------------------------------------------------- models on disk


def test_install_and_list_models(tmp_path: Path, archives: dict[str, Path]) -> None:
    packages = tmp_path / "packages"
    installed = install_models([archives["en_fa"], archives["fa_en"]], packages)
    assert [m.pair for m in installed] == [("en", "fa"), ("fa", "en")]
    listed = list_models(packages)
    assert [(m.pair, m.name, m.version) for m in listed] == [
        (("en", "fa"), "translate-en_fa-1.0", "1.0"),
        (("fa", "en"), "translate-fa_en-1.0", "1.0"),
    ]
    assert all(isinstance(m, InstalledModel) and (m.path / "model").is_dir() for m in listed)
    assert "English -> Persian" in str(listed[0])

    newer = build_tiny_model(tmp_path, "en", "fa", {"hello": "درود"}, package_version="1.1")
    install_models([newer], packages)
    assert [(m.pair, m.version) for m in list_models(packages)] == [
        (("en", "fa"), "1.1"), (("fa", "en"), "1.0"),
    ]
    assert not [p for p in packages.iterdir() if p.name.startswith(".")]


async def test_reload_sees_newly_installed_models(
    translator: OfflineTranslator, packages_dir: Path, archives: dict[str, Path]
) -> None:
    assert not translator.supports("en", "ur")
    install_models([archives["en_ur"]], packages_dir)
    translator.reload()
    assert await translator.translate("hello friend", "en", "ur") == "ہیلو دوست"


def _zip(path: Path, files: dict[str, str]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


def test_invalid_files_are_refused(tmp_path: Path, archives: dict[str, Path]) -> None:
    packages = tmp_path / "packages"
    text_file = tmp_path / "notes.argosmodel"
    text_file.write_text("not a model")
    cases = {
        tmp_path / "missing.argosmodel": "no such file",
        text_file: "not a zip",
        _zip(tmp_path / "nometa.argosmodel", {"pkg/model/model.bin": "x",
                                               "pkg/sentencepiece.model": "x"}):
            "metadata.json is missing",
        _zip(tmp_path / "two.argosmodel", {"a/metadata.json": "{}", "b/metadata.json": "{}"}):
            "one top-level folder",
        _zip(tmp_path / "badjson.argosmodel", {"p/metadata.json": "{", "p/model/model.bin": "x"}):
            "not valid JSON",
        _zip(tmp_path / "nocodes.argosmodel", {"p/metadata.json": "{}", "p/model/model.bin": "x",
                                                "p/sentencepiece.model": "x"}):
            "from_code/to_code",
        _zip(tmp_path / "bpe.argosmodel", {
            "p/metadata.json": json.dumps({"from_code": "en", "to_code": "fa"}),
            "p/model/model.bin": "x", "p/bpe.model": "x"}): "tokenized with bpe.model",
        _zip(tmp_path / "nomodel.argosmodel", {
            "p/metadata.json": json.dumps({"from_code": "en", "to_code": "fa"}),
            "p/sentencepiece.model": "x"}): "model.bin",
    }
    for path, reason in cases.items():
        with pytest.raises(TranslationError, match=reason) as info:
            install_models([archives["en_fa"], path], packages)
        assert str(path) in str(info.value)
        assert "python -m bot models install PATH.argosmodel" in str(info.value)
    assert list_models(packages) == []  # a bad file in the batch installs nothing
    with pytest.raises(TranslationError, match="same language pair"):
        install_models([archives["en_fa"], archives["en_fa"]], packages)
