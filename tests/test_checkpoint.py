"""Checkpoints: the on-disk layout, exact state round trip (model, optimizer, RNG, grain
iterator), keep-latest-N + best, and `restore_params` for later stages."""

import os
import re

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


# --------------------------------------------------------------------------------------------
# Resume policy: damaged steps are set aside (never deleted); a step that does not fit the
# model stops the run and changes nothing on disk.
# --------------------------------------------------------------------------------------------


def _files(directory):
    """{relative path: size} of every file under `directory`."""
    return {str(p.relative_to(directory)): p.stat().st_size
            for p in sorted(directory.rglob("*")) if p.is_file()}


def _save_steps(workdir, steps, config_json=None):
    (model, opt, rngs), _ = _state()
    ckpt = ckpt_lib.Checkpointer(str(workdir), keep=10, async_save=False)
    ckpt.config_json = config_json
    loader = BytesLoader()
    for step in steps:
        _advance(model, opt, rngs)
        loader.pos = step
        ckpt.save(step, checkpoint_tree(model, opt, rngs, step), loader)
    ckpt.close()
    return checkpoint_tree(model, opt, rngs, 0)


def test_damaged_steps_are_set_aside_not_deleted(tmp_path, caplog):
    abstract = _save_steps(tmp_path, [1, 2, 3])
    root = tmp_path / "checkpoints"
    # Step 3: bad JSON in the data item. Step 2: a truncated array file.
    (root / "3" / "data" / "process_0-of-1.json").write_text('{"pos": ')
    arrays = [p for p in (root / "2" / "state").rglob("*") if p.is_file() and p.parent.name == "d"]
    for path in arrays:
        path.write_bytes(path.read_bytes()[:path.stat().st_size // 2])
    (root / "corrupt_3").mkdir()  # set aside by an earlier run: must survive
    (root / "corrupt_3" / "earlier.txt").write_text("kept")
    before = {step: _files(root / step) for step in ("2", "3")}

    ckpt = ckpt_lib.Checkpointer(str(tmp_path))
    loader = BytesLoader()
    with caplog.at_level("WARNING", logger="lipjax"):
        step, state = ckpt.restore_latest(abstract, loader)
    assert step == 1 and int(state["step"]) == 1 and loader.pos == 1
    assert ckpt.all_steps() == [1]
    assert _files(root / "corrupt_3.1") == before["3"]
    assert _files(root / "corrupt_2") == before["2"]
    assert (root / "corrupt_3" / "earlier.txt").read_text() == "kept"
    warnings = caplog.text
    assert f"checkpoint {root / '3'} is unreadable" in warnings and "corrupt_3.1" in warnings
    assert "falling back to step 1" in warnings

    (root / "1" / "state" / "_METADATA").write_text("{")  # unreadable metadata: corrupt too
    before_1 = _files(root / "1")
    assert ckpt.restore_latest(abstract, BytesLoader()) == (None, None)
    assert _files(root / "corrupt_1") == before_1
    assert "starting from scratch" in caplog.text
    assert sorted(p.name for p in root.iterdir()) == ["corrupt_1", "corrupt_2", "corrupt_3",
                                                      "corrupt_3.1"]
    ckpt.close()


def _as_dtype(tree, path, dtype):
    leaf = tree
    for key in path[:-1]:
        leaf = leaf[key]
    leaf[path[-1]] = jax.ShapeDtypeStruct(leaf[path[-1]].shape, dtype)
    return tree


def test_dtype_change_is_incompatible_and_touches_nothing(tmp_path):
    abstract = _save_steps(tmp_path, [1, 2])
    before = _files(tmp_path)
    target = _as_dtype(abstract, ("model", "dense", "kernel"), jnp.bfloat16)
    ckpt = ckpt_lib.Checkpointer(str(tmp_path))
    with pytest.raises(ckpt_lib.IncompatibleCheckpointError) as e:
        ckpt.restore_latest(target, BytesLoader())
    message = str(e.value)
    assert "model/dense/kernel: checkpoint (3, 8) float32, model (3, 8) bfloat16" in message
    assert f"{tmp_path / 'checkpoints' / '2'} does not fit" in message
    assert "model/dense/bias" not in message  # only the leaf that differs
    ckpt.close()
    assert _files(tmp_path) == before


def test_missing_and_unexpected_keys_are_incompatible(tmp_path):
    abstract = _save_steps(tmp_path, [1])
    del abstract["model"]["out"]["bias"]
    abstract["model"]["extra"] = {"kernel": jax.ShapeDtypeStruct((2,), jnp.float32)}
    ckpt = ckpt_lib.Checkpointer(str(tmp_path))
    with pytest.raises(ckpt_lib.IncompatibleCheckpointError,
                       match=r"(?s)missing from the checkpoint \(1\): model/extra/kernel.*"
                             r"not in the model \(1\): model/out/bias"):
        ckpt.restore_latest(abstract, None)
    assert ckpt.all_steps() == [1]
    ckpt.close()


def test_incompatible_error_names_the_config_that_wrote_it(tmp_path):
    written = '{"model": {"dim": 64, "heads": 4}, "optim": {"lr": 0.001}}'
    abstract = _save_steps(tmp_path, [1], config_json=written)
    saved = ckpt_lib.saved_config_path(tmp_path / "checkpoints" / "1")
    assert saved.read_text() == written
    now = ml_collections.ConfigDict({"model": {"dim": 32}, "optim": {"lr": 0.001}})
    target = _as_dtype(abstract, ("model", "out", "bias"), jnp.int32)
    ckpt = ckpt_lib.Checkpointer(str(tmp_path))
    with pytest.raises(ckpt_lib.IncompatibleCheckpointError) as e:
        ckpt.restore_latest(target, None, config=now)
    message = str(e.value)
    assert f"written by the config {saved}" in message
    assert "model.dim: 32 (now) vs 64 (checkpoint)" in message
    assert "model.heads: absent (now) vs 4 (checkpoint)" in message
    assert "optim.lr" not in message
    assert ckpt.config_json == now.to_json_best_effort(indent=2)
    ckpt.close()


def test_same_shapes_resume_from_the_latest_step(tmp_path):
    abstract = _save_steps(tmp_path, [1, 2], config_json='{"optim": {"lr": 0.001}}')
    ckpt = ckpt_lib.Checkpointer(str(tmp_path))
    step, state = ckpt.restore_latest(abstract, BytesLoader(), config='{"optim": {"lr": 0.1}}')
    assert step == 2 and int(state["step"]) == 2
    ckpt.close()



def _real_tree(dim=None, lr=None):
    """The trainer's checkpoint tree for the tiny units_pretrain config (shapes only: no
    compilation), and that config."""
    from configs import units_pretrain
    from lipjax.tasks import get_task
    from lipjax.train import schedules

    config = units_pretrain.get_config("tiny,steps=2")
    if dim is not None:
        config.model.dim = dim
    if lr is not None:
        config.optim.lr = lr
    task = get_task(config.task)
    tx = schedules.make_optimizer(config.optim, config.train.num_steps)

    def make():
        model = task.create_model(config, nnx.Rngs(config.seed))
        optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
        return checkpoint_tree(model, optimizer, nnx.Rngs(config.seed + 1), 0)

    tree = jax.eval_shape(make)
    tree["step"] = 0
    return tree, config


def _zeros(tree):
    return jax.tree.map(lambda s: np.zeros(s.shape, s.dtype) if hasattr(s, "shape") else s, tree)


def test_real_model_dim_change_refuses_and_lr_change_resumes(tmp_path):
    tree, config = _real_tree()
    ckpt = ckpt_lib.Checkpointer(str(tmp_path), async_save=False)
    assert ckpt.restore_latest(tree, None, config=config) == (None, None)
    for step in (1, 2):
        ckpt.save(step, {**_zeros(tree), "step": step}, None)
    ckpt.close()
    root = tmp_path / "checkpoints"
    before = _files(root)

    ckpt = ckpt_lib.Checkpointer(str(tmp_path))
    narrow, narrow_config = _real_tree(dim=32)
    with pytest.raises(ckpt_lib.IncompatibleCheckpointError) as e:
        ckpt.restore_latest(narrow, None, config=narrow_config)
    message = str(e.value)
    assert re.search(r"model/visual/encoder/\S+/kernel: checkpoint \(2, 64, 64\) float32, "
                     r"model \(2, 32, 32\) float32", message), message
    assert f"written by the config {ckpt_lib.saved_config_path(root / '2')}" in message
    assert "model.dim: 32 (now) vs 64 (checkpoint)" in message
    assert _files(root) == before  # same step directories, same files, nothing set aside

    slower, slower_config = _real_tree(lr=5e-4)
    step, state = ckpt.restore_latest(_zeros(slower), None, config=slower_config)
    assert step == 2 and int(state["step"]) == 2
    assert sorted(p.name for p in root.iterdir()) == ["1", "2"]
    ckpt.close()


def test_the_best_step_survives_a_resume(tmp_path):
    """The best step by train.best_metric is kept after a restart too: its metrics are read
    back from disk, not only remembered by the process that saved it."""
    state = {"w": jnp.zeros(3)}
    first = ckpt_lib.Checkpointer(str(tmp_path), keep=2, best_metric="wer", async_save=False)
    first.save(0, state, None, {"wer": 0.5})
    first.save(1, state, None, {"wer": 0.9})
    first.save(2, state, None, None)  # e.g. saved at a preemption, between evaluations
    first.manager.wait_until_finished()
    assert first.all_steps() == [0, 1, 2]
    resumed = ckpt_lib.Checkpointer(str(tmp_path), keep=2, best_metric="wer", async_save=False)
    for step, wer in ((3, 0.8), (4, 0.85), (5, 0.9)):
        resumed.save(step, state, None, {"wer": wer})
    resumed.manager.wait_until_finished()
    assert resumed.all_steps() == [0, 4, 5]
