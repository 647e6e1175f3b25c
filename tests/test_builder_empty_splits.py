"""A split without examples never kills a build after decoding: an empty listing is left out with
a warning naming its folder or file, a corpus with no clips at all stops before decoding, and a
split whose every clip is broken stops with the folder and the skip reasons named."""

from __future__ import annotations

import logging
import pathlib
import shutil

import pytest

from data_builders import manual_corpus as mc
from data_builders.common_voice import common_voice_dataset_builder as cv
from data_builders.lrs3 import lrs3_dataset_builder as lrs3
from tests.manual_corpus_testing import check_builder

CV_DUMMY = pathlib.Path(cv.Builder.code_path).parent / "dummy_data"
CV_LANG = "cv-corpus-17.0-2024-03-15/it"
LRS3_DUMMY = pathlib.Path(lrs3.Builder.code_path).parent / "dummy_data"


def _copy(src: pathlib.Path, dst: pathlib.Path) -> pathlib.Path:
    shutil.copytree(src, dst)
    return dst


def test_lrs3_without_pretrain_folder(tmp_path):
    """The README says any split folder is enough: no pretrain/ -> no pretrain split, a
    warning naming the folder, the other splits built."""
    manual = _copy(LRS3_DUMMY, tmp_path / "manual")
    shutil.rmtree(manual / "lrs3" / "pretrain")
    _, log = check_builder(lrs3.Builder, "en", {"train": 1, "validation": 1, "test": 1},
                           tmp_path / "data", dummy_data=manual)
    line = next(x for x in log.splitlines() if "'pretrain'" in x)
    assert "left out" in line and str(manual / "lrs3" / "pretrain") in line, line


def _trainval(root: pathlib.Path, ids: list[str]) -> list[mc.Clip]:
    for clip_id in ids:
        talk, stem = clip_id.split("/")
        (root / "trainval" / talk).mkdir(parents=True, exist_ok=True)
        (root / "trainval" / talk / f"{stem}.txt").write_text("Text:  HELLO\n")
    return lrs3._list_dir(lrs3.epath.Path(root / "trainval"), "trainval")  # noqa: SLF001


def test_lrs3_validation_pick_never_empty(tmp_path, caplog):
    # Two clips whose id hashes hold none out: the lowest hash becomes the validation clip.
    ids = [f"talk_{n:03d}/00001" for n in range(40)]
    unpicked = [i for i in ids if lrs3._hash(f"trainval/{i}") >= 375][:2]  # noqa: SLF001
    clips = _trainval(tmp_path / "lrs3", unpicked)
    builder = lrs3.Builder(data_dir=str(tmp_path / "data"), config="en")
    splits = builder.list_clips(lrs3.epath.Path(tmp_path / "lrs3"))
    assert len(splits["validation"]) == 1 and len(splits["train"]) == 1
    assert lrs3.validation_pick(clips[:1], None, tmp_path / "none.txt") == [True]
    # A validation_ids.txt naming no clip here: warned about, and the hash pick is used.
    (tmp_path / "lrs3" / "validation_ids.txt").write_text("trainval/other/00009\n")
    with caplog.at_level(logging.WARNING):
        splits = builder.list_clips(lrs3.epath.Path(tmp_path / "lrs3"))
    assert len(splits["validation"]) == 1 and "validation_ids.txt" in caplog.text


def test_common_voice_empty_tsv_is_left_out(tmp_path):
    manual = _copy(CV_DUMMY, tmp_path / "manual")
    test_tsv = manual / CV_LANG / "test.tsv"
    test_tsv.write_text(test_tsv.read_text().splitlines()[0] + "\n")  # header only
    _, log = check_builder(cv.Builder, "it", {"train": 2, "validation": 1}, tmp_path / "data",
                           dummy_data=manual)
    assert f"split 'test' in {test_tsv}; the split is left out" in log, log


def test_no_clips_at_all_stops_before_decoding(tmp_path):
    manual = _copy(CV_DUMMY, tmp_path / "manual")
    for name in ("train", "dev", "test"):
        tsv = manual / CV_LANG / f"{name}.tsv"
        tsv.write_text(tsv.read_text().splitlines()[0] + "\n")
    builder = cv.Builder(data_dir=str(tmp_path / "data"), config="it")
    with pytest.raises(mc.LayoutError, match="found no clips in any split") as error:
        builder.download_and_prepare(download_config=mc.tfds.download.DownloadConfig(
                manual_dir=str(manual)))
    assert str(manual / CV_LANG / "train.tsv") in str(error.value)


def test_split_of_broken_clips_names_its_file(tmp_path):
    manual = _copy(CV_DUMMY, tmp_path / "manual")
    (manual / CV_LANG / "clips" / "common_voice_it_6.mp3").unlink()  # the only test clip
    builder = cv.Builder(data_dir=str(tmp_path / "data"), config="it")
    with pytest.raises(mc.LayoutError, match="Every clip of split 'test'") as error:
        builder.download_and_prepare(download_config=mc.tfds.download.DownloadConfig(
                manual_dir=str(manual)))
    message = str(error.value)
    assert str(manual / CV_LANG / "test.tsv") in message and "missing_file: 1" in message
