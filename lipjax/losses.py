"""Masked losses. Each returns a scalar normalised so padding cannot change its value.

- `label_smoothed_ce`: decoder loss (label smoothing 0.1 in the paper), mean over valid tokens.
- `ctc`: optax's CTC with boolean masks; per-sequence negative log-likelihood averaged over the
  sequences in the batch (ESPnet/auto_avsr's "sum / batch size").
- `frame_ce`: per-frame cross-entropy for 25 Hz acoustic units, mean over valid frames.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax


def _mean(values: jax.Array, mask: jax.Array) -> jax.Array:
    m = mask.astype(jnp.float32)
    return (values * m).sum() / jnp.maximum(m.sum(), 1.0)


def label_smoothed_ce(logits: jax.Array, targets: jax.Array, mask: jax.Array,
                      smoothing: float = 0.1, vocab_mask: jax.Array | None = None) -> jax.Array:
    """logits (..., V), integer targets (...), bool mask (...) → mean smoothed CE.

    `vocab_mask` (B, V) bool, for logits (B, ..., V): the classes each row has (decoders of
    several languages padded to the largest vocabulary); the smoothing mass goes to those
    only, as each language's decoder alone would spread it."""
    logits = logits.astype(jnp.float32)
    one_hot = jax.nn.one_hot(targets, logits.shape[-1])
    if vocab_mask is None:
        labels = optax.smooth_labels(one_hot, smoothing)
    else:
        has = vocab_mask.reshape(vocab_mask.shape[:1] + (1,) * (logits.ndim - 2)
                                 + vocab_mask.shape[-1:]).astype(jnp.float32)
        labels = (1.0 - smoothing) * one_hot + smoothing * has / has.sum(-1, keepdims=True)
    return _mean(optax.softmax_cross_entropy(logits, labels), mask)


def frame_ce(logits: jax.Array, targets: jax.Array, mask: jax.Array) -> jax.Array:
    """Per-frame CE (no smoothing): logits (B, T, K), targets (B, T), mask (B, T)."""
    losses = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), targets)
    return _mean(losses, mask)


def ctc_per_sequence(logits: jax.Array, logit_mask: jax.Array, labels: jax.Array,
                     label_mask: jax.Array, blank_id: int = 0) -> jax.Array:
    """Negative log-likelihood of each label sequence under CTC: (B,)."""
    return optax.ctc_loss(logits.astype(jnp.float32), 1.0 - logit_mask.astype(jnp.float32),
                          labels, 1.0 - label_mask.astype(jnp.float32), blank_id=blank_id)


def ctc_feasible(logit_mask: jax.Array, labels: jax.Array, label_mask: jax.Array) -> jax.Array:
    """(B,) bool: the sequence has an alignment, i.e. at least as many input frames as labels
    plus one blank between each pair of equal neighbouring labels (CTC cannot emit "a a"
    without a blank between them)."""
    repeats = (labels[:, 1:] == labels[:, :-1]) & label_mask[:, 1:] & label_mask[:, :-1]
    needed = label_mask.sum(axis=-1) + repeats.sum(axis=-1)
    return logit_mask.sum(axis=-1) >= needed


def ctc(logits: jax.Array, logit_mask: jax.Array, labels: jax.Array, label_mask: jax.Array,
        blank_id: int = 0, example_mask: jax.Array | None = None) -> jax.Array:
    """CTC loss averaged over sequences (optionally only over `example_mask` examples).
    A sequence with too few inputs for its labels (`ctc_feasible`) has no alignment (optax
    scores it near 1e5, which would swamp the batch): it is left out, and `ctc_left_out`
    counts it so that the trainer can report it."""
    per_seq = ctc_per_sequence(logits, logit_mask, labels, label_mask, blank_id)
    if example_mask is None:
        example_mask = logit_mask.any(axis=-1)
    return _mean(per_seq, example_mask & ctc_feasible(logit_mask, labels, label_mask))


def ctc_left_out(logit_mask: jax.Array, labels: jax.Array, label_mask: jax.Array,
                 example_mask: jax.Array | None = None) -> jax.Array:
    """How many real examples of the batch `ctc` leaves out (too short for their labels)."""
    if example_mask is None:
        example_mask = logit_mask.any(axis=-1)
    infeasible = example_mask & ~ctc_feasible(logit_mask, labels, label_mask)
    return infeasible.sum().astype(jnp.float32)


def accuracy(logits: jax.Array, targets: jax.Array, mask: jax.Array) -> jax.Array:
    return _mean((jnp.argmax(logits, -1) == targets).astype(jnp.float32), mask)
