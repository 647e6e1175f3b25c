"""Losses against brute-force references: padding must not change any loss."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lipjax import losses


def _brute_ctc(logp: np.ndarray, label: list[int], blank: int = 0) -> float:
    """-log Σ over every frame alignment that collapses to `label`."""
    t, v = logp.shape
    total = -np.inf
    for path in itertools.product(range(v), repeat=t):
        collapsed = [p for i, p in enumerate(path) if (i == 0 or p != path[i - 1]) and p != blank]
        if collapsed == label:
            total = np.logaddexp(total, sum(logp[i, p] for i, p in enumerate(path)))
    return -total


def test_ctc_matches_enumeration_of_alignments_with_padding():
    rng = np.random.default_rng(0)
    t, v = 5, 3
    labels = [[1, 2], [1, 1], [2]]
    logits = rng.normal(size=(len(labels), t + 2, v)).astype(np.float32)  # 2 padded frames
    frames = np.array([5, 5, 4])
    logit_mask = np.arange(t + 2)[None] < frames[:, None]
    lab = np.zeros((len(labels), 4), np.int32)  # padded labels
    lab_mask = np.zeros_like(lab, bool)
    for i, seq in enumerate(labels):
        lab[i, :len(seq)], lab_mask[i, :len(seq)] = seq, True
    got = np.asarray(losses.ctc_per_sequence(jnp.asarray(logits), logit_mask, lab, lab_mask))
    logp = np.asarray(jax.nn.log_softmax(logits, -1))
    want = [_brute_ctc(logp[i, :frames[i]], labels[i]) for i in range(len(labels))]
    np.testing.assert_allclose(got, want, rtol=1e-4)
    # Garbage in the padding changes nothing.
    noisy = np.where(logit_mask[..., None], logits, 100.0 * rng.normal(size=logits.shape))
    np.testing.assert_allclose(
        losses.ctc_per_sequence(jnp.asarray(noisy), logit_mask, lab, lab_mask), got, rtol=1e-5)
    assert np.isclose(float(losses.ctc(jnp.asarray(logits), logit_mask, lab, lab_mask)),
                      np.mean(want), rtol=1e-4)


def test_label_smoothed_ce_masks_padding_and_reduces_to_ce():
    rng = np.random.default_rng(1)
    logits = jnp.asarray(rng.normal(size=(2, 4, 7)), jnp.float32)
    targets = jnp.asarray(rng.integers(0, 7, (2, 4)))
    mask = jnp.asarray([[1, 1, 1, 0], [1, 1, 0, 0]], bool)
    plain = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
    want = float((plain * mask).sum() / mask.sum())
    assert np.isclose(float(losses.label_smoothed_ce(logits, targets, mask, 0.0)), want,
                      rtol=1e-5)
    changed = logits.at[:, 3].set(50.0)
    a = losses.label_smoothed_ce(logits, targets, mask, 0.1)
    b = losses.label_smoothed_ce(changed, targets, mask, 0.1)
    assert np.isclose(float(a), float(b))
    # Smoothing s over K classes: targets (1 - s)·one-hot + s/K, so each token costs
    # (1 - s)·(-log p_target) + s·mean_k(-log p_k); float64 by hand.
    logp = np.asarray(logits, np.float64)
    logp = logp - np.logaddexp.reduce(logp, axis=-1, keepdims=True)
    nll = -np.take_along_axis(logp, np.asarray(targets)[..., None], -1)[..., 0]
    per_token = 0.9 * nll + 0.1 * (-logp).mean(-1)
    m = np.asarray(mask)
    np.testing.assert_allclose(float(a), (per_token * m).sum() / m.sum(), rtol=1e-5)


def test_frame_ce_ignores_padded_frames():
    logits = jnp.zeros((1, 3, 4)).at[0, 2].set(jnp.array([0.0, 0.0, 9.0, 0.0]))
    targets = jnp.array([[1, 2, 0]])
    mask = jnp.array([[True, True, False]])
    assert np.isclose(float(losses.frame_ce(logits, targets, mask)), np.log(4.0), rtol=1e-5)


def test_ctc_mean_leaves_out_infeasible_and_masked_sequences():
    """A sequence with fewer frames than labels has no alignment: the batch mean is over the
    others (and over `example_mask`'s examples only, when given)."""
    rng = np.random.default_rng(2)
    logits = jnp.asarray(rng.normal(size=(3, 4, 5)), jnp.float32)
    logit_mask = jnp.asarray(np.arange(4)[None] < np.array([4, 4, 2])[:, None])
    labels = jnp.asarray([[1, 2, 0], [3, 0, 0], [1, 2, 3]])
    label_mask = labels > 0  # the third: 3 labels in 2 frames
    per_seq = np.asarray(losses.ctc_per_sequence(logits, logit_mask, labels, label_mask))
    got = float(losses.ctc(logits, logit_mask, labels, label_mask))
    assert np.isclose(got, (per_seq[0] + per_seq[1]) / 2, rtol=1e-6)
    only_first = float(losses.ctc(logits, logit_mask, labels, label_mask,
                                  example_mask=jnp.asarray([True, False, True])))
    assert np.isclose(only_first, per_seq[0], rtol=1e-6)


def test_accuracy_counts_valid_positions_only():
    logits = jax.nn.one_hot(jnp.asarray([[1, 2, 3, 0]]), 4)  # predicts 1, 2, 3, 0
    targets = jnp.asarray([[1, 0, 3, 3]])
    mask = jnp.asarray([[True, True, True, False]])
    assert np.isclose(float(losses.accuracy(logits, targets, mask)), 2 / 3, rtol=1e-6)  # float32
