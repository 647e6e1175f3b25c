"""mTEDx builder: talk audio cut by the yaml, MuAViC crops, acoustic units, bad-item counts."""

import dataclasses

import numpy as np
import pytest
import tensorflow_datasets as tfds

from data_builders import manual_corpus as mc
from data_builders.mtedx import mtedx_dataset_builder as mtedx
from lipjax.units import acoustic, corpus_units
from tests.manual_corpus_testing import check_builder

SPLITS = {"train": 2, "validation": 1, "test": 1}


def test_parse_yaml_line():
    line = "- {duration: 0.47, offset: 17.22, speaker_id: 0u7tTptBo9I, wav: 0u7tTptBo9I.wav}"
    assert mtedx.parse_yaml_line(line) == {"duration": "0.47", "offset": "17.22",
                                           "speaker_id": "0u7tTptBo9I", "wav": "0u7tTptBo9I.wav"}


def test_build_mtedx_audio_with_units(tmp_path):
    config = dataclasses.replace(mtedx.Builder.builder_configs["es_audio"], name="es_audio_k8",
                                 units_k=8, units_sample=10)
    examples, log = check_builder(mtedx.Builder, config, SPLITS, tmp_path)
    by_id = {ex["id"]: ex for exs in examples.values() for ex in exs}
    assert set(by_id) == {"a_B-c1_0000", "a_B-c1_0002", "vA_l-2_0000", "tE-s_t3_0000"}
    ex = by_id["a_B-c1_0000"]
    assert ex["text"] == "hola a todos" and ex["speaker"] == "a_B-c1" and "video" not in ex
    assert ex["phonemes"].count("|") == 2
    assert by_id["tE-s_t3_0000"]["text"] == "qué tal"
    # The segment is cut from the talk: 0.2 s of silence precede it, the next one follows.
    assert 0.4 < len(ex["audio"]) / 16000 < 2.0
    # Units: one per 25 Hz frame, from the codebook fitted on train and saved with the data.
    path = corpus_units.codebook_path(tmp_path, "mtedx_es_k8")  # shared by es_audio/es_video
    centroids = acoustic.load_codebook(path)
    assert centroids.shape == (8, acoustic.feature_dim())
    assert len(ex["units"]) == -(-len(ex["audio"]) // 640)
    np.testing.assert_array_equal(ex["units"], corpus_units.CorpusUnits(centroids)(ex["audio"]))
    assert len(np.unique(np.concatenate([e["units"] for e in by_id.values()]))) > 2
    assert "empty_transcript: 1" in log and "missing_file: 1" in log
    assert "missing-talk_1.flac" in log


def test_build_muavic_video_with_shared_codebook(tmp_path):
    # Units from another corpus's codebook: stage-1 targets and the LMDecoder share unit ids.
    shared = np.random.default_rng(0).standard_normal((4, acoustic.feature_dim()))
    acoustic.save_codebook(corpus_units.codebook_path(tmp_path, "shared_k4"), shared)
    config = dataclasses.replace(mtedx.Builder.builder_configs["es_video"], name="es_video_u",
                                 units_codebook="shared_k4")
    examples, log = check_builder(mtedx.Builder, config, SPLITS, tmp_path)
    ex = {e["id"]: e for e in examples["train"]}["talkA_x-1_0000"]
    assert ex["speaker"] == "talkA_x-1"
    assert ex["text"] == "hola amigos" and ex["language"] == "es"
    assert ex["video"].shape[1:] == (96, 96) and abs(len(ex["audio"]) / 640 - len(ex["video"])) < 2
    assert "missing_file: 1" in log
    np.testing.assert_array_equal(ex["units"], corpus_units.CorpusUnits(shared)(ex["audio"]))


def test_layout_errors_name_the_expected_file(tmp_path):
    manual = tmp_path / "manual"
    txt = manual / "mtedx" / "es-es" / "data" / "train" / "txt"
    txt.mkdir(parents=True)
    (txt / "train.yaml").write_text("- {duration: 1.0, offset: 0.0, speaker_id: t, wav: t.wav}\n")
    builder = mtedx.Builder(data_dir=tmp_path / "data", config="es_audio")
    config = tfds.download.DownloadConfig(manual_dir=manual)
    with pytest.raises(mc.LayoutError, match=r"Expected the transcripts at .*train\.es"):
        builder.download_and_prepare(download_config=config)
    (txt / "train.es").write_text("uno\ndos\n")
    with pytest.raises(mc.LayoutError, match=r"has 2 lines but .*train\.yaml lists 1 segments"):
        builder.download_and_prepare(download_config=config)
    with pytest.raises(mc.LayoutError, match=r"train\.tsv"):
        mtedx.Builder(data_dir=tmp_path / "data", config="fr_video").download_and_prepare(
                download_config=config)
