"""Learning-rate schedules and the optimizer built from the `optim` config block."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from lipjax.train import schedules


def test_warmup_cosine_shape():
    s = schedules.warmup_cosine(1e-3, warmup_steps=10, num_steps=100)
    assert float(s(0)) == 0.0
    np.testing.assert_allclose(float(s(5)), 5e-4, rtol=1e-6)
    np.testing.assert_allclose(float(s(10)), 1e-3, rtol=1e-6)
    np.testing.assert_allclose(float(s(55)), 5e-4, rtol=1e-4)  # half-way down the cosine
    assert float(s(100)) == pytest.approx(0.0, abs=1e-9)
    vals = [float(s(i)) for i in range(10, 101)]
    assert all(a >= b for a, b in zip(vals, vals[1:], strict=False))


def test_tristage_phases():
    s = schedules.tristage(1.0, num_steps=100, phase_ratio=(0.1, 0.4, 0.5), init_scale=0.01,
                           final_scale=0.05)
    np.testing.assert_allclose(float(s(0)), 0.01, rtol=1e-6)
    np.testing.assert_allclose(float(s(5)), 0.01 + 0.99 * 0.5, rtol=1e-6)
    for step in (10, 30, 49):  # hold
        assert float(s(step)) == pytest.approx(1.0)
    np.testing.assert_allclose(float(s(100)), 0.05, rtol=1e-5)  # end of decay
    np.testing.assert_allclose(float(s(75)), 0.05 ** 0.5, rtol=1e-5)  # exponential midpoint
    assert float(s(1000)) == pytest.approx(0.05, rel=1e-5)  # stays at the floor


def test_tristage_bad_ratio():
    with pytest.raises(ValueError, match="phase_ratio"):
        schedules.tristage(1.0, 10, phase_ratio=(0.5, 0.5, 0.5))


def _optim(**kw):
    base = {"lr": 0.1, "schedule": "cosine", "warmup_steps": 0, "weight_decay": 0.5,
            "clip_norm": 1.0, "b1": 0.9, "b2": 0.98}
    return ml_collections.ConfigDict({**base, **kw})


def test_make_schedule_dispatch():
    assert float(schedules.make_schedule(_optim(schedule="constant"), 10)(7)) == pytest.approx(0.1)
    tri = schedules.make_schedule(_optim(schedule="tristage", warmup_steps=4), 20)
    assert float(tri(4)) == pytest.approx(0.1)
    with pytest.raises(ValueError, match="optim.schedule"):
        schedules.make_schedule(_optim(schedule="linear"), 10)


def test_optimizer_clips_and_masks_decay():
    tx = schedules.make_optimizer(_optim(schedule="constant"), 10)
    params = {"kernel": jnp.ones((2, 2)), "bias": jnp.ones((2,))}
    grads = {"kernel": jnp.full((2, 2), 100.0), "bias": jnp.zeros((2,))}
    updates, _ = tx.update(grads, tx.init(params), params)
    # Bias: zero gradient and no weight decay -> no update. Kernel: decayed and moved.
    np.testing.assert_allclose(np.asarray(updates["bias"]), 0.0, atol=1e-8)
    assert np.all(np.asarray(updates["kernel"]) < 0)
    # Clipping: the global norm after the first transform is <= clip_norm.
    clipped, _ = optax.clip_by_global_norm(1.0).update(grads, None)
    assert float(optax.global_norm(clipped)) == pytest.approx(1.0, rel=1e-5)
    assert jax.tree.structure(updates) == jax.tree.structure(params)
