"""Decoding and encoding audio/video with PyAV (which bundles FFmpeg), at lipjax's fixed rates.

Every corpus reaches the model as 25 fps video and 16 kHz mono int16 audio. Frame-rate
conversion picks, for each output instant i/25 s, the source frame whose presentation timestamp is
nearest, so variable-frame-rate phone videos and 29.97/30/50 fps clips keep their timing (the same
rule as FFmpeg's `fps` filter).
"""

from __future__ import annotations

import fractions
import os
from collections.abc import Iterable, Iterator

import av
import numpy as np

from lipjax.preprocess.errors import NoAudioError, NoVideoError, UndecodableError
from lipjax.schema import FPS, SAMPLE_RATE

PathLike = str | os.PathLike[str]
_TIE = 1e-6  # seconds; timestamps closer than this count as equal


def _open(path: PathLike) -> av.container.InputContainer:
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file")
    try:
        return av.open(os.fspath(path))
    except av.FFmpegError as e:
        raise UndecodableError(path, f"FFmpeg cannot open it ({e})") from e


def _timed_frames(path: PathLike, pix_fmt: str) -> tuple[Iterator[tuple[float, np.ndarray]], float]:
    """(timestamp relative to the first frame, frame) pairs, and the source frame rate."""
    container = _open(path)
    if not container.streams.video:
        container.close()
        raise NoVideoError(path, "has no video stream")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    rate = stream.average_rate or stream.guessed_rate or FPS
    src_fps = float(rate)

    def frames() -> Iterator[tuple[float, np.ndarray]]:
        first = None
        try:
            for n, frame in enumerate(container.decode(stream)):
                t = frame.time if frame.time is not None else n / src_fps
                first = t if first is None else first
                yield t - first, frame.to_ndarray(format=pix_fmt)
        except av.FFmpegError as e:
            raise UndecodableError(path, f"decoding failed ({e})") from e
        finally:
            container.close()

    return frames(), src_fps


def resample_frames(
        timed: Iterable[tuple[float, np.ndarray]], fps: float, src_fps: float
) -> Iterator[np.ndarray]:
    """Nearest-timestamp resampling to `fps`; the output lasts as long as the input
    (last timestamp + one source frame), rounded to whole output frames."""
    out = 0
    prev, prev_t = None, 0.0
    for t, frame in timed:
        if prev is not None:
            mid = 0.5 * (prev_t + t)
            while out / fps < mid - _TIE:
                yield prev
                out += 1
        prev, prev_t = frame, t
    if prev is None:
        return
    total = max(1, round((prev_t + 1.0 / src_fps) * fps))
    while out < total:
        yield prev
        out += 1


def iter_video(
        path: PathLike, fps: float | None = FPS, pix_fmt: str = "rgb24"
) -> Iterator[np.ndarray]:
    """Streams frames (H, W, 3) uint8 at `fps` (None: the file's own frames) without holding the
    whole clip in memory; long or high-resolution videos are read this way, twice if needed."""
    timed, src_fps = _timed_frames(path, pix_fmt)
    if fps is None:
        return (frame for _, frame in timed)
    return resample_frames(timed, fps, src_fps)


def load_video(path: PathLike, fps: float | None = FPS) -> tuple[np.ndarray, float]:
    """All frames as uint8 (T, H, W, 3) RGB, resampled to `fps` (None keeps the source frames),
    and the frame rate of the returned frames."""
    timed, src_fps = _timed_frames(path, "rgb24")
    if fps is None:
        arr, out_fps = [frame for _, frame in timed], src_fps
    else:
        arr, out_fps = list(resample_frames(timed, fps, src_fps)), float(fps)
    if not arr:
        raise UndecodableError(path, "contains no decodable video frame")
    return np.stack(arr), out_fps


def load_audio(path: PathLike, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """The first audio stream of any FFmpeg-readable file (wav, flac, mp3, ogg, opus, m4a, mp4 …)
    as int16 mono at `sample_rate`: channels are averaged and the rate converted by FFmpeg."""
    container = _open(path)
    try:
        if not container.streams.audio:
            raise NoAudioError(path, "has no audio stream")
        resampler = av.AudioResampler(format="s16", layout="mono", rate=sample_rate)
        chunks = []
        for frame in container.decode(container.streams.audio[0]):
            chunks.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(frame))
        chunks.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(None))
    except av.FFmpegError as e:
        raise UndecodableError(path, f"audio decoding failed ({e})") from e
    finally:
        container.close()
    if not chunks:
        return np.zeros((0,), np.int16)
    return np.concatenate(chunks).astype(np.int16, copy=False)


def write_video(
        path: PathLike,
        frames: np.ndarray,
        fps: float = FPS,
        audio: np.ndarray | None = None,
        sample_rate: int = SAMPLE_RATE,
        crf: int = 18,
) -> None:
    """Writes uint8 frames (T, H, W) grayscale or (T, H, W, 3) RGB as H.264 (even sizes), with
    optional int16 mono audio as AAC, into an mp4/mkv/mov file."""
    frames = np.asarray(frames, np.uint8)
    pix_fmt = "gray" if frames.ndim == 3 else "rgb24"
    height, width = frames.shape[1:3]
    if height % 2 or width % 2:
        raise ValueError(f"{path}: H.264 needs even frame sizes, got {width}x{height}")
    with av.open(os.fspath(path), "w") as container:
        rate = fractions.Fraction(fps).limit_denominator(1001)  # 29.97 -> 30000/1001
        vstream = container.add_stream("libx264", rate=rate)
        vstream.width, vstream.height, vstream.pix_fmt = width, height, "yuv420p"
        vstream.options = {"crf": str(crf)}
        astream = None
        if audio is not None:
            astream = container.add_stream("aac", rate=sample_rate)
            astream.layout = "mono"
        for frame in frames:
            container.mux(vstream.encode(av.VideoFrame.from_ndarray(frame, format=pix_fmt)))
        container.mux(vstream.encode(None))
        if astream is not None:
            samples = np.asarray(audio, np.int16).reshape(1, -1)
            aframe = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
            aframe.sample_rate, aframe.pts = sample_rate, 0  # pts 0: keeps the AAC priming out
            container.mux(astream.encode(aframe))
            container.mux(astream.encode(None))


def write_wav(path: PathLike, audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    """int16 mono samples as a PCM wav file."""
    with av.open(os.fspath(path), "w", format="wav") as container:
        stream = container.add_stream("pcm_s16le", rate=sample_rate)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(
                np.asarray(audio, np.int16).reshape(1, -1), format="s16", layout="mono"
        )
        frame.sample_rate, frame.pts = sample_rate, 0
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
