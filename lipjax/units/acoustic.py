"""Acoustic units: k-means clusters of MFCC / log-mel frames at the video frame rate.

HuBERT's first-iteration targets are k-means clusters of MFCCs; computing them at exactly 25 Hz
(one feature per video frame, frame i = samples [640 i, 640 (i + 1))) makes the unit sequence
frame-aligned with the lip video, so a visual encoder can be trained to predict it per frame.
The decoder side uses the same units with consecutive repeats removed (`dedup`).
Only numpy/scipy are used so the builders need no audio library.
"""

from __future__ import annotations

import functools
import os

import numpy as np
import scipy.fft
from etils import epath

from lipjax.schema import SAMPLE_RATE, SAMPLES_PER_FRAME

N_FFT = 1024  # one 640-sample frame, zero-padded
N_MELS = 40
N_MFCC = 13
PRE_EMPHASIS = 0.97
KINDS = ("mfcc", "logmel")
_LOG_FLOOR = 1e-10


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + np.asarray(hz, np.float64) / 700.0)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    return 700.0 * (10.0 ** (np.asarray(mel, np.float64) / 2595.0) - 1.0)


@functools.lru_cache(maxsize=8)
def mel_filterbank(sample_rate: int = SAMPLE_RATE, n_fft: int = N_FFT,
                   n_mels: int = N_MELS) -> np.ndarray:
    """Triangular HTK-style mel filters (n_mels, n_fft // 2 + 1) from 0 Hz to Nyquist."""
    bins = np.fft.rfftfreq(n_fft, d=1.0 / sample_rate)
    edges = _mel_to_hz(np.linspace(0.0, _hz_to_mel(sample_rate / 2.0), n_mels + 2))
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins[None, :] - lower) / (centre - lower)
    falling = (upper - bins[None, :]) / (upper - centre)
    return np.maximum(0.0, np.minimum(rising, falling)).astype(np.float32)


def _deltas(x: np.ndarray, width: int = 2) -> np.ndarray:
    """Regression deltas over +-width frames (edge-padded), as in HTK/Kaldi."""
    if len(x) == 0:
        return x
    padded = np.pad(x, ((width, width), (0, 0)), mode="edge")
    num = sum(n * (padded[width + n:len(x) + width + n] - padded[width - n:len(x) + width - n])
              for n in range(1, width + 1))
    return (num / (2 * sum(n * n for n in range(1, width + 1)))).astype(np.float32)


def feature_dim(kind: str = "mfcc") -> int:
    """Feature size D of `features(..., kind)`."""
    if kind == "mfcc":
        return 3 * N_MFCC
    if kind == "logmel":
        return N_MELS
    raise ValueError(f"Unknown acoustic feature kind {kind!r}; expected one of {KINDS}.")


def features(audio_int16: np.ndarray, sample_rate: int = SAMPLE_RATE,
             kind: str = "mfcc") -> np.ndarray:
    """Per-video-frame acoustic features, float32 (T, D), T = ceil(len(audio) / 640).

    Frame i is exactly the 40 ms of samples [640 i, 640 (i + 1)) (zero-padded at the end),
    Hann-windowed. "mfcc" = 13 cepstra + deltas + delta-deltas (D=39); "logmel" = 40 log mel
    energies.
    """
    feature_dim(kind)
    if sample_rate != SAMPLE_RATE:
        raise ValueError(f"Acoustic features expect {SAMPLE_RATE} Hz audio; got {sample_rate} Hz.")
    audio = np.asarray(audio_int16)
    if audio.ndim != 1:
        raise ValueError(f"Expected mono audio of shape (samples,); got shape {audio.shape}.")
    num_frames = -(-len(audio) // SAMPLES_PER_FRAME)
    if num_frames == 0:
        return np.zeros((0, feature_dim(kind)), np.float32)
    x = audio.astype(np.float32) / 32768.0
    x = np.concatenate([x[:1], x[1:] - PRE_EMPHASIS * x[:-1]])
    x = np.pad(x, (0, num_frames * SAMPLES_PER_FRAME - len(x)))
    frames = x.reshape(num_frames, SAMPLES_PER_FRAME) * np.hanning(SAMPLES_PER_FRAME).astype(
            np.float32)
    power = np.abs(np.fft.rfft(frames, n=N_FFT, axis=1)) ** 2
    logmel = np.log(np.maximum(power @ mel_filterbank(sample_rate).T, _LOG_FLOOR)).astype(
            np.float32)
    if kind == "logmel":
        return logmel
    mfcc = scipy.fft.dct(logmel, type=2, norm="ortho", axis=1)[:, :N_MFCC].astype(np.float32)
    d1 = _deltas(mfcc)
    return np.concatenate([mfcc, d1, _deltas(d1)], axis=1)


def fit_kmeans(features: np.ndarray, k: int, seed: int) -> np.ndarray:
    """k-means centroids float32 (k, D) of feature rows; seeded, so a corpus rebuild is identical.

    MiniBatchKMeans keeps fitting memory-bounded on corpus-sized feature sets.
    """
    from sklearn.cluster import MiniBatchKMeans  # lazy: only needed when fitting

    x = np.asarray(features, np.float32)
    if x.ndim != 2:
        raise ValueError(f"fit_kmeans expects features of shape (N, D); got {x.shape}.")
    if len(x) < k:
        raise ValueError(f"fit_kmeans needs at least k={k} feature rows; got {len(x)}.")
    km = MiniBatchKMeans(n_clusters=k, random_state=seed, n_init=3, batch_size=4096,
                         max_iter=100, reassignment_ratio=0.01)
    km.fit(x)
    return km.cluster_centers_.astype(np.float32)


def assign(features: np.ndarray, centroids: np.ndarray, chunk: int = 8192) -> np.ndarray:
    """Nearest-centroid unit per frame, int32 (T,)."""
    x = np.asarray(features, np.float32)
    c = np.asarray(centroids, np.float32)
    if x.ndim != 2 or c.ndim != 2 or x.shape[1] != c.shape[1]:
        raise ValueError(f"assign expects features (T, D) and centroids (K, D); got {x.shape} and "
                         f"{c.shape}.")
    c_sq = (c * c).sum(1)
    out = np.empty(len(x), np.int32)
    for start in range(0, len(x), chunk):
        block = x[start:start + chunk]
        out[start:start + chunk] = np.argmin(c_sq[None, :] - 2.0 * block @ c.T, axis=1)
    return out


def dedup(units: np.ndarray) -> np.ndarray:
    """Removes consecutive repeats (1 1 2 2 2 1 -> 1 2 1): the decoder-side unit sequence."""
    u = np.asarray(units, np.int32).reshape(-1)
    if len(u) == 0:
        return u
    keep = np.concatenate([[True], u[1:] != u[:-1]])
    return u[keep]


def save_codebook(path: str | os.PathLike[str], centroids: np.ndarray) -> None:
    """Writes centroids as a .npy file (any etils path, e.g. local or gs://)."""
    path = epath.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        np.save(f, np.asarray(centroids, np.float32), allow_pickle=False)


def load_codebook(path: str | os.PathLike[str]) -> np.ndarray:
    """Reads centroids written by `save_codebook`; float32 (K, D)."""
    path = epath.Path(path)
    if not path.exists():
        raise FileNotFoundError(f"Acoustic unit codebook {path} does not exist; it is written by "
                                "lipjax.units.acoustic.save_codebook when a corpus is built.")
    with path.open("rb") as f:
        c = np.load(f, allow_pickle=False)
    if c.ndim != 2:
        raise ValueError(f"Codebook {path} should have shape (K, D); found {c.shape}.")
    return c.astype(np.float32)
