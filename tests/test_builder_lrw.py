"""LRW builder: word label from the folder, mouth crops, a clip without video counted."""

from data_builders.lrw import lrw_dataset_builder as lrw
from tests.manual_corpus_testing import check_builder


def test_build_lrw(tmp_path):
    examples, log = check_builder(lrw.Builder, "en", {"train": 2, "validation": 2, "test": 2},
                                  tmp_path)
    by_id = {e["id"]: e for exs in examples.values() for e in exs}
    about, world = by_id["ABOUT/train/ABOUT_00001"], by_id["WORLD/test/WORLD_00001"]
    assert (about["label"], about["text"]) == (0, "about")
    assert (world["label"], world["text"]) == (1, "world")
    assert about["video"].shape[1:] == (96, 96) and len(about["video"]) > 5
    assert "missing_file: 1" in log and "ABOUT_00002.mp4" in log
