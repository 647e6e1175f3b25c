"""The synthetic_lips TFDS builder: every config builds (tiny sizes) into array_record and reads
back with `tfds.data_source`, without TensorFlow; builds are deterministic.

`tfds.testing.DatasetBuilderTestCase` subclasses `tf.test.TestCase` and reads with `as_dataset`,
so it cannot run without TensorFlow; `_check_like_dataset_builder_test_case` performs its checks
(registration, os/open forbidden in the builder module, keys not local paths, split sizes, every
example decodes to the declared features, splits do not overlap, a reloaded builder sees the same
metadata, the default config exists) through `as_data_source`.
"""

from __future__ import annotations

import os
import pathlib
from unittest import mock

import numpy as np
import pytest
import tensorflow_datasets as tfds

from data_builders.synthetic_lips import synthetic_lips_dataset_builder as sl
from lipjax.data.features import ROI_SIZE, SAMPLES_PER_FRAME
from lipjax.synth import generate
from lipjax.units import phonemes

TINY = {"train": 3, "validation": 2, "test": 2}
CONFIGS = [f"{lang}_{m}" for lang in sl.LANGUAGES for m in sl.MODALITIES]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> pathlib.Path:
    tfds.disable_progress_bar()
    return tmp_path_factory.mktemp("synthetic_lips_data")


def _forbid_os_and_open(module_name: str) -> list:
    err = AssertionError("Builders must use etils.epath, not `os` or `open`.")
    mock_path = mock.Mock(os.path, wraps=os.path)
    mock_path.sep = os.path.sep
    for name in ("exists", "isdir", "isfile", "getsize"):
        getattr(mock_path, name).side_effect = err
    mock_os = mock.Mock(os, path=mock_path, fspath=os.fspath)
    for name in ("listdir", "walk", "makedirs", "mkdir", "remove", "rename", "stat"):
        getattr(mock_os, name).side_effect = err
    builtins = dict(__builtins__ if isinstance(__builtins__, dict) else vars(__builtins__))
    builtins["open"] = mock.Mock(side_effect=err)
    patchers = [mock.patch(f"{module_name}.os", mock_os, create=True),
                mock.patch(f"{module_name}.__builtins__", builtins)]
    for p in patchers:
        p.start()
    return patchers


def _prepare(config: str, data_dir: pathlib.Path, sizes=TINY, seed: int = 0):
    builder = sl.Builder(config=config, data_dir=os.fspath(data_dir), sizes=sizes, seed=seed)
    original = builder._generate_examples

    def checked(*args, **kwargs):
        for key, example in original(*args, **kwargs):
            assert os.fspath(data_dir) not in str(key), f"key {key} holds a local path"
            yield key, example

    patchers = _forbid_os_and_open(sl.__name__)
    try:
        with mock.patch.object(builder, "_generate_examples", checked):
            builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
                    compute_stats=tfds.download.ComputeStatsMode.SKIP))
    finally:
        for p in patchers:
            p.stop()
    return builder


def _check_like_dataset_builder_test_case(builder, config: str, data_dir: pathlib.Path) -> dict:
    assert tfds.builder_cls("synthetic_lips") is sl.Builder
    assert builder.info.file_format.value == "array_record"
    assert builder.info.splits.total_num_examples == sum(TINY.values())
    tensor_info = builder.info.features.get_tensor_info()
    seen: dict[str, list[dict]] = {}
    for split, n in TINY.items():
        assert builder.info.splits[split].num_examples == n
        source = tfds.data_source(f"synthetic_lips/{config}", split=split,
                                  data_dir=os.fspath(data_dir))
        assert len(source) == n
        seen[split] = []
        for i in range(n):
            example = source[i]
            assert set(example) == set(tensor_info)
            for key, info in tensor_info.items():
                if info.np_dtype == np.object_:
                    assert isinstance(example[key], bytes | str), key
                    continue
                value = np.asarray(example[key])
                assert value.dtype == info.np_dtype, (key, value.dtype, info.np_dtype)
                assert len(value.shape) == len(info.shape), (key, value.shape, info.shape)
            seen[split].append({k: v.decode() if isinstance(v, bytes) else v
                                for k, v in example.items()})
    ids = {split: {ex["id"] for ex in exs} for split, exs in seen.items()}
    texts = {split: {ex["text"] for ex in exs} for split, exs in seen.items()}
    for a in TINY:
        for b in TINY:
            if a < b:
                assert not ids[a] & ids[b], f"splits {a} and {b} share ids"
                assert not texts[a] & texts[b], f"splits {a} and {b} share examples"
    reloaded = sl.Builder(config=config, data_dir=os.fspath(data_dir))
    for split, n in TINY.items():
        assert reloaded.info.splits[split].num_examples == n
    assert sl.Builder.DEFAULT_BUILDER_CONFIG_NAME in (None, *sl.Builder.builder_configs)
    return seen


@pytest.mark.parametrize("config", CONFIGS)
def test_config_builds_and_reads_back(config: str, data_dir: pathlib.Path):
    lang, modality = config.split("_")
    builder = _prepare(config, data_dir)
    seen = _check_like_dataset_builder_test_case(builder, config, data_dir)
    inventory = phonemes.load_inventory()
    for ex in (ex for exs in seen.values() for ex in exs):
        assert ex["language"] == lang and ex["speaker"].startswith("spk")
        frames = -(-len(ex["audio"]) // SAMPLES_PER_FRAME)
        assert 1.0 <= len(ex["audio"]) / 16000 <= 3.0 + 1e-6
        assert ex["units"].shape == (frames,) and ex["units"].max() < sl.UNITS_K
        assert " ".join(inventory.decode(ex["phoneme_ids"])) == ex["phonemes"]
        # Both modalities know the phone at each frame (the synthesizer's timings).
        assert ex["frame_phonemes"].shape == (frames,)
        assert (ex["frame_phonemes"] > 1).mean() > 0.5  # mostly speech, labelled
        if modality == "video":
            assert ex["video"].shape == (frames, ROI_SIZE, ROI_SIZE)
        else:
            assert "video" not in ex
    assert (data_dir / "units" / f"{sl.CODEBOOK_NAME}.npy").exists()


def test_build_function_sizes_and_seed_are_deterministic(tmp_path: pathlib.Path):
    from data_builders.synthetic_lips.build import build

    sizes = {"train": 2, "validation": 1, "test": 1}
    for name in ("a", "b", "c"):
        build(["it"], ["video"], tmp_path / name, sizes=sizes, seed=1 if name == "c" else 0)

    def records(name: str) -> list[bytes]:
        folder = tmp_path / name / "synthetic_lips" / "it_video" / str(sl.Builder.VERSION)
        files = sorted(folder.glob("*.array_record*"))
        assert [f.name.split(".")[0].split("-")[1] for f in files] == ["test", "train",
                                                                       "validation"]
        return [f.read_bytes() for f in files]

    assert records("a") == records("b"), "same seed must give byte-identical files"
    assert records("a") != records("c"), "another seed must give another corpus"


def test_workers_do_not_change_clips():
    config = generate.ClipConfig("pt", video=True)
    centroids = np.random.default_rng(0).normal(size=(100, 39)).astype(np.float32)
    serial = list(generate.generate(config, "train", 16, centroids, num_workers=1,
                                    progress=False))
    parallel = list(generate.generate(config, "train", 16, centroids, num_workers=2,
                                      progress=False))
    for a, b in zip(serial, parallel, strict=True):
        assert a.key == b.key and a.features.keys() == b.features.keys()
        for key in a.features:
            assert np.array_equal(a.features[key], b.features[key]), key
    assert ("pt", True, "train") in generate.last_report  # the out-of-inventory report


def test_frame_phonemes_reach_the_batch(tmp_path: pathlib.Path):
    """The per-frame phone labels (stage 1's dense phoneme target) survive the data pipeline."""
    import ml_collections

    from lipjax.data import source
    from lipjax.data.pipeline import make_loader

    _prepare("it_video", tmp_path, sizes={"train": 3, "validation": 0, "test": 0})
    cfg = ml_collections.ConfigDict(dict(
        builder="synthetic_lips", data_dir=str(tmp_path), sources=[("it_video", 1.0)],
        batch_size=3, frame_buckets=(96,), max_frames=96, token_bucket=8, crop=88, hflip=False,
        time_mask_frames=0, time_masks=0, tokenizer_vocab=1000, num_workers=0, tokenize=False))
    batch = next(iter(make_loader(cfg, "train", train=False, seed=0)))
    ds = source.open_source("synthetic_lips", "it_video", "train", str(tmp_path))
    by_id = {source.as_str(ex["id"]): ex for ex in (ds[i] for i in range(len(ds)))}
    for row, ex_id in enumerate(batch["id"]):
        labels = by_id[ex_id]["frame_phonemes"]
        n = int(batch["video_mask"][row].sum())
        assert n == len(labels)
        np.testing.assert_array_equal(batch["frame_phonemes"][row, :n], labels)
        assert (batch["frame_phonemes"][row, n:] == 0).all()


def test_speakers_are_shared_across_languages_and_held_out_by_split():
    """One pool for all languages (a face says nothing about the language); validation and
    test speakers never speak in train."""
    from lipjax.synth import speakers

    seen: dict[str, dict[str, set[str]]] = {}
    for lang in ("en", "es", "it"):
        config = generate.ClipConfig(lang, video=False)
        for split in generate.SPLITS:
            for index in range(8):
                clip = generate.make_clip(config, split, index, None)
                seen.setdefault(split, {}).setdefault(clip.features["speaker"], set()).add(lang)
    train = set(seen["train"])
    assert not train & set(seen["validation"]) and not train & set(seen["test"])
    assert not set(seen["validation"]) & set(seen["test"])
    assert any(len(langs) >= 2 for langs in seen["train"].values())
    # Appearance and voice character depend on the speaker alone, not on the language.
    en, it = speakers.make_speaker("en", 3), speakers.make_speaker("it", 3)
    assert en.id == it.id and en.skin == it.skin and en.voice.pitch == it.voice.pitch
    assert en.voice.espeak_voice != it.voice.espeak_voice
