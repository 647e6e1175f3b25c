"""my_corpus: the user's own clips + manifest.csv, built for real from dummy_data/ into
array_record (TFDS test-case checks via tests.manual_corpus_testing, which needs no TensorFlow)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import tensorflow_datasets as tfds

from data_builders import manual_corpus as mc
from data_builders.my_corpus import Builder, MyCorpusConfig
from lipjax.units import acoustic, corpus_units
from tests.manual_corpus_testing import check_builder


def test_video_config_skips_bad_rows(tmp_path):
    config = MyCorpusConfig(name="en_video", language="en", with_video=True)
    examples, log = check_builder(Builder, config, {"train": 2, "validation": 1, "test": 1},
                                  tmp_path)
    ex = {e["id"]: e for e in examples["train"]}["clips/spk1/morning"]
    assert ex["text"] == "good morning two friends"
    assert ex["speaker"] == "spk1" and ex["language"] == "en"
    assert ex["video"].shape[1:] == (96, 96) and ex["video"].dtype == np.uint8
    assert abs(len(ex["video"]) - len(ex["audio"]) / 640) <= 2  # 25 fps vs 16 kHz
    assert len(ex["units"]) == 0  # units_k=0: not computed
    assert " | " in ex["phonemes"] and len(ex["phoneme_ids"]) > 10
    assert examples["validation"][0]["id"] == "clips/spk2/thanks"  # "dev" -> validation
    for reason, count, path in [("missing_file", 1, "gone.mp4"),
                                ("undecodable_video", 1, "broken.mp4"),
                                ("no_face", 1, "wall.mp4"),
                                ("empty_transcript", 1, "cough.mp4"),
                                ("no_video_stream", 1, "news.wav")]:
        line = next(x for x in log.splitlines() if x.strip().startswith(reason + ":"))
        assert f"{reason}: {count}," in line and path in line, log
    # The audio recording in the mixed manifest is not counted as a broken video.
    assert "skipped 5 (4 broken or unusable, 1 of another modality)" in log
    assert "news.wav" not in log.split("broken or unusable:")[1].split("of another modality")[0]


def test_audio_config_from_kwargs(tmp_path):
    """`language=` and `with_video=` make the `{lang}_audio` config the training configs read;
    units come from an existing codebook (as when reusing the stage-1 corpus's)."""
    dummy = Builder.code_path.parent / "dummy_data"
    centroids = np.random.default_rng(0).normal(size=(8, acoustic.feature_dim()))
    acoustic.save_codebook(corpus_units.codebook_path(tmp_path, "stage1_k8"), centroids)
    builder = Builder(data_dir=str(tmp_path), language="en", with_video=False,
                      units_codebook="stage1_k8")
    assert builder.builder_config.name == "en_audio"
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
            manual_dir=str(dummy), compute_stats=tfds.download.ComputeStatsMode.SKIP))
    # Readable by name without the config in code (TFDS reads it back from the files).
    source = tfds.data_source("my_corpus/en_audio", split="train", data_dir=str(tmp_path))
    ids = sorted(source[i]["id"].decode() for i in range(len(source)))
    assert ids == ["audio/spk4/news", "clips/spk1/hello", "clips/spk1/morning",
                   "clips/spk3/wall"]
    ex = source[0]
    assert "video" not in ex and len(ex["units"]) == -(-len(ex["audio"]) // 640) > 0
    assert ex["units"].max() < 8


def test_manifest_with_wrong_columns(tmp_path):
    manual = tmp_path / "manual"
    manual.mkdir()
    (manual / "manifest.csv").write_text("file,text,split\na.wav,hello,train\n")
    builder = Builder(data_dir=str(tmp_path / "data"), language="en", with_video=False)
    with pytest.raises(mc.LayoutError) as err:
        builder.download_and_prepare(
                download_config=tfds.download.DownloadConfig(manual_dir=str(manual)))
    message = str(err.value)
    assert "manifest.csv" in message and "path, transcript, speaker, split" in message
    assert "missing path, transcript, speaker" in message


def test_manifest_paths_relative_to_manifest(tmp_path):
    """A manifest in a subfolder, paths relative to it, a TSV, and a bad split name."""
    dummy = Builder.code_path.parent / "dummy_data"
    shutil.copytree(dummy / "audio", tmp_path / "lists" / "audio")
    (tmp_path / "lists" / "clips.tsv").write_text(
            "split\tspeaker\tpath\ttranscript\textra\n"
            "train\tspk4\taudio/spk4/news.wav\tGood news\tx\n")
    config = MyCorpusConfig(name="tsv", language="en", manifest="lists/clips.tsv")
    builder = Builder(data_dir=str(tmp_path / "data"), config=config)
    clips = builder.list_clips(builder.find_root(tmp_path))
    assert [c.id for c in clips["train"]] == ["audio/spk4/news"]
    assert clips["train"][0].path.exists()
    (tmp_path / "lists" / "clips.tsv").write_text("path\ttranscript\tspeaker\tsplit\n"
                                                   "a.wav\thi\ts\ttrain set\n")
    with pytest.raises(mc.LayoutError, match="clips.tsv line 2: split"):
        builder.list_clips(builder.find_root(tmp_path))
