"""`python -m experiments.transcribe` and `experiments.evaluate` on a tiny trained stage-3 run.

The run: two steps of the tiny finetune config (from scratch) on the fixture corpus
(tests/fixtures_builder.py). The raw video is fixture mouth crops pasted into the middle of
larger RGB frames at 30 fps, and the landmarker a plugin module that puts the mean face's mouth
at the frame centre, so the crop `lipjax.preprocess` makes is known exactly; the command runs as
a user runs it, in its own process. Training and each command's compile take minutes on a CPU:
the tests that need the run are `slow`.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from configs import finetune
from experiments.evaluate import evaluate_run, format_scores, grouped_scores, report_utterances
from experiments.transcribe import make_batch, mouth_frames, video_list
from lipjax.preprocess import write_video
from lipjax.train.trainer import train
from tests import fixtures_builder as fb

# One worker runs the whole module (`--dist loadgroup`, Makefile), so the two workers do not
# both train the run (a module fixture; xdist may still set it up again on that worker when a
# batch of tests ends between two of the module's).
pytestmark = pytest.mark.xdist_group("transcribe")

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
                          env=env, capture_output=True, text=True, timeout=900)


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
    batch = make_batch(config, [crops], ["en"])
    assert batch["video"].shape == (1, 32, 32, 32) and batch["video_mask"].sum() == len(crops)


def test_several_clips_make_one_padded_batch(videos, tmp_path):
    """Two clips of different lengths in a batch of three: each row its own frames, the third
    padding, one frame bucket for all."""
    crops, _ = videos
    config = finetune.get_config(_arg(str(tmp_path)))
    config.data.crop, config.data.frame_buckets = 32, (16, 32)
    batch = make_batch(config, [crops, crops[:10]], ["en", "en"], ["a", "b"], batch_size=3)
    assert batch["video"].shape == (3, 32, 32, 32)
    assert batch["video_mask"].sum(1).tolist() == [len(crops), 10, 0]
    assert batch["valid"].tolist() == [True, True, False]
    np.testing.assert_array_equal(batch["video"][1, :10], batch["video"][0, :10])


def test_video_list_reads_folders_and_lists(tmp_path):
    for name in ("b.mp4", "a.MOV", "notes.txt"):
        (tmp_path / name).write_text("")
    assert video_list([], str(tmp_path)) == [str(tmp_path / "a.MOV"), str(tmp_path / "b.mp4")]
    listing = tmp_path / "list.txt"
    listing.write_text("# clips\nb.mp4\n\n/abs/c.mp4\n")
    assert video_list(["x.mp4"], str(listing)) == ["x.mp4", str(tmp_path / "b.mp4"),
                                                   "/abs/c.mp4"]
    with pytest.raises(FileNotFoundError, match="--videos .*nope: no such folder or list"):
        video_list([], str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no video files"):
        video_list([], str(tmp_path / "empty"))
    with pytest.raises(ValueError, match="no video to read: give --video"):
        video_list([], None)


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
def test_several_videos_in_one_call_read_as_one_by_one(run):
    """A mouth crop read with the run's saved config (no --config), alone; then
    `lipjax transcribe A B --json`: batched transcripts equal the single-video ones
    (padding never changes what the model computes for a clip), with every timing."""
    _, workdir, folder = run
    single = _transcribe([f"--workdir={workdir}", f"--video={folder / 'mouth.mp4'}", "--roi",
                          "--greedy"], folder)
    assert single.returncode == 0, single.stderr[-4000:]
    assert single.stdout.count("\n") == 1 and "greedy" in single.stderr
    env = dict(os.environ, JAX_PLATFORMS="cpu",
               PYTHONPATH=os.pathsep.join([str(folder), str(REPO)]))
    short = folder / "short.mp4"
    write_video(short, videos_crops(folder)[:12], crf=0)
    proc = subprocess.run([sys.executable, "-m", "lipjax.cli", "transcribe",
                           f"--workdir={workdir}", "--roi", "--greedy", "--json",
                           "--batch_size=2",
                           str(folder / "mouth.mp4"), str(short)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = json.loads(proc.stdout)
    first, second = report["videos"]
    assert first["video"] == str(folder / "mouth.mp4") and first["frames"] == 30
    assert second["frames"] == 12 and first["batch"] == second["batch"] == 0
    assert first["transcript"] == single.stdout.strip()
    assert first["language"] == "en" and first["language_probability"] is None
    assert set(report["seconds"]) == {"start_up", "checkpoint_load", "mouth_extraction",
                                      "model", "decoding", "total"}
    assert all(v is None or v >= 0 for v in report["seconds"].values())
    assert report["video_seconds"] == pytest.approx(42 / 25)


def videos_crops(folder: pathlib.Path) -> np.ndarray:
    return mouth_frames(str(folder / "mouth.mp4"), roi=True)


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


@pytest.mark.slow
def test_evaluate_writes_every_utterance_and_scores_by_language(run, tmp_path):
    """The jsonl has one line per scored clip; WER by source and by language, summed from it,
    equal the trainer's evaluation of the same checkpoint."""
    data_dir, workdir, _ = run
    config = finetune.get_config(_arg(data_dir))
    config.data.frame_buckets, config.data.max_frames, config.data.crop = (32,), 32, 32
    config.train.eval_batches = 1
    path = tmp_path / "test.jsonl"
    lines = report_utterances(config, str(workdir), "test", False, str(path))
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert records and {r["language"] for r in records} == {"en"}
    assert set(records[0]) >= {"source", "id", "language", "reference", "hypothesis",
                               "word_edits", "words"}
    expected = evaluate_run(config, str(workdir), "test", beam=False)
    name = f"{fb.BUILDER}/en_video"
    by_source = grouped_scores(records, "source")
    assert by_source[name]["wer"] == pytest.approx(expected[name]["wer"])
    assert by_source[name]["cer"] == pytest.approx(expected[name]["cer"])
    assert grouped_scores(records, "language")["en"]["wer"] == pytest.approx(
        expected[name]["wer"])
    assert lines[0].startswith(f"{name} test: WER ") and lines[1].startswith("en (all sources)")


@pytest.mark.slow
def test_render_an_unseen_test_clip(run, tmp_path):
    """experiments.render_clip on the tiny run: the MP4 and the plain crop, the clip's true
    text and the run's reading of it."""
    from experiments.render_clip import render_test_clip
    from lipjax.preprocess import iter_video

    data_dir, workdir, _ = run
    config = finetune.get_config(_arg(data_dir))
    config.data.frame_buckets, config.data.max_frames, config.data.crop = (32,), 32, 32
    result = render_test_clip(config, str(workdir), str(tmp_path / "clip.mp4"), index=1,
                              mouth_out=str(tmp_path / "mouth.mp4"))
    from lipjax import languages

    assert result["id"].startswith("en_video_test_")
    clip = fb.example("en", "video", "test", int(result["id"].rsplit("_", 1)[1]))
    text = clip["text"].decode() if isinstance(clip["text"], bytes) else str(clip["text"])
    assert result["language"] == "en"
    assert result["true"] == languages.get("en").normalize(text) and result["true"]
    assert isinstance(result["predicted"], str)
    frames = list(iter_video(result["out"], 25))
    assert len(frames) == len(clip["video"]) and frames[0].shape[-1] == 3
    assert mouth_frames(result["mouth_out"], roi=True).shape == np.asarray(clip["video"]).shape
