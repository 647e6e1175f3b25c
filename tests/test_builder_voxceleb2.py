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


def test_unlabelled_clips_train_stage1_with_acoustic_units_only(tmp_path):
    """VoxCeleb2 (language "und") feeds stage 1's acoustic-unit head; its clips carry language
    -1, which the language-ID loss leaves out; any other use names the fix."""
    import numpy as np
    import pytest

    from configs import units_pretrain
    from lipjax.data.pipeline import make_loader

    config = dataclasses.replace(vox2.Builder.builder_configs["units100"], name="units8",
                                 units_k=8)
    check_builder(vox2.Builder, config, {"train": 3, "test": 1}, tmp_path)
    arg = f"tiny,data_dir={tmp_path},sources=voxceleb2/units8/train@test"
    acoustic = units_pretrain.get_config(arg + ",units=acoustic")
    acoustic.data.long_clips = "crop"
    batch = next(make_loader(acoustic.data, "train", train=True, seed=0))
    assert (batch["language"] == -1).all() and batch["units"].max() < 8
    assert np.asarray(batch["units"]).any()
    phonemes = units_pretrain.get_config(arg + ",units=phoneme")
    with pytest.raises(ValueError, match="unlabelled clips.*units=acoustic"):
        make_loader(phonemes.data, "train", train=True, seed=0)


def test_language_id_loss_leaves_unlabelled_clips_out():
    import jax.numpy as jnp
    import numpy as np
    import optax

    from lipjax import languages
    from lipjax.tasks.units_pretrain import lid_loss

    assert languages.index(languages.UNLABELLED) == -1
    logits = jnp.array([[2.0, 0.0], [0.0, 3.0], [5.0, -5.0]])
    loss, accuracy = lid_loss(logits, jnp.array([0, 0, -1]))
    # Two labelled clips: one right (row 0), one wrong (row 1); row 2 has no language.
    expected = optax.softmax_cross_entropy_with_integer_labels(logits[:2], jnp.array([0, 0]))
    np.testing.assert_allclose(loss, expected.mean(), rtol=1e-6)
    assert float(accuracy) == 0.5
