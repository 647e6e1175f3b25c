"""Every phone has the viseme class a reader of the IPA chart expects, written out by hand here:
each phone of the shared inventory (the five demo languages and every language section), and the
phones that the section languages' espeak-ng voices write beyond it (classes read from their
symbols). A phone lipjax cannot place is an error naming it, never a group of its own.
"""

from __future__ import annotations

import pytest

from lipjax.synth import visemes
from lipjax.units import phonemes

# Class sequence -> the inventory's phones in it (a diphthong has one class per element).
INVENTORY_CLASSES = {
        "bilabial": "m p b β pː bː mʲ pʲ bʲ",
        "labiodental": "v f ʋ vʲ fʲ",
        "dental": "ð θ",
        "alveolar": "t n l d ɾ r ts tː tsː dz n̩ dzː dː t̪ d̪ tʲ nʲ rʲ dʲ tsʲ ɾʲ lʲ r̝̊ r̝ r̩ l̩ l̩ː "
                    "r̩ː",
        "sibilant": "s z ss sʲ s̪ s̪ː zʲ",
        "postalveolar": "ʃ ʒ tʃ dʒ dʒː tʃː tʃʲ ʃʲ dʒʲ ʒʲ",
        "palatal": "j ɲ ʎ ʝ ç ɲʲ c cː",
        "velar": "k ŋ ɡ ɣ x kː ɡː kʲ ɡʲ xʲ",
        "back": "ʁ h ʔ q χ qː",
        "rhotic": "ɹ",
        "labiovelar": "w",
        "open_vowel": "a ɐ ɑ̃ æ ʌ ɐ̃ ɑː ɑ aː ɐɐ ɒ æː",
        "mid_vowel": "e ɛ ə ɨ ɚ ɛ̃ ᵻ əl ɜː eː ɛː ɜ eə ee",
        "close_vowel": "i ɪ iː ɪː iɪ",
        "mid_round_vowel": "o ɔ ɔ̃ ɔː ø œ oː œ̃ õ ɔø øː ɵ",
        "close_round_vowel": "u ʊ y uː ũ yː ʊː yʊ",
        "mid_vowel+close_vowel": "eɪ ɛɪ əɪ ei",
        "open_vowel+close_vowel": "aɪ ai æi",
        "mid_round_vowel+close_round_vowel": "oʊ œy ou øy",
        "open_vowel+close_round_vowel": "ɐ̃ʊ̃ aʊ ʌʊ au æy",
        "open_vowel+rhotic": "ɑːɹ",
        "mid_round_vowel+rhotic": "oːɹ ɔːɹ",
        "mid_vowel+close_round_vowel": "eʊ ɛʊ əʊ eu ey",
        "close_vowel+mid_vowel": "iə ie",
        "close_vowel+rhotic": "ɪɹ",
        "mid_vowel+rhotic": "ɛɹ",
        "mid_round_vowel+close_vowel": "oɪ ɔɪ oi øi",
        "close_vowel+close_round_vowel": "iʊ iu",
        "close_round_vowel+rhotic": "ʊɹ",
        "close_round_vowel+close_vowel": "uɪ yɪ ui yi",
        "open_vowel+close_vowel+mid_vowel": "aɪɚ aɪə",
        "bilabial+labiodental": "pf",
        "palatal+open_vowel": "ja",
        "palatal+close_round_vowel": "ju",
        "mid_vowel+open_vowel": "ea eɑ",
        "mid_round_vowel+open_vowel": "ɔa",
        "mid_vowel+mid_round_vowel": "eo",
        "close_round_vowel+mid_round_vowel": "uo yø",
}
# Phones that section languages' voices write and the inventory file lacks (a package declaring
# them gets these classes suggested), and the Swedish ones of espeak-ng's `sv` voice.
BEYOND_THE_FILE = {
        "postalveolar": "ɕ tɕ dʑ ʑ ʂ ʂʲ tɕʲ ɕʲ dʑʲ sx",
        "alveolar": "ɭ ɭʲ dˤ",
        "back": "ʕ ʕʕ ħ",
        "palatal": "ɟ ɟː",
        "close_round_vowel": "ʉ",
        "mid_round_vowel": "ɵː",
}
# (language, espeak-ng voice): the five demo languages and those with an inventory section.
VOICES = [("en", "en-us"), ("es", "es"), ("fr", "fr-fr"), ("it", "it"), ("pt", "pt"),
          ("de", "de"), ("nl", "nl"), ("pl", "pl"), ("ru", "ru"), ("el", "el"), ("ar", "ar"),
          ("ro", "ro"), ("hu", "hu"), ("cs", "cs"), ("fi", "fi"), ("sk", "sk"), ("lt", "lt")]


def _expected(table: dict[str, str]) -> dict[str, tuple[str, ...]]:
    return {p: tuple(k.split("+")) for k, phones in table.items() for p in phones.split()}


def test_every_inventory_phone_has_the_class_written_here():
    expected = _expected(INVENTORY_CLASSES)
    inventory = phonemes.file_inventory().phones[2:]
    assert sorted(expected) == sorted(inventory), "a phone is missing here or in the file"
    wrong = {p: visemes.classes(p) for p in inventory if visemes.classes(p) != expected[p]}
    assert not wrong


def test_phones_beyond_the_file_have_a_class_from_their_symbols():
    expected = _expected(BEYOND_THE_FILE)
    assert not set(expected) & set(phonemes.file_inventory().phones)
    assert {p: visemes.own_classes(p) for p in expected} == expected


@pytest.mark.parametrize("lang,voice", VOICES)
def test_every_phone_a_voice_writes_has_a_class(lang, voice):
    """The 300 most frequent words of each language: every phone its voice writes is in the
    inventory or listed above, and has a class."""
    from wordfreq import top_n_list

    words = top_n_list(lang, 300)
    lines, _ = phonemes.phonemize_counted([" ".join(words[i:i + 50]) for i in range(0, 300, 50)],
                                          lang, voice=voice)
    phones = {p for line in lines for p in line.split() if p != phonemes.WORD}
    known = set(phonemes.file_inventory().phones) | set(_expected(BEYOND_THE_FILE))
    assert phones <= known, f"{lang}: {phones - known} not written in this test's tables"
    assert all(visemes.classes(p) for p in phones)
