"""The grain input pipeline on a real (tiny) TFDS array_record corpus."""

import collections

import grain
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from lipjax import languages
from lipjax.data import pipeline, sharding, source
from lipjax.data.transforms import MEAN_PIXEL
from lipjax.models.frontend import normalize
from lipjax.schema import MEAN, STD
from lipjax.units import acoustic, tokenizer
from tests import fixtures_builder as fb

BUCKETS = (32, 64, 96)


@pytest.fixture(scope="module")
def data_dir():
    return fb.tiny_data_dir()


def _cfg(data_dir, **overrides):
    cfg = dict(builder=fb.BUILDER, data_dir=data_dir, sources=[("en_video", 1.0)], batch_size=4,
               frame_buckets=BUCKETS, max_frames=96, token_bucket=8, crop=88, hflip=True,
               time_mask_frames=6, time_masks=2, tokenizer_vocab=1000, num_workers=0)
    cfg.update(overrides)
    return ml_collections.ConfigDict(cfg)


def _source_example(ex_id):
    lang, modality, split, i = ex_id.split("_")
    return fb.example(lang, modality, split, int(i))


def _take(loader, n):
    return [next(loader) for _ in range(n)]


def _assert_same(batches_a, batches_b):
    assert len(batches_a) == len(batches_b)
    for a, b in zip(batches_a, batches_b, strict=True):
        assert a.keys() == b.keys()
        for k in a:
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_train_batch_shapes_dtypes_and_masks(data_dir):
    loader = pipeline.make_loader(_cfg(data_dir), "train", train=True, seed=0)
    for batch in _take(loader, 4):
        b, t = batch["frame_mask"].shape
        assert b == 4 and t in BUCKETS
        assert batch["video"].shape == (b, t, 88, 88) and batch["video"].dtype == np.uint8
        assert batch["video_mask"].dtype == bool
        np.testing.assert_array_equal(batch["video_mask"], batch["frame_mask"])
        for key, mask in (("units", "frame_mask"), ("dedup_units", "dedup_units_mask"),
                          ("phoneme_ids", "phoneme_mask"), ("tokens", "token_mask")):
            assert batch[key].dtype == np.int32 and batch[mask].dtype == bool
            assert batch[key].shape == batch[mask].shape
            assert (batch[key][~batch[mask]] == 0).all(), key  # padding is zero
        for key in ("tokens", "phoneme_ids", "dedup_units"):
            assert batch[key].shape[1] % 8 == 0
        assert batch["language"].dtype == np.int32 and batch["valid"].all()
        assert batch["id"].dtype == object and batch["text"].dtype == object
        # Padding frames are zero-valued (the model zeroes them again after normalising).
        assert (batch["video"][~batch["video_mask"]] == 0).all()
        sp = tokenizer.load_tokenizer("en", data_dir)
        for row, ex_id in enumerate(batch["id"]):
            ex = _source_example(ex_id)
            n = len(ex["video"])
            assert batch["frame_mask"][row].sum() == n and batch["frame_mask"][row, :n].all()
            np.testing.assert_array_equal(batch["units"][row, :n], ex["units"])
            dd = acoustic.dedup(ex["units"])
            np.testing.assert_array_equal(batch["dedup_units"][row, :len(dd)], dd)
            assert batch["dedup_units_mask"][row].sum() == len(dd)
            assert batch["text"][row] == ex["text"]
            tokens = batch["tokens"][row][batch["token_mask"][row]]
            assert tokens.tolist() == sp.encode(ex["text"])  # no BOS/EOS
            assert batch["language"][row] == languages.index("en")


def test_eval_centre_crop_and_normalisation(data_dir):
    loader = pipeline.make_loader(_cfg(data_dir), "validation", train=False, seed=0)
    batch = next(iter(loader))
    ex = _source_example(batch["id"][0])
    n = len(ex["video"])
    crop = ex["video"][:, 4:92, 4:92]
    np.testing.assert_array_equal(batch["video"][0, :n], crop)  # uint8 pixels to the device
    expected = (crop.astype(np.float32) / 255 - MEAN) / STD  # what the front end computes
    got = np.asarray(normalize(jnp.asarray(batch["video"][0, :n])))
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_augmentation_is_seeded_not_global(data_dir):
    a = _take(pipeline.make_loader(_cfg(data_dir), "train", train=True, seed=3), 3)
    np.random.seed(123)  # global numpy state must not matter
    b = _take(pipeline.make_loader(_cfg(data_dir), "train", train=True, seed=3), 3)
    _assert_same(a, b)
    c = _take(pipeline.make_loader(_cfg(data_dir), "train", train=True, seed=4), 3)
    assert not all(np.array_equal(x["video"], y["video"]) for x, y in zip(a, c, strict=True))


def test_augmentation_crops_flips_and_masks(data_dir):
    cfg = _cfg(data_dir, time_masks=3, time_mask_frames=8)
    loader = pipeline.make_loader(cfg, "train", train=True, seed=0)
    flipped = cropped_off_centre = masked = 0
    for batch in _take(loader, 8):
        for row, ex_id in enumerate(batch["id"]):
            raw = _source_example(ex_id)["video"].astype(np.float32) / 255
            got = batch["video"][row, :len(raw)].astype(np.float32) / 255
            live = np.abs(got).sum((1, 2)) > 0
            # Time-masked frames show the dataset's mean pixel everywhere.
            mean_frames = (batch["video"][row, :len(raw)] == MEAN_PIXEL).all((1, 2))
            masked += mean_frames.sum()
            frame = int(np.argmax(~mean_frames))
            found = None
            for top in range(9):
                for left in range(9):
                    crop = raw[frame, top:top + 88, left:left + 88]
                    for flip in (False, True):
                        c = crop[:, ::-1] if flip else crop
                        if np.allclose(c, got[frame], atol=1e-4):
                            found = (top, left, flip)
            assert found is not None and live.any()
            flipped += found[2]
            cropped_off_centre += found[:2] != (4, 4)
    assert 0 < flipped < 32 and cropped_off_centre > 16 and masked > 0


def test_mixing_weights(data_dir):
    cfg = _cfg(data_dir, sources=[("en_video", 3.0), ("es_video", 1.0)], batch_size=8)
    loader = pipeline.make_loader(cfg, "train", train=True, seed=0)
    batches = _take(loader, 12)
    langs = np.concatenate([b["language"] for b in batches])
    share = (langs == languages.index("en")).mean()
    assert 0.65 < share < 0.85, share
    # Each row says which data.sources entry it came from.
    sources = np.concatenate([b["source"] for b in batches])
    np.testing.assert_array_equal(sources, np.where(langs == languages.index("en"), 0, 1))
    counts = loader.clip_counts()
    assert sum(c["read"] for c in counts.values()) == len(langs)  # max_frames drops none
    assert counts["lipjax_fixture/en_video/train"]["read"] == (sources == 0).sum()


@pytest.mark.parametrize("num_workers", [0, 1])
def test_restore_continues_identical_stream(data_dir, num_workers):
    # max_frames=64 filters long clips, so the state must count filtered elements right.
    cfg = _cfg(data_dir, sources=[("en_video", 1.0), ("es_video", 2.0)], max_frames=64,
               num_workers=num_workers)
    loader = pipeline.make_loader(cfg, "train", train=True, seed=7)
    _take(loader, 5)  # more than one epoch of the shorter source
    state = loader.get_state()
    expected = _take(loader, 6)
    loader.close()
    restored = pipeline.make_loader(cfg, "train", train=True, seed=7)
    restored.set_state(state)
    _assert_same(_take(restored, 6), expected)
    restored.close()
    assert all((b["frame_mask"].sum(1) <= 64).all() for b in expected)


def test_loader_is_a_grain_iterator_for_checkpointing(data_dir):
    loader = pipeline.make_loader(_cfg(data_dir), "train", train=True, seed=0)
    assert isinstance(loader, grain.DatasetIterator)
    assert iter(loader) is loader


def test_eval_covers_every_example_once(data_dir):
    cfg = _cfg(data_dir, sources=[("en_video", 1.0), ("es_video", 5.0)], batch_size=4)
    loader = pipeline.make_loader(cfg, "validation", train=False, seed=0)
    batches = list(loader)
    assert len(batches) == len(loader) == -(-2 * fb.SIZES["video"]["validation"] // 4)
    ids = [i for b in batches for i, v in zip(b["id"], b["valid"], strict=True) if v]
    expected = {f"{lang}_video_validation_{i:04d}" for lang in ("en", "es")
                for i in range(fb.SIZES["video"]["validation"])}
    assert sorted(ids) == sorted(expected)
    for b in batches:
        for i, v, src in zip(b["id"], b["valid"], b["source"], strict=True):
            assert not v or src == ("en", "es").index(i[:2])
    last = batches[-1]
    assert not last["valid"].all() and last["video"].shape[0] == 4
    pad = ~last["valid"]
    for key in ("frame_mask", "video_mask", "token_mask", "phoneme_mask", "dedup_units_mask"):
        assert not last[key][pad].any()
    assert (last["video"][pad] == 0).all()
    assert len(list(loader)) == len(batches)  # a second pass starts again


def test_eval_shards_cover_once_across_processes(data_dir, monkeypatch):
    cfg = _cfg(data_dir, sources=[("en_video", 1.0), ("es_video", 1.0)], batch_size=6)
    seen, lengths = collections.Counter(), set()
    for index in range(3):
        monkeypatch.setattr(pipeline, "process_shard",
                            lambda i=index: grain.sharding.ShardOptions(i, 3))
        loader = pipeline.make_loader(cfg, "validation", train=False, seed=0)
        batches = list(loader)
        lengths.add(len(batches))
        assert all(b["valid"].shape == (2,) for b in batches)
        seen.update(i for b in batches for i, v in zip(b["id"], b["valid"], strict=True) if v)
    assert len(lengths) == 1  # every process runs the same number of eval steps
    assert len(seen) == 2 * fb.SIZES["video"]["validation"] and set(seen.values()) == {1}


def test_shard_range_partitions():
    for n in (0, 1, 7, 10):
        for count in (1, 2, 3, 4):
            covered = [i for p in range(count) for i in range(*pipeline.shard_range(n, p, count))]
            assert covered == list(range(n))


def test_audio_config_batches(data_dir):
    cfg = _cfg(data_dir, sources=[("en_audio", 1.0), ("es_audio", 1.0)])
    batch = next(pipeline.make_loader(cfg, "train", train=True, seed=0))
    assert "video" not in batch and "video_mask" not in batch
    for row, ex_id in enumerate(batch["id"]):
        ex = _source_example(ex_id)
        assert batch["frame_mask"][row].sum() == len(ex["audio"]) // 640


def test_mixing_video_and_audio_is_an_error(data_dir):
    cfg = _cfg(data_dir, sources=[("en_video", 1.0), ("en_audio", 1.0)])
    with pytest.raises(ValueError, match="mixes video and audio"):
        pipeline.make_loader(cfg, "train", train=True, seed=0)


def test_missing_dataset_error_names_everything(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        source.open_source(fb.BUILDER, "en_video", "train", tmp_path)
    message = str(e.value)
    for part in (fb.BUILDER, "en_video", str(tmp_path), "Build it with"):
        assert part in message
    command = source.build_command("synthetic_lips", "it_video", "/data")
    assert command == ("python -m data_builders.synthetic_lips --data_dir /data --langs it "
                       "--modalities video")


def test_to_global(data_dir):
    batch = next(pipeline.make_loader(_cfg(data_dir), "train", train=True, seed=0))
    mesh = jax.make_mesh((1,), ("data",))
    out = sharding.to_global(batch, mesh)
    assert "id" not in out and "text" not in out
    assert out["video"].shape == batch["video"].shape
    assert out["video"].sharding.spec == jax.sharding.PartitionSpec("data")
    np.testing.assert_array_equal(np.asarray(out["tokens"]), batch["tokens"])


def test_two_processes_agree_on_shapes_and_split_eval(data_dir, tmp_path):
    import json
    import os
    import subprocess
    import sys

    import portpicker

    port = portpicker.pick_unused_port()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root, JAX_PLATFORMS="cpu")
    env.pop("XLA_FLAGS", None)
    procs = [subprocess.Popen(
            [sys.executable, "-c", "import sys; from tests.fixtures_builder import "
             "multiprocess_worker as w; w(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), "
             "sys.argv[4])", data_dir, str(i), str(port), str(tmp_path / f"p{i}.json")],
            cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for i in range(2)]
    for p in procs:
        out, _ = p.communicate(timeout=300)
        assert p.returncode == 0, out[-3000:]
    results = [json.loads((tmp_path / f"p{i}.json").read_text()) for i in range(2)]
    a, b = results
    assert a["global_shapes"] == b["global_shapes"]
    assert all(s["video"][0] == 8 for s in a["global_shapes"])
    for shapes, fa, fb_ in zip(a["global_shapes"], a["local_frames"], b["local_frames"],
                               strict=True):
        assert shapes["video"][1] == max(fa, fb_)  # padded to the larger process's bucket
    assert a["eval_batches"] == b["eval_batches"]
    ids = a["eval_ids"] + b["eval_ids"]
    assert len(ids) == len(set(ids)) == 2 * fb.SIZES["video"]["validation"]
