"""SentencePiece tokenizers: fixed special ids, shrinking vocab, load errors, ensure from TFDS,
and the verified training of real text (every character encodes and decodes back)."""

import logging

import pytest

from lipjax import languages
from lipjax.data import tokenizer as corpus_tokenizer
from lipjax.units import tokenizer
from tests import fixtures_builder

TEXTS = ["the cat sat on the mat", "a dog ran far away", "the big red sun", "house and tree"] * 5


def test_special_ids_and_roundtrip(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        sp = tokenizer.train_tokenizer(TEXTS, tmp_path / "tok" / "en.model", vocab_size=1000)
    assert "supports only" in caplog.text  # tiny text: the vocabulary shrank
    assert 4 < sp.get_piece_size() < 1000
    assert (sp.pad_id(), sp.unk_id(), sp.bos_id(), sp.eos_id()) == (0, 1, 2, 3)
    ids = sp.encode("the dog sat")
    assert min(ids) > tokenizer.EOS
    assert sp.decode(ids) == "the dog sat"
    assert (tmp_path / "tok" / "en.model").exists()


def test_vocab_size_respected_when_text_allows(tmp_path):
    sp = tokenizer.train_tokenizer(TEXTS, tmp_path / "en.model", vocab_size=25)
    assert sp.get_piece_size() == 25


def test_load_missing_names_build_command(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m data_builders.synthetic_lips") as e:
        tokenizer.load_tokenizer("es", tmp_path)
    assert str(languages.get("es").tokenizer_path(tmp_path)) in str(e.value)
    assert "python -m data_builders tokenizer es --sources mls/es/train" in str(e.value)


# "nª" (nuestra) keeps its "ª" through the Spanish normaliser; SentencePiece's default NFKC
# would turn it into "a". The text has no "q", "x", "ú".
SPANISH = ["nª señora del carmen", "el niño come pan", "la canción de la región"] * 3


def test_round_trip_check_names_changed_and_missing_characters(tmp_path):
    assert languages.get("es").normalize("Nª Señora del Carmen") == SPANISH[0]
    nfkc = tokenizer.train_tokenizer(SPANISH, tmp_path / "nfkc.model", vocab_size=60)
    failures = {f.char: f for f in tokenizer.unencodable(nfkc, SPANISH, alphabet="qª")}
    assert set(failures) == {"ª", "q"}
    assert not failures["ª"].unknown and failures["ª"].example == SPANISH[0]
    assert failures["ª"].index == 0
    assert failures["q"].unknown and failures["q"].example == ""


def test_verified_training_keeps_every_character_and_the_alphabet(tmp_path):
    es = languages.get("es")
    trained = tokenizer.train_verified(SPANISH, tmp_path / "es.model", 1000,
                                       alphabet=es.alphabet)
    sp = trained.processor
    assert trained.pieces == sp.get_piece_size() < trained.requested == 1000
    assert tokenizer.unencodable(sp, SPANISH, es.alphabet) == []
    assert "q" in trained.added and "ª" in trained.characters
    for text in SPANISH[:3] + ["qué tal señoras", "xilófono útil"]:
        assert tokenizer.UNK not in sp.encode(text) and sp.decode(sp.encode(text)) == text
    assert tokenizer.piece_count(tmp_path / "es.model") == sp.get_piece_size()


def test_verified_training_refuses_what_it_cannot_encode(tmp_path):
    """0.98 coverage drops the rarest characters outside the alphabet ("ç", "ª"): an error, no
    file."""
    texts = SPANISH * 4 + ["françois"]
    with pytest.raises(tokenizer.EncodingError, match=r"'ç' \(U\+00E7\) has no piece e\.g\. "
                       r"in 'françois'") as e:
        tokenizer.train_verified(texts, tmp_path / "es.model", 1000,
                                 alphabet=languages.get("es").alphabet, character_coverage=0.98)
    assert [f.char for f in e.value.failures] == ["ª", "ç"]
    assert not (tmp_path / "es.model").exists()
    with pytest.raises(tokenizer.VocabularyTooSmall, match="Ask for at least") as e:
        tokenizer.train_verified(texts, tmp_path / "es.model", 10)
    assert e.value.needed > 10


def test_ensure_trains_from_tfds_train_text(tmp_path):
    data_dir = fixtures_builder.build(str(tmp_path), langs=("es",), modalities=("audio",),
                                      tokenizers=False)
    path = languages.get("es").tokenizer_path(data_dir)
    assert not path.exists()
    sp = corpus_tokenizer.ensure_tokenizer("es", data_dir, builder=fixtures_builder.BUILDER)
    assert path.exists()
    text = fixtures_builder.example("es", "audio", "train", 0)["text"]
    assert tokenizer.UNK not in sp.encode(text)
    again = corpus_tokenizer.ensure_tokenizer("es", data_dir, builder=fixtures_builder.BUILDER)
    assert again.serialized_model_proto() == sp.serialized_model_proto()
