"""Model + optimizer + RNG state: sharded creation and the checkpoint pytree.

Creation goes through `nnx.eval_shape` -> shardings (mesh rules) -> a jitted init with those
out_shardings, so parameters are born on the devices and never sit on the host.
"""

from __future__ import annotations

from typing import Any

import jax
import ml_collections
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh

from lipjax.train import mesh as mesh_lib

Triple = tuple[nnx.Module, nnx.Optimizer, nnx.Rngs]


def create_train_state(task: Any, config: ml_collections.ConfigDict, mesh: Mesh,
                       tx: optax.GradientTransformation) -> Triple:
    """(model, optimizer, dropout rngs), every array placed by `mesh_lib.state_shardings`."""

    def make() -> Triple:
        model = task.create_model(config, nnx.Rngs(config.seed))
        optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
        return model, optimizer, nnx.Rngs(config.seed + 1)

    graphdef, abstract = nnx.split(nnx.eval_shape(make))
    shardings = mesh_lib.state_shardings(abstract, mesh)

    init = jax.jit(lambda: nnx.split(make())[1], out_shardings=shardings)
    return nnx.merge(graphdef, init())


def reshard(model: nnx.Module, mesh: Mesh) -> None:
    """Puts the model's arrays back on the mesh rules (after host-side edits such as loading).

    Random keys are left where the sharded init put them: nothing on the host edits them, and
    `jax.device_put` refuses a key array of rank ≥ 1 (a scanned stack's per-layer keys) onto
    devices of several processes."""
    state = nnx.state(model, nnx.Not(nnx.RngKey))
    nnx.update(model, jax.device_put(state, mesh_lib.state_shardings(state, mesh)))


def _is_key(x: Any) -> bool:
    return hasattr(x, "dtype") and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def checkpoint_tree(model: nnx.Module, optimizer: nnx.Optimizer, rngs: nnx.Rngs,
                    step: int) -> dict:
    """The pytree saved as item "state" (layout in lipjax/train/checkpoint.py)."""
    rng_state = {"model": nnx.to_pure_dict(nnx.state(model, nnx.RngState)),
                 "trainer": nnx.to_pure_dict(nnx.state(rngs))}
    return {
        "model": nnx.to_pure_dict(nnx.state(model, nnx.Not(nnx.RngState))),
        "optimizer": nnx.to_pure_dict(nnx.state(optimizer)),
        "rngs": jax.tree.map(lambda x: jax.random.key_data(x) if _is_key(x) else x, rng_state),
        "step": int(step),
    }


def load_checkpoint_tree(model: nnx.Module, optimizer: nnx.Optimizer, rngs: nnx.Rngs,
                         tree: dict) -> int:
    """Writes a restored "state" pytree into the live objects; returns the step."""

    def _replace(state, pure):
        nnx.replace_by_pure_dict(state, pure)
        return state

    def _wrap(current, data):
        return jax.random.wrap_key_data(data, impl=jax.random.key_impl(current)) \
            if _is_key(current) else data

    m_rng, t_rng = nnx.state(model, nnx.RngState), nnx.state(rngs)
    nnx.update(model, _replace(nnx.state(model, nnx.Not(nnx.RngState)), tree["model"]))
    nnx.update(model, _replace(m_rng, jax.tree.map(
        _wrap, nnx.to_pure_dict(m_rng), tree["rngs"]["model"])))
    nnx.update(rngs, _replace(t_rng, jax.tree.map(
        _wrap, nnx.to_pure_dict(t_rng), tree["rngs"]["trainer"])))
    nnx.update(optimizer, _replace(nnx.state(optimizer), tree["optimizer"]))
    return int(np.asarray(tree["step"]))
