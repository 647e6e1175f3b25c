"""The shared IPA phone inventory and the phonemizer every corpus uses.

All languages are written in one IPA inventory (`ipa_inventory.txt`, one phone per line) so a
phone recognised from lips in one language is the same unit in another: that sharing is what lets
low-resource languages borrow from high-resource ones. Ids: 0 = `<blank>` (CTC blank and padding),
1 = `|` (word boundary), then the inventory's phones in file order.

Conventions (applied identically to phonemizer output and to the synthesizer's phone events):
stress marks are stripped; tie bars are removed (`t͡ʃ` -> `tʃ`); length marks stay part of their
phone (`aː` and `tː` are single phones, distinct from `a` and `t`), as do nasalisation and other
diacritics. Phones outside the inventory are never dropped silently: `Inventory.encode` returns a
Counter of them and builders report it.
"""

from __future__ import annotations

import collections
import functools
import importlib.resources
import re
import unicodedata

import numpy as np

from lipjax import languages

BLANK = "<blank>"
WORD = "|"
BLANK_ID = 0
WORD_ID = 1
_STRIP = str.maketrans("", "", "ˈˌ\u0361\u035c‿_-'")


_LANGUAGE_FLAG = re.compile(r"\([a-z-]+\)")


def clean_phone(phone: str) -> str:
    """A phone in inventory convention: NFC, stress marks, tie bars, pause marks and espeak's
    language-switch flags such as "(en)" removed."""
    phone = _LANGUAGE_FLAG.sub("", unicodedata.normalize("NFC", phone))
    return phone.translate(_STRIP).strip()


class Inventory:
    """Phone <-> id mapping of the shared inventory."""

    def __init__(self, phones: list[str]) -> None:
        if len(set(phones)) != len(phones):
            dupes = [p for p, c in collections.Counter(phones).items() if c > 1]
            raise ValueError(f"ipa_inventory.txt lists phones twice: {dupes}")
        self.phones = [BLANK, WORD, *phones]
        self._ids = {p: i for i, p in enumerate(self.phones)}

    @property
    def size(self) -> int:
        return len(self.phones)

    def id(self, phone: str) -> int:
        """Id of `phone`; KeyError naming the inventory file if it is not in it."""
        try:
            return self._ids[phone]
        except KeyError:
            raise KeyError(f"Phone {phone!r} is not in lipjax/units/ipa_inventory.txt.") from None

    def __contains__(self, phone: str) -> bool:
        return phone in self._ids

    def encode(self, phones: list[str]) -> tuple[np.ndarray, collections.Counter]:
        """Ids of the known phones, and a Counter of the unknown ones (which are left out)."""
        ids, unknown = [], collections.Counter()
        for phone in phones:
            index = self._ids.get(phone)
            if index is None or index == BLANK_ID:
                unknown[phone] += 1
            else:
                ids.append(index)
        return np.asarray(ids, dtype=np.int32), unknown

    def decode(self, ids) -> list[str]:
        """Phones of `ids`; blanks (padding) are skipped."""
        return [self.phones[int(i)] for i in np.asarray(ids).reshape(-1) if int(i) != BLANK_ID]


@functools.cache
def load_inventory() -> Inventory:
    """The shared inventory from `ipa_inventory.txt` (lines starting with # are comments)."""
    text = importlib.resources.files("lipjax.units").joinpath("ipa_inventory.txt").read_text(
            encoding="utf-8")
    phones = [line.strip() for line in text.splitlines()]
    return Inventory([p for p in phones if p and not p.startswith("#")])


@functools.cache
def _backend(voice: str):
    from phonemizer.backend import EspeakBackend  # lazy: loads libespeak-ng

    return EspeakBackend(voice, with_stress=False, preserve_punctuation=False,
                         language_switch="remove-flags")


def phonemize(texts: list[str], lang: str) -> list[str]:
    """IPA of each text in the inventory convention: "p h o n e | w o r d".

    Uses phonemizer's espeak backend with the language's espeak voice; an empty text gives "".
    """
    from phonemizer.separator import Separator

    voice = languages.get(lang).espeak_voice
    separator = Separator(phone=" ", word=" | ", syllable="")
    raw = _backend(voice).phonemize(list(texts), separator=separator, strip=True, njobs=1)
    out = []
    for line in raw:
        words = []
        for word in line.split("|"):
            phones = [clean_phone(p) for p in word.split()]
            phones = [p for p in phones if p]
            if phones:
                words.append(" ".join(phones))
        out.append(" | ".join(words))
    return out


def split_phones(phonemes: str) -> list[str]:
    """The phones and `|` boundaries of a `phonemize` string, as a list."""
    return phonemes.split()


# Number of phoneme ids (blank, word boundary and the inventory): the size of every phone head.
PHONEME_VOCAB_SIZE: int = load_inventory().size
