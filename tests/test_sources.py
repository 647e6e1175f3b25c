"""Data mixtures across real corpus builders: the source syntax, and nothing lost or wrong
without a word (long clips, unit targets, unknown names).

The corpora are the builders' own dummy data (data_builders/*/dummy_data) built once for the
module: LRS3 and mTEDx video, mTEDx audio with acoustic units, MLS, VoxPopuli and Common Voice
audio. LRS3's mouth crops are stand-ins of the right length (the face landmarker is the slow
part of a build and is tested in tests/test_builder_lrs3.py).
"""

from __future__ import annotations

import dataclasses
import logging
from unittest import mock

import ml_collections
import numpy as np
import pytest
import tensorflow_datasets as tfds

from data_builders import manual_corpus as mc
from data_builders.common_voice import common_voice_dataset_builder as common_voice
from data_builders.lrs3 import lrs3_dataset_builder as lrs3
from data_builders.mls import mls_dataset_builder as mls
from data_builders.mtedx import mtedx_dataset_builder as mtedx
from data_builders.voxpopuli import voxpopuli_dataset_builder as voxpopuli
from lipjax import languages
from lipjax.data import pipeline, source
from lipjax.preprocess.media import load_audio

# Clip lengths in frames of the dummy data, by split (what the tests below rely on).
LRS3 = {"pretrain": [20], "train": [13], "validation": [15]}
MTEDX_VIDEO_TRAIN = [13, 13]
MLS_ES_TRAIN, COMMON_VOICE_IT_TRAIN, VOXPOPULI_FR_TRAIN = [18, 20], [8, 20], [15, 16]
STAGE1 = "lrs3/en/pretrain+lrs3/en/train+mtedx/es_video"
STAGE2 = "mls/es+voxpopuli/fr+common_voice/it"


def _stand_in_crops(path):
    """96x96 frames as many as the clip's 25 Hz audio frames (a missing file is skipped and
    counted as by the real builder)."""
    if not path.exists():
        return _REAL_MOUTH_ROI(path)
    frames = -(-len(load_audio(path)) // 640)
    return np.random.default_rng(frames).integers(0, 256, (frames, 96, 96), dtype=np.uint8)


_REAL_MOUTH_ROI = mc.mouth_roi


def _build(cls, config, data_dir):
    builder = cls(data_dir=str(data_dir), config=config)
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
            manual_dir=str(cls.code_path.parent / "dummy_data"),
            compute_stats=tfds.download.ComputeStatsMode.SKIP))


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    tfds.disable_progress_bar()
    data = tmp_path_factory.mktemp("sources") / "data"
    with mock.patch.object(mc, "mouth_roi", _stand_in_crops):
        _build(lrs3.Builder, "en", data)
    _build(mtedx.Builder, "es_video", data)
    with_units = dataclasses.replace(mtedx.Builder.builder_configs["es_audio"],
                                     name="es_audio_k8", units_k=8, units_sample=10)
    _build(mtedx.Builder, with_units, data)
    _build(mls.Builder, "es", data)
    _build(voxpopuli.Builder, "fr", data)
    _build(common_voice.Builder, "it", data)
    return str(data)


def _cfg(data_dir, sources, **overrides):
    cfg = dict(data_dir=data_dir, sources=sources, batch_size=4, frame_buckets=(16, 32),
               max_frames=32, token_bucket=8, crop=88, hflip=True, tokenize=False,
               num_workers=0)
    cfg.update(overrides)
    return ml_collections.ConfigDict(cfg)


def _rows(batches):
    """(source, id, language, frames) of every valid row."""
    return [(int(b["source"][i]), b["id"][i], languages.codes()[b["language"][i]],
             int(b["frame_mask"][i].sum()))
            for b in batches for i in range(len(b["id"])) if b["valid"][i]]


# ---------------------------------------------------------------------------------------------
# The syntax.
# ---------------------------------------------------------------------------------------------

def test_source_syntax():
    parse = pipeline.parse_source
    assert parse("lrs3/en") == pipeline.Source("lrs3", "en")
    assert parse("lrs3/en/pretrain:2") == pipeline.Source("lrs3", "en", "pretrain", weight=2.0)
    assert parse(" voxceleb2/units100/train@test ") == pipeline.Source(
            "voxceleb2", "units100", "train", "test")
    assert parse("mtedx/es_video@test:0.5", index=3) == pipeline.Source(
            "mtedx", "es_video", None, "test", 0.5, 3)
    assert parse("lrs3/en/train[:50%]").split == "train[:50%]"  # TFDS slices are splits
    assert parse("lrs3/en/train[:50%]:3").weight == 3.0
    assert parse("en_video", 0.25) == pipeline.Source(None, "en_video", weight=0.25)
    for bad, match in (("lrs3/en/train/x", "expected BUILDER/CONFIG"),
                       ("lrs3//train", "expected"), ("lrs3/en@", "expected"),
                       ("lrs3/en:heavy", "'heavy' after ':' is not a number"),
                       ("lrs3/en:0", "must be > 0")):
        with pytest.raises(ValueError, match=match):
            parse(bad)
    with pytest.raises(ValueError, match="weight of its own and another"):
        parse("lrs3/en:2", 1.0)


def test_the_forms_of_data_sources_agree():
    """A `+`-joined string (command line), a tuple of strings (config files; the command line
    overrides a tuple field with a one-string tuple) and (entry, weight) pairs."""
    forms = ["lrs3/en/pretrain+mtedx/es_video:0.5", ("lrs3/en/pretrain+mtedx/es_video:0.5",),
             ("lrs3/en/pretrain", "mtedx/es_video:0.5"),
             [("lrs3/en/pretrain", 1.0), ("mtedx/es_video", 0.5)]]
    for form in forms:
        assert pipeline.parse_sources(form) == [("lrs3/en/pretrain", 1.0),
                                                ("mtedx/es_video", 0.5)], form


def test_mixture_fills_defaults_and_refuses_duplicates():
    cfg = ml_collections.ConfigDict(dict(sources=("en_video:2", "lrs3/en", "lrs3/en/pretrain@test"),
                                         builder="synthetic_lips", split="train",
                                         eval_split="validation"))
    got = [(s.index, s.label("train"), s.label("validation"), s.label("test"), s.weight)
           for s in pipeline.mixture(cfg)]
    assert got == [(0, "synthetic_lips/en_video/train", "synthetic_lips/en_video/validation",
                    "synthetic_lips/en_video/test", 2.0),
                   (1, "lrs3/en/train", "lrs3/en/validation", "lrs3/en/test", 1.0),
                   (2, "lrs3/en/pretrain", "lrs3/en/test", "lrs3/en/test", 1.0)]
    cfg.split = "pretrain"  # --config.data.split=pretrain: entries naming no split read it
    with pytest.raises(ValueError, match="names lrs3/en/pretrain more than once"):
        pipeline.mixture(cfg)
    cfg.sources = ("lrs3/en", "lrs3/en/train")
    assert [s.label("train") for s in pipeline.mixture(cfg)] == ["lrs3/en/pretrain",
                                                                 "lrs3/en/train"]
    cfg.sources = ()
    with pytest.raises(ValueError, match="data.sources is empty"):
        pipeline.mixture(cfg)


# ---------------------------------------------------------------------------------------------
# Mixtures across builders.
# ---------------------------------------------------------------------------------------------

def test_stage1_mixture_lrs3_and_mtedx(data_dir):
    loader = pipeline.make_loader(_cfg(data_dir, STAGE1), "train", train=True, seed=0)
    rows = _rows(next(loader) for _ in range(6))
    assert {r[0] for r in rows} == {0, 1, 2}  # every entry is read; `source` says which
    for index, clip_id, language, frames in rows:
        prefix, lang, lengths = [("pretrain/", "en", LRS3["pretrain"]),
                                 ("trainval/", "en", LRS3["train"]),
                                 ("talkA_x-1_", "es", MTEDX_VIDEO_TRAIN)][index]
        assert clip_id.startswith(prefix) and language == lang and frames in lengths


def test_evaluation_reads_each_dataset_once_and_alone(data_dir):
    cfg = _cfg(data_dir, STAGE1)
    rows = _rows(pipeline.make_loader(cfg, "validation", train=False, seed=0))
    # LRS3's pretrain and train entries share one validation split: read once, as entry 0.
    assert sorted(rows) == [(0, "trainval/aB_cD-eF0gH/00005", "en", 15),
                            (2, "talkB_0000", "es", 11)]
    evals = pipeline.eval_sources(cfg)
    assert [(s.index, s.label("validation")) for s in evals] == [
            (0, "lrs3/en/validation"), (2, "mtedx/es_video/validation")]
    alone = pipeline.make_loader(cfg, "validation", train=False, seed=0, source=2)
    assert [r[1] for r in _rows(alone)] == ["talkB_0000"]
    # An entry's own evaluation split; another split name reads that split of every entry.
    cfg.sources = "lrs3/en/train+mtedx/es_video@test"
    assert sorted(r[1] for r in _rows(pipeline.make_loader(cfg, "validation", train=False,
                                                           seed=0))) == [
            "talkC_0000", "trainval/aB_cD-eF0gH/00005"]
    assert sorted(r[1] for r in _rows(pipeline.make_loader(cfg, "test", train=False,
                                                           seed=0))) == [
            "talkC_0000", "test/t3st_Id-0a1/00001", "test/t3st_Id-0a1/00002"]
    with pytest.raises(IndexError, match="data.sources has 2 entries"):
        pipeline.make_loader(cfg, "validation", train=False, seed=0, source=2)


def test_stage2_audio_mixture_and_lipjax_common_voice(data_dir):
    assert source.tfds_name("common_voice") == "lipjax_common_voice"  # never TFDS's own
    assert source.tfds_name("lipjax_common_voice") == "lipjax_common_voice"
    loader = pipeline.make_loader(_cfg(data_dir, STAGE2), "train", train=True, seed=0)
    batch = next(loader)
    assert "video" not in batch
    rows = _rows([batch] + [next(loader) for _ in range(5)])
    assert {(r[0], r[2]) for r in rows} == {(0, "es"), (1, "fr"), (2, "it")}
    assert all(r[1].startswith("common_voice_it_") for r in rows if r[0] == 2)


def test_data_split_renames_the_training_split(data_dir):
    cfg = _cfg(data_dir, "lrs3/en", split="pretrain")
    rows = _rows([next(pipeline.make_loader(cfg, "train", train=True, seed=0))])
    assert {r[1] for r in rows} == {"pretrain/Xy_z-1AbC_9/00001"}
    cfg.sources = "lrs3/en+mtedx/es_video"  # mTEDx has no pretrain split
    with pytest.raises(ValueError, match=r"mtedx/es_video.*no split 'pretrain'.*test, train, "
                                         r"validation.*data\.split"):
        pipeline.make_loader(cfg, "train", train=True, seed=0)


def test_mixing_video_and_audio_corpora_is_an_error(data_dir):
    with pytest.raises(ValueError, match="mixes video and audio-only"):
        pipeline.make_loader(_cfg(data_dir, "lrs3/en+mls/es"), "train", train=True, seed=0)


# ---------------------------------------------------------------------------------------------
# Unknown names list the real ones.
# ---------------------------------------------------------------------------------------------

def test_unknown_config_lists_the_builders_configs(data_dir):
    with pytest.raises(ValueError) as e:
        pipeline.make_loader(_cfg(data_dir, "lrs3/en_video"), "train", train=True, seed=0)
    message = str(e.value)
    assert "no config 'en_video'" in message and "Its configs: en;" in message
    assert "built in data_dir" in message and "lrs3/en" in message


def test_unknown_builder_lists_the_shipped_ones(data_dir):
    with pytest.raises(ValueError, match=r"Unknown builder 'lrs4'.*Shipped: lrs3, mtedx"):
        pipeline.make_loader(_cfg(data_dir, "lrs4/en"), "train", train=True, seed=0)


def test_declared_config_not_built_names_the_build_command(data_dir):
    with pytest.raises(FileNotFoundError, match=r"mtedx/fr_video .*is not built.*python -m "
                                                r"data_builders mtedx .*--config fr_video"):
        pipeline.make_loader(_cfg(data_dir, "mtedx/fr_video"), "train", train=True, seed=0)
    for name in ("common_voice", "lipjax_common_voice"):  # the package builds it, not TFDS
        assert source.build_command(name, "pt", "/data").startswith(
                "python -m data_builders common_voice --manual_dir ")


def test_a_source_in_another_language_than_the_run_is_an_error(data_dir):
    cfg = _cfg(data_dir, "mtedx/es_video", languages=("it",))
    with pytest.raises(ValueError, match=r"mtedx/es_video/train holds 'es' clips.*reads it"):
        pipeline.make_loader(cfg, "train", train=True, seed=0)


# ---------------------------------------------------------------------------------------------
# Long clips: counted, cropped on request, never an endless spin.
# ---------------------------------------------------------------------------------------------

def test_dropped_clips_are_logged_and_counted_per_source(data_dir, caplog):
    caplog.set_level(logging.INFO, logger=pipeline.log.name)
    cfg = _cfg(data_dir, STAGE2, max_frames=19)
    loader = pipeline.make_loader(cfg, "train", train=True, seed=0)
    for label in ("mls/es/train", "common_voice/it/train"):
        assert (f"{label}: 1 of 2 clips (50.0 %) are longer than data.max_frames=19 and are "
                "dropped") in caplog.text
    assert "voxpopuli/fr/train: 0 of 2 clips (0.0 %)" in caplog.text
    rows = _rows(next(loader) for _ in range(6))
    assert max(r[3] for r in rows) <= 19
    counts = loader.clip_counts()
    assert set(counts) == {"mls/es/train", "voxpopuli/fr/train", "common_voice/it/train"}
    assert counts["voxpopuli/fr/train"]["dropped"] == 0
    for label in ("mls/es/train", "common_voice/it/train"):
        assert 0 < counts[label]["dropped"] < counts[label]["read"], counts
    kept = sum(c["read"] - c["dropped"] for c in counts.values())
    assert kept == len(rows) and all(c["cropped"] == 0 for c in counts.values())


def test_a_source_with_every_clip_too_long_stops_at_open(data_dir):
    cfg = _cfg(data_dir, STAGE1, max_frames=16)
    with pytest.raises(ValueError) as e:
        pipeline.make_loader(cfg, "train", train=True, seed=0)
    message = str(e.value)
    for part in ("data.max_frames=16", "lrs3/en/pretrain", "20-20 frames", "at least 20",
                 "data.long_clips=crop"):
        assert part in message, message


def test_a_shard_with_every_clip_too_long_stops_while_reading(data_dir, monkeypatch):
    """Past the check at open (which reads a sample of a large source), the batcher stops a
    source whose shard drops a whole epoch in a row."""
    monkeypatch.setattr(pipeline, "_probe_lengths", lambda *args, **kwargs: None)
    loader = pipeline.make_loader(_cfg(data_dir, "lrs3/en/pretrain", max_frames=16), "train",
                                  train=True, seed=0)
    with pytest.raises(ValueError, match=r"data.max_frames=16: every clip of lrs3/en/pretrain "
                                         r"in this data shard \(1 clips, 20-20 frames\)"):
        next(loader)


def test_crop_keeps_long_clips_as_windows(data_dir):
    cfg = _cfg(data_dir, "lrs3/en/pretrain+mtedx/es_video", max_frames=12, long_clips="crop",
               crop=96, hflip=False)
    loader = pipeline.make_loader(cfg, "train", train=True, seed=0)
    batches = [next(loader) for _ in range(4)]
    stored = source.open_source("lrs3", "en", "pretrain", data_dir)[0]["video"]
    windows = 0
    for batch in batches:
        assert batch["frame_mask"].sum(1).max() == 12
        for row in np.flatnonzero(batch["source"] == 0):
            got = batch["video"][row, :12]
            starts = [s for s in range(len(stored) - 11) if np.array_equal(stored[s:s + 12], got)]
            windows += len(starts) == 1
    counts = loader.clip_counts()
    assert windows > 0 and counts["lrs3/en/pretrain"]["cropped"] == windows
    assert counts["mtedx/es_video/train"]["cropped"] == counts["mtedx/es_video/train"]["read"]
    assert all(c["dropped"] == 0 for c in counts.values())
    with pytest.raises(ValueError, match=r"data.long_clips='trim': expected one of"):
        pipeline.make_loader(_cfg(data_dir, "lrs3/en", long_clips="trim"), "train",
                             train=True, seed=0)


# ---------------------------------------------------------------------------------------------
# Unit targets.
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("train", [True, False])
def test_acoustic_targets_from_a_corpus_without_units_is_an_error(data_dir, train):
    cfg = _cfg(data_dir, "lrs3/en/pretrain+lrs3/en/train", units="acoustic")
    with pytest.raises(ValueError) as e:
        pipeline.make_loader(cfg, "train" if train else "validation", train=train, seed=0)
    message = str(e.value)
    for part in ("data.units=acoustic", "lrs3/en/", "built without acoustic units",
                 "--units_k", "data_builders/lrs3/README.md"):
        assert part in message, message


def test_unit_ids_past_the_vocabulary_are_an_error(data_dir):
    cfg = _cfg(data_dir, "mtedx/es_audio_k8", units="acoustic", unit_vocab=8)
    batch = next(pipeline.make_loader(cfg, "train", train=True, seed=0))
    assert batch["units"].max() < 8 and batch["frame_mask"].any()
    cfg.unit_vocab = 2
    with pytest.raises(ValueError, match=r"mtedx/es_audio_k8/train clip .*: units holds id "
                                         r"[2-7], outside the model's acoustic unit vocabulary "
                                         r"of 2 .*model\.unit_vocab"):
        pipeline.make_loader(cfg, "train", train=True, seed=0)
