"""The jitted train and eval steps (no I/O, so benchmarks and tests import them alone).

A task's settings (`task.settings(config)`, a frozen dataclass) are closed over: they are
static for XLA, so a loss branches on them in Python and never reads them from the model.
"""

from __future__ import annotations

from typing import Any

import optax
from flax import nnx


def make_train_step(task: Any, settings: Any, schedule: optax.Schedule, donate: bool = True):
    """nnx.jit'ed (model, optimizer, rngs, batch) -> metrics; state updated in place (donated).
    `rngs` is the trainer's stream (decoder token dropout in the text tasks)."""

    def train_step(model, optimizer, rngs, batch):
        def loss(model, rngs):
            return task.loss_fn(model, batch, rngs, settings)

        grad_fn = nnx.value_and_grad(loss, argnums=nnx.DiffState(0, nnx.Param), has_aux=True)
        (value, metrics), grads = grad_fn(model, rngs)
        lr = schedule(optimizer.step.value)
        optimizer.update(model, grads)
        return {**metrics, "loss": value, "grad_norm": optax.global_norm(grads), "lr": lr}

    donate_names = ("model", "optimizer", "rngs") if donate else ()
    return nnx.jit(train_step, donate_argnames=donate_names)


def make_eval_step(task: Any, settings: Any, beam: bool = False):
    """nnx.jit'ed (model, batch) -> outputs: task.eval_step, or task.beam_step with `beam`."""
    step = task.beam_step if beam else task.eval_step
    return nnx.jit(lambda model, batch: step(model, batch, settings))
