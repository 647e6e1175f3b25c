"""What the three task modules share: loss/decoding settings carried by the model, the text
loss, host-side text decoding, and copying earlier stages' weights from Orbax checkpoints.

Checkpoint layout read by `load_subtrees` (written by lipjax/train/checkpoint.py)::

    {workdir}/checkpoints/<step>/state/   Orbax StandardSave of
        {"model": nnx.state(model) as a pure dict, "optimizer": ..., "rngs": ..., "step": ...}

A path may name the workdir, its `checkpoints/` dir or one `<step>` dir (latest step by
default). Sub-trees are addressed by attribute path, e.g. ("frontend",), ("encoder",),
("decoders", "lmdecoders", "es"); every variable under the target sub-tree (parameters and
BatchNorm statistics) must be present in the checkpoint with the same shape.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from lipjax import languages, losses
from lipjax.models import factory
from lipjax.models.decoder import EOS, PAD, UNK, shift_targets
from lipjax.units.targets import UnitTargets

# What a checkpoint must hold for a copied sub-tree: parameters and BatchNorm statistics (not
# dropout RNG state).
WEIGHTS = (nnx.Param, nnx.BatchStat)


@dataclasses.dataclass(frozen=True)
class HParams:
    """Loss and decoding settings a task's loss_fn / eval_step need (they get no config)."""

    units: UnitTargets = UnitTargets("phoneme", False)
    lid_weight: float = 0.1
    ctc_weight: float = 0.1
    label_smoothing: float = 0.1
    token_dropout: float = 0.0
    beam_size: int = 10
    decode_ctc_weight: float = 0.3
    length_penalty: float = 0.0
    max_decode_len: int = 0


def hparams(config: ml_collections.ConfigDict) -> HParams:
    g = lambda k: factory.get(config, k)
    return HParams(units=factory.unit_targets(config),
                   lid_weight=float(g("lid_weight")),
                   ctc_weight=float(g("ctc_weight")), label_smoothing=float(g("label_smoothing")),
                   token_dropout=float(g("token_dropout")),
                   beam_size=int(g("beam_size")), decode_ctc_weight=float(g("decode_ctc_weight")),
                   length_penalty=float(g("length_penalty")),
                   max_decode_len=int(g("max_decode_len")))


def drop_tokens(inputs: jax.Array, rate: float, key: jax.Array) -> jax.Array:
    """Decoder inputs with each token after BOS replaced by UNK with probability `rate`.

    An autoregressive decoder trained on few sentences learns to recite them from their first
    words (train accuracy 100 %, validation 51 % teacher-forced, measured on the synthetic
    corpus): hiding part of its own history makes it read the encoder states instead."""
    drop = jax.random.bernoulli(key, rate, inputs.shape)
    drop = drop.at[:, 0].set(False)
    return jnp.where(drop & (inputs != PAD), UNK, inputs)


def text_loss(model: Any, states: jax.Array, mask: jax.Array, batch: dict[str, jax.Array],
              hp: HParams, rngs: nnx.Rngs | None = None) -> tuple[jax.Array, dict[str, jax.Array]]:
    """(1 - w) · label-smoothed CE (decoder) + w · CTC (text head), w = hp.ctc_weight; with
    `rngs` (training), decoder inputs are dropped at hp.token_dropout (see `drop_tokens`)."""
    language = batch["language"]
    inputs, targets, tmask = shift_targets(batch["tokens"], batch["token_mask"])
    if rngs is not None and hp.token_dropout > 0:
        inputs = drop_tokens(inputs, hp.token_dropout, rngs())
    logits = model.decode(inputs, states, mask, language)
    ce = losses.label_smoothed_ce(logits, targets, tmask, hp.label_smoothing)
    metrics = {"ce": ce, "token_accuracy": losses.accuracy(logits, targets, tmask)}
    loss = ce
    if hp.ctc_weight > 0:
        ctc = losses.ctc(model.ctc_logits(states, language), mask, batch["tokens"],
                         batch["token_mask"], blank_id=PAD)
        loss = (1 - hp.ctc_weight) * ce + hp.ctc_weight * ctc
        metrics["ctc"] = ctc
    return loss, {"loss": loss, **metrics}


def decode_len(hp: HParams, frames: int) -> int:
    return hp.max_decode_len or frames


# ---------------------------------------------------------------------------------------------
# Host side: ids → text, metrics.
# ---------------------------------------------------------------------------------------------


@functools.cache
def _tokenizer(lang: str, data_dir: str):
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


def texts(outputs: list[dict[str, np.ndarray]], batches: list[dict], config: Any,
          key: str = "tokens") -> tuple[list[str], list[str]]:
    """(references, hypotheses) for every valid example of the evaluated batches."""
    codes = languages.codes()
    refs, hyps = [], []
    for out, batch in zip(outputs, batches, strict=True):
        for i, text in enumerate(np.asarray(batch["text"])):
            if not valid_rows(batch)[i]:
                continue
            lang = codes[int(np.asarray(batch["language"])[i])]
            refs.append(languages.get(lang).normalize(str(text)))
            hyps.append(ids_to_text(out[key][i], int(out[f"{key}_len"][i]), lang,
                                    str(config.data.data_dir)))
    return refs, hyps


# ---------------------------------------------------------------------------------------------
# Loading earlier stages.
# ---------------------------------------------------------------------------------------------


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
    from lipjax.train.checkpoint import restore_params

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
    from lipjax.train.checkpoint import restore_params

    model = get_task(config.task).create_model(config, nnx.Rngs(int(config.get("seed", 0))))
    state = nnx.state(model, WEIGHTS)
    pure = _merge(state.to_pure_dict(), restore_params(str(path), step), f"{path}: model")
    nnx.replace_by_pure_dict(state, pure)
    nnx.update(model, state)
    model.eval()
    return model
