"""CTC examples without an alignment are left out of the loss and counted, never hidden."""

import jax.numpy as jnp
import numpy as np

from lipjax import losses


def test_infeasible_examples_are_left_out_and_counted():
    # 3 frames each. [1, 2]: 2 labels, fits. [1, 1]: needs a blank between the equal labels,
    # 3 frames, fits exactly. [1, 1, 2]: needs 4 frames, does not. Row 4 is padding.
    labels = jnp.array([[1, 2, 0], [1, 1, 0], [1, 1, 2], [1, 0, 0]])
    label_mask = jnp.array([[1, 1, 0], [1, 1, 0], [1, 1, 1], [1, 0, 0]], bool)
    logit_mask = jnp.array([[1, 1, 1]] * 3 + [[0, 0, 0]], bool)
    np.testing.assert_array_equal(losses.ctc_feasible(logit_mask, labels, label_mask),
                                  [True, True, False, False])
    assert float(losses.ctc_left_out(logit_mask, labels, label_mask)) == 1.0  # not the padding

    logits = jnp.asarray(np.random.default_rng(0).normal(size=(4, 3, 4)), jnp.float32)
    per_seq = losses.ctc_per_sequence(logits, logit_mask, labels, label_mask)
    loss = losses.ctc(logits, logit_mask, labels, label_mask)
    np.testing.assert_allclose(loss, (per_seq[0] + per_seq[1]) / 2, rtol=1e-6)
