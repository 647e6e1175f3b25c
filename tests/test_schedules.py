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


def test_freeze_keeps_the_listed_subtrees():
    """optim.freeze: parameters under the listed path prefixes keep their values; the others
    train (and the gradient clip sees only them)."""
    import ml_collections
    import numpy as np
    from flax import nnx

    from lipjax.train.schedules import make_optimizer

    class Two(nnx.Module):
        def __init__(self, rngs):
            self.encoder = nnx.Linear(3, 3, rngs=rngs)
            self.decoder = nnx.Linear(3, 3, rngs=rngs)

    model = Two(nnx.Rngs(0))
    before = nnx.state(model, nnx.Param).to_pure_dict()
    optim = ml_collections.ConfigDict({"lr": 0.1, "schedule": "constant", "warmup_steps": 0,
                                       "weight_decay": 0.1, "clip_norm": 1.0,
                                       "freeze": ("decoder",)})
    opt = nnx.Optimizer(model, make_optimizer(optim, 10), wrt=nnx.Param)
    x = np.ones((2, 3), np.float32)
    grads = nnx.grad(lambda m: (m.decoder(m.encoder(x)) ** 2).sum())(model)
    opt.update(model, grads)
    after = nnx.state(model, nnx.Param).to_pure_dict()
    for name in ("kernel", "bias"):
        np.testing.assert_array_equal(after["decoder"][name], before["decoder"][name])
        assert not np.allclose(after["encoder"][name], before["encoder"][name])


def test_weight_decay_spares_stacked_biases_and_norms():
    """A scanned stack's biases and LayerNorm scales are 2-D (layer axis): decay goes by name."""
    from flax import nnx

    from lipjax.models.conformer import Encoder
    from lipjax.train.schedules import _decay_mask

    enc = Encoder(8, 8, 2, 2, 16, kind="transformer", rngs=nnx.Rngs(0))
    state = nnx.state(enc, nnx.Param)
    mask = _decay_mask(state)
    flat = dict(jax.tree_util.tree_leaves_with_path(mask))
    names = {jax.tree_util.keystr(p): m for p, m in flat.items()}
    stacked_bias = [m for k, m in names.items() if "layers" in k and "bias" in k]
    stacked_kernel = [m for k, m in names.items() if "layers" in k and "kernel" in k]
    assert stacked_bias and not any(stacked_bias)
    assert stacked_kernel and all(stacked_kernel)


def test_gradient_accumulation_equals_one_large_batch():
    """optim.accumulate_steps=2: two half batches give the update one batch of both gives (the
    loss is a mean over rows and the halves are equal in size), applied on the second step
    only; the schedule counts updates, not train steps."""
    from flax import nnx

    rows = np.random.default_rng(0).normal(size=(8, 3)).astype(np.float32)
    targets = rows @ np.array([[1.0], [-2.0], [0.5]], np.float32)

    def run(k, batches):
        optim = ml_collections.ConfigDict({"lr": 0.1, "schedule": "cosine", "warmup_steps": 0,
                                           "weight_decay": 0.0, "clip_norm": 0.0,
                                           "accumulate_steps": k})
        model = nnx.Linear(3, 1, rngs=nnx.Rngs(0))
        opt = nnx.Optimizer(model, schedules.make_optimizer(optim, 4 * k), wrt=nnx.Param)
        kernels = []
        for x, y in batches:
            grads = nnx.grad(lambda m, x=x, y=y: jnp.mean((m(x) - y) ** 2))(model)
            opt.update(model, grads)
            kernels.append(np.array(model.kernel.value))
        return kernels, schedules.update_schedule(optim, 4 * k)

    halves = [(rows[:4], targets[:4]), (rows[4:], targets[4:])]
    (first, second), accumulated = run(2, halves)
    (whole,), plain = run(1, [(rows, targets)])
    np.testing.assert_array_equal(first, np.array(nnx.Linear(3, 1, rngs=nnx.Rngs(0)).kernel))
    np.testing.assert_allclose(second, whole, rtol=1e-6, atol=1e-7)
    for step in range(8):  # steps 2u and 2u+1 both read update u's learning rate
        assert float(accumulated(step)) == float(plain(step // 2))


def test_accumulate_steps_must_be_positive():
    with pytest.raises(ValueError, match="accumulate_steps"):
        schedules.accumulate_steps(ml_collections.ConfigDict({"accumulate_steps": 0}))
