"""VoxPopuli builder: ids with ':', raw_text fallback, Ogg Vorbis, bad-item counts."""

from data_builders.voxpopuli import voxpopuli_dataset_builder as voxpopuli
from tests.manual_corpus_testing import check_builder


def test_build_voxpopuli(tmp_path):
    examples, log = check_builder(voxpopuli.Builder, "fr",
                                  {"train": 2, "validation": 1, "test": 1}, tmp_path)
    by_id = {e["id"]: e for e in examples["train"]}
    assert by_id["20180111-0900-PLENARY-15-fr_20180111-17:08:12_0"]["text"] == "merci monsieur"
    # Empty normalized_text: the raw text is normalised instead.
    assert by_id["20180111-0900-PLENARY-15-fr_20180111-17:09:40_3"]["text"] == "bonjour à tous"
    ex = examples["test"][0]
    assert ex["text"] == "non" and ex["language"] == "fr" and len(ex["audio"]) > 1000
    assert "empty_transcript: 1" in log and "17:08" not in log
