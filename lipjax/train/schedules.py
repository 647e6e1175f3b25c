"""Learning-rate schedules and the optimizer, built from the `optim` config block.

Two schedules cover the recipe: warm-up + cosine (auto_avsr style, stages 1 and 3) and the
fairseq tri-stage schedule (warm-up, hold, exponential decay) that the paper's LMDecoder used.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import optax


def warmup_cosine(lr: float, warmup_steps: int, num_steps: int,
                  final_scale: float = 0.0) -> optax.Schedule:
    """Linear warm-up from 0 to `lr`, then cosine decay to `final_scale * lr` at `num_steps`."""
    warmup_steps = max(0, min(warmup_steps, num_steps))
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0, peak_value=lr, warmup_steps=warmup_steps,
        decay_steps=max(num_steps, warmup_steps + 1), end_value=lr * final_scale)


def tristage(lr: float, num_steps: int, phase_ratio: tuple[float, float, float] = (0.1, 0.4, 0.5),
             init_scale: float = 0.01, final_scale: float = 0.05,
             warmup_steps: int | None = None) -> optax.Schedule:
    """fairseq's tri-stage: linear warm-up from init_scale*lr, hold at lr, exponential decay.

    `warmup_steps`, when given, overrides the first phase's length; hold and decay then share
    the remaining steps in the ratio of the last two phases.
    """
    if abs(sum(phase_ratio) - 1.0) > 1e-6:
        raise ValueError(f"optim.phase_ratio must sum to 1, found {phase_ratio}")
    if warmup_steps is None:
        warmup_steps = int(phase_ratio[0] * num_steps)
    rest = max(num_steps - warmup_steps, 0)
    tail = phase_ratio[1] + phase_ratio[2]
    hold_steps = int(rest * phase_ratio[1] / tail) if tail > 0 else rest
    decay_steps = max(rest - hold_steps, 1)
    decay_rate = jnp.log(final_scale) / decay_steps

    def schedule(step: jax.Array) -> jax.Array:
        step = jnp.asarray(step, jnp.float32)
        warm = lr * (init_scale + (1.0 - init_scale) * step / max(warmup_steps, 1))
        decay = lr * jnp.exp(decay_rate * jnp.minimum(step - warmup_steps - hold_steps,
                                                      decay_steps))
        return jnp.where(step < warmup_steps, warm,
                         jnp.where(step < warmup_steps + hold_steps, lr, decay))

    return schedule


def make_schedule(optim: ml_collections.ConfigDict, num_steps: int) -> optax.Schedule:
    """The schedule named by `optim.schedule` ("cosine" | "tristage" | "constant")."""
    kind = optim.get("schedule", "cosine")
    if kind == "cosine":
        return warmup_cosine(optim.lr, optim.get("warmup_steps", 0), num_steps,
                             optim.get("final_lr_scale", 0.0))
    if kind == "tristage":
        return tristage(optim.lr, num_steps, tuple(optim.get("phase_ratio", (0.1, 0.4, 0.5))),
                        optim.get("init_lr_scale", 0.01), optim.get("final_lr_scale", 0.05),
                        optim.get("warmup_steps", None) or None)  # 0: phase_ratio's
    if kind == "constant":
        return optax.constant_schedule(optim.lr)
    raise ValueError(f"config optim.schedule: expected 'cosine', 'tristage' or 'constant', "
                     f"found {kind!r}")


def _decay_mask(params):
    """Weight decay on kernels and embeddings only: biases, norms' scales and offsets are
    exempt. Chosen by name, not by rank: in a scanned layer stack (models/stack.py) a bias has a
    leading layer axis and is 2-D."""
    decayed = lambda path, _: (_names(path) or ("",))[-1] in ("kernel", "embedding")
    return jax.tree_util.tree_map_with_path(decayed, params)


def _names(path: tuple) -> tuple[str, ...]:
    """A parameter's path as names ("decoders", "lmdecoders", "it", ...)."""
    return tuple(str(k.key) for k in path if isinstance(k, jax.tree_util.DictKey))


def frozen_mask(prefixes: tuple[str, ...]):
    """A mask function: True for parameters under one of the dotted path `prefixes` (e.g.
    "decoders" or "decoders.lmdecoders.it.decoder")."""
    split = [tuple(p.split(".")) for p in prefixes]

    def mask(params):
        def frozen(path, _):
            names = _names(path)
            return any(names[:len(p)] == p for p in split)
        return jax.tree_util.tree_map_with_path(frozen, params)

    return mask


def accumulate_steps(optim: ml_collections.ConfigDict) -> int:
    """config optim.accumulate_steps: train steps (batches) whose gradients are averaged into
    one update, for a large effective batch on few devices (default 1)."""
    value = optim.get("accumulate_steps", None)
    k = 1 if value is None else int(value)
    if k < 1:
        raise ValueError(f"config optim.accumulate_steps: expected an integer >= 1, found {k}")
    return k


def update_schedule(optim: ml_collections.ConfigDict, num_steps: int) -> optax.Schedule:
    """The learning rate at each train step: the schedule runs over the run's updates
    (num_steps // accumulate_steps), and a train step reads it at the update it belongs to."""
    k = accumulate_steps(optim)
    schedule = make_schedule(optim, max(num_steps // k, 1))
    return schedule if k == 1 else (lambda step: schedule(step // k))


def make_optimizer(optim: ml_collections.ConfigDict,
                   num_steps: int) -> optax.GradientTransformation:
    """Global-norm clipping followed by AdamW on the configured schedule. Parameters under the
    path prefixes of config optim.freeze (default none) get zero gradients before the clip and
    no weight decay, so they keep their values (Adam's update of a zero gradient is zero).

    With optim.accumulate_steps = k > 1 the gradients of k train steps are averaged before
    one update (optax.MultiSteps; the running sum is optimizer state, so it is checkpointed and
    a resume is exact); `num_steps` counts train steps, the schedule counts updates."""
    k = accumulate_steps(optim)
    if k > 1:
        return optax.MultiSteps(_adamw_chain(optim, max(num_steps // k, 1)),
                                every_k_schedule=k)
    return _adamw_chain(optim, num_steps)


def _adamw_chain(optim: ml_collections.ConfigDict,
                 num_updates: int) -> optax.GradientTransformation:
    freeze = tuple(optim.get("freeze", ()) or ())
    decay = _decay_mask
    parts = []
    if freeze:
        is_frozen = frozen_mask(freeze)
        parts.append(optax.masked(optax.set_to_zero(), is_frozen))
        decay = lambda params: jax.tree.map(lambda d, f: d and not f, _decay_mask(params),
                                            is_frozen(params))
    if optim.get("clip_norm", 0.0):
        parts.append(optax.clip_by_global_norm(optim.clip_norm))
    parts.append(optax.adamw(make_schedule(optim, num_updates), b1=optim.get("b1", 0.9),
                             b2=optim.get("b2", 0.98), eps=optim.get("eps", 1e-8),
                             weight_decay=optim.get("weight_decay", 0.0), mask=decay))
    return optax.chain(*parts)
