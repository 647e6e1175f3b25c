"""SentencePiece tokenizers: fixed special ids, shrinking vocab, load errors, ensure from TFDS."""

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
