"""LRS3 builder: real layout from dummy_data/, mouth crops, tag stripping, bad-item counts."""

import dataclasses

import numpy as np
import pytest

from data_builders.lrs3 import lrs3_dataset_builder as lrs3
from data_builders.manual_corpus import BadItem
from lipjax import preprocess
from tests.manual_corpus_testing import check_builder


def test_parse_transcript_strips_tags():
    raw = "Text:  AND THEN THERE'S THIS {LG}\nConf:  4\n\nWORD START END ASDSCORE\nAND 0.1 0.2 7\n"
    assert lrs3.parse_transcript(raw) == "AND THEN THERE'S THIS"
    with pytest.raises(BadItem, match="bad_transcript"):
        lrs3.parse_transcript("Conf:  4\n")


def test_split_words_cuts_at_the_longest_pause():
    words = [("A", 0.0, 0.5), ("B", 0.6, 1.0), ("C", 2.0, 2.5), ("D", 2.6, 3.0), ("E", 3.1, 9.0)]
    pieces = lrs3.split_words(words, max_seconds=3.0)
    assert [[w for w, _, _ in p] for p in pieces] == [["A", "B"], ["C", "D"], ["E"]]
    assert lrs3.split_words(words, max_seconds=10.0) == [words]
    raw = "Text:  A {LG}\nConf:  4\n\nWORD START END ASDSCORE\nA 0.1 0.2 1.0\n{LG} 0.3 0.5 1.0\n"
    assert lrs3.parse_words(raw) == [("A", 0.1, 0.2)]
    frames = raw + "\nFRAME X Y W H\n1 0.4 0.5 0.1 0.1\n"
    assert lrs3.parse_words("Ref:  A\n" + frames) == [("A", 0.1, 0.2)]


def test_build_lrs3(tmp_path):
    # Pretrain clips over 0.3 s are cut: the 0.7 s dummy clip becomes two pieces.
    # A crop made beforehand (`python -m lipjax.preprocess`) is used instead of cropping again.
    test_clip = lrs3.Builder.code_path.parent / "dummy_data/lrs3/test/t3st_Id-0a1/00001.mp4"
    frames = -(-len(preprocess.load_audio(test_clip)) // 640)
    precomputed = np.full((frames, 96, 96), 7, np.uint8)
    (tmp_path / "roi/lrs3/test/t3st_Id-0a1").mkdir(parents=True)
    np.savez_compressed(tmp_path / "roi/lrs3/test/t3st_Id-0a1/00001.npz", video=precomputed)
    config = dataclasses.replace(lrs3.Builder.builder_configs["en"], name="en_cut",
                                 pretrain_max_seconds=0.3, roi_dir=str(tmp_path / "roi"))
    splits = {"pretrain": 2, "train": 1, "validation": 1, "test": 1}
    examples, log = check_builder(lrs3.Builder, config, splits, tmp_path)
    by_id = {ex["id"]: ex for exs in examples.values() for ex in exs}
    # YouTube ids with "_" and "-" survive; {LG}/{NS} tags are gone; text is normalised.
    first, second = by_id["pretrain/Xy_z-1AbC_9/00001_00"], by_id["pretrain/Xy_z-1AbC_9/00001_01"]
    assert (first["text"], second["text"]) == ("the world", "is big")
    assert abs(len(first["video"]) - 0.29 * 25) <= 1 and abs(len(first["audio"]) - 0.29 * 16000) < 2
    assert by_id["trainval/aB_cD-eF0gH/00005"]["text"] == "good morning"
    ex = by_id["test/t3st_Id-0a1/00001"]
    assert ex["speaker"] == "t3st_Id-0a1" and ex["language"] == "en"
    np.testing.assert_array_equal(ex["video"], precomputed)
    assert by_id["trainval/aB_cD-eF0gH/00001"]["video"].shape[1:] == (96, 96)
    assert abs(len(ex["audio"]) / 640 - len(ex["video"])) <= 2  # audio and video in step
    ids = ex["phoneme_ids"]  # "thank you": two words, one boundary (id 1)
    assert ex["phonemes"].count(" | ") == 1 and (ids == 1).sum() == 1 and (ids > 1).sum() >= 4
    assert len(ex["units"]) == 0  # units_k = 0
    # Skipped and counted per reason, with the file named.
    assert "empty_transcript: 1" in log and "k_9Zz0-Q1w2/00001" in log
    assert "missing_file: 1" in log and "k_9Zz0-Q1w2/00002" in log
    assert "no_face: 1" in log and "t3st_Id-0a1/00002" in log
    assert np.all([len(e["text"]) for e in by_id.values()])
