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

# Base IPA symbol -> viseme class. Diacritics (length, nasal, syllabic, dental, palatalised)
# are stripped first: they do not change what the lips do.
_SYMBOL_CLASS: dict[str, str] = {}
for _cls, _symbols in {
        "bilabial": "pbmβɸ",
        "labiodental": "fvʋɱ",
        "dental": "θð",
        "alveolar": "tdnlɾrɫɬ",
        "sibilant": "sz",
        "postalveolar": "ʃʒ",
        "palatal": "jɲʎʝçc",
        "velar": "kɡgŋxɣ",
        "back": "hʔʁʀχq",
        "rhotic": "ɹɻ",
        "labiovelar": "wɥ",
        "open_vowel": "aæɑɐɒʌä",
        "mid_vowel": "eɛəɜɚᵻɨɘ",
        "close_vowel": "iɪ",
        "mid_round_vowel": "oɔøœɵ",
        "close_round_vowel": "uʊyʏɯ",
}.items():
    for _s in _symbols:
        _SYMBOL_CLASS[_s] = _cls

# Multi-symbol phones that are one gesture (affricates, espeak's doubled s).
_PHONE_CLASS = {"ts": "alveolar", "dz": "alveolar", "tʃ": "postalveolar", "dʒ": "postalveolar",
                "ss": "sibilant", "əl": "mid_vowel"}
_STRIP = set("ːˑ\u0303\u0329\u032a\u02b2\u02b0\u0306")


def _base(phone: str) -> str:
    decomposed = unicodedata.normalize("NFD", phone)
    return "".join(c for c in decomposed if c not in _STRIP and not unicodedata.combining(c))


@functools.cache
def classes(phone: str) -> tuple[str, ...]:
    """The viseme class sequence of a phone: one class, or one per element of a diphthong.

    Raises KeyError naming the phone when a symbol has no class (extend `_SYMBOL_CLASS`).
    """
    base = _base(phone)
    if base in _PHONE_CLASS:
        return (_PHONE_CLASS[base],)
    out = []
    for symbol in base:
        if symbol not in _SYMBOL_CLASS:
            raise KeyError(f"No viseme class for symbol {symbol!r} of phone {phone!r} "
                           "(lipjax/synth/visemes.py _SYMBOL_CLASS).")
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
