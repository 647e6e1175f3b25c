"""Phone -> viseme class -> mouth keyframe parameters.

Lip reading is hard because many phones look the same: p/b/m all close the lips, f/v tuck the
lower lip under the teeth, k/g/ŋ happen out of sight. The corpus reproduces that ambiguity
exactly: every phone maps to one viseme class, and a class has ONE parameter vector, so phones of
a class are pixel-identical on screen and only language knowledge can tell "pat" from "bat".

Parameters (all roughly 0..1, `width` -1..1): opening of the lips, width (spread vs. pursed),
rounding (protrusion, a rounder opening), teeth visibility, tongue visibility.
"""

from __future__ import annotations

import dataclasses
import functools
import unicodedata

import numpy as np

PARAMS = ("opening", "width", "rounding", "teeth", "tongue")


@dataclasses.dataclass(frozen=True)
class Viseme:
    """One viseme class and its mouth target."""

    name: str
    opening: float
    width: float
    rounding: float
    teeth: float
    tongue: float

    @property
    def vector(self) -> np.ndarray:
        return np.array([getattr(self, p) for p in PARAMS], dtype=np.float32)


VISEMES: dict[str, Viseme] = {v.name: v for v in (
        Viseme("silence", 0.03, 0.0, 0.0, 0.0, 0.0),
        Viseme("bilabial", 0.0, 0.05, 0.1, 0.0, 0.0),
        Viseme("labiodental", 0.12, 0.15, 0.0, 1.0, 0.0),
        Viseme("dental", 0.3, 0.2, 0.0, 0.8, 1.0),
        Viseme("alveolar", 0.3, 0.15, 0.0, 0.6, 0.5),
        Viseme("sibilant", 0.14, 0.35, 0.0, 1.0, 0.0),
        Viseme("postalveolar", 0.22, -0.35, 0.7, 0.9, 0.0),
        Viseme("palatal", 0.22, 0.3, 0.0, 0.7, 0.3),
        Viseme("velar", 0.38, 0.05, 0.0, 0.4, 0.15),
        Viseme("back", 0.5, 0.0, 0.0, 0.3, 0.1),
        Viseme("rhotic", 0.25, -0.3, 0.5, 0.4, 0.0),
        Viseme("labiovelar", 0.14, -0.7, 1.0, 0.0, 0.0),
        Viseme("open_vowel", 0.95, 0.2, 0.0, 0.5, 0.2),
        Viseme("mid_vowel", 0.6, 0.35, 0.0, 0.6, 0.15),
        Viseme("close_vowel", 0.32, 0.7, 0.0, 0.85, 0.0),
        Viseme("mid_round_vowel", 0.55, -0.45, 0.8, 0.2, 0.0),
        Viseme("close_round_vowel", 0.25, -0.65, 1.0, 0.0, 0.0),
)}

# Base IPA symbol -> viseme class, over the IPA chart (retroflex and alveolo-palatal consonants,
# central vowels, pharyngeals, implosives), so that a new language's phones have a class to
# suggest. Diacritics (length, nasal, syllabic, dental, palatalised) are stripped first: they do
# not change what the lips do.
_SYMBOL_CLASS: dict[str, str] = {}
for _cls, _symbols in {
        "bilabial": "pbmβɸʙɓ",
        "labiodental": "fvʋɱⱱ",
        "dental": "θð",
        "alveolar": "tdnlɾrɫɬɮɺʈɖɳɭɽɗ",
        "sibilant": "sz",
        "postalveolar": "ʃʒʂʐɕʑɧ",
        "palatal": "jɲʎʝçcɟʄ",
        "velar": "kɡgŋxɣɰʟɠ",
        "back": "hʔʁʀχqɢɴħʕɦʜʢʡʛ",
        "rhotic": "ɹɻ",
        "labiovelar": "wɥʍ",
        "open_vowel": "aæɑɐɒʌä",
        "mid_vowel": "eɛəɜɚᵻɨɘɤɝ",
        "close_vowel": "iɪ",
        "mid_round_vowel": "oɔøœɵɞɶ",
        "close_round_vowel": "uʊyʏɯʉ",
}.items():
    for _s in _symbols:
        _SYMBOL_CLASS[_s] = _cls
_VOWELS = frozenset(s for s, c in _SYMBOL_CLASS.items() if c.endswith("vowel"))

# Multi-symbol phones that are one gesture (affricates, espeak's doubled s, and espeak-ng's
# ASCII names: `sx` is its Swedish ɧ, the sj-sound) or a fixed sequence of gestures (pf). Other
# multi-letter consonants have no class: splitting an unknown name into letters would make
# `sx` an s followed by an x.
_PHONE_CLASS: dict[str, tuple[str, ...]] = {
        "ts": ("alveolar",), "dz": ("alveolar",), "tʃ": ("postalveolar",),
        "dʒ": ("postalveolar",), "ss": ("sibilant",), "əl": ("mid_vowel",),
        "sx": ("postalveolar",), "pf": ("bilabial", "labiodental"),
        "tɕ": ("postalveolar",), "dʑ": ("postalveolar",), "ʈʂ": ("postalveolar",),
        "ɖʐ": ("postalveolar",)}
# Length, nasal, syllabic, dental, palatalised, aspirated, extra-short, pharyngealised.
_STRIP = set("ːˑ\u0303\u0329\u032a\u02b2\u02b0\u0306\u02e4")


def letters(phone: str) -> str:
    """The phone without the diacritics that do not change what the lips do."""
    decomposed = unicodedata.normalize("NFD", phone)
    return "".join(c for c in decomposed if c not in _STRIP and not unicodedata.combining(c))


def classes(phone: str) -> tuple[str, ...]:
    """The viseme class sequence of a phone: one class, or one per element of a diphthong.

    A phone lipjax's tables know gets their class; another phone, the class its language's
    package declares (`lipjax.languages.Language.phones`). Raises KeyError naming the phone and
    where to declare it when it has none.
    """
    return _classes(phone, _declared())


def _declared() -> tuple[tuple[str, str, str], ...]:
    from lipjax import languages

    return languages.declared_phones()


@functools.cache
def _classes(phone: str, declared: tuple[tuple[str, str, str], ...]) -> tuple[str, ...]:
    mine = [(code, looks) for code, p, looks in declared if p == phone]
    try:
        known = own_classes(phone)
    except KeyError:
        if not mine:
            raise
        known = None
    if known is not None and (phone in _file_phones() or not mine):
        return known  # the file's phones keep lipjax's class whatever a package says
    code, looks = mine[0]
    return _looks_like(looks, code, phone)


@functools.cache
def _file_phones() -> frozenset[str]:
    from lipjax.units import phonemes

    return frozenset(phonemes.file_inventory().phones)


def _looks_like(looks: str, code: str, phone: str) -> tuple[str, ...]:
    """A package's declaration: viseme classes joined by "+", or a phone of the inventory file."""
    names = tuple(looks.split("+"))
    if all(name in VISEMES for name in names):
        return names
    if looks in _file_phones() and looks not in ("<blank>", "|"):
        return own_classes(looks)
    raise ValueError(
                f"Language {code!r} declares phone {phone!r} looking like {looks!r} "
                f"(Language.phones in its package): that is neither a viseme class "
                f"({', '.join(n for n in VISEMES if n != 'silence')}, joined by '+' for a "
                f"diphthong) nor a phone of lipjax/units/ipa_inventory.txt.")


@functools.cache
def own_classes(phone: str) -> tuple[str, ...]:
    """The class sequence lipjax's own tables give `phone` (no package's declaration); KeyError
    naming the phone when they give none."""
    base = letters(phone)
    if base in _PHONE_CLASS:
        return _PHONE_CLASS[base]
    where = ("declare it in its language's package: Language(phones={" f"{phone!r}: "
             "'<viseme class>' or '<a phone it looks like>'})")
    unknown = [s for s in base if s not in _SYMBOL_CLASS]
    if unknown:
        raise KeyError(f"No viseme class for symbol {unknown[0]!r} of phone {phone!r}: {where}.")
    if len(set(base)) == 1:  # a doubled letter (espeak's ʕʕ, ss): one long sound
        return (_SYMBOL_CLASS[base[0]],)
    if len(base) > 1 and not any(s in _VOWELS for s in base):
        raise KeyError(f"No viseme class for the multi-letter phone {phone!r} (one sound in "
                       f"espeak-ng's notation, not {' + '.join(base)}): {where}.")
    out: list[str] = []
    for symbol in base:
        cls = _SYMBOL_CLASS[symbol]
        if not out or out[-1] != cls:
            out.append(cls)
    return tuple(out)


def viseme_of(phone: str) -> str:
    """The viseme class of a single-gesture phone (the first class for a diphthong)."""
    return classes(phone)[0]


def target(cls: str) -> np.ndarray:
    """Parameter vector (len(PARAMS),) of a viseme class."""
    return VISEMES[cls].vector
