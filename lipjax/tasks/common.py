"""What the three task modules (and their callers) share: which rows of a batch are real clips,
token ids back to text, and copying earlier stages' weights from Orbax checkpoints (the two
text tasks share more: `lipjax/tasks/text.py`).

Checkpoint layout read by `restore_params` and `load_subtrees` (written by
lipjax/train/checkpoint.py, which owns it; the reader lives here, below both the tasks that
load earlier stages and the trainer)::

    {workdir}/checkpoints/<step>/state/   Orbax StandardSave of
        {"model": nnx.state(model) as a pure dict, "optimizer": ..., "rngs": ..., "step": ...}

A path may name the workdir, its `checkpoints/` dir or one `<step>` dir (latest step by
default). Sub-trees are addressed by attribute path, e.g. ("frontend",), ("encoder",),
("decoders", "lmdecoders", "es"); every variable under the target sub-tree (parameters and
BatchNorm statistics) must be present in the checkpoint with the same shape.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from lipjax import languages
from lipjax.schema import EOS

# What a checkpoint must hold for a copied sub-tree: parameters and BatchNorm statistics (not
# dropout RNG state).
WEIGHTS = (nnx.Param, nnx.BatchStat)


@functools.cache
def _tokenizer(lang: str, data_dir: str) -> Any:
    from lipjax.units.tokenizer import load_tokenizer

    return load_tokenizer(lang, data_dir)


def ids_to_text(ids: np.ndarray, length: int, lang: str, data_dir: str) -> str:
    sp = _tokenizer(lang, data_dir)
    # The model's vocabulary (config model.text_vocab) may exceed a tokenizer whose vocabulary
    # shrank on a small corpus: ids it does not know are dropped.
    ids = [int(i) for i in np.asarray(ids)[:length] if EOS < int(i) < sp.get_piece_size()]
    return languages.get(lang).normalize(sp.decode(ids))


def valid_rows(batch: dict) -> np.ndarray:
    """(B,) bool: the rows that are real clips (an evaluation pass pads its last batch)."""
    n = len(np.asarray(batch["language"]))
    return np.asarray(batch["valid"], bool) if "valid" in batch else np.ones(n, bool)


# ---------------------------------------------------------------------------------------------
# Loading earlier stages.
# ---------------------------------------------------------------------------------------------


def resolve_step_dir(path: str, step: int | None = None) -> Any:
    """`path` may be a workdir, its `checkpoints/` dir, or one `checkpoints/<step>` dir."""
    import os

    from etils import epath

    p = epath.Path(os.path.abspath(path))  # Orbax reads only absolute paths
    if (p / "state").exists():
        return p
    if (p / "checkpoints").exists():
        p = p / "checkpoints"
    steps = sorted(int(c.name) for c in p.iterdir() if c.name.isdigit()) if p.exists() else []
    if not steps:
        raise FileNotFoundError(f"{path}: no checkpoint found (expected "
                                f"{{workdir}}/checkpoints/<step>/state)")
    if step is None:
        step = steps[-1]
    elif step not in steps:
        raise FileNotFoundError(f"{path}: no checkpoint for step {step}; found {steps}")
    return p / str(step)


def restore_state_numpy(path: str, step: int | None = None) -> dict:
    """The whole saved "state" pytree as host numpy arrays (any device count)."""
    import orbax.checkpoint as ocp

    item = resolve_step_dir(path, step) / "state"
    with ocp.PyTreeCheckpointer() as ckptr:
        meta = ckptr.metadata(item)
        tree = getattr(meta, "item_metadata", None) or getattr(meta, "tree", None) or meta
        tree = getattr(tree, "tree", tree)
        restore_args = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), tree)
        return ckptr.restore(item, args=ocp.args.PyTreeRestore(restore_args=restore_args))


def restore_params(path: str, step: int | None = None) -> dict:
    """The "model" variables of a checkpoint (latest step by default): a nested dict of numpy
    arrays with every parameter and BatchNorm statistic, no RNG state.

    Load with `nnx.replace_by_pure_dict(nnx.state(model, nnx.Not(nnx.RngState)), params)` or
    pick sub-trees, e.g. `restore_params(workdir)["encoder"]`.
    """
    return restore_state_numpy(path, step)["model"]


def _child(tree: Any, key: Any, where: str) -> Any:
    if isinstance(tree, dict):
        for k in (key, str(key)):
            if k in tree:
                return tree[k]
        if isinstance(key, str) and key.isdigit() and int(key) in tree:
            return tree[int(key)]
    elif isinstance(tree, (list, tuple)) and str(key).isdigit() and int(key) < len(tree):
        return tree[int(key)]
    raise KeyError(f"{where}: no entry {key!r} in the checkpoint (found "
                   f"{sorted(map(str, tree)) if isinstance(tree, dict) else type(tree)})")


def _merge(target: Any, source: Any, where: str) -> Any:
    if isinstance(target, dict):
        return {k: _merge(v, _child(source, k, f"{where}/{k}"), f"{where}/{k}")
                for k, v in target.items()}
    if isinstance(source, dict) and set(source) == {"value"}:
        source = source["value"]
    source = np.asarray(source)
    if tuple(source.shape) != tuple(np.shape(target)):
        raise ValueError(f"{where}: checkpoint shape {source.shape} != model shape "
                         f"{np.shape(target)} (model config differs from the stage that wrote it)")
    return jnp.asarray(source, dtype=jnp.asarray(target).dtype)


def load_subtrees(model: nnx.Module, path: str,
                  pairs: Sequence[tuple[tuple[str, ...], tuple[str, ...]]]) -> int:
    """Copies checkpoint["model"][src...] into model[dst...] for each (src, dst); returns the
    number of arrays copied."""
    restored = restore_params(str(path))
    state = nnx.state(model, WEIGHTS)
    pure = state.to_pure_dict()
    copied = 0
    for src, dst in pairs:
        where = f"{path}: model/{'/'.join(src)}"
        source = restored
        for k in src:
            source = _child(source, k, where)
        parent = pure
        for k in dst[:-1]:
            parent = parent[k]
        parent[dst[-1]] = _merge(parent[dst[-1]], source, where)
        copied += len(jax.tree.leaves(parent[dst[-1]]))
    nnx.replace_by_pure_dict(state, pure)
    nnx.update(model, state)
    return copied


def load_model(config: ml_collections.ConfigDict, path: str, step: int | None = None
               ) -> nnx.Module:
    """`config.task`'s model with every weight read from a checkpoint, in eval mode (for
    evaluation, export and analysis). `path` as in `load_subtrees`; latest step by default."""
    from lipjax.tasks import get_task

    model = get_task(config.task).create_model(config, nnx.Rngs(int(config.get("seed", 0))))
    state = nnx.state(model, WEIGHTS)
    pure = _merge(state.to_pure_dict(), restore_params(str(path), step), f"{path}: model")
    nnx.replace_by_pure_dict(state, pure)
    nnx.update(model, state)
    model.eval()
    return model
