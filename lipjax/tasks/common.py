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

import contextlib
import functools
import math
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
    # A reader of several languages pads its outputs to the largest tokenizer
    # (models/lmdecoder.LanguageDecoders): ids beyond this language's tokenizer are dropped.
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
    # The item's handler, not a Checkpointer: a Checkpointer looks for step metadata inside the
    # item folder (the manager writes it one level up) and warns that it is missing.
    with contextlib.closing(ocp.PyTreeCheckpointHandler()) as ckptr:
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


def _run_data_dir(checkpoint: str) -> str:
    """data.data_dir of the run that wrote `checkpoint` (its workdir's config.json), or ""."""
    import json
    import os

    try:
        step_dir = resolve_step_dir(checkpoint)
    except FileNotFoundError:
        return ""
    saved = os.path.join(os.fspath(step_dir), os.pardir, os.pardir, "config.json")
    if not os.path.exists(saved):
        return ""
    with open(saved) as f:
        return str(json.load(f).get("data", {}).get("data_dir", "") or "")


def _check_text_layer(target: dict, source: Any, where: str, checkpoint: str,
                      origin: str) -> None:
    """An LMDecoder sub-tree whose text layer (CTC head) differs in size from the model's: the
    checkpoint was trained with another tokenizer; say so, with both sizes and their origins,
    before any shape error."""
    try:
        theirs = np.shape(_leaf(_child(_child(source, "ctc", where), "bias", where)))
    except KeyError:
        return  # no such layer in the checkpoint: the shape walk reports it
    ours = tuple(target["ctc"]["bias"].shape)
    if theirs == ours:
        return
    run_data = _run_data_dir(checkpoint)
    trained = (f"; its run read data.data_dir={run_data}, whose tokenizers/ held the tokenizer "
               "it was trained with" if run_data else "")
    raise ValueError(
            f"{where}: the checkpoint {checkpoint} has a text vocabulary of {theirs[0]} pieces "
            f"(its LMDecoder's output layer) but this model's is {ours[0]}, from "
            f"{origin or 'config model.text_vocab'}{trained}. The checkpoint was trained with "
            f"another tokenizer: train it again with this one, or point config data.data_dir "
            f"at the data holding the tokenizer it was trained with.")


def _leaf(value: Any) -> Any:
    return value["value"] if isinstance(value, dict) and set(value) == {"value"} else value


def _merge(target: Any, source: Any, where: str, checkpoint: str = "",
           origin: str = "") -> Any:
    if isinstance(target, dict):
        if {"ctc", "decoder"} <= set(target):  # an LMDecoder: its text layer first
            _check_text_layer(target, source, where, checkpoint, origin)
        return {k: _merge(v, _child(source, k, f"{where}/{k}"), f"{where}/{k}", checkpoint,
                          origin)
                for k, v in target.items()}
    source = np.asarray(_leaf(source))
    if tuple(source.shape) != tuple(target.shape):  # target: an array or its ShapeDtypeStruct
        raise ValueError(f"{where}: checkpoint shape {source.shape} != model shape "
                         f"{tuple(target.shape)} (model config differs from the stage that wrote "
                         "it)")
    return jnp.asarray(source, dtype=target.dtype)


def _text_vocab_origin(model: nnx.Module) -> str:
    """Where the model's text vocabulary came from (models/factory.language_decoders)."""
    return str(getattr(getattr(model, "decoders", None), "text_vocab_origin", "") or "")


def load_subtrees(model: nnx.Module, path: str,
                  pairs: Sequence[tuple[tuple[str, ...], tuple[str, ...]]]) -> int:
    """Copies checkpoint["model"][src...] into model[dst...] for each (src, dst); returns the
    number of arrays copied. An LMDecoder of another text vocabulary is an error naming both
    sizes, the checkpoint and the model's tokenizer."""
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
        parent[dst[-1]] = _merge(parent[dst[-1]], source, where, str(path),
                                 _text_vocab_origin(model))
        copied += len(jax.tree.leaves(parent[dst[-1]]))
    nnx.replace_by_pure_dict(state, pure)
    nnx.update(model, state)
    return copied


def _stream_value(x: jax.ShapeDtypeStruct) -> jax.Array:
    """A random stream's key (key 0 split per layer) or its count (0)."""
    if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
        return jax.random.split(jax.random.key(0), math.prod(x.shape)).reshape(x.shape)
    return jnp.zeros(x.shape, x.dtype)


def load_model(config: ml_collections.ConfigDict, path: str, step: int | None = None
               ) -> nnx.Module:
    """`config.task`'s model with every weight read from a checkpoint, in eval mode (for
    evaluation, export and analysis). `path` as in `load_subtrees`; latest step by default."""
    from lipjax.tasks import get_task

    task = get_task(config.task)

    def make() -> nnx.Module:
        return task.create_model(config, nnx.Rngs(int(config.get("seed", 0))))

    # Shapes only: every weight comes from the checkpoint, so none is initialised. Eagerly, the
    # random initialisers cost one small compile each (seconds at start-up).
    abstract = nnx.eval_shape(make)
    graphdef, weights, rest = nnx.split(abstract, WEIGHTS, ...)
    streams = (nnx.RngKey, nnx.RngCount)
    if all(isinstance(v, streams) for v in jax.tree.leaves(
            rest, is_leaf=lambda x: isinstance(x, nnx.Variable))):
        # Random streams only (dropout's): evaluation never draws from them, so they are made
        # directly rather than by tracing the model's initialisers again.
        rest = jax.tree.map(_stream_value, rest)
    else:  # other state: one jitted init, which XLA prunes to it
        rest = jax.jit(lambda: nnx.split(make(), WEIGHTS, ...)[2])()
    pure = _merge(weights.to_pure_dict(), restore_params(str(path), step), f"{path}: model",
                  str(path), _text_vocab_origin(abstract))
    nnx.replace_by_pure_dict(weights, pure)
    model = nnx.merge(graphdef, weights, rest)
    model.eval()
    return model
