"""Acoustic units: exact 25 Hz framing, k-means fit/assign, dedup, codebook files."""

import numpy as np
import pytest

from lipjax.units import acoustic

SR = 16_000


def _tone(hz: float, seconds: float) -> np.ndarray:
    t = np.arange(int(SR * seconds)) / SR
    return (8000 * np.sin(2 * np.pi * hz * t)).astype(np.int16)


@pytest.mark.parametrize("samples,frames", [(0, 0), (1, 1), (640, 1), (641, 2), (16_000, 25),
                                            (48_000, 75)])
@pytest.mark.parametrize("kind,dim", [("mfcc", 39), ("logmel", 40)])
def test_features_are_25hz(samples, frames, kind, dim):
    audio = np.random.default_rng(0).integers(-2000, 2000, samples).astype(np.int16)
    x = acoustic.features(audio, kind=kind)
    assert x.shape == (frames, dim) and x.dtype == np.float32
    assert acoustic.feature_dim(kind) == dim
    assert np.isfinite(x).all()


def test_frame_i_covers_exactly_its_640_samples():
    rng = np.random.default_rng(1)
    audio = rng.integers(-2000, 2000, 640 * 10).astype(np.int16)
    changed = audio.copy()
    changed[640 * 4 + 1:640 * 5] = rng.integers(-2000, 2000, 639)  # inside frame 4 only
    a, b = acoustic.features(audio, kind="logmel"), acoustic.features(changed, kind="logmel")
    differs = np.abs(a - b).max(1) > 1e-4
    # Pre-emphasis reaches one sample back, so only frame 4 changes.
    assert differs.tolist() == [i == 4 for i in range(10)]


def test_logmel_peak_follows_tone_frequency():
    low = acoustic.features(_tone(300, 1.0), kind="logmel").mean(0).argmax()
    high = acoustic.features(_tone(3000, 1.0), kind="logmel").mean(0).argmax()
    assert high > low


def test_kmeans_fit_assign_seeded():
    rng = np.random.default_rng(0)
    centres = np.array([[0, 0], [10, 0], [0, 10]], np.float32)
    labels = rng.integers(0, 3, 600)
    x = centres[labels] + rng.normal(0, 0.3, (600, 2)).astype(np.float32)
    c1 = acoustic.fit_kmeans(x, 3, seed=0)
    c2 = acoustic.fit_kmeans(x, 3, seed=0)
    assert c1.shape == (3, 2) and c1.dtype == np.float32
    np.testing.assert_array_equal(c1, c2)
    units = acoustic.assign(x, c1)
    assert units.dtype == np.int32 and units.shape == (600,)
    # Each true cluster maps to one unit and the three units differ.
    mapping = {int(lbl): set(units[labels == lbl].tolist()) for lbl in range(3)}
    assert all(len(s) == 1 for s in mapping.values())
    assert len(set.union(*mapping.values())) == 3
    brute = np.argmin(((x[:, None] - c1[None]) ** 2).sum(-1), axis=1)
    np.testing.assert_array_equal(units, brute)


def test_kmeans_needs_enough_rows():
    with pytest.raises(ValueError, match="at least k=5"):
        acoustic.fit_kmeans(np.zeros((3, 2), np.float32), 5, seed=0)


def test_units_from_audio_end_to_end():
    audio = np.concatenate([_tone(300, 0.4), _tone(3000, 0.4), _tone(300, 0.4)])
    feats = acoustic.features(audio)
    units = acoustic.assign(feats, acoustic.fit_kmeans(feats, 2, seed=0))
    assert len(units) == 30
    assert units[3] != units[13] and units[3] == units[26]
    assert len(acoustic.dedup(units)) < len(units)


def test_dedup():
    np.testing.assert_array_equal(acoustic.dedup(np.array([1, 1, 2, 2, 2, 1, 3, 3])), [1, 2, 1, 3])
    assert acoustic.dedup(np.array([], np.int32)).shape == (0,)
    assert acoustic.dedup(np.array([5])).dtype == np.int32


def test_codebook_roundtrip(tmp_path):
    c = np.random.default_rng(0).normal(size=(7, 39)).astype(np.float32)
    path = tmp_path / "units" / "codebook.npy"
    acoustic.save_codebook(path, c)
    np.testing.assert_array_equal(acoustic.load_codebook(path), c)
    with pytest.raises(FileNotFoundError, match="missing.npy"):
        acoustic.load_codebook(tmp_path / "missing.npy")
