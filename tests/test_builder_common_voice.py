"""Common Voice builder: v17 header read by name, mp3 at 48 kHz, bad-item counts."""

from data_builders.common_voice import common_voice_dataset_builder as cv
from tests.manual_corpus_testing import check_builder


def test_build_common_voice(tmp_path):
    examples, log = check_builder(cv.Builder, "it", {"train": 2, "validation": 1, "test": 1},
                                  tmp_path)
    by_id = {e["id"]: e for exs in examples.values() for e in exs}
    assert set(by_id) == {"common_voice_it_1", "common_voice_it_3", "common_voice_it_5",
                          "common_voice_it_6"}
    ex = by_id["common_voice_it_1"]
    assert ex["text"] == "buongiorno a tutti" and ex["speaker"] == "c1a"
    assert ex["language"] == "it" and 4000 < len(ex["audio"]) < 48000  # resampled to 16 kHz
    assert "empty_transcript: 1" in log and "missing_file: 1" in log
    assert "common_voice_it_4.mp3" in log
