"""A language package declares the phones its voice adds (`Language.phones`): registering it
gives them ids after the inventory file's and the declared viseme class; the file and lipjax's
tables stay as they are. The build reports undeclared phones as one table with the lines to add.
"""

from __future__ import annotations

import collections

import pytest

from data_builders import manual_corpus
from lipjax import languages
from lipjax.models import visemes as groups
from lipjax.synth import visemes
from lipjax.units import phonemes

SWEDISH = {"ʉ": "close_round_vowel", "sx": "ʃ", "ɕ": "postalveolar", "ʂ": "postalveolar",
           "ɵː": "ɵ"}


@pytest.fixture
def registry(monkeypatch):
    """The language registry, restored after the test (registration is process-wide)."""
    monkeypatch.setattr(languages, "_REGISTRY", dict(languages._REGISTRY))  # noqa: SLF001


def _swedish(phones=SWEDISH) -> languages.Language:
    return languages.register(languages.Language("sv", "Swedish", "sv", "sv", phones=phones))


def test_declared_phones_get_ids_after_the_file_and_their_class(registry):
    before = phonemes.load_inventory()
    _swedish()
    grown = phonemes.load_inventory()
    assert grown.phones[:before.size] == before.phones  # no id moves
    assert grown.phones[before.size:] == list(SWEDISH)
    assert grown.base_size == before.size and grown.size == before.size + len(SWEDISH)
    assert all(grown.added_by[p] == "sv" for p in SWEDISH)
    assert visemes.classes("sx") == visemes.classes("ʃ") == ("postalveolar",)
    assert visemes.classes("ɵː") == ("mid_round_vowel",)
    ids, names = groups.group_ids()
    assert len(ids) == grown.size and len(names) == len(groups._group_ids(  # noqa: SLF001
            tuple(before.phones))[1])  # no group of their own
    assert names[ids[grown.id("ʉ")]] == "close_round_vowel"


def test_a_declared_phone_the_file_has_keeps_lipjax_class(registry):
    _swedish({"p": "open_vowel", "ʉ": "close_round_vowel"})
    assert visemes.classes("p") == ("bilabial",)
    assert phonemes.load_inventory().phones.count("p") == 1


def test_bad_declarations_are_errors_naming_the_fix(registry):
    with pytest.raises(ValueError, match="needs one phone"):
        languages.Language("sv", "Swedish", "sv", "sv", phones={"a b": "mid_vowel"})
    _swedish({"ʉ": "round"})
    with pytest.raises(ValueError, match="'sv' declares phone 'ʉ' looking like 'round'"):
        visemes.classes("ʉ")


def test_multi_letter_espeak_names_are_one_phone_or_an_error():
    assert visemes.classes("sx") == ("postalveolar",)  # not s + x
    with pytest.raises(KeyError, match="multi-letter phone 'zh'.*Language\\(phones="):
        visemes.classes("zh")
    with pytest.raises(KeyError, match="symbol 'ʘ'"):
        visemes.classes("ʘ")


def test_an_unclassed_inventory_phone_warns(registry, caplog):
    with caplog.at_level("WARNING", logger="lipjax.models.visemes"):
        groups.group_ids()
        assert "no viseme class" not in caplog.text  # every phone of the inventory has one
        ids, names = groups._group_ids(("<blank>", "|", "p", "ʘ"))  # noqa: SLF001
    assert "1 phones of the inventory have no viseme class" in caplog.text and "ʘ" in caplog.text
    assert names[ids[3]] == "<ʘ>"
    _swedish({"ʘ": "bilabial"})  # declared: the class of p
    assert visemes.classes("ʘ") == ("bilabial",)


def test_missing_phones_one_table_over_all_splits_with_the_lines_to_add():
    table = manual_corpus.MissingPhones()
    table.add("sv_corpus/sv_video split train", "sv", collections.Counter(ʉ=7, ʂ=2, sx=1), 700)
    table.add("sv_corpus/sv_audio split test", "sv", collections.Counter(ʉ=5, ɵː=1), 120)
    text = table.table()
    lines = text.splitlines()
    assert lines[0].startswith("PHONES MISSING FROM THE INVENTORY for language 'sv'")
    assert lines[1].split() == ["phone", "sv_video", "split", "train", "sv_audio", "split",
                                "test", "total"] or "sv_video split train" in lines[1]
    row = next(line for line in lines if line.strip().startswith("ʉ"))
    assert row.split() == ["ʉ", "7", "5", "12"]
    assert next(line for line in lines if "missing %" in line).split()[-2:] == ["1.4", "5.0"]
    assert "        'ʉ': 'close_round_vowel'," in lines
    assert "        'sx': 'postalveolar'," in lines and "        'ɵː': 'mid_round_vowel'," in lines
    assert table.table() == ""  # counted once
    # The declared lines are valid: registering them gives every phone an id and a class.
    declared = eval("{" + "".join(line for line in lines if line.startswith("        ")) + "}")
    assert set(declared) == {"ʉ", "ʂ", "sx", "ɵː"}
    assert all(visemes.own_classes(p) == tuple(v.split("+")) for p, v in declared.items())
