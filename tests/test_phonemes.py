"""The shared IPA inventory and the phonemizer: real espeak-ng output, checked by hand."""

from __future__ import annotations

import collections

import numpy as np
import pytest

from lipjax.synth import generate, speakers
from lipjax.units import phonemes

# espeak-ng 1.51 via phonemizer, stress stripped. Checked: English diphthong aʊ and long ɑː,
# Spanish trill r vs tap ɾ, French nasal ɑ̃ and front rounded y, Italian geminate tː and
# affricate dʒ, European Portuguese reduced ʊ/ɨ and nasal ɐ̃.
EXPECTED = {
        "en": ("the quick brown fox jumps", "ð ə | k w ɪ k | b ɹ aʊ n | f ɑː k s | dʒ ʌ m p s"),
        "es": ("el perro come carne", "e l | p e r o | k o m e | k a ɾ n e"),
        "fr": ("le chat mange une souris", "l ə | ʃ a | m ɑ̃ ʒ | y n | s u ʁ i"),
        "it": ("il gatto mangia il pesce", "i l | ɡ a tː o | m a n dʒ a | i l | p e ʃ e"),
        "pt": ("o menino come a maçã", "ʊ | m e n i n ʊ | k o m ɨ | ɐ | m ɐ s ɐ̃"),
}


@pytest.mark.parametrize("lang", sorted(EXPECTED))
def test_phonemize_one_sentence_per_language(lang: str):
    text, expected = EXPECTED[lang]
    assert phonemes.phonemize([text], lang) == [expected]


def test_inventory_ids_encode_decode():
    inv = phonemes.load_inventory()
    assert inv.phones[:2] == ["<blank>", "|"] and inv.id("|") == phonemes.WORD_ID
    assert inv.size == inv.base_size == len(set(inv.phones))  # no package registered here
    assert all(p == phonemes.clean_phone(p) for p in inv.phones[2:])  # no stress marks/ties
    for phone in ("aː", "tː", "ɑ̃", "dʒ"):  # length marks, nasals, affricates: one phone each
        assert phone in inv
    ids, unknown = inv.encode(["p", "a", "|", "ʘ", "ʘ", "<blank>"])
    assert inv.decode(ids) == ["p", "a", "|"] and ids.dtype == np.int32
    assert unknown == collections.Counter({"ʘ": 2, "<blank>": 1})
    assert inv.decode(np.array([0, ids[0], 0])) == ["p"]
    with pytest.raises(KeyError, match="ipa_inventory.txt"):
        inv.id("ʘ")


def test_clean_phone_conventions():
    assert phonemes.clean_phone("ˈa") == "a"
    assert phonemes.clean_phone("t͡ʃ") == "tʃ"
    assert phonemes.clean_phone("(en)") == ""
    assert phonemes.clean_phone("ɑː") == "ɑː"


def test_demo_corpus_is_covered_by_the_inventory():
    """>= 99% of phones of the demo corpus's texts (phonemizer) and of its synthesized speech
    (synthesizer phone events) are in the inventory, per language."""
    inv = phonemes.load_inventory()
    for lang in ("en", "es", "fr", "it", "pt"):
        config = generate.ClipConfig(lang, video=False)
        texts, counts = [], collections.Counter()
        for index in range(40):
            rng = generate.clip_rng(config, "train", index)
            speaker = speakers.make_speaker(lang, int(rng.integers(8)))
            sentence, utterance = generate.speak(config, rng, speaker)
            texts.append(sentence)
            for phone in utterance.phones:
                counts["timing", phone.phone in inv] += 1
        for line in phonemes.phonemize(texts, lang):
            for phone in phonemes.split_phones(line):
                counts["text", phone in inv] += 1
        for source in ("text", "timing"):
            total = counts[source, True] + counts[source, False]
            assert total > 300
            assert counts[source, True] / total >= 0.99, (lang, source, counts)


# Everyday sentences, with the sounds the shared core lacked (German ç, øː, ɔø, pf, ɜ; Dutch ʋ,
# œy, ʌʊ, ɵ); plus each language's 1500 most frequent words.
SENTENCES = {
        "de": "Ich möchte heute Abend mit meinen Freunden Pfannkuchen essen. Die Häuser in "
              "München sind schön, aber teuer. Er hört leise Musik über Kopfhörer.",
        "nl": "Wij willen vanavond met onze vrienden uit eten gaan. Het huis aan de gracht is "
              "oud maar mooi. Zij fietst elke dag naar haar werk in Utrecht.",
}


@pytest.mark.parametrize("lang", sorted(SENTENCES))
def test_german_and_dutch_have_no_unknown_phones(lang: str):
    """Languages outside the shared core are in the inventory through their own sections."""
    import wordfreq

    inv = phonemes.load_inventory()
    texts = [SENTENCES[lang], *wordfreq.top_n_list(lang, 1500)]
    lines, markers = phonemes.phonemize_counted(texts, lang, voice=lang)
    phones = [p for line in lines for p in phonemes.split_phones(line)]
    _, unknown = inv.encode(phones)
    assert len(phones) > 7000 and not unknown, unknown
    assert not markers and not any("?" in p for p in phones), markers
    assert inv.added_by["ç"] == "de" and inv.added_by["ʋ"] == "nl"


def test_language_sections_only_append():
    """The shared core keeps its ids (trained checkpoints stay valid); sections come after it."""
    inv = phonemes.load_inventory()
    core = [p for p in inv.phones[2:] if p not in inv.added_by]
    assert inv.phones[2:2 + len(core)] == core and len(core) == 114
    assert (inv.id("a"), inv.id("ɐ̃"), inv.id(core[-1])) == (2, 52, 115)
    assert inv.languages[:2] == ("de", "nl")
    parsed = phonemes.parse_inventory("a\n# + xx Test\nb\n# + yy\nc\n")
    assert parsed.phones == ["<blank>", "|", "a", "b", "c"] and parsed.added_by == {"b": "xx",
                                                                                       "c": "yy"}


def test_espeak_unknown_markers_are_not_phones(monkeypatch):
    assert phonemes.clean_phone("??") == "" and phonemes.clean_phone("a.ː") == "aː"
    assert phonemes.clean_phone("tsʲʲ") == "tsʲ" and phonemes.clean_phone("ʲ") == ""
    # espeak-ng 1.51's German voice writes "??" for the vowel of "durch": ʊ + ɾ, as it writes
    # the r of "Uhr"; without that entry the marker is dropped and counted, never a phone.
    assert phonemes.phonemize_counted(["durch"], "de", voice="de") == (["d ʊ ɾ ç"], {})
    monkeypatch.setattr(phonemes, "VOICE_GAPS", {})
    lines, markers = phonemes.phonemize_counted(["durch"], "de", voice="de")
    assert lines == ["d ç"] and markers == {"??": 1}
