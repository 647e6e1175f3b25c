"""Corpus acoustic units: seeded sample and k-means, codebook saved with the data and reused."""

import numpy as np
import pytest

from lipjax.units import acoustic, corpus_units


def _clips(n=6, seconds=1.0, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(16000 * seconds)) / 16000
    out = []
    for i in range(n):
        tone = np.sin(2 * np.pi * (200 + 150 * i) * t) * np.linspace(0, 1, len(t))
        out.append((3000 * tone + 300 * rng.standard_normal(len(t))).astype(np.int16))
    return out


def test_sample_is_seeded_and_ordered():
    items = list(range(100))
    a, b = corpus_units.sample(items, 10, seed=3), corpus_units.sample(items, 10, seed=3)
    assert a == b == sorted(a) and len(set(a)) == 10
    assert corpus_units.sample(items, 10, seed=4) != a
    assert corpus_units.sample(items, 500, seed=0) == items


def test_fit_codebook_is_deterministic():
    c1 = corpus_units.fit_codebook(_clips(), k=8, seed=0)
    c2 = corpus_units.fit_codebook(_clips(), k=8, seed=0)
    assert c1.shape == (8, acoustic.feature_dim()) and c1.dtype == np.float32
    np.testing.assert_array_equal(c1, c2)
    with pytest.raises(ValueError, match="at least 500 audio frames"):
        corpus_units.fit_codebook(_clips(n=1), k=500, seed=0)


def test_ensure_units_saves_then_reuses(tmp_path):
    calls = []

    def sample_audio():
        calls.append(1)
        return _clips()

    units = corpus_units.ensure_units(tmp_path, "corpus_cfg_k8", 8, sample_audio, seed=1)
    path = tmp_path / "units" / "corpus_cfg_k8.npy"
    assert path.exists() and units.k == 8
    again = corpus_units.ensure_units(tmp_path, "corpus_cfg_k8", 8, sample_audio, seed=1)
    assert len(calls) == 1  # the saved codebook is reused: unit ids stay stable across builds
    np.testing.assert_array_equal(units.centroids, again.centroids)
    clip = _clips(n=1, seconds=0.3)[0]
    u = units(clip)
    assert u.dtype == np.int32 and len(u) == -(-len(clip) // 640) and u.max() < 8
    with pytest.raises(ValueError, match="has 8 units but units_k=16"):
        corpus_units.ensure_units(tmp_path, "corpus_cfg_k8", 16, sample_audio)
    with pytest.raises(FileNotFoundError, match="units_k > 0"):
        corpus_units.load_units(tmp_path, "other_k8")
