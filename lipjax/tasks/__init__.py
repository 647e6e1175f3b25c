"""Training tasks: each module exposes create_model, settings, loss_fn, eval_step,
eval_counts (metric sums, added across hosts), eval_metrics and optionally beam_step and
load_pretrained (the interface the trainer drives).

`settings(config)` is a frozen dataclass of the loss and decoding settings, built once by the
caller and passed to `loss_fn(model, batch, rngs, settings)`, `eval_step(model, batch,
settings)` and `beam_step(model, batch, settings)` (static under jit)."""

from __future__ import annotations

import importlib
from types import ModuleType

TASKS = ("units_pretrain", "lmdecoder", "finetune")


def get_task(name: str) -> ModuleType:
    """The task module for config.task."""
    if name not in TASKS:
        raise ValueError(f"config task: expected one of {TASKS}, found {name!r}")
    return importlib.import_module(f"lipjax.tasks.{name}")
