"""The model families the bot can run, as data: language codes, licences, how to recognise them.

    argos     .argosmodel packages: one language pair each (bot/translation/argos_package.py)
    nllb      NLLB-200 converted to CTranslate2: 202 languages, Pashto and Dari included
    m2m100    M2M-100 converted to CTranslate2: 100 languages, Pashto but no Dari

NLLB-200 and M2M-100 are run the same way (bot/translation/multilingual.py): the source is
``[source language token] + SentencePiece pieces + ["</s>"]``, the target language token is
forced as the target prefix, and the first output token (that language token) is dropped.
Left out, the model translates into whatever language it likes and no error is raised.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["ARGOS", "FAMILIES", "M2M100", "NLLB", "STAND_IN", "Family", "recognise"]


@dataclass(frozen=True)
class Family:
    id: str
    title: str
    #: SPDX identifier of the licence of every published model of the family ("" when each
    #: model states its own, as Argos packages do).
    licence: str = ""
    #: False for a licence that forbids commercial use: installing needs --accept-licence.
    commercial_use: bool = True
    #: Bot language code -> the model's language token (multilingual families only).
    tokens: Mapping[str, str] = field(default_factory=dict)
    #: How every language token of the family looks (to count what else a model serves).
    token_pattern: re.Pattern[str] | None = None
    #: Where to read the licence.
    licence_url: str = ""

    @property
    def multilingual(self) -> bool:
        return bool(self.tokens)


NLLB = Family(
    id="nllb",
    title="NLLB-200",
    licence="CC-BY-NC-4.0",
    commercial_use=False,
    # FLORES-200 codes. Dari (prs_Arab) and Iranian Persian (pes_Arab) are separate
    # languages here, so Dari is never a Persian stand-in with this family.
    tokens={"en": "eng_Latn", "ps": "pbt_Arab", "prs": "prs_Arab", "fa": "pes_Arab",
            "ur": "urd_Arab", "hi": "hin_Deva"},
    token_pattern=re.compile(r"^[a-z]{3}_[A-Z][a-z]{3}$"),
    licence_url="https://creativecommons.org/licenses/by-nc/4.0/",
)

M2M100 = Family(
    id="m2m100",
    title="M2M-100",
    licence="MIT",
    tokens={"en": "__en__", "ps": "__ps__", "fa": "__fa__", "ur": "__ur__", "hi": "__hi__"},
    token_pattern=re.compile(r"^__[a-z]{2,3}__$"),
    licence_url="https://github.com/facebookresearch/fairseq/blob/main/LICENSE",
)

ARGOS = Family(id="argos", title="Argos")

FAMILIES: Mapping[str, Family] = {f.id: f for f in (NLLB, M2M100, ARGOS)}

#: A bot language with no model of its own in a family may be DRAFTED with a related
#: language's model (Dari with a Persian one), only when no installed model serves it itself.
STAND_IN: Mapping[str, str] = {"prs": "fa"}


def recognise(vocabulary: list[str]) -> tuple[Family, tuple[str, ...], int] | None:
    """The multilingual family whose language tokens the vocabulary holds: (family, the bot
    languages it serves, how many languages it has in all), or None."""
    tokens = set(vocabulary)
    for family in (NLLB, M2M100):
        english = family.tokens["en"]
        if english not in tokens:
            continue
        served = tuple(code for code, token in family.tokens.items() if token in tokens)
        assert family.token_pattern is not None
        total = sum(1 for t in vocabulary if family.token_pattern.match(t))
        return family, served, total
    return None
