"""`python -m data_builders NAME --roi_dir DIR`: an option that only says where inputs are keeps
the config's own name (TFDS refuses a changed config under a registered name, so the build
command has to make that builder itself); an option that changes the data never takes a
registered name."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow_datasets as tfds

from data_builders import build, registry
from data_builders.lrs3 import lrs3_dataset_builder as lrs3
from lipjax import preprocess

DUMMY = lrs3.Builder.code_path.parent / "dummy_data"


def test_roi_dir_builds_the_config_under_its_own_name(tmp_path, capsys):
    clip = DUMMY / "lrs3/test/t3st_Id-0a1/00001.mp4"
    frames = -(-len(preprocess.load_audio(clip)) // 640)
    made = np.full((frames, 96, 96), 7, np.uint8)  # no crop of a face looks like this
    (tmp_path / "roi/lrs3/test/t3st_Id-0a1").mkdir(parents=True)
    np.savez_compressed(tmp_path / "roi/lrs3/test/t3st_Id-0a1/00001.npz", video=made)
    assert build.main(["lrs3", "--manual_dir", str(DUMMY), "--data_dir", str(tmp_path / "data"),
                       "--roi_dir", str(tmp_path / "roi")]) == 0
    assert "lrs3/en: {" in capsys.readouterr().out
    (test_clip,) = tfds.data_source("lrs3/en", split="test", data_dir=str(tmp_path / "data"))
    np.testing.assert_array_equal(test_clip["video"], made)
    # The registered config itself is untouched: a later build without the option crops anew.
    assert registry.builder_cls("lrs3").builder_configs["en"].roi_dir == ""


def test_a_registered_name_for_other_data_is_refused():
    cls = registry.builder_cls("lrs3")
    with pytest.raises(SystemExit, match="'en', the name of a config of lrs3 built without"):
        build.resolve_configs(cls, ["en"], {"units_k": 8}, new_name="en")
    (config,) = build.resolve_configs(cls, ["en"], {"roi_dir": "/crops"}, new_name="en")
    assert (config.name, config.roi_dir) == ("en", "/crops")
