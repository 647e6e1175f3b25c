"""The language registry: one entry per language, the single place a language is described.

Everything language-specific that the rest of lipjax needs (espeak-ng voice, wordfreq code,
text normalisation, where its SentencePiece model lives, its index for the language-ID head, the
phones its voice adds to the shared inventory and what they look like on the lips) is read from
here, so adding a language is one `register()` call, made by the language's own package: nothing
under lipjax/ is edited for a new language.
"""

from __future__ import annotations

import dataclasses
import os
import re
import unicodedata
from collections.abc import Mapping

from etils import epath

# Keep letters (any script), apostrophes inside words, and spaces. Hyphens become spaces.
_PUNCT = re.compile(r"[^\w\s']|_", flags=re.UNICODE)
_APOSTROPHE_EDGE = re.compile(r"(^|\s)'+|'+(\s|$)")
_SPACES = re.compile(r"\s+")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'"})


@dataclasses.dataclass(frozen=True)
class Language:
    """How lipjax treats one language.

    Attributes:
        code: ISO 639-1 code; the key everywhere (configs, builders, LID labels).
        name: English name, for tables and plots.
        espeak_voice: espeak-ng voice used for phonemes and synthetic speech.
        wordfreq_code: language code for `wordfreq` word lists (synthetic sentences).
        num2words_code: language code for spelling out digits, or None to drop digits.
        lowercase: whether transcripts are lower-cased.
        keep_apostrophes: whether word-internal apostrophes survive normalisation.
        alphabet: the characters of normalised text that every tokenizer of the language can
            encode even when its training text lacks some (a small sample of a corpus may have
            no "ñ"; SentencePiece would then turn every later "ñ" into an unknown piece). Empty:
            only what the training text holds.
        phones: the phones its espeak-ng voice writes that lipjax's inventory
            (lipjax/units/ipa_inventory.txt) lacks, each with what it looks like on the lips:
            a viseme class of lipjax/synth/visemes.py (`"postalveolar"`; a diphthong joins its
            classes with "+", `"mid_vowel+close_round_vowel"`) or a phone lipjax knows that it
            looks like (`"ʃ"`). Registering the language appends them to the inventory (new unit
            ids after every existing one) and gives them that viseme class. The build command
            prints the lines to put here for phones a corpus holds that no one declared.
    """

    code: str
    name: str
    espeak_voice: str
    wordfreq_code: str
    num2words_code: str | None = None
    lowercase: bool = True
    keep_apostrophes: bool = True
    alphabet: str = ""
    phones: Mapping[str, str] | tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        # A tuple of (phone, looks like) pairs: hashable, and in the order the package wrote.
        pairs = self.phones.items() if isinstance(self.phones, Mapping) else self.phones
        phones = tuple((unicodedata.normalize("NFC", str(p)).strip(), str(v).strip())
                       for p, v in pairs)
        for phone, looks in phones:
            if not phone or not looks or any(c.isspace() for c in phone):
                raise ValueError(f"Language {self.code!r}: phones entry {phone!r}: {looks!r} "
                                 "needs one phone (no spaces) and a viseme class or a phone "
                                 "it looks like, e.g. phones={'ʉ': 'close_round_vowel'}.")
        object.__setattr__(self, "phones", phones)

    def normalize(self, text: str) -> str:
        """Transcript normalisation used by every builder and metric: NFC, digits spelled out,
        punctuation removed, case folded, whitespace collapsed."""
        text = unicodedata.normalize("NFC", text).translate(_APOSTROPHES)
        text = _NUMBER.sub(lambda m: " " + self._spell(m.group(0)) + " ", text)
        text = _PUNCT.sub(" ", text)
        if self.keep_apostrophes:
            text = _APOSTROPHE_EDGE.sub(" ", text)
        else:
            text = text.replace("'", " ")
        if self.lowercase:
            text = text.lower()
        return _SPACES.sub(" ", text).strip()

    def _spell(self, number: str) -> str:
        if self.num2words_code is None:
            return ""
        from num2words import num2words  # lazy: only needed when digits appear

        value = float(number.replace(",", ".")) if re.search(r"[.,]", number) else int(number)
        try:
            return num2words(value, lang=self.num2words_code)
        except NotImplementedError:
            return ""

    def tokenizer_path(self, data_dir: str | os.PathLike[str]) -> epath.Path:
        """Where this language's SentencePiece model is stored, next to the data it came from."""
        return epath.Path(data_dir) / "tokenizers" / f"{self.code}.model"


_REGISTRY: dict[str, Language] = {}


def register(language: Language) -> Language:
    """Adds a language; its LID index is its registration order."""
    if language.code in _REGISTRY:
        raise ValueError(f"Language {language.code!r} is already registered.")
    _REGISTRY[language.code] = language
    return language


def get(code: str) -> Language:
    """The registry entry for `code`; an unknown code is an error listing the known ones."""
    try:
        return _REGISTRY[code]
    except KeyError:
        raise KeyError(
                f"Unknown language code {code!r}. Known languages: {', '.join(codes())}. "
                "Add one with lipjax.languages.register(Language(...))."
        ) from None


def declared_phones() -> tuple[tuple[str, str, str], ...]:
    """(language code, phone, looks like) of every phone the registered languages declare
    (`Language.phones`), in registration order: what the inventory appends after its file."""
    return tuple((code, phone, looks) for code, language in _REGISTRY.items()
                 for phone, looks in language.phones)


def codes() -> tuple[str, ...]:
    """All registered codes in LID-index order."""
    return tuple(_REGISTRY)


# ISO 639's "undetermined": unlabelled speech (VoxCeleb2) has no text and no language-ID target.
UNLABELLED = "und"


def index(code: str) -> int:
    """The language-ID class index of `code`; -1 for unlabelled speech (`UNLABELLED`), which
    the language-ID loss and accuracy leave out."""
    if code == UNLABELLED:
        return -1
    get(code)
    return codes().index(code)


_LATIN = "abcdefghijklmnopqrstuvwxyz'"

for _lang in (
        Language("en", "English", "en-us", "en", "en", alphabet=_LATIN),
        Language("es", "Spanish", "es", "es", "es", alphabet=_LATIN + "áéíóúüñ"),
        Language("fr", "French", "fr-fr", "fr", "fr", alphabet=_LATIN + "àâæçéèêëîïôœùûüÿ"),
        Language("it", "Italian", "it", "it", "it", alphabet=_LATIN + "àèéìíîòóùú"),
        Language("pt", "Portuguese", "pt", "pt", "pt", alphabet=_LATIN + "áâãàçéêíóôõúü"),
):
    register(_lang)
