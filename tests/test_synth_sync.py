"""Audio-video sync: the rendered mouth opens when the synthesized speech is loud.

Measure: per clip, mouth opening read from the pixels (`render.measure_opening`: dark pixels of
the mouth cavity) and the audio RMS energy per 40 ms frame (the 25 Hz grid of the video), each
z-scored per clip, then Pearson's r over all frames of 30 clips (6 per language, ~1300 frames).
Bounds: opening and energy are smooth over ~5 frames, so the effective number of independent
samples is ~250 and the standard deviation of r for unrelated series is ~0.06; matched r must be
>= 0.35 (about 6 sigma), and the best lag of the pooled r must be within one frame of zero. Rolling
each clip's audio by half its length (>= 0.5 s, more than a syllable) must break it:
r <= 0.2 and at least 0.25 below the matched r.
"""

from __future__ import annotations

import numpy as np
import pytest

from lipjax.data.features import SAMPLES_PER_FRAME
from lipjax.synth import generate, render, speakers


def _energy(audio: np.ndarray) -> np.ndarray:
    frames = -(-len(audio) // SAMPLES_PER_FRAME)
    x = np.pad(audio.astype(np.float32), (0, frames * SAMPLES_PER_FRAME - len(audio)))
    return np.sqrt((x.reshape(frames, SAMPLES_PER_FRAME) ** 2).mean(1))


def _z(x: np.ndarray) -> np.ndarray:
    return (x - x.mean()) / (x.std() + 1e-6)


def _pooled_r(pairs: list[tuple[np.ndarray, np.ndarray]], lag: int = 0) -> float:
    """Pearson r of opening[t + lag] vs energy[t] over all clips."""
    xs, ys = [], []
    for opening, energy in pairs:
        if lag >= 0:
            x, y = opening[lag:], energy[:len(energy) - lag]
        else:
            x, y = opening[:lag], energy[-lag:]
        xs.append(_z(x))
        ys.append(_z(y))
    return float(np.corrcoef(np.concatenate(xs), np.concatenate(ys))[0, 1])


@pytest.fixture(scope="module")
def clips() -> list[tuple[np.ndarray, np.ndarray]]:
    out = []
    for lang in ("en", "es", "fr", "it", "pt"):
        config = generate.ClipConfig(lang, video=True)
        for index in range(6):
            clip = generate.make_clip(config, "test", index, centroids=None).features
            speaker = speakers.make_speaker(lang, int(clip["speaker"].split("spk")[1]))
            opening = render.measure_opening(clip["video"], (speaker.cavity + speaker.lip) / 2)
            out.append((opening, _energy(clip["audio"])))
    return out


def test_mouth_opening_follows_audio_energy(clips):
    matched = _pooled_r(clips)
    assert matched >= 0.35, matched
    by_lag = {lag: _pooled_r(clips, lag) for lag in range(-5, 6)}
    assert abs(max(by_lag, key=by_lag.get)) <= 1, by_lag


def test_shifted_audio_breaks_sync(clips):
    matched = _pooled_r(clips)
    shifted = _pooled_r([(o, np.roll(e, len(e) // 2)) for o, e in clips])
    assert shifted <= 0.2 and matched - shifted >= 0.25, (matched, shifted)
