"""The shared IPA phone inventory and the phonemizer every corpus uses.

All languages are written in one IPA inventory (`ipa_inventory.txt`, one phone per line) so a
phone recognised from lips in one language is the same unit in another: that sharing is what lets
low-resource languages borrow from high-resource ones. Ids: 0 = `<blank>` (CTC blank and padding),
1 = `|` (word boundary), then the inventory's phones in file order.

Conventions (applied identically to phonemizer output and to the synthesizer's phone events):
stress marks are stripped; tie bars are removed (`t͡ʃ` -> `tʃ`); length marks stay part of their
phone (`aː` and `tː` are single phones, distinct from `a` and `t`), as do nasalisation and other
diacritics. Phones outside the inventory are never dropped silently: `Inventory.encode` returns a
Counter of them and builders report it with counts.

The inventory grows with the languages: a shared core (the first languages' phones), then one
section per added language (`# + de German`) holding only the phones that language's espeak-ng
voice adds. Sections are only ever appended, so the ids of existing phones never move and
trained checkpoints keep their meaning. A language added by a package of its own declares the
phones it adds (`lipjax.languages.Language.phones`); registering it appends them after the
file's phones, in registration order (`load_inventory`), so the file is never edited for a new
language. A stage-1 run trained before such a language is read by `lipjax.units.grown`.

espeak-ng's own markers (`??` for a letter it cannot pronounce, ASCII leftovers such as `"` or
`^`) are not phones: `phonemize_counted` drops and counts them.
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
# espeak-ng writes `?` for what it cannot pronounce; `"`, `^` and `.` are ASCII leftovers of its
# phoneme mnemonics, never part of an IPA phone.
UNKNOWN_MARKER = "?"
_ASCII_LEFTOVERS = str.maketrans("", "", '"^.')
_PALATAL = re.compile("\u02b2+")  # ʲʲ (Romanian) is one palatalisation
_SECTION = re.compile(r"#\s*\+\s*([A-Za-z-]+)")
# What a voice's `??` stands for where espeak-ng (1.51) has a phoneme without an IPA name:
# German `UR` (durch, wurde, kurz), which the voice writes as ʊ + ɾ in its other r-words.
VOICE_GAPS: dict[str, tuple[str, ...]] = {"de": ("ʊ", "ɾ")}


def clean_phone(phone: str) -> str:
    """A phone in inventory convention: NFC, stress marks, tie bars, pause marks, espeak's
    language-switch flags such as "(en)" and its unknown markers (`??`) removed."""
    phone = _LANGUAGE_FLAG.sub("", unicodedata.normalize("NFC", phone))
    if UNKNOWN_MARKER in phone:
        return ""
    phone = _PALATAL.sub("\u02b2", phone.translate(_STRIP).translate(_ASCII_LEFTOVERS).strip())
    return "" if phone and all(unicodedata.category(c) in ("Lm", "Mn", "Sk") for c in phone) \
        else phone


class Inventory:
    """Phone <-> id mapping of the shared inventory; `added_by` names the language section that
    brought each phone in (absent for the shared core)."""

    def __init__(self, phones: list[str], added_by: dict[str, str] | None = None,
                 base_size: int | None = None) -> None:
        if len(set(phones)) != len(phones):
            dupes = [p for p, c in collections.Counter(phones).items() if c > 1]
            raise ValueError(f"ipa_inventory.txt lists phones twice: {dupes}")
        self.phones = [BLANK, WORD, *phones]
        self._ids = {p: i for i, p in enumerate(self.phones)}
        self.added_by = dict(added_by or {})
        # Ids below base_size are the file's; those above, phones declared by language packages.
        self.base_size = len(self.phones) if base_size is None else base_size

    @property
    def languages(self) -> tuple[str, ...]:
        """Languages with a section of their own, in file order."""
        return tuple(dict.fromkeys(self.added_by.values()))

    @property
    def size(self) -> int:
        return len(self.phones)

    def id(self, phone: str) -> int:
        """Id of `phone`; KeyError naming the inventory file if it is not in it."""
        try:
            return self._ids[phone]
        except KeyError:
            raise KeyError(f"Phone {phone!r} is not in lipjax/units/ipa_inventory.txt nor "
                           "declared by a registered language (Language.phones).") from None

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


def load_inventory() -> Inventory:
    """The shared inventory: `ipa_inventory.txt` (lines starting with # are comments), then the
    phones the registered languages declare (`Language.phones`) that it lacks, in registration
    order."""
    return _inventory(tuple((code, phone) for code, phone, _ in languages.declared_phones()))


@functools.cache
def file_inventory() -> Inventory:
    """The inventory file's phones alone (no language package's)."""
    text = importlib.resources.files("lipjax.units").joinpath("ipa_inventory.txt").read_text(
            encoding="utf-8")
    return parse_inventory(text)


@functools.cache
def _inventory(declared: tuple[tuple[str, str], ...]) -> Inventory:
    base = file_inventory()
    phones, added_by = list(base.phones[2:]), dict(base.added_by)
    for code, phone in declared:
        if clean_phone(phone) != phone:
            raise ValueError(f"Language {code!r} declares phone {phone!r} (Language.phones), "
                             f"which the phonemizer never writes: phones are written as "
                             f"{clean_phone(phone)!r} (no stress marks or tie bars).")
        if phone not in base and phone not in added_by:
            phones.append(phone)
            added_by[phone] = code
    return Inventory(phones, added_by, base_size=base.size)


def parse_inventory(text: str) -> Inventory:
    """An Inventory from the file's text: one phone per line, `#` comments, and `# + <code>`
    lines that open a language's section (its phones follow until the next section)."""
    phones, added_by, section = [], {}, None
    for line in text.splitlines():
        line = line.strip()
        heading = _SECTION.match(line)
        if heading:
            section = heading.group(1)
        elif line and not line.startswith("#"):
            phones.append(line)
            if section:
                added_by[line] = section
    return Inventory(phones, added_by)


@functools.cache
def _backend(voice: str):
    from phonemizer.backend import EspeakBackend  # lazy: loads libespeak-ng

    return EspeakBackend(voice, with_stress=False, preserve_punctuation=False,
                         language_switch="remove-flags")


def phonemize(texts: list[str], lang: str) -> list[str]:
    """IPA of each text in the inventory convention: "p h o n e | w o r d".

    Uses phonemizer's espeak backend with the language's espeak voice; an empty text gives "".
    """
    return phonemize_counted(texts, lang)[0]


def phonemize_counted(texts: list[str], lang: str, voice: str | None = None
                      ) -> tuple[list[str], collections.Counter]:
    """`phonemize`, plus a Counter of the espeak-ng markers it dropped (`??` for a letter the
    voice cannot pronounce), so that callers can report them instead of training on them.
    `voice` overrides the registry's (a language not registered in this process)."""
    from phonemizer.separator import Separator

    voice = voice or languages.get(lang).espeak_voice
    separator = Separator(phone=" ", word=" | ", syllable="")
    raw = _backend(voice).phonemize(list(texts), separator=separator, strip=True, njobs=1)
    out, dropped = [], collections.Counter()
    for line in raw:
        words = []
        for word in line.split("|"):
            phones = []
            for raw_phone in word.split():
                phone = clean_phone(raw_phone)
                if phone:
                    phones.append(phone)
                elif UNKNOWN_MARKER in raw_phone and voice in VOICE_GAPS:
                    phones += VOICE_GAPS[voice]
                elif UNKNOWN_MARKER in raw_phone:
                    dropped[raw_phone] += 1
            if phones:
                words.append(" ".join(phones))
        out.append(" | ".join(words))
    return out, dropped


def split_phones(phonemes: str) -> list[str]:
    """The phones and `|` boundaries of a `phonemize` string, as a list."""
    return phonemes.split()

