"""`python -m experiments.transcribe` and `experiments.evaluate` on a tiny trained stage-3 run.

The run: two steps of the tiny finetune config (from scratch) on the fixture corpus
(tests/fixtures_builder.py). The raw video is fixture mouth crops pasted into the middle of
larger RGB frames at 30 fps, and the landmarker a plugin module that puts the mean face's mouth
at the frame centre, so the crop `lipjax.preprocess` makes is known exactly; the command runs as
a user runs it, in its own process. Training and each command's compile take minutes on a CPU:
the tests that need the run are `slow`.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from configs import finetune
from experiments.evaluate import evaluate_run, format_scores
from experiments.transcribe import make_batch, mouth_frames
from lipjax.preprocess import write_video
from lipjax.train.trainer import train
from tests import fixtures_builder as fb

REPO = pathlib.Path(__file__).resolve().parents[1]
PAD = 48  # the 96x96 crop sits at [PAD:PAD+96] of a 192x192 frame
PLUGIN = '''
import numpy as np
from lipjax.preprocess import alignment, register_landmarker
from lipjax.preprocess.mouth_roi import FACE_SCALE

_FACE = alignment.mean_face(FACE_SCALE)
_FACE = _FACE - _FACE[alignment.MOUTH_POINTS].mean(0) + 95.5  # mouth at the frame centre
_FACE = np.nan_to_num(_FACE, nan=95.5)  # the template has no jaw points; a landmarker does
register_landmarker("centre", lambda: lambda frame: _FACE.astype(np.float32))
'''


def _arg(data_dir: str) -> str:
    return f"tiny,lang=en,init=scratch,builder={fb.BUILDER},data_dir={data_dir},steps=2"


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> tuple[np.ndarray, pathlib.Path]:
    """(the mouth crops, a folder with face.mp4, mouth.mp4 and the landmarker plugin)."""
    crops = np.asarray(fb.example("en", "video", "test", 1)["video"])[:30]
    folder = tmp_path_factory.mktemp("videos")
    frames = np.zeros((len(crops), 96 + 2 * PAD, 96 + 2 * PAD, 3), np.uint8)
    frames[:, PAD:PAD + 96, PAD:PAD + 96] = crops[..., None]
    # 30 fps source: lipjax.preprocess resamples to 25 by timestamps (36 frames -> 30).
    idx = np.minimum(np.round(np.arange(36) * 25 / 30).astype(int), len(crops) - 1)
    write_video(folder / "face.mp4", frames[idx], fps=30, crf=0)
    write_video(folder / "mouth.mp4", crops, crf=0)
    (folder / "centre_landmarker.py").write_text(PLUGIN)
    return crops, folder


@pytest.fixture(scope="module")
def run(tmp_path_factory, videos) -> tuple[str, pathlib.Path, pathlib.Path]:
    """(data_dir, the trained run's workdir, the videos' folder)."""
    data_dir = fb.tiny_data_dir()
    config = finetune.get_config(_arg(data_dir))
    config.data.frame_buckets, config.data.max_frames, config.data.crop = (32,), 32, 32
    config.train.update(eval_every=2, eval_batches=1, async_checkpoint=False)
    workdir = tmp_path_factory.mktemp("finetune_en")
    assert train(config, str(workdir))["step"] == 2
    return data_dir, workdir, videos[1]


def _transcribe(args: list[str], folder: pathlib.Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, JAX_PLATFORMS="cpu",
               PYTHONPATH=os.pathsep.join([str(folder), str(REPO)]))
    return subprocess.run([sys.executable, "-m", "experiments.transcribe", *args], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=300)


def test_raw_video_is_cropped_like_the_corpus(videos):
    """The face video's crops are the corpus crops (H.264 at crf 0, RGB -> gray: within 3)."""
    crops, folder = videos
    sys.path.insert(0, str(folder))
    try:
        import centre_landmarker  # noqa: F401  registers "centre"
    finally:
        sys.path.remove(str(folder))
    got = mouth_frames(str(folder / "face.mp4"), landmarker="centre")
    assert got.shape == crops.shape
    assert np.abs(got.astype(int) - crops).max() <= 3
    roi = mouth_frames(str(folder / "mouth.mp4"), roi=True)
    assert np.abs(roi.astype(int) - crops).max() <= 3
    with pytest.raises(ValueError, match="face.mp4: --roi expects 96x96"):
        mouth_frames(str(folder / "face.mp4"), roi=True)


def test_batch_is_the_pipelines(videos, tmp_path):
    """One clip through the evaluation transform and collate: the model's input shape."""
    crops, _ = videos
    config = finetune.get_config(_arg(str(tmp_path)))
    config.data.crop = 32
    batch = make_batch(config, crops, "en")
    assert batch["video"].shape == (1, 32, 32, 32) and batch["video_mask"].sum() == len(crops)


@pytest.mark.slow
def test_transcribe_a_raw_video(run):
    data_dir, workdir, folder = run
    proc = _transcribe([f"--config=configs/finetune.py:{_arg(data_dir)}",
                        "--config.data.crop=32", f"--workdir={workdir}",
                        f"--video={folder / 'face.mp4'}", "--plugin=centre_landmarker",
                        "--landmarker=centre"], folder)
    assert proc.returncode == 0, proc.stderr[-4000:]
    lines = proc.stdout.split("\n")
    assert len(lines) == 2 and lines[1] == "", proc.stdout  # exactly one line: the transcript
    assert set(lines[0]) <= set("abcdefghijklmnopqrstuvwxyz '"), lines[0]
    assert "face.mp4: 30 frames at 25 fps" in proc.stderr


@pytest.mark.slow
def test_transcribe_a_crop_with_the_saved_config(run):
    _, workdir, folder = run
    proc = _transcribe([f"--workdir={workdir}", f"--video={folder / 'mouth.mp4'}", "--roi",
                        "--greedy"], folder)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert proc.stdout.count("\n") == 1 and "greedy" in proc.stderr


def test_missing_video_is_named(videos, tmp_path):
    """Before any model is loaded: a run folder with no checkpoints yet will do."""
    (tmp_path / "checkpoints").mkdir()
    proc = _transcribe([f"--config=configs/finetune.py:{_arg(str(tmp_path))}",
                        f"--workdir={tmp_path}", f"--video={tmp_path / 'nope.mp4'}"], videos[1])
    assert proc.returncode != 0 and "nope.mp4: no such video file" in proc.stderr


@pytest.mark.slow
def test_evaluate_prints_wer_and_cer(run):
    data_dir, workdir, _ = run
    config = finetune.get_config(_arg(data_dir))
    config.data.frame_buckets, config.data.max_frames, config.data.crop = (32,), 32, 32
    config.train.eval_batches = 1
    results = evaluate_run(config, str(workdir), "test", beam=False)
    name = f"{fb.BUILDER}/en_video"
    assert list(results) == [name]
    line = format_scores(name, "test", results[name])
    assert line.startswith(f"{name} test: WER ") and " CER " in line and "(step 2)" in line
