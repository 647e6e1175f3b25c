"""MLS builder: flac and opus layouts, limited-supervision subset, bad-item counts."""

from data_builders.mls import mls_dataset_builder as mls
from tests.manual_corpus_testing import check_builder


def test_build_mls_flac(tmp_path):
    examples, log = check_builder(mls.Builder, "es", {"train": 2, "validation": 1, "test": 1},
                                  tmp_path)
    ex = {e["id"]: e for e in examples["train"]}["4800_10003_000000"]
    assert ex["text"] == "oh mi querida amiga" and ex["speaker"] == "4800"
    assert ex["language"] == "es" and "video" not in ex and len(ex["audio"]) > 8000
    assert len(ex["phoneme_ids"]) > 5
    assert "missing_file: 1" in log and "4800_10003_000002.flac" in log


def test_build_mls_opus_subset(tmp_path):
    examples, _ = check_builder(mls.Builder, "pt_9hr", {"train": 1, "validation": 1, "test": 1},
                                tmp_path)
    assert [e["id"] for e in examples["train"]] == ["4800_10003_000000"]
    assert examples["test"][0]["text"] == "buenas noches"
