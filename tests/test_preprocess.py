"""Preprocessing on a real face: skimage's astronaut photo moved, scaled and rotated frame by
frame, written as H.264 at 30 fps, then cropped by the real dlib pipeline.

How "crop centre vs true mouth" is measured: the true mouth is the mean of the 20 lip landmarks
(iBUG 48..67) found by dlib on the unmoved photo, carried into each frame by that frame's known
similarity transform. The crop centre is the point (47.5, 47.5) of the 96x96 crop (pixel centres
at integers) mapped back into the frame by the pipeline's `crop_to_frame` matrix, the same matrix
the crop pixels were sampled with. The error is their Euclidean distance in frame pixels, for the
source frame that 25 fps resampling picked (nearest timestamp: round(i * 30 / 25)).
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from skimage import data, transform

from lipjax.preprocess import (
    NoFaceError,
    UndecodableError,
    extract_mouth,
    get_landmarker,
    load_audio,
    load_video,
    mouth_roi,
    register_landmarker,
    write_video,
    write_wav,
)
from lipjax.preprocess.alignment import apply, fit_similarity
from lipjax.preprocess.crop_folder import main as cli_main
from lipjax.preprocess.crop_folder import process
from lipjax.preprocess.landmarks import fill_missing
from lipjax.preprocess.media import resample_frames

SRC_FPS, NUM_FRAMES, SIZE = 30, 45, 512
CENTRE = np.array([224.0, 128.0])  # near the face, so it stays in view


def motion(j: int) -> np.ndarray:
    """Similarity (3, 3) taking the photo to source frame j: up to ±15 % scale, ±6° rotation,
    40/25 px translation, in about a second and a half."""
    s = 1 + 0.15 * np.sin(2 * np.pi * j / 40)
    th = np.radians(6 * np.sin(2 * np.pi * j / 50))
    d = np.array([40 * np.sin(2 * np.pi * j / 45), 25 * np.cos(2 * np.pi * j / 35)])
    rot = s * np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    m = np.eye(3)
    m[:2, :2], m[:2, 2] = rot, CENTRE + d - rot @ CENTRE
    return m


def render(j: int) -> np.ndarray:
    warped = transform.warp(data.astronaut(), np.linalg.inv(motion(j)), output_shape=(SIZE, SIZE))
    return np.rint(warped * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def photo_landmarks() -> np.ndarray:
    return get_landmarker()(data.astronaut()).astype(np.float64)


@pytest.fixture(scope="module")
def moving_face(tmp_path_factory) -> str:
    path = str(tmp_path_factory.mktemp("video") / "astronaut.mp4")
    write_video(path, np.stack([render(j) for j in range(NUM_FRAMES)]), fps=SRC_FPS)
    return path


def centre_error(roi, photo_landmarks: np.ndarray, source_frames: np.ndarray) -> np.ndarray:
    mouth = photo_landmarks[48:68].mean(0)
    true = np.stack([apply(motion(j), mouth[None])[0] for j in source_frames])
    centre = apply(roi.crop_to_frame, np.array([[47.5, 47.5]]))[:, 0]
    return np.linalg.norm(centre - true, axis=1)


def test_crop_follows_moving_mouth(moving_face, photo_landmarks):
    roi = extract_mouth(moving_face)
    expected_len = round(NUM_FRAMES / SRC_FPS * 25)
    assert roi.crops.shape == (expected_len, 96, 96) and roi.crops.dtype == np.uint8
    assert roi.found.all()
    err = centre_error(roi, photo_landmarks, np.rint(np.arange(expected_len) * 1.2).astype(int))
    print(f"crop centre vs true mouth: max {err.max():.2f} px, mean {err.mean():.2f} px")
    assert err.max() < 4.0 and err.mean() < 1.5
    # Aligned crops of one still face look alike whatever the head did.
    ref = roi.crops[0].astype(float).ravel()
    assert min(np.corrcoef(ref, c.astype(float).ravel())[0, 1] for c in roi.crops) > 0.6


def test_frames_without_face_are_interpolated(photo_landmarks):
    frames = np.stack([render(j) for j in range(12)])
    frames[4:7] = 0  # face lost for three frames
    roi = extract_mouth(frames)
    np.testing.assert_array_equal(roi.found, [True] * 4 + [False] * 3 + [True] * 5)
    assert centre_error(roi, photo_landmarks, np.arange(12)).max() < 6.0


def test_pluggable_landmarker_gives_exact_geometry(photo_landmarks):
    """A landmarker that returns the true landmarks: the crop centre lands on the mouth."""
    frames = np.stack([render(j) for j in range(6)])
    truth = iter(apply(motion(j), photo_landmarks) for j in range(6))
    register_landmarker("oracle", lambda: lambda frame: next(truth).astype(np.float32))
    roi = extract_mouth(frames, landmarker="oracle", smooth_window=1)
    assert centre_error(roi, photo_landmarks, np.arange(6)).max() < 0.01


def test_no_face_raises(tmp_path):
    path = str(tmp_path / "wall.mp4")
    write_video(path, np.full((5, 128, 128, 3), 120, np.uint8))
    with pytest.raises(NoFaceError, match="wall.mp4"):
        mouth_roi(path)
    with pytest.raises(NoFaceError):
        fill_missing(np.zeros((3, 68, 2)), np.zeros(3, bool))


def test_undecodable_and_missing(tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_text("not a video")
    with pytest.raises(UndecodableError, match="broken.mp4"):
        load_video(str(bad))
    with pytest.raises(FileNotFoundError):
        load_audio(str(tmp_path / "absent.wav"))


def test_resampling_picks_nearest_timestamp():
    def pick(src_fps, n, fps=25):
        return list(resample_frames(((j / src_fps, j) for j in range(n)), fps, src_fps))

    assert pick(25, 10) == list(range(10))
    assert pick(50, 20) == list(range(0, 20, 2))
    assert pick(30, 45) == [round(i * 1.2) for i in range(38)]
    assert len(pick(24, 48)) == 50  # 2 s in, 2 s out
    # Variable frame rate: a dropped frame is bridged by its neighbours.
    vfr = [(t, k) for k, t in enumerate([0.0, 0.04, 0.16, 0.2])]
    assert list(resample_frames(vfr, 25, 25)) == [0, 1, 1, 2, 2, 3]


def _encode_tone(path: str, codec: str, fmt: str | None, rate: int = 44100) -> np.ndarray:
    """1 s of a 440 Hz stereo tone at 44.1 kHz through `codec`; returns the mono 16 kHz truth."""
    import av

    t = np.arange(rate) / rate
    tone = (0.3 * np.sin(2 * np.pi * 440 * t) * 32767).astype(np.int16)
    with av.open(path, "w", format=fmt) as container:
        stream = container.add_stream(codec, rate=rate)
        stream.layout = "stereo"
        stream.codec_context.options = {"strict": "experimental"}  # FFmpeg's own vorbis encoder
        frame = av.AudioFrame.from_ndarray(
                np.repeat(tone, 2)[None], format="s16", layout="stereo"
        )
        frame.sample_rate, frame.pts = rate, 0
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return tone


@pytest.mark.parametrize(
        "name,codec,fmt",
        [
                ("a.flac", "flac", None),
                ("a.mp3", "libmp3lame", None),
                ("a.ogg", "vorbis", None),
                ("a.opus", "libopus", "ogg"),
                ("a.m4a", "aac", "ipod"),
                ("a.mp4", "aac", None),
        ],
)
def test_load_audio_formats(tmp_path, name, codec, fmt):
    path = str(tmp_path / name)
    rate = 48000 if codec == "libopus" else 44100
    _encode_tone(path, codec, fmt, rate)
    audio = load_audio(path)
    assert audio.dtype == np.int16 and audio.ndim == 1
    assert abs(len(audio) - 16000) < 0.1 * 16000
    spectrum = np.abs(np.fft.rfft(audio[:16000].astype(float), 16000))
    assert abs(int(np.argmax(spectrum)) - 440) <= 2


def test_wav_roundtrip(tmp_path):
    path = str(tmp_path / "x.wav")
    samples = (np.arange(3200) % 200 - 100).astype(np.int16) * 50
    write_wav(path, samples)
    np.testing.assert_array_equal(load_audio(path), samples)


def test_similarity_fit_recovers_transform():
    rng = np.random.default_rng(0)
    pts = rng.normal(size=(21, 2)) * 30
    m = motion(7)
    np.testing.assert_allclose(fit_similarity(pts[None], apply(m, pts))[0], m, atol=1e-9)


def test_cli_crops_a_folder(tmp_path, moving_face):
    """mp4 crops of a folder on worker processes, its manifest carried over for my_corpus."""
    src, out = tmp_path / "in", tmp_path / "out"
    (src / "spk1").mkdir(parents=True)
    frames, _ = load_video(moving_face, fps=None)
    write_video(str(src / "spk1" / "clip.mov"), frames[:10], fps=SRC_FPS,
                audio=np.zeros(5333, np.int16))
    (src / "spk1" / "broken.mkv").write_text("garbage")
    write_wav(str(src / "spk1" / "speech.wav"), np.zeros(800, np.int16))
    (src / "manifest.csv").write_text("path,transcript,speaker,split\n"
                                      "spk1/clip.mov,\"Hi, you\",spk1,train\n"
                                      "spk1/speech.wav,hello,spk1,train\n")
    assert cli_main([str(src), str(out), "--workers", "1", "--format", "mp4"]) == 3  # broken.mkv
    crops, fps = load_video(str(out / "spk1" / "clip.mp4"))
    assert crops.shape == (8, 96, 96, 3) and fps == 25
    assert len(load_audio(str(out / "spk1" / "clip.mp4"))) > 4000
    assert not (out / "spk1" / "broken.mp4").exists()
    assert (out / "manifest.csv").read_text().splitlines()[1:] == [
            'spk1/clip.mp4,"Hi, you",spk1,train', "spk1/speech.wav,hello,spk1,train"]
    assert (out / "spk1" / "speech.wav").exists()


def test_npz_output(tmp_path, moving_face):
    frames, _ = load_video(moving_face, fps=None)
    write_video(str(tmp_path / "clip.mp4"), frames[:6], fps=SRC_FPS)
    process(str(tmp_path / "clip.mp4"), str(tmp_path / "o" / "clip.npz"), "npz", "dlib68")
    with np.load(tmp_path / "o" / "clip.npz") as npz:
        assert npz["video"].shape == (5, 96, 96) and "audio" not in npz


def test_cli_as_a_process_with_two_workers(tmp_path, moving_face):
    """From the shell, as users run it: spawned workers start (they import crop_folder, not the
    parent's __main__), every clip is reported, and a failed clip beside written ones makes the
    exit status 3 (some failed, the rest written)."""
    src, out = tmp_path / "in", tmp_path / "out"
    frames, _ = load_video(moving_face, fps=None)
    for name in ("a", "b"):
        (src / name).mkdir(parents=True)
        write_video(str(src / name / "clip.mp4"), frames[:6], fps=SRC_FPS)
    (src / "b" / "broken.mp4").write_text("garbage")
    repo = pathlib.Path(__file__).resolve().parents[1]
    command = [sys.executable, "-m", "lipjax.preprocess", str(src), str(out), "--workers", "2"]
    env = dict(os.environ, PYTHONPATH=str(repo))
    proc = subprocess.run(command, cwd=repo, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3, proc.stderr[-3000:]
    assert "2 clips cropped, 0 already there, 1 failed" in proc.stdout, proc.stdout
    assert "broken.mp4" in proc.stdout and "AttributeError" not in proc.stderr
    assert (out / "a" / "clip.npz").exists() and (out / "b" / "clip.npz").exists()
    missing = subprocess.run([*command[:3], str(tmp_path / "nowhere"), str(out)], cwd=repo,
                             env=env, capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2
    assert f"Input folder {tmp_path / 'nowhere'} does not exist" in missing.stderr
