"""VoxCeleb2 builder: unlabelled video, dev/test from the layout and meta csv, units only."""

import dataclasses

from data_builders.voxceleb2 import voxceleb2_dataset_builder as vox2
from tests.manual_corpus_testing import check_builder


def test_read_meta_strips_padding(tmp_path):
    path = tmp_path / "vox2_meta.csv"
    path.write_text("VoxCeleb2 ID ,VGGFace2 ID ,Gender ,Set \nid00012 ,n000012 ,m ,dev \n")
    from etils import epath

    assert vox2.read_meta(epath.Path(path)) == {"id00012": "dev"}


def test_build_voxceleb2(tmp_path):
    config = dataclasses.replace(vox2.Builder.builder_configs["units100"], name="units8",
                                 units_k=8)
    examples, log = check_builder(vox2.Builder, config, {"train": 3, "test": 1}, tmp_path)
    by_id = {ex["id"]: ex for exs in examples.values() for ex in exs}
    assert set(by_id) == {"id00012/21Uxsk56VDQ/00001", "id00012/21Uxsk56VDQ/00002",
                          "id00015/0_aB-cD1eF2g/00001", "id00017/xY_-zz01Q9w/00001"}
    assert [ex["id"] for ex in examples["test"]] == ["id00017/xY_-zz01Q9w/00001"]
    for ex in by_id.values():
        assert ex["text"] == "" and ex["phonemes"] == "" and len(ex["phoneme_ids"]) == 0
        assert ex["language"] == "und" and ex["video"].shape[1:] == (96, 96)
        assert len(ex["units"]) == -(-len(ex["audio"]) // 640) and ex["units"].max() < 8
    assert "undecodable_video: 1" in log and "id00015/0_aB-cD1eF2g/00002.mp4" in log
