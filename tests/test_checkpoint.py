"""Checkpoints: the on-disk layout, exact state round trip (model, optimizer, RNG, grain
iterator), keep-latest-N + best, and `restore_params` for later stages."""

import os

import grain
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
from flax import nnx

from lipjax.train import checkpoint as ckpt_lib
from lipjax.train import mesh as mesh_lib
from lipjax.train.state import checkpoint_tree, create_train_state, load_checkpoint_tree


class Net(nnx.Module):
    def __init__(self, config, rngs: nnx.Rngs):
        self.dense = nnx.Linear(3, 8, rngs=rngs)
        self.norm = nnx.BatchNorm(8, rngs=rngs)
        self.drop = nnx.Dropout(0.5, rngs=rngs)
        self.out = nnx.Linear(8, 2, rngs=rngs)

    def __call__(self, x):
        return self.out(self.drop(self.norm(self.dense(x))))


class NetTask:
    @staticmethod
    def create_model(config, rngs):
        return Net(config, rngs)


def _state(seed=0):
    config = ml_collections.ConfigDict({"seed": seed})
    mesh = mesh_lib.make_mesh({"data": -1})
    return create_train_state(NetTask, config, mesh, optax.adamw(1e-2)), mesh


def _grain_iter(seed=3):
    return iter(grain.MapDataset.range(50).shuffle(seed=seed).batch(4).to_iter_dataset())


@nnx.jit
def _step(model, opt, rngs):
    x = jax.random.normal(rngs(), (4, 3))
    loss, grads = nnx.value_and_grad(lambda m: jnp.mean(m(x) ** 2))(model)
    opt.update(model, grads)
    return loss


def _advance(model, opt, rngs):
    """One real update: forward with dropout + batch stats, AdamW step."""
    model.train()
    return _step(model, opt, rngs)


def test_layout_and_exact_round_trip(tmp_path):
    (model, opt, rngs), _ = _state()
    it = _grain_iter()
    for _ in range(3):
        _advance(model, opt, rngs)
        next(it)
    ckpt = ckpt_lib.Checkpointer(str(tmp_path), keep=2)
    ckpt.save(3, checkpoint_tree(model, opt, rngs, 3), it)
    ckpt.wait()
    step_dir = tmp_path / "checkpoints" / "3"
    assert (step_dir / "state").is_dir()
    assert (step_dir / "data" / "process_0-of-1.json").is_file()
    expected_batch = next(it)
    expected_loss = float(_advance(model, opt, rngs))
    ckpt.close()

    (model2, opt2, rngs2), _ = _state(seed=7)  # different init: everything must come from disk
    it2 = _grain_iter()
    ckpt2 = ckpt_lib.Checkpointer(str(tmp_path), keep=2)
    assert ckpt2.latest_step() == 3
    restored = ckpt2.restore(3, checkpoint_tree(model2, opt2, rngs2, 0), it2)
    assert load_checkpoint_tree(model2, opt2, rngs2, restored) == 3
    np.testing.assert_array_equal(next(it2), expected_batch)
    assert float(_advance(model2, opt2, rngs2)) == expected_loss
    ckpt2.close()


def test_restore_params_for_later_stages(tmp_path, monkeypatch):
    (model, opt, rngs), _ = _state()
    _advance(model, opt, rngs)
    ckpt = ckpt_lib.Checkpointer(str(tmp_path))
    ckpt.save(1, checkpoint_tree(model, opt, rngs, 1), None)
    ckpt.close()
    for path in (tmp_path, tmp_path / "checkpoints", tmp_path / "checkpoints" / "1"):
        params = ckpt_lib.restore_params(str(path))
        assert isinstance(params["dense"]["kernel"], np.ndarray)
        np.testing.assert_array_equal(params["dense"]["kernel"], model.dense.kernel.value)
        assert set(params["norm"]) == {"scale", "bias", "mean", "var"}  # no RNG state
        assert "drop" not in params
    np.testing.assert_array_equal(params["norm"]["mean"], model.norm.mean.value)
    (fresh, _, _), _ = _state(seed=9)
    state = nnx.state(fresh, nnx.Not(nnx.RngState))
    nnx.replace_by_pure_dict(state, params)
    nnx.update(fresh, state)
    np.testing.assert_array_equal(fresh.out.kernel.value, model.out.kernel.value)
    np.testing.assert_array_equal(fresh.norm.var.value, model.norm.var.value)
    full = ckpt_lib.restore_state_numpy(str(tmp_path))
    assert set(full) == {"model", "optimizer", "rngs", "step"}
    assert set(full["rngs"]) == {"model", "trainer"}
    assert int(full["step"]) == 1
    monkeypatch.chdir(tmp_path.parent)  # a relative path (as the recipe's runs_dir) works too
    relative = ckpt_lib.restore_params(tmp_path.name)
    np.testing.assert_array_equal(relative["dense"]["kernel"], model.dense.kernel.value)
    with pytest.raises(FileNotFoundError, match="step 5"):
        ckpt_lib.restore_params(str(tmp_path), step=5)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        ckpt_lib.restore_params(str(tmp_path / "nowhere"))


def test_keeps_latest_and_best(tmp_path):
    ckpt = ckpt_lib.Checkpointer(str(tmp_path), keep=2, best_metric="wer", best_mode="min")
    tree = {"w": jnp.zeros((2,)), "step": 0}
    wers = {2: 0.5, 4: 0.2, 6: 0.4, 8: 0.3}
    for step in range(1, 10):
        ckpt.save(step, tree, None, metrics={"wer": wers[step]} if step in wers else None)
    ckpt.wait()
    assert ckpt.all_steps() == [4, 8, 9]  # best (wer 0.2) + latest two
    ckpt.close()


class BytesLoader:
    """A non-grain iterator whose state is bytes (grain DataLoader style)."""

    def __init__(self):
        self.pos = 0

    def get_state(self) -> bytes:
        return str(self.pos).encode()

    def set_state(self, state: bytes) -> None:
        self.pos = int(state.decode())


def test_non_grain_loader_state(tmp_path):
    loader = BytesLoader()
    loader.pos = 17
    ckpt = ckpt_lib.Checkpointer(str(tmp_path))
    ckpt.save(1, {"w": jnp.ones(())}, loader)
    ckpt.wait()
    assert os.path.exists(tmp_path / "checkpoints" / "1" / "data" / "process_0-of-1.json")
    other = BytesLoader()
    ckpt.restore(1, {"w": jax.ShapeDtypeStruct((), jnp.float32)}, other)
    assert other.pos == 17
    ckpt.close()
